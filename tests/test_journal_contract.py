"""One contract for every journal: the same tests run on each JournalStore implementation.

The engine relies on these behaviours, whatever the journal is stored in: claims split the
items between runs, a lease that runs out lets another run take the item over as it was left,
every state change is fenced by the owner, and the budget holds over the whole journal even
with many runs reserving at once. Leases are on the store's clock; ``lease=0`` makes one that
has already run out, so no test waits for a lease.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import anyio
import pytest

from seedream_async._base._exceptions import JournalError
from seedream_async._engine._journal_types import (
    Claim,
    ClaimStatus,
    JournalState,
    LostClaim,
)
from seedream_async._engine._store import JournalStore
from seedream_async._wire._parsing import Prediction

pytestmark = pytest.mark.anyio

PRICE = 0.036
LONG = 60.0  # a lease that does not run out during a test
REQUEST = {"prompt": "on a pedestal", "images": ["https://example.com/a.png"]}

Opener = Callable[[], AbstractAsyncContextManager[JournalStore]]


def _sqlite_opener(tmp_path: Path) -> Opener:
    try:
        from seedream_async._engine._sqlite import SQLiteJournal  # type: ignore[import-not-found]
    except ImportError:
        pytest.skip("the SQLite JournalStore (issue 11) is not on this branch yet")

    @asynccontextmanager
    async def open_store() -> AsyncIterator[JournalStore]:
        async with await SQLiteJournal.open(tmp_path / "journal.sqlite") as store:
            yield store

    return open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens the backend's journal; every call opens another handle on the same journal,
    as a second run (another process, another machine) would."""
    if request.param == "sqlite":
        return _sqlite_opener(tmp_path)
    dsn = request.getfixturevalue("postgres_dsn")
    from seedream_async._engine._pgjournal import PostgresJournal

    @asynccontextmanager
    async def open_store() -> AsyncIterator[JournalStore]:
        async with await PostgresJournal.open(dsn) as store:
            yield store

    return open_store


@pytest.fixture
async def store(open_store: Opener) -> AsyncIterator[JournalStore]:
    async with open_store() as opened:
        yield opened


def claim(key: str, fingerprint: str = "fp1", name: str | None = None) -> Claim:
    return Claim(key=key, fingerprint=fingerprint, name=name or key)


async def claimed(store: JournalStore, owner: str, *keys: str, lease: float = LONG) -> None:
    outcomes = await store.claim(owner, [claim(key) for key in keys], lease=lease)
    assert [o.status for o in outcomes] == [ClaimStatus.CLAIMED] * len(keys)


async def billed(store: JournalStore, owner: str, key: str, pid: str) -> None:
    """Claim ``key`` and take it to SUBMITTED as ``pid``."""
    await claimed(store, owner, key)
    assert await store.reserve(owner, key, request=REQUEST, amount=PRICE, budget=None)
    await store.submitted(owner, key, prediction_id=pid, cost=PRICE)


# -- claims ---------------------------------------------------------------------------------


async def test_claim_creates_rows_in_order_and_holds_them(store: JournalStore) -> None:
    """New keys become PENDING rows held by the claimer; outcomes follow the claims' order."""
    outcomes = await store.claim("run-a", [claim("b"), claim("a"), claim("c")], lease=LONG)
    assert [o.status for o in outcomes] == [ClaimStatus.CLAIMED] * 3
    records = [o.record for o in outcomes]
    assert [r.key for r in records if r] == ["b", "a", "c"]
    for record in records:
        assert record is not None
        assert (record.state, record.owner, record.attempts) == (JournalState.PENDING, "run-a", 0)
        assert record.lease_expires is not None
    assert (await store.counts())[JournalState.PENDING] == 3


async def test_a_live_claim_is_busy_for_another_run(store: JournalStore) -> None:
    """Two runs on one journal split it: the second is told BUSY, with when to ask again."""
    await claimed(store, "run-a", "a")
    [outcome] = await store.claim("run-b", [claim("a")], lease=LONG)
    assert outcome.status is ClaimStatus.BUSY
    assert outcome.retry_after is not None
    assert 0 < outcome.retry_after <= LONG
    [again] = await store.claim("run-a", [claim("a")], lease=LONG)
    assert again.status is ClaimStatus.CLAIMED
    assert again.taken_over_from is None


