"""The batch engine against the simulator: dedupe, limits, order, isolation, budget."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from _helpers import external_simulator, simulated, write_images

from seedream_async import (
    AmbiguousSubmission,
    AsyncSeedream,
    BatchProgress,
    BudgetExceeded,
    EditItem,
    InvalidImage,
    InvalidInput,
    OutputExpired,
    PollPolicy,
    PredictionFailed,
    ResultStatus,
)
from seedream_async.testing import Faults, Shapes

pytestmark = pytest.mark.anyio

URL = "https://cdn.example.com/ref.png"


def url_items(count: int, **fields: Any) -> list[EditItem]:
    return [
        EditItem(key=f"sku-{n}", prompt=f"edit {n}", images=[URL], **fields) for n in range(count)
    ]


async def test_each_distinct_image_is_uploaded_once(tmp_path: Path) -> None:
    """Sixty items sharing three images (paths and bytes alike) upload each content once."""
    paths = write_images(tmp_path, 3)
    items = [
        EditItem(
            key=f"k{n}", prompt=f"p{n}", images=[paths[n % 3], paths[(n + 1) % 3].read_bytes()]
        )
        for n in range(60)
    ]
    async with simulated() as (sim, client):
        results = await client.edit_all(items, concurrency=8)
    assert all(result.ok for result in results)
    assert len(sim.ledger.uploads) == 3
    assert sim.ledger.distinct_uploads == 3
    assert sim.ledger.executions == 60


async def test_concurrency_limit_is_never_exceeded() -> None:
    """The simulator never sees more predictions running than the batch's concurrency."""
    async with simulated(time_scale=0.003) as (sim, client):
        results = await client.edit_all(url_items(60), concurrency=5, poll_rate=None)
    assert [r.status for r in results] == [ResultStatus.SUCCEEDED] * 60
    assert 2 <= sim.ledger.max_in_flight <= 5


async def test_429s_shrink_concurrency_for_the_whole_batch() -> None:
    """A server in-flight limit answered with 429 lowers the batch's concurrency, and every
    item still finishes, each billed exactly once."""
    limits: list[int] = []

    def watch(progress: BatchProgress) -> None:
        limits.append(progress.concurrency_limit)

    faults = Faults(max_in_flight=4, send_retry_after=True, retry_after=0.005)
    # Predictions of ~0.25 s: long enough that a loaded machine still has a fifth submit
    # arrive while four run (at 0.003 the first ones could finish before it).
    async with simulated(faults=faults, time_scale=0.03) as (sim, client):
        results = await client.edit_all(
            url_items(40), concurrency=16, poll_rate=None, on_progress=watch
        )
    assert all(result.ok for result in results)
    assert sim.ledger.faults["in_flight_limit"] > 0
    assert min(limits) < 16
    assert sim.ledger.executions == 40
    assert sim.ledger.duplicate_submissions == 0


async def test_results_arrive_in_completion_order() -> None:
    """A long sequence submitted first comes back after a short edit submitted later."""
    slow = EditItem(key="slow", prompt="many", images=[URL], max_images=14)
    fast = EditItem(key="fast", prompt="one", images=[URL], max_images=1)
    async with simulated(time_scale=0.01, latency_sigma=0.01) as (_, client):
        keys = [r.key async for r in client.edit_batch([slow, fast], poll_rate=None)]
    assert keys == ["fast", "slow"]


async def test_one_bad_item_never_sinks_the_batch(tmp_path: Path) -> None:
    """Bad files and parameters fail their own item, before any money is spent on them."""
    good = write_images(tmp_path, 1)[0]
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    items = [
        EditItem(key="ok-1", prompt="p", images=[good]),
        EditItem(key="missing", prompt="p", images=[tmp_path / "nope.png"]),
        EditItem(key="text", prompt="p", images=[text]),
        EditItem(key="small", prompt="p", images=[good], size="500*500"),
        EditItem(key="ok-2", prompt="q", images=[good]),
    ]
    async with simulated() as (sim, client):
        results = {r.key: r for r in await client.edit_all(items)}
    assert results["ok-1"].ok
    assert results["ok-2"].ok
    for key, kind in (("missing", InvalidImage), ("text", InvalidImage), ("small", InvalidInput)):
        assert results[key].status is ResultStatus.FAILED
        assert isinstance(results[key].error, kind)
        assert key in str(results[key].error)
        assert results[key].cost == 0
    assert "does not exist" in str(results["missing"].error)
    assert "not an image" in str(results["text"].error)
    assert sim.ledger.executions == 2


