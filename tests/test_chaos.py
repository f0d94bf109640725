"""Chaos on a fleet: ``work`` processes killed (SIGKILL) and paused (SIGSTOP past their
lease), the PostgreSQL server restarted, API faults on (429s, 503s, slow answers), all at
once; then a final plain drain and the invariants: nothing paid twice, every key delivered
once or (a worker killed mid-submit) reported ambiguous and never sent again, every
never-billed item done.

``test_chaos_small`` runs in the default suite (two workers, a few faults); the soak
(``-m soak``) runs longer with more of everything.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import anyio
import anyio.abc
import pytest
from _helpers import simulated
from _infra import catalog, cli_env, paid_twice
from _postgres import PostgresServer
from test_fleet_faults import work_command

from seedream_async import JournalState, PostgresJournal, drain, load_items
from seedream_async.testing import Faults, Simulator

pytestmark = pytest.mark.anyio

API_FAULTS = Faults(
    rate_limit=0.05,
    retry_after=0.05,
    server_error=0.05,
    server_error_codes=(503,),  # never billed, on a submit
    slow=0.05,
    slow_seconds=0.2,
    endpoints=frozenset({"submit", "poll", "output"}),
)


@pytest.fixture
def anyio_backend() -> str:
    """The workers are processes; the test's side needs one loop."""
    return "asyncio"


async def run_chaos(
    server: PostgresServer,
    dsn: str,
    out: Path,
    *,
    items: int,
    workers: int,
    rounds: int,
    actions: tuple[str, ...] = (),
) -> str:
    """The fleet under chaos (``actions`` in order, else drawn at random); returns the
    closing note's line."""
    rng = random.Random(items * 7 + rounds)
    catalog_items = catalog(items, f"chaos{items}")
    async with simulated(time_scale=0.03, faults=API_FAULTS) as (sim, client):
        async with await PostgresJournal.open(dsn) as journal:
            await load_items(journal, catalog_items)
        env = cli_env(sim.api_key or "")
        command = work_command(sim, dsn, out, "--lease", "1", "--batch", "4")
        done = {"kill": 0, "pause": 0, "restart": 0}
        processes: list[anyio.abc.Process] = []
        try:
            for _ in range(workers):
                processes.append(await anyio.open_process(command, env=env))
            for round_ in range(rounds):
                await _wait_for_progress(sim, items)
                action = actions[round_] if actions else rng.choice(["kill", "pause", "restart"])
                live = [p for p in processes if p.returncode is None]
                if action != "restart" and not live:
                    break
                done[action] += 1
                if action == "kill":
                    live[0].kill()
                    processes.append(await anyio.open_process(command, env=env))
                elif action == "pause":
                    os.kill(live[-1].pid, signal.SIGSTOP)
                    await anyio.sleep(1.5)  # past its lease
                    os.kill(live[-1].pid, signal.SIGCONT)
                else:
                    await anyio.to_thread.run_sync(server.stop)
                    await anyio.sleep(1.0)
                    await anyio.to_thread.run_sync(server.start)
            with anyio.fail_after(120):
                for process in processes:
                    await process.wait()
        finally:
            for process in processes:
                if process.returncode is None:
                    process.kill()
                await process.aclose()
        sim.configure(faults=Faults())
        async with await PostgresJournal.open(dsn) as journal:
            await drain(client, journal, out_dir=out, concurrency=8)
            counts = await journal.counts()
        return _invariants(sim, counts, items, done)


async def _wait_for_progress(sim: Simulator, items: int) -> None:
    start = sim.ledger.executions
    with anyio.move_on_after(10):
        while sim.ledger.executions < min(items, start + max(2, items // 10)):  # noqa: ASYNC110
            await anyio.sleep(0.01)


def _invariants(sim: Simulator, counts: dict[JournalState, int], items: int, done: dict) -> str:  # type: ignore[type-arg]
    delivered = counts[JournalState.DELIVERED]
    ambiguous = counts[JournalState.AMBIGUOUS]
    left = {str(s): n for s, n in counts.items() if n and s not in _ENDED}
    assert left == {}, f"left unfinished after the final plain drain: {left}"
    assert delivered + ambiguous == items, counts
    assert paid_twice(sim) == 0, "nothing paid twice"
    assert delivered <= sim.ledger.executions <= items, "every delivered item billed once"
    return (
        f"\nFIGURES chaos {done}: items={items} executions={sim.ledger.executions} "
        f"paid_twice={paid_twice(sim)} stranded=0 ambiguous={ambiguous}"
    )


_ENDED = {JournalState.DELIVERED, JournalState.AMBIGUOUS}


@pytest.mark.timeout(150)
async def test_chaos_small(
    postgres_server: PostgresServer, postgres_dsn: str, tmp_path: Path
) -> None:
    """Two workers, 16 items: one paused past its lease, one killed, the server restarted."""
    line = await run_chaos(
        postgres_server, postgres_dsn, tmp_path / "out", items=16, workers=2, rounds=3,
        actions=("pause", "kill", "restart"),
    )  # fmt: skip
    print(line)


@pytest.mark.soak
@pytest.mark.timeout(900)
async def test_chaos_soak(
    postgres_server: PostgresServer, postgres_dsn: str, tmp_path: Path
) -> None:
    """Four workers, 400 items, twenty faults."""
    print(
        await run_chaos(
            postgres_server, postgres_dsn, tmp_path / "out", items=400, workers=4, rounds=20
        )
    )