async def test_an_expired_claim_is_taken_over_and_the_old_owner_fenced(
    store: JournalStore,
) -> None:
    """A run whose lease ran out loses the item; its next state change raises LostClaim."""
    await claimed(store, "run-a", "a", lease=0.0)
    [outcome] = await store.claim("run-b", [claim("a")], lease=LONG)
    assert outcome.status is ClaimStatus.CLAIMED
    assert outcome.taken_over_from == "run-a"
    with pytest.raises(LostClaim) as caught:
        await store.reserve("run-a", "a", request=REQUEST, amount=PRICE, budget=None)
    assert (caught.value.key, caught.value.owner, caught.value.holder) == ("a", "run-a", "run-b")
    assert (await store.spend()).reserved == 0


async def test_takeover_of_a_billed_item_keeps_its_id_and_never_reserves_again(
    store: JournalStore,
) -> None:
    """A dead run's billed item comes back as SUBMITTED with its id: it is polled, and the
    store refuses a new submit for it (that would pay twice)."""
    await billed(store, "run-a", "a", "pred-1")
    await store.heartbeat("run-a", lease=0.0)  # run-a "dies": its lease runs out
    [outcome] = await store.claim("run-b", [claim("a")], lease=LONG)
    assert outcome.status is ClaimStatus.CLAIMED
    assert outcome.record is not None
    assert (outcome.record.state, outcome.record.prediction_id) == (
        JournalState.SUBMITTED,
        "pred-1",
    )
    assert outcome.record.undelivered
    with pytest.raises(JournalError):
        await store.reserve("run-b", "a", request=REQUEST, amount=PRICE, budget=None)
    with pytest.raises(LostClaim):
        await store.done("run-a", "a", outputs=["u"], predict_time=1.0)
    await store.done("run-b", "a", outputs=["u"], predict_time=1.0)
    await store.delivered("run-b", "a", files=["out/a.png"], outputs=["u"])
    assert (await store.spend()).billed == pytest.approx(PRICE)
    assert [a.prediction_id for a in await store.history("a")] == ["pred-1"]


async def test_takeover_mid_submit_makes_the_item_ambiguous_and_billed(
    store: JournalStore,
) -> None:
    """An item whose run stopped between reserve and id comes back AMBIGUOUS, its
    reservation counted as billed: it is never sent again on its own."""
    await claimed(store, "run-a", "a", lease=LONG)
    assert await store.reserve("run-a", "a", request=REQUEST, amount=PRICE, budget=None)
    await store.heartbeat("run-a", lease=0.0)
    [outcome] = await store.claim("run-b", [claim("a")], lease=LONG)
    assert outcome.status is ClaimStatus.CLAIMED
    assert outcome.record is not None
    assert outcome.record.state is JournalState.AMBIGUOUS
    spend = await store.spend()
    assert (spend.billed, spend.reserved) == (pytest.approx(PRICE), 0)
    [attempt] = await store.history("a")
    assert (attempt.state, attempt.owner) == (JournalState.AMBIGUOUS, "run-a")


async def test_heartbeat_renews_and_release_hands_over(store: JournalStore) -> None:
    """The heartbeat keeps expired claims the owner's; release lets another run claim at once."""
    await claimed(store, "run-a", "a", "b", lease=0.0)
    assert await store.heartbeat("run-a", lease=LONG) == 2
    outcomes = await store.claim("run-b", [claim("a"), claim("b")], lease=LONG)
    assert [o.status for o in outcomes] == [ClaimStatus.BUSY, ClaimStatus.BUSY]
    await store.release("run-a", ["a"])
    await store.release("run-b", ["b"])  # not run-b's: left alone
    outcomes = await store.claim("run-b", [claim("a"), claim("b")], lease=LONG)
    assert [o.status for o in outcomes] == [ClaimStatus.CLAIMED, ClaimStatus.BUSY]
    assert outcomes[0].taken_over_from is None
    assert await store.heartbeat("nobody", lease=LONG) == 0