async def test_failed_predictions_are_reported_with_their_message() -> None:
    """A prediction the model fails is that item's failed result, with the server's error."""
    async with simulated(faults=Faults(prediction_failure=1.0)) as (sim, client):
        results = await client.edit_all(url_items(3))
    for result in results:
        assert result.status is ResultStatus.FAILED
        assert isinstance(result.error, PredictionFailed)
        assert result.error.prediction_id == result.prediction_id
        assert "simulated failure" in str(result.error)
        assert result.cost == pytest.approx(0.036)
    assert sim.ledger.executions == 3


async def test_503s_on_submit_are_requeued_not_ambiguous() -> None:
    """A 503 means the server did not take the submit: the engine's congestion response
    (the driver's refused hook) lowers the concurrency and queues the item again, so every
    item finishes, billed once, and none is reported ambiguous."""
    limits: list[int] = []

    def watch(progress: BatchProgress) -> None:
        limits.append(progress.concurrency_limit)

    faults = Faults(server_error=0.3, server_error_codes=(503,), endpoints=frozenset({"submit"}))
    async with simulated(faults=faults, seed=3) as (sim, client):
        results = await client.edit_all(url_items(20), concurrency=8, on_progress=watch)
    assert [r.status for r in results] == [ResultStatus.SUCCEEDED] * 20
    assert sim.ledger.faults["503"] > 0
    assert min(limits) < 8
    assert sim.ledger.executions == 20
    assert sim.ledger.duplicate_submissions == 0


async def test_budget_stops_new_submits() -> None:
    """With a budget for five predictions, five are submitted and the rest are not."""
    async with simulated() as (sim, client):
        results = await client.edit_all(url_items(12), budget=0.036 * 5, concurrency=3)
    submitted = [r for r in results if r.status is ResultStatus.SUCCEEDED]
    skipped = [r for r in results if r.status is ResultStatus.NOT_SUBMITTED]
    assert len(submitted) == 5
    assert len(skipped) == 7
    assert all(isinstance(r.error, BudgetExceeded) and r.cost == 0 for r in skipped)
    assert sim.ledger.executions == 5


async def test_ambiguous_submits_are_reported_not_resent() -> None:
    """A submit whose connection drops after billing is 'ambiguous' and never sent again."""
    faults = Faults(drop=1.0, endpoints=frozenset({"submit"}), processed_on_error=1.0)
    async with simulated(faults=faults) as (sim, client):
        results = await client.edit_all(url_items(4))
    assert [r.status for r in results] == [ResultStatus.AMBIGUOUS] * 4
    assert all(isinstance(r.error, AmbiguousSubmission) for r in results)
    assert sim.ledger.executions == 4
    assert sim.ledger.duplicate_submissions == 0


async def test_cancelling_the_callers_scope_stops_the_batch() -> None:
    """Leaving the caller's cancel scope stops new submits; nothing leaks or hangs."""
    async with simulated(time_scale=0.01) as (sim, client):
        seen = 0
        with anyio.CancelScope() as scope:
            async for _ in client.edit_batch(url_items(200), concurrency=4, poll_rate=None):
                seen += 1
                if seen == 3:
                    scope.cancel()
        assert scope.cancelled_caught
        await anyio.sleep(0.05)  # a submit already on the wire may still land
        billed = sim.ledger.executions
        await anyio.sleep(0.1)
        assert sim.ledger.executions == billed
        assert billed < 20


