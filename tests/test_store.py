"""The SQLite journal as the record of what was billed: states, claims, budget, migration."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import anyio
import pytest

from seedream_async import JournalError
from seedream_async._engine._journal_types import (
    Claim,
    ClaimStatus,
    JournalState,
    LostClaim,
)
from seedream_async._engine._names import output_stem
from seedream_async._engine._owners import new_owner
from seedream_async._engine._sqlite import SCHEMA_VERSION, SQLiteJournal
from seedream_async._engine._store import JournalStore

pytestmark = pytest.mark.anyio

REQUEST = {"prompt": "on a pedestal", "images": ["https://example.com/a.png"]}
PRICE = 0.036


def claim(key: str, fingerprint: str = "fp") -> Claim:
    return Claim(key=key, fingerprint=fingerprint, name=output_stem(key))


async def test_it_is_a_journal_store(tmp_path: Path) -> None:
    """The SQLite journal implements the JournalStore protocol the engine uses."""
    async with await SQLiteJournal.open(tmp_path / "j.db") as journal:
        store: JournalStore = journal
        assert await store.counts() == dict.fromkeys(JournalState, 0)


async def test_a_billed_item_goes_through_to_delivered(tmp_path: Path) -> None:
    """claim -> reserve -> submitted -> done -> delivered, each recorded, the budget settled."""
    me = new_owner()
    async with await SQLiteJournal.open(tmp_path / "j.db") as journal:
        (outcome,) = await journal.claim(me, [claim("a")], lease=30)
        assert outcome.status is ClaimStatus.CLAIMED
        assert outcome.record is not None
        assert outcome.record.state is JournalState.PENDING
        assert await journal.reserve(me, "a", request=REQUEST, amount=PRICE, budget=None)
        assert (await journal.spend()).reserved == pytest.approx(PRICE)
        await journal.submitted(me, "a", prediction_id="pred_1", cost=PRICE)
        spend = await journal.spend()
        assert (spend.billed, spend.reserved, spend.in_flight) == (pytest.approx(PRICE), 0, 1)
        await journal.done(me, "a", outputs=["https://o/1.png"], predict_time=8.3)
        await journal.delivered(me, "a", files=["out/a.png"], outputs=["https://o/1.png"])
        record = await journal.get("a")
        assert record is not None
        assert record.state is JournalState.DELIVERED
        assert (record.prediction_id, record.files, record.cost) == (
            "pred_1",
            ("out/a.png",),
            PRICE,
        )
        assert record.owner is None  # delivered releases the claim
        (attempt,) = await journal.history("a")
        assert (attempt.state, attempt.prediction_id, attempt.cost) == (
            JournalState.DELIVERED,
            "pred_1",
            PRICE,
        )


@pytest.mark.parametrize("state", ["submitted", "done", "delivered"])
async def test_an_item_with_a_prediction_cannot_be_reserved_again(
    tmp_path: Path, state: str
) -> None:
    """The store itself refuses a new submit for an item that has a prediction."""
    me = new_owner()
    async with await SQLiteJournal.open(tmp_path / "j.db") as journal:
        await journal.claim(me, [claim("a")], lease=30)
        await journal.reserve(me, "a", request=REQUEST, amount=PRICE, budget=None)
        await journal.submitted(me, "a", prediction_id="pred_1", cost=PRICE)
        if state != "submitted":
            await journal.done(me, "a", outputs=["u"], predict_time=None)
        if state == "delivered":
            await journal.delivered(me, "a", files=[], outputs=["u"])
            await journal.claim(me, [claim("a")], lease=30)
        with pytest.raises(JournalError, match="twice"):
            await journal.reserve(me, "a", request=REQUEST, amount=PRICE, budget=None)


async def test_a_refused_submit_is_refunded_and_an_ambiguous_one_counted(tmp_path: Path) -> None:
    """refund drops the reservation at no cost; ambiguous counts it as billed."""
    me = new_owner()
    async with await SQLiteJournal.open(tmp_path / "j.db") as journal:
        await journal.claim(me, [claim("a"), claim("b")], lease=30)
        await journal.reserve(me, "a", request=REQUEST, amount=PRICE, budget=None)
        await journal.refund(me, "a", error="429")
        await journal.reserve(me, "b", request=REQUEST, amount=PRICE, budget=None)
        await journal.ambiguous(me, "b", cost=PRICE, error="read timeout")
        spend = await journal.spend()
        assert (spend.billed, spend.reserved) == (pytest.approx(PRICE), 0)
        a, b = await journal.get("a"), await journal.get("b")
        assert a is not None
        assert b is not None
        assert (a.state, b.state) == (JournalState.PENDING, JournalState.AMBIGUOUS)


async def test_the_budget_covers_the_whole_journal_and_every_run(tmp_path: Path) -> None:
    """Reservations of every run and every billed attempt count against the budget."""
    path = tmp_path / "j.db"
    budget = 3 * PRICE
    async with await SQLiteJournal.open(path) as one, await SQLiteJournal.open(path) as two:
        first, second = new_owner(), new_owner()
        await one.claim(first, [claim("a"), claim("b")], lease=30)
        await two.claim(second, [claim("c"), claim("d")], lease=30)
        assert await one.reserve(first, "a", request=REQUEST, amount=PRICE, budget=budget)
        await one.submitted(first, "a", prediction_id="p1", cost=PRICE)
        assert await two.reserve(second, "c", request=REQUEST, amount=PRICE, budget=budget)
        assert await one.reserve(first, "b", request=REQUEST, amount=PRICE, budget=budget)
        assert not await two.reserve(second, "d", request=REQUEST, amount=PRICE, budget=budget)
        await two.refund(second, "c")
        assert await two.reserve(second, "d", request=REQUEST, amount=PRICE, budget=budget)


async def test_a_live_claim_is_busy_for_another_run(tmp_path: Path) -> None:
    """Two runs on one journal: an item claimed by one is busy for the other."""
    path = tmp_path / "j.db"
    async with await SQLiteJournal.open(path) as one, await SQLiteJournal.open(path) as two:
        first, second = new_owner(), new_owner()
        await one.claim(first, [claim("a")], lease=30)
        (outcome,) = await two.claim(second, [claim("a")], lease=30)
        assert outcome.status is ClaimStatus.BUSY
        assert outcome.retry_after is not None
        assert 0 < outcome.retry_after <= 30
        with pytest.raises(LostClaim):
            await two.reserve(second, "a", request=REQUEST, amount=PRICE, budget=None)
        await one.release(first, ["a"])
        (outcome,) = await two.claim(second, [claim("a")], lease=30)
        assert outcome.status is ClaimStatus.CLAIMED


async def test_an_expired_claim_is_taken_over_and_the_old_owner_fenced(tmp_path: Path) -> None:
    """A claim past its lease is taken over with its row (an id is kept to be polled); the
    stalled owner's later writes raise LostClaim instead of overwriting."""
    first, second = new_owner(), new_owner()
    async with await SQLiteJournal.open(tmp_path / "j.db") as journal:
        await journal.claim(first, [claim("a")], lease=0.05)
        await journal.reserve(first, "a", request=REQUEST, amount=PRICE, budget=None)
        await journal.submitted(first, "a", prediction_id="pred_1", cost=PRICE)
        assert await journal.heartbeat(first, lease=0.05) == 1
        await anyio.sleep(0.1)
        (outcome,) = await journal.claim(second, [claim("a")], lease=30)
        assert outcome.status is ClaimStatus.CLAIMED
        assert outcome.taken_over_from == first
        assert outcome.record is not None
        assert (outcome.record.state, outcome.record.prediction_id) == (
            JournalState.SUBMITTED,
            "pred_1",
        )
        with pytest.raises(LostClaim):
            await journal.done(first, "a", outputs=["u"], predict_time=None)


