"""Crash-safe resume: the journal lets a re-run finish a batch without paying twice."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
from _helpers import simulated

from seedream_async import (
    AmbiguousSubmission,
    EditItem,
    Journal,
    JournalState,
    ResultStatus,
)
from seedream_async._engine._identity import DigestCache
from seedream_async._engine._journal_types import Claim
from seedream_async._engine._names import output_stem
from seedream_async._engine._owners import new_owner
from seedream_async._engine._resume import fingerprint
from seedream_async._wire._requests import build_request
from seedream_async.testing import Faults

pytestmark = pytest.mark.anyio

URL = "https://cdn.example.com/ref.png"


async def journal_a_submit(
    journal: Journal, item: EditItem, request: dict[str, object], prediction_id: str
) -> None:
    """Journal ``item`` as an earlier run would have: submitted as ``prediction_id``."""
    owner = new_owner()
    fp = await fingerprint(item, item.request_params(), DigestCache())
    await journal.claim(
        owner, [Claim(key=item.key, fingerprint=fp, name=output_stem(item.key))], lease=60
    )
    await journal.reserve(owner, item.key, request=request, amount=0.036, budget=None)
    await journal.submitted(owner, item.key, prediction_id=prediction_id, cost=0.036)
    await journal.release(owner, [item.key])


def catalog(count: int, *, prompt: str = "edit") -> list[EditItem]:
    return [EditItem(key=f"sku-{n}", prompt=f"{prompt} {n}", images=[URL]) for n in range(count)]


async def test_a_finished_batch_is_answered_from_the_journal(tmp_path: Path) -> None:
    """Re-running a finished batch sends no request at all; files are still on disk."""
    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    async with simulated() as (sim, client):
        first = await client.edit_all(catalog(10), journal=journal, out_dir=out)
        before = sum(sim.ledger.requests.values())
        second = await client.edit_all(catalog(10), journal=journal, out_dir=out)
        assert sum(sim.ledger.requests.values()) == before
    assert all(r.ok and not r.from_journal for r in first)
    assert all(r.ok and r.from_journal for r in second)
    assert {r.key: r.files for r in first} == {r.key: r.files for r in second}


async def test_ambiguous_items_are_not_resubmitted_unless_asked(tmp_path: Path) -> None:
    """A submit lost after billing stays 'ambiguous' on re-run; opting in pays once more."""
    journal = tmp_path / "j.sqlite"
    drops = Faults(drop=1.0, endpoints=frozenset({"submit"}), processed_on_error=1.0)
    async with simulated(faults=drops) as (sim, client):
        first = await client.edit_all(catalog(3), journal=journal)
        assert [r.status for r in first] == [ResultStatus.AMBIGUOUS] * 3
        sim.configure(faults=Faults())
        second = await client.edit_all(catalog(3), journal=journal)
        assert sim.ledger.executions == 3
        assert all(r.status is ResultStatus.AMBIGUOUS and r.from_journal for r in second)
        assert all(isinstance(r.error, AmbiguousSubmission) for r in second)
        assert "resubmit_ambiguous=True" in str(second[0].error)
        third = await client.edit_all(catalog(3), journal=journal, resubmit_ambiguous=True)
        assert all(r.ok for r in third)
        assert sim.ledger.executions == 6


async def test_an_item_with_a_prediction_id_is_polled_not_resubmitted(tmp_path: Path) -> None:
    """A crash after the id was journaled resumes by polling that same prediction."""
    journal_path = tmp_path / "j.sqlite"
    (item,) = catalog(1)
    async with simulated() as (sim, client):
        request = build_request(item.key, prompt=item.prompt, images=[URL])
        prediction = await client.submit(request)
        async with await Journal.open(journal_path) as journal:
            await journal_a_submit(journal, item, request.to_payload(), prediction.id)
        (result,) = await client.edit_all([item], journal=journal_path)
        assert result.ok
        assert result.prediction_id == prediction.id
        assert result.cost == 0  # paid by the earlier run, not this one
        assert sim.ledger.executions == 1
        assert sim.ledger.polls[prediction.id] >= 1


async def test_a_changed_item_is_rerun_and_its_old_result_kept(tmp_path: Path) -> None:
    """Same key, new prompt: the fingerprint differs, so it runs again; history keeps the old."""
    journal_path = tmp_path / "j.sqlite"
    async with simulated() as (sim, client):
        await client.edit_all(catalog(3), journal=journal_path)
        changed = catalog(3)
        changed[1] = EditItem(key="sku-1", prompt="a different edit", images=[URL])
        results = {r.key: r for r in await client.edit_all(changed, journal=journal_path)}
        assert sim.ledger.executions == 4
    assert results["sku-0"].from_journal
    assert results["sku-2"].from_journal
    assert not results["sku-1"].from_journal
    assert results["sku-1"].ok
    async with await Journal.open(journal_path) as journal:
        history = await journal.history("sku-1")
        current = await journal.get("sku-1")
    # Both paid attempts are in the item's history, each with its own fingerprint.
    assert [attempt.state for attempt in history] == [JournalState.DELIVERED] * 2
    assert history[0].fingerprint != history[1].fingerprint
    assert current is not None
    assert current.request is not None
    assert current.request["prompt"] == "a different edit"


async def test_a_deleted_output_is_fetched_again_without_paying(tmp_path: Path) -> None:
    """If a finished item's file is gone, the re-run downloads it again; no new submit."""
    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    async with simulated() as (sim, client):
        (first,) = await client.edit_all(catalog(1), journal=journal, out_dir=out)
        first.files[0].unlink()
        (second,) = await client.edit_all(catalog(1), journal=journal, out_dir=out)
        assert sim.ledger.executions == 1
    assert second.ok
    assert second.files == first.files
    assert second.files[0].read_bytes().startswith(b"\xff\xd8\xff")  # JPEG, the default


