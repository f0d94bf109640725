"""``seedream-async run``: a manifest through ``edit_batch``, with a live bar and a report.

``demo`` calls :func:`run_manifest` too, with the in-process simulator's URL and key, so
the demo exercises exactly what a real run does.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
from rich.console import Console
from rich.markup import escape

from .._base._exceptions import JournalError
from .._clients._async import AsyncSeedream
from .._engine import BatchResult, BatchRun
from .._engine._items import EditItem
from .._engine._options import as_kwargs
from .._wire._pricing import PriceModel
from ._dry_run import dry_run
from ._fleet import journal_error_in
from ._journal_view import journal_exists, load_journal
from ._manifest import iter_items
from ._options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_JOURNAL,
    EXIT_OK,
    EXIT_USAGE,
    webhook_listener,
)
from ._outcome import Outcome, journal_broke, print_outcome, print_stopped
from ._plan import retry_cost_note
from ._progress import ProgressDisplay
from ._report import ReportWriter, record, write_report
from ._reroll import REROLLED_DIR, reroll
from ._review import write_review
from ._run_options import JOURNAL_NAME, REPORT_NAME, RunOptions
from ._selection import key_seed, prescan, print_problems, refusal, selected_items
from ._stop import Stop, stop_on_signals
from ._summary import Tally

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_JOURNAL",
    "EXIT_OK",
    "EXIT_USAGE",
    "JOURNAL_NAME",
    "REPORT_NAME",
    "RunOptions",
    "key_seed",
    "print_problems",
    "run_manifest",
]


async def _reroll(options: RunOptions, console: Console) -> None:
    """Pin new seeds for the --reroll keys and move their current outputs aside."""
    journal = options.journal_path
    view = await load_journal(journal) if journal_exists(journal) else None
    files = {key: view.rows[key].files for key in options.reroll if view and key in view.rows}
    raw = iter_items(
        options.manifest, size=options.size, max_images=options.max_images, model=options.model
    )
    items = {item.key: item for item in raw if item.key in options.reroll}
    done = await anyio.to_thread.run_sync(
        lambda: reroll(
            options.pins_path, options.out, items, files, seed_from_key=options.seed_from_key
        )
    )
    moved = sum(len(entry["moved"]) for entry in done.values())
    console.print(
        f"Re-rolling {len(done)} item(s) with new seeds (a new paid attempt each); "
        f"{moved} earlier output file(s) moved to {options.out / REROLLED_DIR}."
    )


async def _write_records(
    options: RunOptions,
    keys: list[str],
    lines: dict[str, dict[str, Any]],
    items: dict[str, EditItem],
) -> None:
    """Write report.jsonl whole from this run's lines and the journal, then the review sheet
    from it (also after a stopped run)."""
    await write_report(options.report_path, keys, options.journal_path, lines, items)
    await anyio.to_thread.run_sync(write_review, options.report_path, options.review_path)


async def run_manifest(options: RunOptions, *, console: Console, errors: Console) -> int:
    """Run every row of the manifest and return the exit code.

    The manifest is read twice, lazily both times: once to find bad rows before anything
    is paid for, then as the batch's input stream.

    Args:
        options: what to run.
        console: where the progress, summary and notes go.
        errors: where manifest problems go.

    Returns:
        0 when every item succeeded, 1 when any did not, 2 when the manifest is bad, 3
        when the journal's disk or database failed (the last line says what to do).
    """
    keys, problems, count, found = prescan(options)
    refused = refusal(options, keys, problems, count, found, errors)
    if refused is not None:
        return refused
    if options.dry_run:
        return await dry_run(options, console)
    if options.reroll:
        await _reroll(options, console)
    _say_journal(options, console)
    await _say_retry_cost(options, keys, console)
    outcome = await _run_batch(options, keys, console, errors)
    if outcome.failure is not None:
        errors.print(f"error: {escape(str(outcome.failure))}. Nothing was sent.")
        return EXIT_JOURNAL
    print_outcome(options, outcome, expected=len(keys), console=console)
    if outcome.stop.exit_code is not None:
        print_stopped(options, outcome.stop, errors)
        return outcome.stop.exit_code
    if journal_broke(outcome, errors):
        return EXIT_JOURNAL
    tally = outcome.tally
    return EXIT_OK if tally.all_ok and tally.total == len(keys) else EXIT_FAILED


async def _say_retry_cost(options: RunOptions, keys: list[str], console: Console) -> None:
    """--retry-failed: say what re-running the items that failed moderation costs."""
    journal = options.journal_path
    if not options.batch.retry_failed or not journal_exists(journal):
        return
    rows = (await load_journal(journal)).rows
    moderated = sum(1 for key in keys if key in rows and rows[key].moderated)
    if moderated:
        note = retry_cost_note(moderated, options.price or PriceModel())
        console.print(f"[yellow]{note}[/]")


def _say_journal(options: RunOptions, console: Console) -> None:
    journal = options.journal_path
    if isinstance(journal, str):
        console.print(
            f"Journal: {options.journal_shown}, shared with other runs and workers (if "
            "stopped, re-run the same command to resume)."
        )
    elif journal.exists():
        console.print(f"Resuming from the journal {journal}: what was paid for is not paid again.")
    elif options.resumable:
        console.print(f"Journal: {journal} (if stopped, re-run the same command to resume).")
    else:
        console.print(f"Journal: {journal}")


async def _run_batch(
    options: RunOptions, keys: list[str], console: Console, errors: Console
) -> Outcome:
    """The batch itself, with the bar and the report as results come; then the report
    from the journal and the review sheet (also after a stop)."""
    asked: dict[str, EditItem] = {}  # items in flight, for their report lines
    given: dict[str, EditItem] = {}  # every item read, for the lines the journal writes
    lines: dict[str, dict[str, Any]] = {}

    def items() -> Iterator[EditItem]:
        for item in selected_items(options):
            asked[item.key] = given[item.key] = item
            yield item

    options.out.mkdir(parents=True, exist_ok=True)
    outcome = Outcome(tally=Tally(), stop=Stop())
    started = time.monotonic()
    runs: list[BatchRun] = []
    scope = anyio.CancelScope()

    def hurry() -> None:  # a second Ctrl-C: give submits on the wire no more time
        for run in runs:
            run.cancel(wait_for_submits=False)

    try:
        async with stop_on_signals(scope, hurry=hurry) as outcome.stop:
            with scope, ReportWriter(options.report_path) as report:

                def add(result: BatchResult) -> None:
                    item = asked.pop(result.key, None)
                    report.write(result, item)  # as it comes; rewritten below
                    lines[result.key] = record(result, item)
                    outcome.tally.add(result)

                await _edit(options, items(), len(keys), console, runs, add)
    except* JournalError as group:  # it could not be opened (or read) at all: nothing sent
        outcome.failure = journal_error_in(group)
    finally:
        if runs:
            outcome.billed = runs[0].progress.spent
            outcome.sidecar, outcome.broken = runs[0].unrecorded, runs[0].journal_failure
        # Past the batch (stopped or not): the report from the journal, the review sheet.
        outcome.elapsed = time.monotonic() - started
        with anyio.CancelScope(shield=True):
            try:
                if outcome.failure is None:
                    await _write_records(options, keys, lines, given)
            except (JournalError, OSError) as err:
                errors.print(f"warning: the report was not written: {escape(str(err))}")
    return outcome


async def _edit(
    options: RunOptions,
    items: Iterator[EditItem],
    total: int,
    console: Console,
    runs: list[BatchRun],
    on_result: Callable[[BatchResult], None],
) -> None:
    """Run the batch with the live bar, handing each result to ``on_result``."""
    if not isinstance(options.journal_path, str):
        options.journal_path.parent.mkdir(parents=True, exist_ok=True)
    async with (
        AsyncSeedream(
            options.api_key,
            base_url=options.base_url,
            poll=options.batch.poll,
            price=options.price,
        ) as client,
        webhook_listener(client, options.webhook_listen),
    ):
        with ProgressDisplay(console, total) as display:
            batch = dataclasses.replace(
                options.batch, out_dir=options.out, journal=options.journal_path,
                on_progress=display.on_progress,
            )  # fmt: skip
            run = client.edit_batch(items, **as_kwargs(batch))
            runs.append(run)
            async with run:
                async for result in run:
                    display.add(result)
                    on_result(result)
