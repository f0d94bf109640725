"""Makespan of a catalog drained by 1 worker vs N workers on one PostgreSQL journal.

    python -m benchmarks.fleet_makespan --items 2000 --workers 4 --concurrency 24

Starts a throwaway PostgreSQL server (tests/_postgres.py) and the simulator in its own
process, loads the manifest, and times ``seedream-async work`` processes draining it: once
with one worker, once with N, each with the same per-worker concurrency. Prints both
makespans and the ledger's executions and duplicates.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]


def _drain(dsn: str, workers: int, args: argparse.Namespace, folder: Path, concurrency: int) -> str:
    sim = subprocess.Popen(
        [sys.executable, "-m", "seedream_async.testing", "--port", "0", "--time-scale",
         str(args.time_scale), "--output-size", "8x8",
         *(["--max-in-flight", str(args.max_in_flight)] if args.max_in_flight else [])],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert sim.stdout is not None
    words = sim.stdout.readline().decode().split()
    base_url, key = words[3], words[7]
    cli = [sys.executable, "-m", "seedream_async"]
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS seedream_items, seedream_attempts, seedream_spend")
            conn.execute("DROP TABLE IF EXISTS seedream_meta")
        subprocess.run([*cli, "load", str(folder / "m.jsonl"), "--journal", dsn], check=True)
        env = {**os.environ, "ATLASCLOUD_API_KEY": key}
        work = [*cli, "work", "--journal", dsn, "--base-url", base_url, "--out",
                str(folder / f"out{workers}"), "--concurrency", str(concurrency),
                "--first-poll", "0.01", "--poll-interval", "0.01"]  # fmt: skip
        started = time.perf_counter()
        procs = [subprocess.Popen(work, env=env, stdout=subprocess.DEVNULL) for _ in range(workers)]
        for proc in procs:
            proc.wait()
        elapsed = time.perf_counter() - started
        ledger = httpx.get(
            f"{base_url}/_sim/ledger", headers={"Authorization": f"Bearer {key}"}
        ).json()
    finally:
        sim.terminate()
        sim.wait()
        sim.stdout.close()
    return (
        f"{workers} worker(s) x concurrency {concurrency}: {args.items} items in "
        f"{elapsed:.1f} s; executions {ledger['executions']}, paid twice "
        f"{ledger['duplicate_submissions']}, refused {sum(ledger['faults'].values())} "
        f"({ledger['faults']}), most in flight {ledger['max_in_flight']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--time-scale", type=float, default=0.002)
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=None,
        help="the key's quota in the simulator; then also run N workers at the whole quota each",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from _postgres import _Cluster, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL binaries found")
    cluster = _Cluster(bin_dir)
    try:
        cluster.initdb()
        dsn = f"postgresql://postgres@127.0.0.1:{cluster.start()}/postgres"
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            with (folder / "m.jsonl").open("w") as out:
                for n in range(args.items):
                    row = {"key": f"sku-{n:05d}", "prompt": f"edit {n}"}
                    out.write(json.dumps({**row, "images": [f"https://e.com/{n}.png"]}) + "\n")
            if args.max_in_flight:  # a shared quota: total / N each, vs the whole quota each
                share = max(1, args.max_in_flight // args.workers)
                print(_drain(dsn, args.workers, args, folder, share))
                print(_drain(dsn, args.workers, args, folder, args.max_in_flight))
            else:
                print(_drain(dsn, 1, args, folder, args.concurrency))
                print(_drain(dsn, args.workers, args, folder, args.concurrency))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
