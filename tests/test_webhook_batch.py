"""Webhook completion in a batch, over real HTTP on asyncio and trio: the simulator signs
and POSTs each terminal prediction, the client's receiver records it in the journal
("delivery recorded", durable before its 2xx) and wakes the item. Every simulator fault
keeps every item delivered and paid once; a submit whose answer was dropped after billing
is delivered from its webhook; a re-run after a crash delivers what the journal recorded
without a poll or a payment; another worker's receiver records this run's items."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from _helpers import FAST_POLL, FAST_RETRY

from seedream_async import AsyncSeedream, BatchOptions, InvalidInput, RecorderSink
from seedream_async._engine._journal_types import Claim, JournalState
from seedream_async._engine._sqlite import SQLiteJournal
from seedream_async._webhook._token import WebhookTarget, load_secret
from seedream_async.testing import Faults, Simulator, WebhookFaults, serve

pytestmark = pytest.mark.anyio

URL = "https://cdn.example.com/ref.png"
QUIET = replace(FAST_POLL, typical=0.5)  # fallback poll at 2 s: far after a delivery
SOON = replace(FAST_POLL, typical=0.02)  # for faults that lose the delivery
FAST_RETRIES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8)
N = 4
DROP_SUBMIT_ANSWERS = Faults(drop=1.0, processed_on_error=1.0, endpoints=frozenset({"submit"}))


def items(n: int = N) -> list[dict[str, Any]]:
    return [{"key": f"k{i}", "prompt": f"p{i}", "images": [URL]} for i in range(n)]


@asynccontextmanager
async def simulator(**faults: Any) -> AsyncIterator[Simulator]:
    webhook_faults = WebhookFaults(retry_delays=FAST_RETRIES, delay_seconds=0.05, **faults)
    async with serve(time_scale=0.001, seed=5, webhooks=webhook_faults) as sim:
        yield sim


def client_of(sim: Simulator, poll: Any = QUIET) -> AsyncSeedream:
    return AsyncSeedream(api_key=sim.api_key, base_url=sim.base_url, retry=FAST_RETRY, poll=poll)


async def eventually(condition: Callable[[], Any]) -> None:
    with anyio.fail_after(10):
        while not await condition():  # noqa: ASYNC110
            await anyio.sleep(0.005)


async def run_batch(
    client: AsyncSeedream, url: str, journal: Path | str, **options: Any
) -> list[Any]:
    return await client.edit_all(
        items(), completion="webhook", webhook_url=url, journal=journal, **options
    )


async def states(journal: Path | str) -> dict[JournalState, int]:
    async with await SQLiteJournal.open(journal) as store:
        return {state: n for state, n in (await store.counts()).items() if n}


async def test_a_batch_completes_from_webhooks_paid_once_without_polls(tmp_path: Path) -> None:
    """Every item delivered from its webhook: 0 polls, one execution each, each attempt's
    delivery recorded in the journal."""
    journal = tmp_path / "j.sqlite"
    async with simulator() as sim, client_of(sim) as client, client.webhooks.listen() as hook:
        results = await run_batch(client, hook.url, journal, out_dir=tmp_path / "out")
        polls = client.requests["poll"]
    assert [r.status.value for r in results] == ["succeeded"] * N
    assert all(r.files for r in results)
    assert (sim.ledger.executions, polls) == (N, 0)
    assert await states(journal) == {JournalState.DELIVERED: N}
    assert (tmp_path / "j.sqlite.webhook-secret").exists()


@pytest.mark.parametrize(
    "fault", ["lost", "duplicated", "delayed", "reordered", "bad_signature", "stale_timestamp"]
)
async def test_every_webhook_fault_keeps_every_item_delivered_once(
    tmp_path: Path, fault: str
) -> None:
    """Lost, refused (bad signature, stale) or late deliveries cost time (the fallback
    poll finishes the item); duplicates and reordering change nothing. Nothing is lost,
    nothing paid twice, and a refused delivery records nothing."""
    journal = tmp_path / "j.sqlite"
    refused = fault in ("lost", "bad_signature", "stale_timestamp")
    async with (
        simulator(**{fault: 1.0}) as sim,
        client_of(sim, SOON if refused else QUIET) as client,
        client.webhooks.listen() as hook,
    ):
        results = await run_batch(client, hook.url, journal)
        polls = client.requests["poll"]
    assert sorted(r.key for r in results if r.status.value == "succeeded") == [
        f"k{i}" for i in range(N)
    ]
    assert sim.ledger.executions == N
    assert await states(journal) == {JournalState.DELIVERED: N}
    if refused:
        assert polls >= N
        assert client.webhooks.app.rejected.keys() <= {"bad_signature", "stale"}
    else:
        assert polls == 0


async def test_receiver_down_then_up_records_every_delivery(tmp_path: Path) -> None:
    """Nothing listens at first: the sender retries, the receiver comes up, records each
    delivery in the journal, and every item is delivered without a poll."""
    journal = tmp_path / "j.sqlite"
    async with simulator() as sim, client_of(sim) as client:
        async with client.webhooks.listen() as hook:
            port = hook.port
        results: list[Any] = []

        async def batch() -> None:
            results.extend(await run_batch(client, f"http://127.0.0.1:{port}/", journal))

        async with anyio.create_task_group() as group:
            group.start_soon(batch)
            with anyio.fail_after(10):
                while not sim.webhooks.attempts:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
            async with client.webhooks.listen(port=port):
                with anyio.fail_after(10):
                    while len(results) < N:  # noqa: ASYNC110
                        await anyio.sleep(0.005)
        polls = client.requests["poll"]
    assert sim.webhooks.attempts[0].status is None
    assert [r.status.value for r in results] == ["succeeded"] * N
    assert (sim.ledger.executions, polls) == (N, 0)


async def test_ambiguous_submits_are_delivered_from_their_webhooks(tmp_path: Path) -> None:
    """Each submit's answer is dropped after billing (no id came back): each delivery names
    its attempt, so every item ends billed with its id and delivered, paid once, no poll."""
    journal = tmp_path / "j.sqlite"
    async with simulator() as sim, client_of(sim) as client, client.webhooks.listen() as hook:
        sim.configure(faults=DROP_SUBMIT_ANSWERS)
        results = await run_batch(client, hook.url, journal, out_dir=tmp_path / "out")
        polls = client.requests["poll"]
        price = client.price_per_execution
    assert [r.status.value for r in results] == ["succeeded"] * N
    assert (sim.ledger.executions, polls) == (N, 0)
    async with await SQLiteJournal.open(journal) as store:
        spend = await store.spend()
        rows = await store.get_many([f"k{i}" for i in range(N)])
    assert {r.state for r in rows.values()} == {JournalState.DELIVERED}
    assert all(r.prediction_id for r in rows.values())
    assert spend.billed == pytest.approx(N * price)


async def test_without_webhooks_the_same_faults_leave_items_ambiguous(tmp_path: Path) -> None:
    """The control: polling alone cannot recover a submit whose answer was lost."""
    async with simulator() as sim, client_of(sim) as client:
        sim.configure(faults=DROP_SUBMIT_ANSWERS)
        results = await client.edit_all(items(), journal=tmp_path / "j.sqlite")
    assert [r.status.value for r in results] == ["ambiguous"] * N
    assert sim.ledger.executions == N


async def test_a_rerun_after_a_crash_delivers_what_the_journal_recorded(tmp_path: Path) -> None:
    """Another worker's receiver records run 1's deliveries (the URL reaches it, not run
    1); run 1 is killed before it delivers. The re-run delivers every item from the
    journal: no poll, no new execution."""
    journal = tmp_path / "j.sqlite"
    slow = replace(FAST_POLL, typical=60.0, deadline=None)  # run 1 never polls or peeks
    async with simulator() as sim, client_of(sim, slow) as run1, client_of(sim) as other:
        secret = load_secret(f"{journal}.webhook-secret")
        async with (
            await SQLiteJournal.open(journal) as store,
            other.webhooks.listen() as hook,
        ):
            with other.webhooks.attached(RecorderSink(store), secret):
                async with anyio.create_task_group() as group:
                    group.start_soon(run_batch, run1, hook.url, journal)

                    async def recorded() -> bool:
                        return (await store.counts())[JournalState.DONE] == N

                    await eventually(recorded)
                    group.cancel_scope.cancel()  # the crash: nothing delivered yet
        assert await states(journal) == {JournalState.DONE: N}
        executions = sim.ledger.executions
        async with client_of(sim) as rerun:
            results = await run_batch(rerun, "https://unused.example/", journal)
            polls = rerun.requests["poll"]
    assert [r.status.value for r in results] == ["succeeded"] * N
    assert all(r.from_journal for r in results)
    assert (executions, sim.ledger.executions, polls) == (N, N, 0)
    assert await states(journal) == {JournalState.DELIVERED: N}


async def test_any_workers_receiver_records_any_workers_items_on_postgres(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fleet on PostgreSQL: run 1's deliveries reach another worker's receiver, which
    records them; run 1 reads them from the journal and delivers, paid once, no poll."""
    monkeypatch.setenv("SEEDREAM_WEBHOOK_SECRET", "ab" * 32)
    from seedream_async._engine._pgjournal import PostgresJournal

    # The journal is read every 50 ms; the fallback poll comes at 40 x that (2 s), not at
    # the default 4 x (200 ms), which a loaded machine (the full suite on 2 cores, with
    # PostgreSQL) outlasted once before the recorded delivery was read: 4 polls, not 0.
    monkeypatch.setattr("seedream_async._webhook._completion.FALLBACK_START", 40.0)
    peek = replace(FAST_POLL, typical=0.05, deadline=None)
    async with (
        simulator() as sim,
        client_of(sim, peek) as run1,
        client_of(sim) as other,
        await PostgresJournal.open(postgres_dsn) as store,
        other.webhooks.listen() as hook,
    ):
        with other.webhooks.attached(RecorderSink(store), load_secret()):
            results = await run_batch(run1, hook.url, postgres_dsn)
        polls = run1.requests["poll"]
        counts = await store.counts()
    assert [r.status.value for r in results] == ["succeeded"] * N
    assert (sim.ledger.executions, polls) == (N, 0)
    assert counts[JournalState.DELIVERED] == N


