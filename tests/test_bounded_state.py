"""No per-item state outlives its item: what a batch remembers stays bounded as N grows.

A million-item generator must not leave a million entries anywhere: the key and name
registry spills to a temporary database past its cap, the upload cache forgets the least
recently used images, the poll scheduler's heap holds only predictions in flight, and the
planner's samples are a window. Sizes are counted, never RSS or time.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest
from _helpers import simulated

from seedream_async import EditItem, ResultStatus
from seedream_async._engine import _pipeline
from seedream_async._engine._names import NameRegistry, output_stem
from seedream_async._engine._upload_cache import UploadCache
from seedream_async.testing import make_png

pytestmark = pytest.mark.anyio


def test_the_registry_spills_past_its_cap_and_still_refuses_twins() -> None:
    """Past the cap nothing stays in memory, and duplicates and case twins are still refused."""
    names = NameRegistry(memory_cap=10)
    for n in range(100):
        key = f"Sku-{n}"
        assert names.add_key(key)
        assert names.claim(key, output_stem(key)) is None
        assert len(names) <= 11
    assert names.spilled
    assert len(names) == 0
    assert not names.add_key("Sku-3")  # seen before the spill
    assert not names.add_key("Sku-99")  # seen after it
    assert names.claim("sku-3", output_stem("sku-3")) == "Sku-3"
    assert names.claim("Sku-3", output_stem("Sku-3")) is None  # its own name again
    names.discard_key("Sku-3")  # deferred: it comes back later
    assert names.add_key("Sku-3")
    names.close()
    assert not names.spilled


def test_the_registry_refuses_before_the_spill_too() -> None:
    """Below the cap the same answers come from memory."""
    names = NameRegistry(memory_cap=1_000)
    assert names.add_key("a")
    assert not names.add_key("a")
    assert names.claim("A", output_stem("A")) is None
    assert names.claim("a", output_stem("a")) == "A"
    assert not names.spilled


async def test_a_streamed_batch_keeps_every_structure_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """300 items, each with its own image, streamed at concurrency 8 with small caps: while
    results stream and after the batch, no structure holds more than its cap; a duplicate
    key and a case twin late in the stream (after the spill) are still refused."""
    cap = 20
    monkeypatch.setattr(_pipeline, "NameRegistry", functools.partial(NameRegistry, memory_cap=cap))
    monkeypatch.setattr(_pipeline, "UploadCache", functools.partial(UploadCache, max_entries=cap))
    total = 300

    def items() -> Iterator[EditItem]:
        for n in range(total):
            yield EditItem(key=f"Item-{n}", prompt="p", images=[make_png(8, 8, seed=n)])
        yield EditItem(key="Item-5", prompt="again", images=[make_png(8, 8, seed=5)])
        yield EditItem(key="item-6", prompt="twin", images=[make_png(8, 8, seed=6)])

    async with simulated() as (sim, client):
        statuses: dict[str, ResultStatus] = {}
        run = client.edit_batch(items(), concurrency=8)
        async with run:
            engine: Any = run._runner.engine
            async for result in run:
                statuses[result.key + ("'" if result.key in statuses else "")] = result.status
                assert len(engine.names) <= cap + 1
                assert len(engine.uploads) <= 2 * cap
                assert len(engine.scheduler._heap) <= 8
                assert len(engine.scheduler._live) <= 8
        assert engine.names.spilled is False  # closed with the run
        assert engine.scheduler._heap == []
        assert not engine.scheduler._live
        assert all(
            len(group.samples) <= group.samples.maxlen
            for group in engine.scheduler._planner._groups.values()
        )
    assert sum(s is ResultStatus.SUCCEEDED for s in statuses.values()) == total
    assert statuses["Item-5'"] is ResultStatus.FAILED
    assert statuses["item-6"] is ResultStatus.FAILED
    assert sim.ledger.executions == total
