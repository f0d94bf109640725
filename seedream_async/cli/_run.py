"""``seedream-async run``: a manifest through ``edit_batch``, with a live bar and a report.

``demo`` calls :func:`run_manifest` too, with the in-process simulator's URL and key, so
the demo exercises exactly what a real run does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.markup import escape

from .._client import AsyncSeedream
from .._engine import BatchRun
from .._polling import PollPolicy
from ._manifest import ManifestProblem, iter_items
from ._progress import ProgressDisplay
from ._report import ReportWriter, Tally, print_failures, record, summary_table, write_report
from ._stop import resume_command, stop_on_signals
from ._validate import scan

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "JOURNAL_NAME",
    "REPORT_NAME",
    "RunOptions",
    "print_problems",
    "run_manifest",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it (SIGTERM: 143)
JOURNAL_NAME = ".seedream-journal.sqlite"
REPORT_NAME = "report.jsonl"
# Problems printed before "... and N more".
_SHOWN_PROBLEMS = 20


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """What ``seedream-async run`` was asked to do.

    Args:
        manifest: the CSV or JSONL manifest.
        out: the folder for outputs, the report and (by default) the journal.
        api_key: the API key.
        base_url: the API's origin; the client's default when None.
        journal: the journal file; ``<out>/.seedream-journal.sqlite`` when None.
        concurrency: predictions in flight at most.
        rate: submits per second at most, or None.
        budget: US dollars this run may spend at most, or None.
        size: the ``size`` of rows that do not set one.
        max_images: the ``max_images`` of rows that do not set one.
        resubmit_ambiguous: pay again for items an earlier run may have paid for without
            hearing back.
        retry_failed: pay for a new attempt of items the API reported failed before.
        poll: the polling policy; the client's default when None.
    """

    manifest: Path
    out: Path
    api_key: str
    base_url: str | None = None
    journal: Path | None = None
    concurrency: int = 64
    rate: float | None = None
    budget: float | None = None
    size: str | None = None
    max_images: int | None = None
    resubmit_ambiguous: bool = False
    retry_failed: bool = False
    poll: PollPolicy | None = None

    @property
    def journal_path(self) -> Path:
        """The journal in use."""
        return self.journal or self.out / JOURNAL_NAME

    @property
    def report_path(self) -> Path:
        """Where ``report.jsonl`` goes."""
        return self.out / REPORT_NAME


def print_problems(console: Console, problems: list[ManifestProblem], total: int) -> None:
    """Print the first manifest problems, then how many more there were.

    Args:
        console: where to print (stderr, usually).
        problems: the first problems found.
        total: how many were found in all.
    """
    for problem in problems:
        console.print(f"[red]error[/] {escape(str(problem))}")
    if total > len(problems):
        console.print(f"... and {total - len(problems)} more problem(s)")


def _prescan(options: RunOptions) -> tuple[list[str], list[ManifestProblem], int]:
    """Read the whole manifest once before spending anything: its keys, first problems,
    and how many problems."""
    keys: list[str] = []
    problems = 0
    shown: list[ManifestProblem] = []
    for row in scan(
        options.manifest, size=options.size, max_images=options.max_images, check_files=False
    ):
        if isinstance(row, ManifestProblem):
            problems += 1
            if len(shown) < _SHOWN_PROBLEMS:
                shown.append(row)
        else:
            keys.append(row.item.key)
    return keys, shown, problems


async def run_manifest(options: RunOptions, *, console: Console, errors: Console) -> int:
    """Run every row of the manifest and return the exit code.

    The manifest is read twice, lazily both times: once to find bad rows before anything
    is paid for, then as the batch's input stream.

    Args:
        options: what to run.
        console: where the progress, summary and notes go.
        errors: where manifest problems go.

    Returns:
        0 when every item succeeded, 1 when any did not, 2 when the manifest is bad.
    """
    keys, problems, count = _prescan(options)
    total = len(keys)
    if count:
        print_problems(errors, problems, count)
        errors.print(f"{options.manifest}: {count} problem(s); nothing was sent")
        return EXIT_USAGE
    if total == 0:
        errors.print(f"{options.manifest}: no rows to run")
        return EXIT_USAGE
    journal = options.journal_path
    if journal.exists():
        console.print(f"Resuming from the journal {journal}: what was paid for is not paid again.")
    else:
        console.print(f"Journal: {journal} (if stopped, re-run the same command to resume).")
    items = iter_items(options.manifest, size=options.size, max_images=options.max_images)
    tally = Tally()
    lines: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    options.out.mkdir(parents=True, exist_ok=True)
    journal.parent.mkdir(parents=True, exist_ok=True)
    billed = 0.0
    runs: list[BatchRun] = []
    scope = anyio.CancelScope()

    def hurry() -> None:  # a second Ctrl-C: give submits on the wire no more time
        for run in runs:
            run.cancel(wait_for_submits=False)

    async with stop_on_signals(scope, hurry=hurry) as stop:
        with scope:
            async with AsyncSeedream(
                options.api_key, base_url=options.base_url, poll=options.poll
            ) as client:
                with (
                    ReportWriter(options.report_path) as report,
                    ProgressDisplay(console, total) as display,
                ):
                    batch = client.edit_batch(
                        items,
                        concurrency=options.concurrency,
                        rate=options.rate,
                        out_dir=options.out,
                        journal=journal,
                        budget=options.budget,
                        resubmit_ambiguous=options.resubmit_ambiguous,
                        retry_failed=options.retry_failed,
                        on_progress=display.on_progress,
                    )
                    runs.append(batch)
                    try:
                        async with batch:
                            async for result in batch:
                                report.write(result)  # as it comes; rewritten whole below
                                lines[result.key] = record(result)
                                tally.add(result)
                                display.add(result)
                    finally:
                        billed = batch.progress.spent
    # Past the batch (stopped or not): the summary, the report, how to go on.
    with anyio.CancelScope(shield=True):
        await write_report(options.report_path, keys, journal, lines)
    console.print(
        summary_table(tally, expected=total, elapsed=time.monotonic() - started, billed=billed)
    )
    print_failures(console, tally)
    console.print(f"Outputs: {options.out}")
    console.print(f"Report:  {options.report_path}")
    if stop.exit_code is not None:
        assert stop.signal is not None
        errors.print(
            f"Stopped by {stop.signal.name}: nothing new was submitted, and every prediction "
            f"already paid for is in the journal {journal}; re-run the same command to resume "
            f"(what was paid for is fetched by id, not paid again):\n  {resume_command()}"
        )
        return stop.exit_code
    return EXIT_OK if tally.all_ok and tally.total == total else EXIT_FAILED