def test_webhook_completion_and_its_url_go_together() -> None:
    """One without the other is refused before anything is paid."""
    with pytest.raises(InvalidInput, match="go together"):
        BatchOptions(completion="webhook")
    with pytest.raises(InvalidInput, match="go together"):
        BatchOptions(webhook_url="https://hooks.example.com/")


async def test_forged_replayed_and_wrong_key_deliveries_leave_the_journal_alone(
    tmp_path: Path,
) -> None:
    """An ambiguous row, and deliveries carrying its genuine attempt token: a forged
    signature, a replayed (stale) one and an unknown key id are refused 401 and the row
    stays ambiguous; the genuine delivery then makes it billed with its id, once."""
    journal = tmp_path / "j.sqlite"
    secret = load_secret(f"{journal}.webhook-secret")
    async with (
        simulator() as sim,
        client_of(sim) as client,
        await SQLiteJournal.open(journal) as store,
        client.webhooks.listen() as hook,
    ):
        await store.claim("run-a", [Claim(key="k0", fingerprint="fp", name="k0")], lease=60)
        assert await store.reserve("run-a", "k0", request={}, amount=0.036, budget=None)
        await store.ambiguous("run-a", "k0", cost=0.036, error="answer lost")
        with client.webhooks.attached(RecorderSink(store), secret):
            url = client.webhooks.url_for(hook.url, WebhookTarget("k0", 1))
            body = json.dumps(
                {"session_id": "pred-k0", "event_type": "image.task.terminal", "status": "OK",
                 "payload": {"id": "pred-k0", "status": "completed", "outputs": [URL]}}
            ).encode()  # fmt: skip
            keys = sim.webhooks._keyring()
            now, old = str(int(time.time())), str(int(time.time()) - 3600)

            def headers(
                stamp: str, *, forged: bool = False, kid: str = keys.key_id
            ) -> dict[str, str]:
                return {
                    "content-type": "application/json",
                    "x-atlascloud-webhook-id": "wh_1",
                    "x-atlascloud-webhook-event": "image.task.terminal",
                    "x-atlascloud-webhook-timestamp": stamp,
                    "x-atlascloud-webhook-key-id": kid,
                    "x-atlascloud-webhook-signature-ed25519": keys.sign(
                        stamp.encode() + b"." + body, forged=forged
                    ),
                }

            statuses = []
            async with httpx.AsyncClient(trust_env=False) as http:
                for sent in (
                    headers(now, forged=True),
                    headers(old),
                    headers(now, kid="other-key"),
                ):
                    statuses.append((await http.post(url, content=body, headers=sent)).status_code)
                    row = await store.get("k0")
                    assert row is not None
                    assert row.state is JournalState.AMBIGUOUS
                for _ in range(2):  # the genuine one, and its retry
                    response = await http.post(url, content=body, headers=headers(now))
                    statuses.append(response.status_code)
        row = await store.get("k0")
        spend = await store.spend()
    assert statuses == [401, 401, 401, 200, 200]
    assert row is not None
    assert (row.state, row.prediction_id) == (JournalState.DONE, "pred-k0")
    assert spend.billed == pytest.approx(0.036)


def test_the_token_secret_lives_beside_the_journal_or_is_shared_by_a_fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal file keeps its secret beside it (the same on every open); a PostgreSQL
    fleet without SEEDREAM_WEBHOOK_SECRET is refused before anything is paid."""
    from seedream_async import ConfigurationError
    from seedream_async._engine._completion import secret_for

    monkeypatch.delenv("SEEDREAM_WEBHOOK_SECRET", raising=False)
    first = secret_for(tmp_path / "j.sqlite", b"c" * 32)
    assert first == secret_for(str(tmp_path / "j.sqlite"), b"d" * 32) != b"c" * 32
    assert secret_for(None, b"c" * 32) == b"c" * 32
    with pytest.raises(ConfigurationError, match="SEEDREAM_WEBHOOK_SECRET"):
        secret_for("postgresql://me@db.example/catalog", b"c" * 32)