async def test_two_handles_claiming_at_once_split_the_items(open_store: Opener) -> None:
    """Runs claiming the same keys concurrently each get a disjoint share, covering all."""
    keys = [f"k{n:03d}" for n in range(60)]
    won: dict[str, list[str]] = {}

    async def run(owner: str) -> None:
        async with open_store() as handle:
            for start in range(0, len(keys), 10):
                batch = [claim(key) for key in keys[start : start + 10]]
                outcomes = await handle.claim(owner, batch, lease=LONG)
                won.setdefault(owner, []).extend(
                    c.key for c, o in zip(batch, outcomes, strict=True) if o.status == "claimed"
                )

    async with anyio.create_task_group() as group:
        for owner in ("run-a", "run-b", "run-c"):
            group.start_soon(run, owner)
    everyone = [key for share in won.values() for key in share]
    assert sorted(everyone) == keys  # each key claimed exactly once


async def test_output_names_are_unique_case_insensitively(store: JournalStore) -> None:
    """A stem another key holds (in any case) is refused before anything is paid."""
    await store.claim("run-a", [claim("sku-1", name="Shoe")], lease=LONG)
    [outcome] = await store.claim("run-a", [claim("sku-2", name="shoe")], lease=LONG)
    assert outcome.status is ClaimStatus.NAME_TAKEN
    assert outcome.conflict == "sku-1"
    assert await store.get("sku-2") is None


# -- attempts and money ---------------------------------------------------------------------


async def test_a_delivered_item_went_through_every_state(store: JournalStore) -> None:
    """PENDING -> INTENT -> SUBMITTED -> DONE -> DELIVERED, each field and the money kept."""
    await claimed(store, "run-a", "a")
    assert await store.reserve("run-a", "a", request=REQUEST, amount=PRICE, budget=1.0)
    record = await store.get("a")
    assert record is not None
    assert (record.state, record.request, record.attempts) == (JournalState.INTENT, REQUEST, 1)
    assert (await store.spend()).reserved == pytest.approx(PRICE)

    await store.submitted("run-a", "a", prediction_id="pred-1", cost=PRICE)
    spend = await store.spend()
    assert (spend.billed, spend.reserved, spend.in_flight) == (pytest.approx(PRICE), 0, 1)

    await store.done("run-a", "a", outputs=["https://o/1.png"], predict_time=8.5)
    await store.delivered("run-a", "a", files=["out/a.png"], outputs=["https://o/1.png"])
    record = await store.get("a")
    assert record is not None
    assert record.state is JournalState.DELIVERED
    assert (record.prediction_id, record.files, record.predict_time) == (
        "pred-1",
        ("out/a.png",),
        8.5,
    )
    assert record.cost == pytest.approx(PRICE)
    assert record.owner is None  # delivered releases the claim
    assert (await store.spend()).in_flight == 0
    [attempt] = await store.history("a")
    assert (attempt.number, attempt.owner, attempt.prediction_id) == (1, "run-a", "pred-1")
    assert attempt.cost == pytest.approx(PRICE)


async def test_note_error_keeps_the_id(store: JournalStore) -> None:
    """A download that failed is noted; the id stays for the next try to fetch again."""
    await billed(store, "run-a", "a", "pred-1")
    await store.done("run-a", "a", outputs=["u"], predict_time=None)
    await store.note_error("run-a", "a", error="disk full", error_type="OSError")
    record = await store.get("a")
    assert record is not None
    assert (record.state, record.prediction_id, record.error) == (
        JournalState.DONE,
        "pred-1",
        "disk full",
    )
    assert record.undelivered