async def test_breaking_out_of_a_plain_loop_stops_paying() -> None:
    """``break`` out of ``async for result in client.edit_batch(...)`` stops the batch: the
    dropped run is collected at once (its background task does not hold it), and nothing
    more is submitted while the client stays open."""
    async with simulated(time_scale=0.01) as (sim, client):
        async for _ in client.edit_batch(url_items(200), concurrency=4, poll_rate=None):
            break
        await anyio.sleep(0.05)  # a submit already on the wire may still land
        billed = sim.ledger.executions
        await anyio.sleep(0.3)
        assert sim.ledger.executions == billed < 20


async def test_breaking_out_of_an_entered_run_cancels_the_rest() -> None:
    """``async with client.edit_batch(...)`` cancels what is left when the block exits."""
    async with simulated(time_scale=0.01) as (sim, client):
        async with client.edit_batch(url_items(100), concurrency=4, poll_rate=None) as run:
            async for _ in run:
                break
        await anyio.sleep(0.05)  # a submit already on the wire may still land
        billed = sim.ledger.executions
        await anyio.sleep(0.1)
        assert sim.ledger.executions == billed < 20


@pytest.mark.timeout(240)
async def test_a_long_generator_is_never_materialised() -> None:
    """Thousands of items from a generator run with only a bounded window read ahead.

    The window does not grow with the count, so 2,000 show it as well as 10,000 did, in a
    fifth of the suite's time.
    """
    total = 2_000
    produced = 0

    def items() -> Any:
        nonlocal produced
        for n in range(total):
            produced += 1
            yield {"key": f"k{n}", "prompt": f"p{n}", "images": [URL]}

    async with external_simulator("--time-scale", "0.0001") as (base_url, key, ledger):
        poll = replace(PollPolicy().scaled(0.0001), deadline=60.0)
        async with AsyncSeedream(api_key=key, base_url=base_url, poll=poll) as client:
            done = 0
            ahead = 0
            async for result in client.edit_batch(items(), concurrency=32, poll_rate=None):
                assert result.ok, result
                done += 1
                ahead = max(ahead, produced - done)
        snapshot = await ledger()
    assert done == total
    assert snapshot["executions"] == total
    assert snapshot["duplicate_submissions"] == 0
    # A window of concurrency + 2 * upload_concurrency, plus the result buffer.
    assert ahead <= 32 + 2 * 16 + 32 + 1


async def test_outputs_are_saved_under_safe_names(tmp_path: Path) -> None:
    """Outputs land in out_dir named from the key; odd keys are cleaned, never escape;
    names follow the bytes (JPEG: ``<key>.jpg``, ``<key>.2.jpg``). The model returns every
    image here, so the numbering is seen."""
    items = [
        EditItem(key="plain", prompt="p", images=[URL]),
        EditItem(key="shoes/red", prompt="p", images=[URL]),
        EditItem(key="multi", prompt="p", images=[URL], max_images=3),
        EditItem(key="../escape", prompt="p", images=[URL]),
    ]
    out = tmp_path / "out"
    async with simulated(shapes=Shapes(output_count="max")) as (sim, client):
        results = {r.key: r for r in await client.edit_all(items, out_dir=out)}
    assert results["plain"].files == (out / "plain.jpg",)
    (red,) = results["shoes/red"].files
    assert red.parent == out
    assert red.name.startswith("shoes_red-")
    assert [f.name for f in results["multi"].files] == ["multi.jpg", "multi.2.jpg", "multi.3.jpg"]
    for result in results.values():
        for file in result.files:
            assert file.read_bytes().startswith(b"\xff\xd8\xff")
    assert results["../escape"].status is ResultStatus.FAILED
    assert "'..'" in str(results["../escape"].error)
    assert sorted(os.listdir(out)) == sorted(f.name for r in results.values() for f in r.files)
    assert sim.ledger.executions == 3
    assert sim.ledger.auth_on_storage == 0


