"""How many items per second the SQLite journal carries through their whole life.

    python -m benchmarks.journal_throughput                  # 2,000 items, concurrency 256
    python -m benchmarks.journal_throughput --items 5000 --backend trio --json out.json

Each item goes through the five calls a batch makes, through the public
:class:`~seedream_async._engine._store.JournalStore` operations only: ``claim`` (one key
per call, as the engine claims), ``reserve``, ``submitted``, ``done``, ``delivered``.
``--concurrency`` items are in flight at once (the engine's 256 is the top of the range
the README discusses), once with the default journal and once with ``durable=True`` (an
fsync per commit). The figure that matters is the ratio to what the API can complete:
at concurrency C and ~8 s an edit, C/8 items a second (32/s at 256); the journal should
never be what paces a run, so the target is >= 5x that.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from seedream_async._engine._journal_types import Claim
from seedream_async._engine._sqlite import SQLiteJournal

PRICE = 0.036
EDIT_SECONDS = 8.0


async def _one(journal: SQLiteJournal, owner: str, key: str) -> None:
    (outcome,) = await journal.claim(owner, [Claim(key=key, fingerprint="f", name=key)], lease=60)
    assert outcome.record is not None
    await journal.reserve(owner, key, request={"prompt": key}, amount=PRICE, budget=None)
    await journal.submitted(owner, key, prediction_id=f"p-{key}", cost=PRICE)
    await journal.done(owner, key, outputs=[f"https://o/{key}.png"], predict_time=8.0)
    await journal.delivered(owner, key, files=[f"{key}.png"], outputs=[f"https://o/{key}.png"])


async def _run(path: Path, *, items: int, concurrency: int, durable: bool) -> float:
    journal = await SQLiteJournal.open(path, durable=durable)
    slots = anyio.Semaphore(concurrency)
    try:
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for n in range(items):
                await slots.acquire()

                async def item(key: str) -> None:
                    try:
                        await _one(journal, "bench-run", key)
                    finally:
                        slots.release()

                group.start_soon(item, f"k{n:07d}")
        elapsed = time.perf_counter() - started
        counts = await journal.counts()
        assert sum(counts.values()) == items, counts
    finally:
        await journal.aclose()
    return items / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.journal_throughput")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ns = parser.parse_args(argv)
    api_rate = ns.concurrency / EDIT_SECONDS
    result: dict[str, Any] = {
        "items": ns.items, "concurrency": ns.concurrency, "backend": ns.backend,
        "api_items_per_s": api_rate, "load_before": os.getloadavg(),
    }  # fmt: skip
    for durable in (False, True):
        with tempfile.TemporaryDirectory(prefix="seedream-journal-bench-") as tmp:
            run = functools.partial(
                _run,
                Path(tmp) / "journal.sqlite3",
                items=ns.items,
                concurrency=ns.concurrency,
                durable=durable,
            )
            rate = anyio.run(run, backend=ns.backend)
        label = "durable" if durable else "default"
        result[f"{label}_items_per_s"] = rate
        result[f"{label}_x_api"] = rate / api_rate
        print(
            f"SQLite journal, {label:7}: {rate:7.0f} items/s through claim -> reserve -> "
            f"submitted -> done -> delivered = {rate / api_rate:5.1f}x the API's "
            f"{api_rate:.0f}/s at concurrency {ns.concurrency} (target >= 5x)"
        )
    result["load_after"] = os.getloadavg()
    print(f"load average {result['load_before'][0]:.2f} -> {result['load_after'][0]:.2f}")
    if ns.json is not None:
        ns.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
