"""When the machinery under a fleet fails: the PostgreSQL server restarted mid-drain, and a
worker paused (SIGSTOP) past its lease and resumed. Each test starts the real thing (a
throwaway cluster stopped and started, a ``work`` process stopped and continued), then
a final plain drain, and asserts the invariants: nothing paid twice, no billed id lost,
no never-billed item left unfinished, every key delivered once.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import pytest
from _helpers import simulated
from _infra import Tally, catalog, cli_env, paid_twice
from _postgres import PostgresServer

from seedream_async import JournalState, PostgresJournal, drain, load_items
from seedream_async.testing import Faults, Simulator

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture
def anyio_backend() -> str:
    """A restarted server and a stopped process are the same under either loop; one here."""
    return "asyncio"


async def _final_drain(sim: Simulator, client: object, dsn: str, out: Path) -> dict[str, int]:
    async with await PostgresJournal.open(dsn) as journal:
        await drain(client, journal, out_dir=out, concurrency=8)  # type: ignore[arg-type]
        counts = await journal.counts()
    return {str(state): n for state, n in counts.items() if n}


def _check(fault: str, sim: Simulator, counts: dict[str, int], n: int, saw: str) -> Tally:
    assert counts == {str(JournalState.DELIVERED): n}, counts
    assert paid_twice(sim) == 0, "nothing paid twice"
    assert sim.ledger.executions == n, "every item billed once"
    return Tally(fault=fault, items=n, executions=sim.ledger.executions,
                 paid_twice=paid_twice(sim), stranded=0, ambiguous=0, saw=saw)  # fmt: skip


async def _outage(server: PostgresServer, seconds: float) -> None:
    await anyio.to_thread.run_sync(server.stop)
    try:
        await anyio.sleep(seconds)
    finally:
        await anyio.to_thread.run_sync(server.start)


async def fleet_through_restart(
    server: PostgresServer, dsn: str, out: Path, *, items: int, down: float
) -> tuple[Tally, dict[str, int]]:
    """Three workers drain ``items``; the server goes down for ``down`` seconds once some
    are billed; then a final plain drain."""
    catalog_items = catalog(items, f"restart{int(down)}")
    async with simulated(time_scale=0.02) as (sim, client):
        async with await PostgresJournal.open(dsn) as journal:
            await load_items(journal, catalog_items)
        stranded: dict[str, int] = {}

        async def worker() -> None:
            async with await PostgresJournal.open(dsn) as journal:
                await drain(client, journal, out_dir=out, concurrency=4, lease=30.0)

        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(worker)
            with anyio.fail_after(60):
                while sim.ledger.executions < items // 5:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            await _outage(server, down)
        async with await PostgresJournal.open(dsn) as journal:
            counts = await journal.counts()
            stranded = {str(s): n for s, n in counts.items() if n and s != JournalState.DELIVERED}
        final = await _final_drain(sim, client, dsn, out)
        tally = _check(f"PostgreSQL down {down:g}s", sim, final, items, "(workers waited)")
    return tally, stranded


async def test_a_database_restart_is_waited_out(
    postgres_server: PostgresServer, postgres_dsn: str, tmp_path: Path
) -> None:
    """PostgreSQL stopped for 3 s and started under three workers: they wait, reconnect and
    finish the catalog themselves; nothing is stranded, nothing paid twice."""
    tally, stranded = await fleet_through_restart(
        postgres_server, postgres_dsn, tmp_path / "out", items=60, down=3.0
    )
    assert stranded == {}, f"left for another pass: {stranded}"
    print(tally.line() + f" stranded_before_rerun={sum(stranded.values())}")


@pytest.mark.soak
@pytest.mark.timeout(600)
async def test_a_minute_long_database_outage_is_waited_out(
    postgres_server: PostgresServer, postgres_dsn: str, tmp_path: Path
) -> None:
    """A 60 s outage under three workers with 300 items (soak)."""
    tally, stranded = await fleet_through_restart(
        postgres_server, postgres_dsn, tmp_path / "out", items=300, down=60.0
    )
    print(tally.line() + f" stranded_before_rerun={sum(stranded.values())}")


def work_command(sim: Simulator, dsn: str, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "seedream_async", "work", "--journal", dsn, "--out", str(out),
        "--base-url", sim.base_url, "--concurrency", "4", "--first-poll", "0.005",
        "--poll-interval", "0.005", *extra,
    ]  # fmt: skip


async def test_a_paused_worker_cannot_do_harm(postgres_dsn: str, tmp_path: Path) -> None:
    """A ``work`` process stopped (SIGSTOP) past its 1 s lease while another worker takes
    its items over, then continued: its writes are refused, it pays for nothing another
    worker carries, and says so; a final plain drain finds every item delivered once."""
    items = catalog(30, "paused")
    out = tmp_path / "out"
    async with simulated(time_scale=0.05) as (sim, client):
        async with await PostgresJournal.open(postgres_dsn) as journal:
            await load_items(journal, items)
        env = cli_env(sim.api_key or "")
        command = work_command(sim, postgres_dsn, out, "--lease", "1")
        async with await anyio.open_process(command, env=env) as paused:
            with anyio.fail_after(60):
                while sim.ledger.executions < 4:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
            os.kill(paused.pid, signal.SIGSTOP)
            try:
                async with await PostgresJournal.open(postgres_dsn) as journal:
                    taker = await drain(client, journal, out_dir=out, concurrency=8, lease=1.0)
                assert taker.taken_over >= 1
            finally:
                os.kill(paused.pid, signal.SIGCONT)
            text = await _output(paused)
        assert "Traceback" not in text, text[-3000:]
        said = [line for line in text.splitlines() if "lost its claim on" in line]
        assert len(said) <= 1, "said once, not once per item"
        final = await _final_drain(sim, client, postgres_dsn, out)
        saw = said[0].strip() if said else "(nothing: it had no item in hand)"
        tally = _check("worker paused past its lease", sim, final, len(items), saw)
    print(tally.line())


async def _output(process: anyio.abc.Process) -> str:
    output = b""
    assert process.stdout is not None
    assert process.stderr is not None
    with anyio.fail_after(60):
        async for chunk in process.stdout:
            output += chunk
        async for chunk in process.stderr:
            output += chunk
        await process.wait()
    return output.decode()


__all__ = ["Faults"]