async def test_an_intent_left_by_a_stopped_run_becomes_ambiguous(tmp_path: Path) -> None:
    """Taking over an item whose submit was on the wire marks it ambiguous, counted billed."""
    first, second = new_owner(), new_owner()
    async with await SQLiteJournal.open(tmp_path / "j.db") as journal:
        await journal.claim(first, [claim("a")], lease=0.01)
        await journal.reserve(first, "a", request=REQUEST, amount=PRICE, budget=None)
        await anyio.sleep(0.05)
        (outcome,) = await journal.claim(second, [claim("a")], lease=30)
        assert outcome.record is not None
        assert outcome.record.state is JournalState.AMBIGUOUS
        spend = await journal.spend()
        assert (spend.billed, spend.reserved) == (pytest.approx(PRICE), 0)


async def test_a_dead_process_claims_are_taken_over_at_once(tmp_path: Path) -> None:
    """A claim whose owner ran on this machine in a process that is gone is not waited for."""
    dead = f"{new_owner().split(':')[0]}:999999999:dead"
    async with await SQLiteJournal.open(tmp_path / "j.db") as journal:
        await journal.claim(dead, [claim("a")], lease=3600)
        (outcome,) = await journal.claim(new_owner(), [claim("a")], lease=30)
        assert outcome.status is ClaimStatus.CLAIMED
        assert outcome.taken_over_from == dead


async def test_output_names_are_unique_case_insensitively(tmp_path: Path) -> None:
    """A key whose output name folds to another key's is refused, naming that key."""
    me = new_owner()
    async with await SQLiteJournal.open(tmp_path / "j.db") as journal:
        first, second = await journal.claim(me, [claim("Sku-1"), claim("sku-1")], lease=30)
        assert first.status is ClaimStatus.CLAIMED
        assert second.status is ClaimStatus.NAME_TAKEN
        assert second.conflict == "Sku-1"
        assert await journal.get("sku-1") is None