async def test_refund_costs_nothing_and_ambiguous_counts_as_billed(store: JournalStore) -> None:
    """A refused submit is refunded to PENDING; one with no answer is billed, to be safe."""
    await claimed(store, "run-a", "a", "b")
    assert await store.reserve("run-a", "a", request=REQUEST, amount=PRICE, budget=None)
    await store.refund("run-a", "a", error="429")
    record = await store.get("a")
    assert record is not None
    assert (record.state, record.cost) == (JournalState.PENDING, 0)
    assert [a for a in await store.history("a") if a.cost] == []

    assert await store.reserve("run-a", "b", request=REQUEST, amount=PRICE, budget=None)
    await store.ambiguous("run-a", "b", cost=PRICE, error="connection dropped")
    record = await store.get("b")
    assert record is not None
    assert record.state is JournalState.AMBIGUOUS
    assert record.billed
    spend = await store.spend()
    assert (spend.billed, spend.reserved) == (pytest.approx(PRICE), 0)


async def test_not_submitted_drops_the_reservation_and_refuses_billed_items(
    store: JournalStore,
) -> None:
    """Nothing billed may be recorded as not submitted; an INTENT's reservation is freed."""
    await claimed(store, "run-a", "a")
    assert await store.reserve("run-a", "a", request=REQUEST, amount=PRICE, budget=None)
    await store.not_submitted("run-a", "a", error="stopped", error_type="Cancelled")
    assert (await store.spend()).committed == 0
    await billed(store, "run-a", "b", "pred-b")
    with pytest.raises(JournalError):
        await store.not_submitted("run-a", "b", error="stopped", error_type="Cancelled")


async def test_a_failed_prediction_resubmitted_is_a_second_paid_attempt(
    store: JournalStore,
) -> None:
    """retry_failed: API_FAILED may be reserved again; both attempts stay in the history."""
    await billed(store, "run-a", "a", "pred-1")
    await store.api_failed("run-a", "a", error="model error")
    assert await store.reserve("run-a", "a", request=REQUEST, amount=PRICE, budget=None)
    await store.submitted("run-a", "a", prediction_id="pred-2", cost=PRICE)
    history = await store.history("a")
    assert [(a.number, a.state, a.prediction_id) for a in history] == [
        (1, JournalState.API_FAILED, "pred-1"),
        (2, JournalState.SUBMITTED, "pred-2"),
    ]
    record = await store.get("a")
    assert record is not None
    assert (record.attempts, record.cost) == (2, pytest.approx(2 * PRICE))
    assert (await store.spend()).billed == pytest.approx(2 * PRICE)


async def test_the_request_id_and_price_rule_are_kept_for_support(store: JournalStore) -> None:
    """The submit's X-Request-ID and the price rule it was billed by stay on the row,
    ambiguous ones included (the question support answers: "was I billed?")."""
    await claimed(store, "run-a", "a", "b", "c")
    assert await store.reserve("run-a", "a", request=REQUEST, amount=PRICE, budget=None)
    rule = "$0.036 per execution"
    await store.submitted(
        "run-a", "a", prediction_id="p-a", cost=PRICE, request_id="req-a", price_rule=rule
    )
    assert await store.reserve("run-a", "b", request=REQUEST, amount=PRICE, budget=None)
    await store.ambiguous("run-a", "b", cost=PRICE, error="HTTP 504", request_id="req-b")
    await store.api_failed("run-a", "a", error="moderated")
    rows = await store.get_many(["a", "b", "c"])
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert (a.request_id, a.price_rule, a.state) == ("req-a", rule, JournalState.API_FAILED)
    assert (b.request_id, b.state) == ("req-b", JournalState.AMBIGUOUS)
    assert (c.request_id, c.price_rule) == (None, None)
    (page,) = [(await store.page()).records]
    assert [r.request_id for r in page] == ["req-a", "req-b", None]


