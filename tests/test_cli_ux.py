"""What the command line tells its user: estimates, logs, JSON, budget, wording, help."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
from pathlib import Path
from subprocess import DEVNULL, PIPE

import anyio
import pytest
from rich.console import Console
from test_cli import FAST_POLL, ROOT, catalog, cli, cli_env, finished, out

from seedream_async import AmbiguousSubmission
from seedream_async._engine._items import BatchProgress, BatchResult, ResultStatus
from seedream_async.cli import _parser
from seedream_async.cli._progress import ProgressDisplay
from seedream_async.cli._summary import Tally, print_failures, print_next_steps, summary_table
from seedream_async.testing import Faults, serve

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: the command runs in its own process (see test_cli.py)."""
    return "asyncio"


def _text(renderable: object, width: int = 160) -> str:
    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    try:
        console.print(renderable)
        return console.export_text()
    finally:
        console.file.close()


def _first_fault_seed() -> int:
    """A simulator seed whose first fault draw is under 0.5: the first request faults."""
    return next(s for s in range(100) if random.Random(f"{s}:faults").random() < 0.5)


async def test_validate_prints_the_cost_estimate(tmp_path: Path) -> None:
    """validate ends with N x price = total, one execution a row whatever max_images."""
    done = await cli("validate", catalog(tmp_path, 3, max_images=2))
    assert done.returncode == 0, out(done)
    assert "3 \N{MULTIPLICATION SIGN} $0.036 = $0.108" in out(done)


async def test_verbose_logs_retries_and_json_summary(tmp_path: Path) -> None:
    """-v shows a retried request and its wait on stderr; --json puts only JSON on stdout."""
    manifest = catalog(tmp_path / "cat", 2)
    faults = Faults(server_error=0.5, server_error_codes=(503,), endpoints=frozenset({"upload"}))
    async with serve(time_scale=0.001, seed=_first_fault_seed(), faults=faults) as sim:
        args = ["run", manifest, "--out", tmp_path / "out", "--base-url", sim.base_url]
        done = await cli(*args, *FAST_POLL, "-v", "--json")
    assert done.returncode == 0, out(done)
    summary = json.loads(done.stdout)  # stdout is the JSON object and nothing else
    assert summary["succeeded"] == summary["total"] == 2
    assert summary["cost"] == pytest.approx(0.072)
    assert summary["review"] == str(tmp_path / "out" / "review.html")
    logs = done.stderr.decode()
    assert "HTTP 503 (attempt 1), retrying in" in logs
    quiet = await cli(*args, *FAST_POLL, env=cli_env())  # resumed: all from the journal
    assert "retrying in" not in out(quiet)


async def test_budget_reached_line(tmp_path: Path) -> None:
    """A run the budget stops says so in one line; the stopped items are not listed one by one."""
    manifest = catalog(tmp_path / "cat", 4)
    async with serve(time_scale=0.001) as sim:
        done = await cli(
            "run", manifest, "--out", tmp_path / "out", "--base-url", sim.base_url,
            "--budget", "0.08", "--concurrency", "1", *FAST_POLL,
        )  # fmt: skip
        assert sim.ledger.executions == 2
    text = out(done)
    assert done.returncode == 1, text
    assert "Budget of $0.08 reached: $0.072 billed this run" in text
    assert "2 item(s) not submitted" in text
    assert "(not_submitted)" not in text


def test_summary_keeps_journal_count_out_of_the_outcomes() -> None:
    """'from the journal' is its own row after the total, not indented under the last status."""
    tally = Tally()
    tally.add(BatchResult(key="a", status=ResultStatus.SUCCEEDED, from_journal=True))
    tally.add(BatchResult(key="b", status=ResultStatus.AMBIGUOUS))
    lines = _text(summary_table(tally, expected=2, elapsed=1.0)).splitlines()
    row = next(n for n, line in enumerate(lines) if "answered from the journal" in line)
    total = next(n for n, line in enumerate(lines) if "total" in line)
    assert row > total + 1  # below the section rule that ends the outcomes
    assert "of which" not in "\n".join(lines)


