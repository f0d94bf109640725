"""When the journal's disk fails under ``seedream-async run``: full at start, full mid-run,
read-only, the file deleted mid-run. Each test runs the real command in its own process
on a real tmpfs, then a final plain re-run, and asserts the invariants: nothing paid twice,
no billed id lost, no never-billed item left unfinished, every key once in the report.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import anyio
import pytest
from _helpers import simulated
from _infra import (
    Tally,
    assert_no_traceback,
    catalog,
    check_report,
    cli_env,
    fill,
    last_line,
    manifest,
    output_of,
    paid_twice,
    run_command,
    tmpfs,
)

from seedream_async.testing import Faults

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

# Predictions take a few tenths of a second, so a fault lands while some are in flight.
SLOW = 0.05


@pytest.fixture
def anyio_backend() -> str:
    """The command runs in its own process: one backend for the test's side is enough."""
    return "asyncio"


async def _finish(sim_command: list[str], env: dict[str, str]) -> str:
    done = await anyio.run_process(sim_command, env=env, check=False)
    text = output_of(done)
    assert done.returncode == 0, text[-3000:]
    return text


async def test_disk_full_at_start_is_one_sentence(tmp_path: Path) -> None:
    """A journal on a full disk: one line naming it and what to do, exit 3, nothing sent;
    with space freed the same command runs the catalog once."""
    items = catalog(6, "full-start")
    with tmpfs(tmp_path / "disk", "4m") as disk:
        filler = fill(disk)
        async with simulated() as (sim, _):
            path, out = manifest(tmp_path, items), tmp_path / "out"
            command = run_command(sim, path, out, disk / "journal.sqlite")
            env = cli_env(sim.api_key or "")
            done = await anyio.run_process(command, env=env, check=False)
            text = output_of(done)
            assert_no_traceback(text)
            assert done.returncode == 3, text
            saw = last_line(text)
            assert "disk is full" in saw
            assert str(disk / "journal.sqlite") in saw
            assert sim.ledger.executions == 0
            filler.unlink()
            await _finish(command, env)
            tally = _tally("disk full at start", sim, out, items, saw)
    print(tally.line())


async def _fault_mid_run(
    tmp_path: Path, name: str, size: str, fault: str
) -> tuple[Tally, list[str]]:
    """Run 24 items, break the journal once some are billed, then re-run plainly."""
    items = catalog(24, name)
    with tmpfs(tmp_path / "disk", size) as disk:
        journal = disk / "journal.sqlite"
        async with simulated(time_scale=SLOW) as (sim, _):
            path, out = manifest(tmp_path, items), tmp_path / "out"
            command = run_command(sim, path, out, journal)
            env = cli_env(sim.api_key or "")
            async with await anyio.open_process(command, env=env) as process:
                with anyio.fail_after(60):
                    while sim.ledger.executions < 6:  # noqa: ASYNC110 (no event to wait on)
                        await anyio.sleep(0.01)
                undo = _break(fault, disk, journal)
                text = await _drain_output(process)
            assert_no_traceback(text)
            saw = last_line(text)
            assert process.returncode == 3, text[-3000:]
            billed_before = sim.ledger.executions
            undo()
            sim.configure(faults=Faults())
            again = await _finish(command, env)
            tally = _tally(name, sim, out, items, saw)
            assert billed_before <= len(items)
    return tally, [text, again]


def _break(fault: str, disk: Path, journal: Path) -> object:
    if fault == "full":
        filler = fill(disk)
        return filler.unlink
    if fault == "deleted":
        os.unlink(journal)
        return lambda: None
    raise AssertionError(fault)


async def _drain_output(process: anyio.abc.Process) -> str:
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


def _tally(fault: str, sim: object, out: Path, items: list, saw: str) -> Tally:  # type: ignore[type-arg]
    from seedream_async.testing import Simulator

    assert isinstance(sim, Simulator)
    statuses = check_report(out, items)
    assert statuses == {"succeeded": len(items)}, statuses
    assert paid_twice(sim) == 0, "nothing paid twice"
    assert sim.ledger.executions == len(items), "every never-billed item done, once"
    return Tally(
        fault=fault, items=len(items), executions=sim.ledger.executions,
        paid_twice=paid_twice(sim), stranded=0, ambiguous=statuses.get("ambiguous", 0),
        saw=saw,
    )  # fmt: skip


async def test_disk_full_mid_run_keeps_every_billed_id(tmp_path: Path) -> None:
    """The disk fills after predictions were billed: new submits stop, the ids the journal
    refused go to a sidecar named in the last line, and the re-run fetches them by id."""
    tally, (_first, _) = await _fault_mid_run(tmp_path, "full-mid", "16m", "full")
    assert "disk is full" in tally.saw
    assert "unrecorded.jsonl" in tally.saw or "journal" in tally.saw
    print(tally.line())


async def test_journal_deleted_mid_run_loses_no_billed_id(tmp_path: Path) -> None:
    """The journal file deleted mid-run: the run notices before its next write, restores
    the file from its open connection (one line says so) and carries on; a plain re-run
    pays for nothing again."""
    items = catalog(24, "deleted")
    async with simulated(time_scale=SLOW) as (sim, _):
        path, out = manifest(tmp_path, items), tmp_path / "out"
        journal = tmp_path / "journal" / "journal.sqlite"
        command = run_command(sim, path, out, journal)
        env = cli_env(sim.api_key or "")
        async with await anyio.open_process(command, env=env) as process:
            with anyio.fail_after(60):
                while sim.ledger.executions < 6:  # noqa: ASYNC110 (no event to wait on)
                    await anyio.sleep(0.01)
            os.unlink(journal)
            text = await _drain_output(process)
        assert_no_traceback(text)
        assert process.returncode == 0, text[-3000:]
        saw = next(line for line in text.splitlines() if "deleted while in use" in line)
        await _finish(command, env)
        tally = _tally("journal deleted mid-run", sim, out, items, saw.strip())
    print(tally.line())


async def test_read_only_journal_is_one_sentence(tmp_path: Path) -> None:
    """A journal on a read-only file system (a read-only bind mount: root ignores file
    modes): one line naming it, exit 3, nothing sent; writable again, the re-run pays only
    for what was never billed."""
    items = catalog(8, "read-only")
    with tmpfs(tmp_path / "disk", "16m") as disk:
        journal = disk / "journal.sqlite"
        view = tmp_path / "view"
        async with simulated() as (sim, _):
            path, out = manifest(tmp_path, items[:4]), tmp_path / "out"
            env = cli_env(sim.api_key or "")
            await _finish(run_command(sim, path, out, journal), env)
            view.mkdir()
            mounted = _bind_read_only(disk, view)
            try:
                path = manifest(tmp_path, items)
                command = run_command(sim, path, out, view / "journal.sqlite")
                done = await anyio.run_process(command, env=env, check=False)
                text = output_of(done)
            finally:
                await anyio.run_process(["umount", "-l", str(view)], check=False)
            assert mounted
            assert_no_traceback(text)
            assert done.returncode == 3, text
            saw = last_line(text)
            assert "read-only" in saw or "readonly" in saw, saw
            assert sim.ledger.executions == 4
            await _finish(run_command(sim, path, out, journal), env)
            tally = _tally("read-only journal", sim, out, items, saw)
    print(tally.line())


def _bind_read_only(source: Path, target: Path) -> bool:
    for args in (
        ["mount", "--bind", str(source), str(target)],
        ["mount", "-o", "remount,bind,ro", str(target)],
    ):
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode:
            pytest.skip(f"a read-only bind mount is not permitted here: {done.stderr[:120]}")
    return True