async def test_settle_sets_the_attempt_cost_and_the_total_follows(store: JournalStore) -> None:
    """Per-image pricing: a submit billed at its worst case settles to the images returned
    (the attempt, the item and the journal's total follow; the same settle twice changes
    nothing); a failed one settles to nothing. Only a billed attempt settles."""
    held = 15 * PRICE
    for key, prediction in (("a", "pred-a"), ("b", "pred-b")):
        await claimed(store, "run-a", key)
        assert await store.reserve("run-a", key, request=REQUEST, amount=held, budget=None)
        await store.submitted("run-a", key, prediction_id=prediction, cost=held)
    assert (await store.spend()).billed == pytest.approx(2 * held)
    for _ in range(2):
        await store.settle("run-a", "a", cost=4 * PRICE)
    await store.delivered("run-a", "a", files=[], outputs=["u"] * 4)
    await store.settle("run-a", "b", cost=0.0)
    await store.api_failed("run-a", "b", error="moderated")
    a, b = await store.get("a"), await store.get("b")
    assert a is not None
    assert b is not None
    assert (a.cost, b.cost) == (pytest.approx(4 * PRICE), 0)
    assert [x.cost for x in await store.history("a")] == [pytest.approx(4 * PRICE)]
    assert (await store.spend()).billed == pytest.approx(4 * PRICE)
    await claimed(store, "run-a", "c")
    assert await store.reserve("run-a", "c", request=REQUEST, amount=held, budget=None)
    with pytest.raises(JournalError):
        await store.settle("run-a", "c", cost=0.0)


async def test_a_changed_fingerprint_is_a_new_job_with_the_old_attempts_kept(
    store: JournalStore,
) -> None:
    """Re-claiming with another fingerprint starts at PENDING; the paid attempt stays."""
    await billed(store, "run-a", "a", "pred-1")
    [outcome] = await store.claim("run-a", [claim("a", fingerprint="fp2")], lease=LONG)
    assert outcome.status is ClaimStatus.CLAIMED
    assert outcome.record is not None
    assert (outcome.record.state, outcome.record.fingerprint, outcome.record.prediction_id) == (
        JournalState.PENDING,
        "fp2",
        None,
    )
    [old] = await store.history("a")
    assert (old.fingerprint, old.prediction_id) == ("fp1", "pred-1")
    assert (await store.spend()).billed == pytest.approx(PRICE)


async def test_the_budget_holds_across_runs_reserving_at_once(open_store: Opener) -> None:
    """Many runs reserving concurrently never commit more than the budget, together."""
    budget = 7 * PRICE
    granted: list[str] = []

    async def run(owner: str, keys: list[str]) -> None:
        async with open_store() as handle:
            await claimed(handle, owner, *keys)
            for key in keys:
                if await handle.reserve(owner, key, request=REQUEST, amount=PRICE, budget=budget):
                    granted.append(key)
                    await handle.submitted(owner, key, prediction_id=f"p-{key}", cost=PRICE)

    async with anyio.create_task_group() as group:
        for n in range(4):
            group.start_soon(run, f"run-{n}", [f"r{n}-{i}" for i in range(5)])
    assert len(granted) == 7
    async with open_store() as handle:
        spend = await handle.spend()
        assert spend.billed == pytest.approx(budget)
        assert spend.reserved == 0


async def test_reservations_count_against_the_budget(store: JournalStore) -> None:
    """A reservation on the wire counts: the next reserve past the budget is refused."""
    await claimed(store, "run-a", "a", "b")
    assert await store.reserve("run-a", "a", request=REQUEST, amount=PRICE, budget=1.5 * PRICE)
    assert not await store.reserve("run-a", "b", request=REQUEST, amount=PRICE, budget=1.5 * PRICE)
    record = await store.get("b")
    assert record is not None
    assert record.state is JournalState.PENDING  # a refused reserve changes nothing


# -- reading --------------------------------------------------------------------------------


async def test_pages_counts_and_get_many(store: JournalStore) -> None:
    """The report reads every row once, in first-seen order, page by page."""
    keys = [f"k{n}" for n in range(7)]
    await claimed(store, "run-a", *keys)
    seen: list[str] = []
    after = 0
    while True:
        page = await store.page(after=after, limit=3)
        seen.extend(record.key for record in page.records)
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == keys
    assert set(await store.get_many(["k1", "k5", "nope"])) == {"k1", "k5"}
    counts = await store.counts()
    assert set(counts) == set(JournalState)
    assert counts[JournalState.PENDING] == 7


async def test_changes_to_an_unknown_key_are_refused(store: JournalStore) -> None:
    """A state change for a key never claimed is a JournalError, not a silent no-op."""
    with pytest.raises(JournalError):
        await store.submitted("run-a", "ghost", prediction_id="p", cost=PRICE)
    assert await store.get("ghost") is None