def _read_all(folder: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()]


_CHILD = textwrap.dedent(
    """
    import os, anyio
    from seedream_async import AsyncSeedream, EditItem, PollPolicy

    async def main():
        poll = PollPolicy(max_interval=0.02, deadline=60, typical=0.008)
        items = (
            EditItem(key=f"sku-{n}", prompt=f"edit {n}", images=["https://cdn.example.com/ref.png"])
            for n in range(int(os.environ["ITEMS"]))
        )
        async with AsyncSeedream(base_url=os.environ["BASE_URL"], poll=poll) as client:
            async for _ in client.edit_batch(
                items, concurrency=8, journal=os.environ["JOURNAL"], poll_rate=None
            ):
                pass

    anyio.run(main)
    """
)


@pytest.mark.timeout(120)
async def test_kill_9_mid_batch_then_resume(tmp_path: Path) -> None:
    """A batch killed with SIGKILL halfway resumes: every item accounted for, none paid twice."""
    items = 120
    journal = tmp_path / "catalog.sqlite"
    async with simulated(time_scale=0.004) as (sim, client):
        env = {
            **os.environ,
            "ATLASCLOUD_API_KEY": sim.api_key or "",
            "BASE_URL": sim.base_url,
            "JOURNAL": str(journal),
            "ITEMS": str(items),
        }
        process = await anyio.open_process([sys.executable, "-c", _CHILD], env=env)
        async with process:
            with anyio.fail_after(60):
                while sim.ledger.executions < items // 3:  # noqa: ASYNC110 (the ledger has no event)
                    await anyio.sleep(0.005)
            process.send_signal(signal.SIGKILL)
            await process.wait()
        assert process.returncode == -signal.SIGKILL
        billed_before = sim.ledger.executions
        assert billed_before < items

        results = await client.edit_all(catalog(items), journal=journal, concurrency=16)

    keys = [r.key for r in results]
    assert sorted(keys) == sorted(f"sku-{n}" for n in range(items))
    assert sim.ledger.duplicate_submissions == 0
    ambiguous = [r for r in results if r.status is ResultStatus.AMBIGUOUS]
    succeeded = [r for r in results if r.ok]
    # Only items whose POST was in flight at the kill can be ambiguous: at most concurrency.
    assert len(ambiguous) <= 8
    assert len(succeeded) + len(ambiguous) == items
    assert sim.ledger.executions <= items
    resumed = [r for r in succeeded if r.from_journal]
    assert resumed, "items the first run submitted were resumed, not resubmitted"
    print(
        f"kill -9: {billed_before} billed before the kill, {len(resumed)} resumed from the "
        f"journal, {len(ambiguous)} ambiguous, {sim.ledger.executions} billed in all, "
        f"{sim.ledger.duplicate_submissions} paid twice"
    )


async def test_a_journal_from_an_edited_catalog_keeps_every_item(tmp_path: Path) -> None:
    """Items added to the catalog between runs run normally beside journaled ones."""
    journal = tmp_path / "j.sqlite"
    async with simulated() as (sim, client):
        await client.edit_all(catalog(4), journal=journal)
        results = await client.edit_all(catalog(6), journal=journal)
        assert sim.ledger.executions == 6
    assert sum(r.from_journal for r in results) == 4
    assert all(r.ok for r in results)


async def test_the_journal_never_holds_the_api_key(tmp_path: Path) -> None:
    """No byte of the journal file (nor its WAL) contains the API key."""
    journal = tmp_path / "j.sqlite"
    async with simulated(api_key="sk-JOURNAL-SECRET-77") as (_, client):
        await client.edit_all(catalog(5), journal=journal)
    blobs = _read_all(tmp_path)
    assert blobs
    assert all(b"sk-JOURNAL-SECRET-77" not in blob for blob in blobs)


async def test_an_open_journal_can_be_passed_in_and_stays_open(tmp_path: Path) -> None:
    """A caller's own Journal (durable, say) is used as is and left open for them."""
    async with await Journal.open(tmp_path / "j.sqlite", durable=True) as journal:
        async with simulated() as (sim, client):
            await client.edit_all(catalog(3), journal=journal)
            again = await client.edit_all(catalog(3), journal=journal)
            assert sim.ledger.executions == 3
        assert all(r.from_journal for r in again)
        counts = await journal.counts()  # still open: the batch did not close it
    assert counts[JournalState.DELIVERED] == 3


async def test_a_journaled_id_the_api_does_not_know_fails_without_resubmitting(
    tmp_path: Path,
) -> None:
    """A prediction id from the journal that answers 404 is polled a few times (a store may
    lag behind a fresh id), then fails the item, which is never paid for again."""
    journal_path = tmp_path / "j.sqlite"
    (item,) = catalog(1)
    async with await Journal.open(journal_path) as journal:
        request = {"prompt": item.prompt, "max_images": 1}
        await journal_a_submit(journal, item, request, "pred_gone")
    async with simulated() as (sim, client):
        (result,) = await client.edit_all([item], journal=journal_path)
        assert sim.ledger.executions == 0
        assert sim.ledger.requests["poll"] == 4  # three 404s forgiven, the fourth final
    assert result.status is ResultStatus.FAILED
    assert result.prediction_id == "pred_gone"
    assert "404" in str(result.error)