async def test_a_changed_fingerprint_starts_a_new_job_and_keeps_the_paid_attempt(
    tmp_path: Path,
) -> None:
    """Same key, new content: the row starts again at PENDING; the paid attempt stays."""
    me = new_owner()
    async with await SQLiteJournal.open(tmp_path / "j.db") as journal:
        await journal.claim(me, [claim("a", "fp1")], lease=30)
        await journal.reserve(me, "a", request=REQUEST, amount=PRICE, budget=None)
        await journal.submitted(me, "a", prediction_id="pred_1", cost=PRICE)
        await journal.api_failed(me, "a", error="model failed")
        (outcome,) = await journal.claim(me, [claim("a", "fp2")], lease=30)
        assert outcome.record is not None
        assert outcome.record.state is JournalState.PENDING
        assert outcome.record.prediction_id is None
        assert outcome.record.cost == pytest.approx(PRICE)
        (attempt,) = await journal.history("a")
        assert (attempt.fingerprint, attempt.state) == ("fp1", JournalState.API_FAILED)


async def test_pages_walk_every_row_in_order(tmp_path: Path) -> None:
    """page() returns rows in first-seen order, in pages, for the report."""
    me = new_owner()
    keys = [f"k{n:02d}" for n in range(25)]
    async with await SQLiteJournal.open(tmp_path / "j.db") as journal:
        await journal.claim(me, [claim(k) for k in keys], lease=30)
        seen: list[str] = []
        after: int | None = 0
        while after is not None:
            page = await journal.page(after=after, limit=10)
            seen += [record.key for record in page.records]
            after = page.next_after
        assert seen == keys
        assert set(await journal.get_many(["k01", "k24", "nope"])) == {"k01", "k24"}


def _v1_journal(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,
            fingerprint TEXT NOT NULL, state TEXT NOT NULL, request TEXT, prediction_id TEXT,
            outputs TEXT NOT NULL DEFAULT '[]', files TEXT NOT NULL DEFAULT '[]', error TEXT,
            error_type TEXT, cost REAL NOT NULL DEFAULT 0, predict_time REAL,
            updated_at REAL NOT NULL);
        CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL,
            fingerprint TEXT NOT NULL, state TEXT NOT NULL, request TEXT, prediction_id TEXT,
            outputs TEXT NOT NULL, files TEXT NOT NULL, error TEXT, error_type TEXT,
            cost REAL NOT NULL, predict_time REAL, updated_at REAL NOT NULL,
            superseded_at REAL NOT NULL);
        PRAGMA user_version = 1;
        PRAGMA application_id = 1396984369;
        """
    )
    rows = [
        ("done", "succeeded", "p1", None, '["o/done.png"]'),
        ("expired", "failed", "p2", "OutputExpired", "[]"),
        ("model-failed", "failed", "p3", "PredictionFailed", "[]"),
        ("lost", "intent", None, None, "[]"),
        ("rejected", "failed", None, "BadRequestError", "[]"),
    ]
    for key, state, pid, etype, files in rows:
        conn.execute(
            "INSERT INTO entries (key, fingerprint, state, request, prediction_id, files, "
            "error_type, cost, updated_at) VALUES (?, 'fp', ?, ?, ?, ?, ?, ?, ?)",
            (key, state, json.dumps(REQUEST), pid, files, etype, PRICE if pid else 0, time.time()),
        )
    conn.commit()
    conn.close()


async def test_a_version_1_journal_is_migrated_so_billed_items_are_fetched_by_id(
    tmp_path: Path,
) -> None:
    """An old journal's billed-but-undelivered rows become SUBMITTED (fetched by id), the
    API's failures API_FAILED, lost intents AMBIGUOUS; the bill carries over."""
    path = tmp_path / "old.sqlite"
    _v1_journal(path)
    async with await SQLiteJournal.open(path) as journal:
        states = {
            key: (await journal.get(key))
            for key in ("done", "expired", "model-failed", "lost", "rejected")
        }
        assert {k: r.state for k, r in states.items() if r} == {
            "done": JournalState.DELIVERED,
            "expired": JournalState.SUBMITTED,
            "model-failed": JournalState.API_FAILED,
            "lost": JournalState.AMBIGUOUS,
            "rejected": JournalState.PENDING,
        }
        assert (await journal.spend()).billed == pytest.approx(3 * PRICE)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


async def test_a_newer_journal_is_refused(tmp_path: Path) -> None:
    """A journal from a newer seedream-async is refused with a clear message."""
    path = tmp_path / "j.db"
    async with await SQLiteJournal.open(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JournalError, match="upgrade seedream-async"):
        await SQLiteJournal.open(path)


async def test_a_version_2_journal_gains_the_webhook_column(tmp_path: Path) -> None:
    """A journal written before webhook deliveries were recorded is migrated in place."""
    path = tmp_path / "j.db"
    async with await SQLiteJournal.open(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE attempts DROP COLUMN webhook_id")
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    async with await SQLiteJournal.open(path):
        pass
    conn = sqlite3.connect(path)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(attempts)")}
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    assert "webhook_id" in columns
    assert version == SCHEMA_VERSION