# -- delivery recorded (a verified webhook, issue 20) ---------------------------------------


def _delivered(pid: str, *, failed: bool = False) -> Prediction:
    status = "failed" if failed else "completed"
    outputs = [] if failed else [f"https://cdn.example.com/{pid}.png"]
    return Prediction(id=pid, status=status, outputs=outputs, error="nsfw" if failed else None)


async def test_a_delivery_recovers_an_ambiguous_attempt_without_paying_again(
    store: JournalStore,
) -> None:
    """AMBIGUOUS (the submit's answer lost) + its webhook: billed with the id, DONE with the
    outputs, counted once; the same webhook id again changes nothing."""
    await claimed(store, "run-a", "a")
    assert await store.reserve("run-a", "a", request=REQUEST, amount=PRICE, budget=None)
    await store.ambiguous("run-a", "a", cost=PRICE, error="answer lost")
    for _ in range(2):
        await store.record_delivery(
            key="a", attempt=1, prediction_id="pred-a", webhook_id="wh-1",
            prediction=_delivered("pred-a"),
        )  # fmt: skip
    record = await store.get("a")
    assert record is not None
    assert (record.state, record.prediction_id) == (JournalState.DONE, "pred-a")
    assert record.outputs == ("https://cdn.example.com/pred-a.png",)
    assert (record.cost, record.error) == (pytest.approx(PRICE), None)
    [attempt] = await store.history("a")
    assert (attempt.state, attempt.prediction_id) == (JournalState.DONE, "pred-a")
    spend = await store.spend()
    assert (spend.billed, spend.reserved) == (pytest.approx(PRICE), 0)
    await store.delivered("run-a", "a", files=["a.png"], outputs=record.outputs)


async def test_a_delivery_before_the_submits_answer_bills_the_reservation(
    store: JournalStore,
) -> None:
    """A webhook that lands while the submit is on the wire (INTENT) settles it as billed;
    the submit's own answer (or its loss) then changes nothing and nothing is billed twice."""
    await claimed(store, "run-a", "a", "b")
    for key in ("a", "b"):
        assert await store.reserve("run-a", key, request=REQUEST, amount=PRICE, budget=None)
        await store.record_delivery(
            key=key, attempt=1, prediction_id=f"pred-{key}", webhook_id=f"wh-{key}",
            prediction=_delivered(f"pred-{key}", failed=key == "b"),
        )  # fmt: skip
    await store.submitted("run-a", "a", prediction_id="pred-a", cost=PRICE)
    await store.ambiguous("run-a", "b", cost=PRICE, error="answer lost")
    a, b = await store.get("a"), await store.get("b")
    assert a is not None
    assert b is not None
    assert (a.state, b.state) == (JournalState.DONE, JournalState.API_FAILED)
    assert (b.prediction_id, b.error_type) == ("pred-b", "PredictionFailed")
    spend = await store.spend()
    assert (spend.billed, spend.reserved) == (pytest.approx(2 * PRICE), 0)


async def test_a_delivery_changes_nothing_terminal_old_or_unknown(
    open_store: Opener,
) -> None:
    """Any handle (another worker's receiver) records any run's item; a delivered row, an
    older attempt's delivery and an unknown key are left as they are."""
    async with open_store() as store, open_store() as receiver:
        await billed(store, "run-a", "a", "pred-a")
        await receiver.record_delivery(
            key="a", attempt=1, prediction_id="pred-a", webhook_id="wh-a",
            prediction=_delivered("pred-a"),
        )  # fmt: skip
        await store.delivered("run-a", "a", files=["a.png"], outputs=["u"])
        await receiver.record_delivery(
            key="a", attempt=1, prediction_id="pred-a", webhook_id="wh-a2",
            prediction=_delivered("pred-a", failed=True),
        )  # fmt: skip
        record = await store.get("a")
        assert record is not None
        assert record.state is JournalState.DELIVERED
        await billed(store, "run-a", "b", "pred-b")
        await receiver.record_delivery(
            key="b", attempt=7, prediction_id="pred-old", webhook_id="wh-b",
            prediction=_delivered("pred-old"),
        )  # fmt: skip
        record = await store.get("b")
        assert record is not None
        assert (record.state, record.prediction_id) == (JournalState.SUBMITTED, "pred-b")
        await receiver.record_delivery(
            key="zz", attempt=1, prediction_id="p", webhook_id="w", prediction=_delivered("p")
        )
        assert await store.get("zz") is None