async def test_an_expired_output_url_is_fetched_anew(tmp_path: Path) -> None:
    """When a download meets an expired URL, the engine asks for the prediction again and
    downloads from the fresh URL: the item succeeds, with no second submit."""
    async with simulated() as (sim, client):
        real_save = client.save_output
        seen: list[str] = []
        polls_at_expiry: list[int] = []

        async def expire_first(output: str, dest: Any) -> Path:
            seen.append(output)
            if len(seen) == 1:
                prediction_id = output.split("/outputs/")[1].split("/")[0]
                polls_at_expiry.append(sim.ledger.polls[prediction_id])
                raise OutputExpired("output URL expired or refused (HTTP 403): simulated")
            return await real_save(output, dest)

        client.save_output = expire_first  # type: ignore[method-assign]
        (result,) = await client.edit_all(url_items(1), out_dir=tmp_path)
    assert result.ok
    assert result.files[0].read_bytes().startswith(b"\xff\xd8\xff")
    assert len(seen) == 2
    assert result.prediction_id is not None
    # The fresh URL came from one more poll of the same prediction, not a new submit.
    assert sim.ledger.polls[result.prediction_id] == polls_at_expiry[0] + 1
    assert sim.ledger.executions == 1


async def test_outputs_that_keep_expiring_fail_with_the_reason(tmp_path: Path) -> None:
    """If even the refreshed URL has expired by the time it is fetched, the item fails and
    says so (the storage here takes longer to answer than its URLs live)."""
    faults = Faults(output_ttl=0.001, slow=1.0, slow_seconds=0.02, endpoints=frozenset({"output"}))
    async with simulated(faults=faults) as (sim, client):
        results = await client.edit_all(url_items(2), out_dir=tmp_path)
    assert all(r.status is ResultStatus.FAILED for r in results)
    assert all("expired" in str(r.error) for r in results)
    assert sim.ledger.faults["expired_output"] == 4  # two tries for each of two items
    assert sim.ledger.executions == 2


async def test_duplicate_keys_fail_the_later_item() -> None:
    """A key seen earlier in the batch fails the later item; the first runs normally."""
    items = [
        EditItem(key="same", prompt="first", images=[URL]),
        EditItem(key="same", prompt="second", images=[URL]),
    ]
    async with simulated() as (sim, client):
        results = await client.edit_all(items, concurrency=1)
    statuses = sorted(r.status for r in results)
    assert statuses == [ResultStatus.FAILED, ResultStatus.SUCCEEDED]
    failed = next(r for r in results if not r.ok)
    assert "duplicate key" in str(failed.error)
    assert sim.ledger.executions == 1


async def test_mappings_are_items_and_bad_rows_are_reported() -> None:
    """Plain dicts work as items; a row without a prompt fails with a clear error."""
    rows: list[dict[str, Any]] = [
        {"key": "a", "prompt": "p", "images": [URL], "max_images": 2},
        {"key": "b", "images": [URL]},
    ]
    async with simulated() as (_, client):
        results = {r.key: r for r in await client.edit_all(rows)}
    assert results["a"].ok
    assert 1 <= len(results["a"].outputs) <= 2  # the model decides how many
    assert results["b"].status is ResultStatus.FAILED
    assert "missing 'prompt'" in str(results["b"].error)


async def test_progress_counts_add_up() -> None:
    """The progress counters end with every item finished and the spend billed."""
    async with simulated() as (sim, client):
        run = client.edit_batch([*url_items(20), EditItem(key="bad", prompt="", images=[URL])])
        async with run:
            results = [r async for r in run]
    progress = run.progress
    assert len(results) == 21
    assert progress.succeeded == 20
    assert progress.failed == 1
    assert progress.in_progress == 0
    assert progress.executions == sim.ledger.executions == 20
    assert progress.spent == pytest.approx(sim.ledger.cost)


async def test_iterating_needs_an_open_client() -> None:
    """Iterating a batch of a client that was never opened says how to fix it."""
    async with simulated() as (sim, _):
        client = AsyncSeedream(api_key=sim.api_key, base_url=sim.base_url)
        try:
            with pytest.raises(RuntimeError, match="async with AsyncSeedream"):
                async for _ in client.edit_batch(url_items(1)):
                    pass
        finally:
            await client.aclose()