def test_ambiguous_hint_names_the_flag() -> None:
    """Failures and the closing hint tell CLI users --resubmit-ambiguous, not the Python kwarg."""
    error = AmbiguousSubmission(
        "may have been billed; not sent again (pass resubmit_ambiguous=True to pay for it again)",
        key="a",
    )
    tally = Tally()
    tally.add(BatchResult(key="a", status=ResultStatus.AMBIGUOUS, error=error))
    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    with console.file:
        print_failures(console, tally)
        print_next_steps(console, tally, budget=None)
    text = console.export_text()
    assert "resubmit_ambiguous=True" not in text
    assert text.count("--resubmit-ambiguous") == 2


def test_progress_counts_each_outcome_apart() -> None:
    """The bar shows failed, ambiguous and over-budget items as three separate counts."""
    display = ProgressDisplay(Console(file=open(os.devnull, "w")), 6)  # noqa: SIM115
    display.on_progress(BatchProgress(running=1, spent=0.108))
    outcomes = ["succeeded", "failed", "failed", "ambiguous", "not_submitted"]
    for key, status in enumerate(outcomes):
        display.add(BatchResult(key=str(key), status=ResultStatus(status)))
    column = display._progress.columns[3]
    text = str(column.render(display._progress.tasks[0]))  # type: ignore[union-attr]
    assert "✓ 1" in text
    assert "✗ 2 failed" in text
    assert "? 1 ambiguous" in text
    assert "⏸ 1 over budget" in text
    display._progress.console.file.close()


@pytest.mark.parametrize("command", ["simulate", "demo", "run", "review", "validate", "status"])
def test_every_option_has_help(command: str) -> None:
    """Every option of the command says what it does in --help."""
    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        action.option_strings or action.dest
        for action in commands.choices[command]._actions
        if not action.help
    ]
    assert missing == []


async def test_demo_interrupt_says_what_is_true(tmp_path: Path) -> None:
    """Ctrl-C in the demo does not promise a resume: its simulator is gone, it starts over."""
    target = tmp_path / "demo"
    command = [sys.executable, "-m", "seedream_async", "demo", "--items", "8"]
    command += ["--time-scale", "0.05", "--out", str(target)]
    async with await anyio.open_process(
        command, env=cli_env(None), stdout=DEVNULL, stderr=PIPE, cwd=ROOT
    ) as process:
        with anyio.fail_after(30):
            while finished(target / "outputs") < 1:  # noqa: ASYNC110
                await anyio.sleep(0.01)
            process.send_signal(signal.SIGINT)
            code = await process.wait()
        assert process.stderr is not None
        message = b"".join([chunk async for chunk in process.stderr]).decode()
    assert code == 130, message
    assert "starts over" in message
    assert "re-run the same command to resume" not in message


def test_readme_says_how_to_point_run_at_the_simulator() -> None:
    """The README documents ATLASCLOUD_BASE_URL and running against `simulate`."""
    readme = (ROOT / "README.md").read_text()
    assert "ATLASCLOUD_BASE_URL" in readme
    assert "seedream-async simulate" in readme
    assert "## Review and re-run" in readme
    assert "docs/review-sheet.png" in readme
    assert (ROOT / "docs" / "review-sheet.png").is_file()


async def test_wrong_key_is_one_line(tmp_path: Path) -> None:
    """A key the API refuses shows as one line naming the variable, not one per item."""
    manifest = catalog(tmp_path / "cat", 5)
    async with serve(time_scale=0.001) as sim:
        done = await cli(
            "run", manifest, "--out", tmp_path / "out", "--base-url", sim.base_url,
            *FAST_POLL, env=cli_env("not-the-key"),
        )  # fmt: skip
        assert sim.ledger.executions == 0
    text = out(done)
    assert done.returncode == 1, text
    assert text.count("The API refused the key (HTTP 401) for 5 item(s)") == 1
    assert "ATLASCLOUD_API_KEY" in text
    assert "✗" not in text.split("seedream-async run")[-1]  # no item listed one by one


async def test_resume_command_of_a_reroll_leaves_the_reroll_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stopped `run --reroll` is resumed without --reroll: its seeds are pinned already,
    and repeating it would pay for the same items once more."""
    from seedream_async.cli._stop import resume_command

    argv = ["seedream-async", "run", "m.csv", "--reroll", "a", "b", "--out", "o", "--reroll=c"]
    monkeypatch.setattr(sys, "argv", argv)
    assert resume_command(drop="--reroll") == "seedream-async run m.csv --out o"
    assert resume_command() == "seedream-async " + " ".join(argv[1:])
