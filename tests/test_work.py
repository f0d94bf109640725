"""The fleet worker (``work``) in-process, on asyncio and trio: draining, takeover, budget."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from _helpers import simulated

from seedream_async import (
    EditItem,
    JournalState,
    PostgresJournal,
    ResultStatus,
    drain,
    load_items,
)
from seedream_async._wire._requests import build_request
from seedream_async.testing import Faults

pytestmark = pytest.mark.anyio

PRICE = 0.036


def catalog(count: int) -> list[EditItem]:
    return [
        EditItem(key=f"sku-{n:03d}", prompt=f"edit sku {n}", images=[f"https://e.com/{n}.png"])
        for n in range(count)
    ]


async def test_two_workers_drain_the_journal_once(postgres_dsn: str, tmp_path: Path) -> None:
    """Two workers on one journal deliver every item once, splitting the work."""
    async with simulated() as (sim, client), await PostgresJournal.open(postgres_dsn) as journal:
        report = await load_items(journal, iter(catalog(40)))
        assert report.added == 40
        tallies = []

        async def worker(owner: str) -> None:
            tallies.append(
                await drain(client, journal, owner=owner, concurrency=6, batch=4, out_dir=tmp_path)
            )

        async with anyio.create_task_group() as group:
            group.start_soon(worker, "w1")
            group.start_soon(worker, "w2")
        counts = await journal.counts()
        assert counts[JournalState.DELIVERED] == 40
        assert sum(t.count(ResultStatus.SUCCEEDED) for t in tallies) == 40
        assert all(t.executions for t in tallies)  # both took a share
        assert sim.ledger.executions == 40
        assert sim.ledger.duplicate_submissions == 0
        assert len([p async for p in anyio.Path(tmp_path).glob("sku-*.jpg")]) == 40
        assert (await journal.fleet()).owners == {}


async def test_a_dead_workers_items_are_finished_without_paying_again(
    postgres_dsn: str,
) -> None:
    """Taken over after its lease: the billed item is fetched by id, the one caught
    mid-submit is ambiguous, the untouched one is run; one new execution in all."""
    async with simulated() as (sim, client), await PostgresJournal.open(postgres_dsn) as journal:
        await load_items(journal, iter(catalog(3)))
        billed, caught, untouched = await journal.claim_next("dead", limit=3, lease=60)
        request = build_request(prompt="edit sku 0", images=["https://e.com/0.png"])
        for claimed in (billed, caught):
            key = claimed.record.key
            assert await journal.reserve(
                "dead", key, request=request.to_payload(), amount=PRICE, budget=None
            )
        prediction = await client.submit(request)
        await journal.submitted("dead", billed.record.key, prediction_id=prediction.id, cost=PRICE)
        await journal.heartbeat("dead", lease=0.0)  # it died: no more heartbeats

        tally = await drain(client, journal, owner="live", concurrency=4)
        assert tally.taken_over == 3
        assert (tally.count(ResultStatus.SUCCEEDED), tally.count(ResultStatus.AMBIGUOUS)) == (2, 1)
        assert tally.executions == 1
        assert sim.ledger.executions == 2  # the dead worker's one, and the untouched item's
        records = await journal.get_many([c.record.key for c in (billed, caught, untouched)])
        assert records[billed.record.key].state is JournalState.DELIVERED
        assert records[billed.record.key].prediction_id == prediction.id
        assert records[caught.record.key].state is JournalState.AMBIGUOUS
        assert records[untouched.record.key].state is JournalState.DELIVERED
        assert (await journal.spend()).billed == pytest.approx(3 * PRICE)  # ambiguous counted


async def test_the_budget_is_shared_and_a_failed_download_ends_the_drain(
    postgres_dsn: str, tmp_path: Path
) -> None:
    """Workers stop submitting at the fleet's budget; a billed item whose download fails
    is noted (id kept) and left for the next drain, which fetches it by id, not resubmits,
    and submits the items the budget left unsubmitted."""
    async with (
        simulated(faults=Faults(output_ttl=1e-6)) as (sim, client),
        await PostgresJournal.open(postgres_dsn) as journal,
    ):
        await load_items(journal, iter(catalog(10)))
        budget = 6 * PRICE
        tally = await drain(client, journal, budget=budget, out_dir=tmp_path, concurrency=3)
        counts = await journal.counts()
        assert counts[JournalState.NOT_SUBMITTED] == 4
        assert sim.ledger.executions == 6
        assert tally.executions == 6
        assert (await journal.spend()).billed <= budget + 1e-9
        # Outputs expired at once: billed, undelivered, the ids kept for a later pass.
        assert counts[JournalState.DONE] + counts[JournalState.SUBMITTED] == 6
        assert (await journal.fleet()).noted == 6

        # The next plain drain takes both again: the billed ones fetched by id, the
        # not-submitted ones (the budget is raised) submitted once each.
        sim.configure(faults=Faults())
        again = await drain(client, journal, out_dir=tmp_path)
        assert (again.count(ResultStatus.SUCCEEDED), again.executions) == (10, 4)
        assert sim.ledger.executions == 10
        assert sim.ledger.duplicate_submissions == 0


async def test_edit_batch_takes_a_postgres_dsn(postgres_dsn: str) -> None:
    """journal="postgresql://..." in the library: a re-run pays nothing again."""
    async with simulated() as (sim, client):
        first = await client.edit_all(catalog(5), journal=postgres_dsn)
        again = await client.edit_all(catalog(5), journal=postgres_dsn)
    assert [r.status for r in first] == [ResultStatus.SUCCEEDED] * 5
    assert all(r.from_journal for r in again)
    assert sim.ledger.executions == 5
