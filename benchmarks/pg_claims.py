"""How many claims per second a PostgreSQL journal sustains, with W worker processes.

    python -m benchmarks.pg_claims --dsn postgresql://postgres@127.0.0.1:5432/bench
    python -m benchmarks.pg_claims --throwaway      # starts a temporary server (tests/_postgres.py)

Loads ``--items`` rows, then W processes drain them as a fleet would, without the API:
``claim_next`` in batches, and per item either nothing more (``--mode claim``: the claim
path alone) or the whole life of an item in the journal (``--mode item``: claim, reserve,
submitted, done, delivered: five transactions). Prints items per second over the run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

import anyio

from seedream_async import LoadRow, PostgresJournal

PRICE = 0.036


async def _load(dsn: str, items: int) -> None:
    async with await PostgresJournal.open(dsn) as journal:
        rows = [
            LoadRow(key=f"k{n:07d}", fingerprint="f", name=f"k{n:07d}", item={"key": f"k{n}"})
            for n in range(items)
        ]
        await journal.load(rows, chunk=2000)


async def _worker(
    dsn: str, owner: str, mode: str, batch: int, concurrency: int
) -> tuple[int, float, float]:
    done = 0
    async with await PostgresJournal.open(dsn, pool_size=concurrency) as journal:
        await _barrier(dsn)
        started = time.time()

        async def one(key: str) -> None:
            request = {"prompt": key}
            await journal.reserve(owner, key, request=request, amount=PRICE, budget=None)
            await journal.submitted(owner, key, prediction_id=f"p-{key}", cost=PRICE)
            await journal.done(owner, key, outputs=["u"], predict_time=1.0)
            await journal.delivered(owner, key, files=[], outputs=["u"])

        while claimed := await journal.claim_next(owner, limit=batch, lease=60):
            done += len(claimed)
            if mode == "item":
                async with anyio.create_task_group() as group:
                    for item in claimed:
                        group.start_soon(one, item.record.key)
        return done, started, time.time()


async def _barrier(dsn: str) -> None:
    # Start together once every worker has its connections, so start-up is not timed.
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_go (n int)")
        while not conn.execute("SELECT count(*) FROM bench_go").fetchone()[0]:  # type: ignore[index]
            await anyio.sleep(0.01)


def _run_worker(args: tuple[str, str, str, int, int]) -> tuple[int, float, float]:
    return anyio.run(_worker, *args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn")
    parser.add_argument("--throwaway", action="store_true")
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=4, help="connections per worker")
    parser.add_argument("--mode", choices=("claim", "item"), default="item")
    ns = parser.parse_args()
    cluster = None
    if ns.throwaway:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from _postgres import _Cluster, find_pg_bin

        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise SystemExit("no PostgreSQL binaries found")
        cluster = _Cluster(bin_dir)
        cluster.initdb()
        ns.dsn = f"postgresql://postgres@127.0.0.1:{cluster.start()}/postgres"
    try:
        anyio.run(_load, ns.dsn, ns.items)
        jobs = [(ns.dsn, f"w{n}", ns.mode, ns.batch, ns.concurrency) for n in range(ns.workers)]
        with multiprocessing.get_context("spawn").Pool(ns.workers) as pool:
            pending = pool.map_async(_run_worker, jobs)
            time.sleep(3.0)  # let the workers connect
            import psycopg

            with psycopg.connect(ns.dsn, autocommit=True) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS bench_go (n int)")
                conn.execute("INSERT INTO bench_go VALUES (1)")
            results = pending.get()
        counts = [n for n, _start, _end in results]
        elapsed = max(end for *_, end in results) - min(start for _, start, _ in results)
        print(
            f"{ns.mode}: {sum(counts)} items by {ns.workers} workers (batch {ns.batch}) in "
            f"{elapsed:.2f} s: {sum(counts) / elapsed:,.0f} items/s; per worker {counts}"
        )
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