async def test_a_delivery_names_the_attempt_its_refused_retries_resent(store: JournalStore) -> None:
    """A submit refused (429, refunded) and sent again carries its first token; the
    delivery for it is the latest attempt's. A billed attempt in between is not skipped."""
    await claimed(store, "run-a", "a")
    assert await store.reserve("run-a", "a", request=REQUEST, amount=PRICE, budget=None)
    await store.refund("run-a", "a", error="429")
    assert await store.reserve("run-a", "a", request=REQUEST, amount=PRICE, budget=None)
    await store.record_delivery(
        key="a",
        attempt=1,
        prediction_id="pred-a",
        webhook_id="wh-a",
        prediction=_delivered("pred-a"),
    )
    record = await store.get("a")
    assert record is not None
    assert (record.state, record.attempts, record.cost) == (
        JournalState.DONE,
        2,
        pytest.approx(PRICE),
    )
    await store.record_delivery(
        key="a", attempt=1, prediction_id="pred-x", webhook_id="wh-x", prediction=_delivered("x")
    )
    record = await store.get("a")
    assert record is not None
    assert record.prediction_id == "pred-a"


# -- a billed id written late ----------------------------------------------------------------


async def test_a_late_id_lands_after_the_claim_was_lost(store: JournalStore) -> None:
    """A run paused mid-submit lost its claim; the next claimer made the item ambiguous.
    The paused run's id, written late (record_id), lands anyway: the item is SUBMITTED with
    it (fetched by id next), billed once, and writing it again changes nothing."""
    await claimed(store, "paused", "a")
    assert await store.reserve("paused", "a", request=REQUEST, amount=PRICE, budget=None)
    await store.claim("taker", [claim("a")], lease=0)  # not taken over yet: busy
    await store.heartbeat("paused", lease=0)  # the paused run's lease runs out
    outcome = (await store.claim("taker", [claim("a")], lease=LONG))[0]
    assert outcome.record is not None
    assert outcome.record.state is JournalState.AMBIGUOUS
    with pytest.raises(LostClaim):
        await store.submitted("paused", "a", prediction_id="pred-a", cost=PRICE)
    for _ in range(2):  # idempotent
        assert await store.record_id("paused", "a", prediction_id="pred-a", cost=PRICE)
    record = await store.get("a")
    assert record is not None
    assert (record.state, record.prediction_id) == (JournalState.SUBMITTED, "pred-a")
    assert record.cost == pytest.approx(PRICE)
    spend = await store.spend()
    assert (spend.billed, spend.reserved) == (pytest.approx(PRICE), 0)


async def test_a_late_id_settles_its_reservation_or_adds_an_attempt(store: JournalStore) -> None:
    """From INTENT (the journal was down when the id came) the reservation is settled; on a
    row that never saw the attempt (a journal started afresh) it is added to the history."""
    await claimed(store, "run-a", "a", "b")
    assert await store.reserve("run-a", "a", request=REQUEST, amount=PRICE, budget=None)
    assert await store.record_id("run-a", "a", prediction_id="pred-a", cost=PRICE)
    assert await store.record_id("run-a", "b", prediction_id="pred-b", cost=PRICE)
    for key in ("a", "b"):
        record = await store.get(key)
        assert record is not None
        assert (record.state, record.prediction_id) == (JournalState.SUBMITTED, f"pred-{key}")
        history = await store.history(key)
        assert [(h.prediction_id, h.cost) for h in history] == [(f"pred-{key}", PRICE)]
    spend = await store.spend()
    assert (spend.billed, spend.reserved) == (pytest.approx(2 * PRICE), 0)
    with pytest.raises(JournalError):  # it has a prediction: never a second paid attempt
        await store.reserve("run-a", "b", request=REQUEST, amount=PRICE, budget=None)
