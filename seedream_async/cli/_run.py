"""``seedream-async run``: a manifest through ``edit_batch``, with a live bar and a report.

``demo`` calls :func:`run_manifest` too, with the in-process simulator's URL and key, so
the demo exercises exactly what a real run does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from rich.console import Console
from rich.markup import escape

from .._base._constants import API_KEY_ENV
from .._base._exceptions import JournalError, JournalUnavailable
from .._clients._async import AsyncSeedream
from .._engine import BatchOptions, BatchResult, BatchRun
from .._engine._items import EditItem
from .._engine._options import as_kwargs
from .._engine._pgjournal import redact_dsn
from .._engine._unrecorded import Unwritten
from .._wire._pricing import PriceModel
from ._manifest import ManifestProblem, iter_items
from ._options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_JOURNAL,
    EXIT_OK,
    EXIT_USAGE,
    webhook_listener,
)
from ._progress import ProgressDisplay
from ._report import (
    ReportWriter,
    Tally,
    print_failures,
    print_next_steps,
    record,
    summary_json,
    summary_table,
    write_report,
)
from ._reroll import REROLLED_DIR, apply_pin, load_pins, pins_path, reroll
from ._review import REVIEW_NAME, write_review
from ._status import journal_exists, load_journal, plan_run, print_plan, retry_cost_note
from ._stop import Stop, resume_command, stop_on_signals
from ._validate import scan

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
        journal: the journal file, or a ``postgresql://`` DSN (kept as a string);
            ``<out>/.seedream-journal.sqlite`` when None.
        price: how predictions are billed (``--price-per-image``); the client's default
            (per execution) when None.
        batch: the batch's options (concurrency, rate, budget, polling, ...), made from the
            command line once; the run adds its output folder, journal and progress bar.
        size: the ``size`` of rows that do not set one.
        max_images: the ``max_images`` of rows that do not set one.
        model: the ``model`` of rows that do not set one.
        resumable: re-running the same command resumes (False for the demo, whose
            simulator forgets its predictions when it stops).
        dry_run: print what would be submitted, answered from the journal, fetched again
            or billed again, with the cost, and send nothing.
        balance: with ``dry_run``, also read the account's balance (one GET) and show it.
        only: run only these keys (every other row is left alone); None runs them all.
        seed_from_key: give each row without a seed one derived from its key, so the
            catalog's results can be made again.
        reroll: keys to pay for again on purpose, each with a new seed; the earlier
            attempt stays in the journal's history and its files move to ``<out>/rerolled/``.
        api_key_env: the environment variable the key came from, for messages.
        webhook_listen: serve the webhook receiver here while the batch runs.
        json_summary: print the summary as one JSON object on stdout instead of a table
            (the bar and the notes go to the ``console`` given, stderr for ``--json``).
    """

    manifest: Path
    out: Path
    api_key: str
    base_url: str | None = None
    journal: Path | str | None = None
    batch: BatchOptions = field(default_factory=BatchOptions)
    price: PriceModel | None = None
    size: str | None = None
    max_images: int | None = None
    model: str | None = None
    json_summary: bool = False
    resumable: bool = True
    dry_run: bool = False
    balance: bool = False
    only: frozenset[str] | None = None
    seed_from_key: bool = False
    reroll: frozenset[str] = frozenset()
    api_key_env: str = API_KEY_ENV
    webhook_listen: tuple[str, int] | None = None

    @property
    def named(self) -> frozenset[str]:
        """Keys the user named (--only, --reroll): each must be in the manifest."""
        return (self.only or frozenset()) | self.reroll

    @property
    def journal_path(self) -> Path | str:
        """The journal in use: a file, or a PostgreSQL DSN."""
        return self.journal or self.out / JOURNAL_NAME

    @property
    def journal_shown(self) -> str:
        """The journal as messages name it: a DSN without its password."""
        journal = self.journal_path
        return redact_dsn(journal) if isinstance(journal, str) else str(journal)

    @property
    def pins_path(self) -> Path:
        """Where re-rolled seeds are pinned: beside a journal file, in ``out`` for a DSN."""
        journal = self.journal_path
        return pins_path(self.out / JOURNAL_NAME if isinstance(journal, str) else journal)

    @property
    def report_path(self) -> Path:
        """Where ``report.jsonl`` goes."""
        return self.out / REPORT_NAME

    @property
    def review_path(self) -> Path:
        """Where the review sheet goes."""
        return self.out / REVIEW_NAME


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


def key_seed(key: str) -> int:
    """The seed ``--seed-from-key`` gives a row without one: 32 bits of its key's digest."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big")


def _prescan(options: RunOptions) -> tuple[list[str], list[ManifestProblem], int, set[str]]:
    """Read the whole manifest once before spending anything: the selected keys (in order),
    first problems, how many problems, and the named keys found (to name the --only keys not
    found)."""
    keys: list[str] = []
    problems = 0
    shown: list[ManifestProblem] = []
    found: set[str] = set()
    for row in scan(
        options.manifest,
        size=options.size,
        max_images=options.max_images,
        model=options.model,
        check_files=False,
    ):
        if isinstance(row, ManifestProblem):
            problems += 1
            if len(shown) < _SHOWN_PROBLEMS:
                shown.append(row)
        else:
            if options.only is None or row.item.key in options.only:
                keys.append(row.item.key)
            if row.item.key in options.named:
                found.add(row.item.key)
    return keys, shown, problems, found


def _selected(options: RunOptions) -> Iterator[EditItem]:
    """The manifest's items this run is about: --only applied, re-rolled seeds pinned,
    --seed-from-key seeds set."""
    pins = load_pins(options.pins_path)
    for item in iter_items(
        options.manifest, size=options.size, max_images=options.max_images, model=options.model
    ):
        if options.only is not None and item.key not in options.only:
            continue
        item = apply_pin(item, pins)
        if options.seed_from_key and item.seed is None:
            item = dataclasses.replace(item, seed=key_seed(item.key))
        yield item


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


async def _dry_run(options: RunOptions, console: Console) -> int:
    journal = options.journal_path
    view = await load_journal(journal) if journal_exists(journal) else None
    where = f"the journal {options.journal_shown}" if view is not None else "no journal yet"
    console.print(f"Dry run of {options.manifest} against {where}; nothing is sent.")
    price = options.price
    plan = await plan_run(
        _selected(options),
        view,
        retry_failed=options.batch.retry_failed,
        resubmit_ambiguous=options.batch.resubmit_ambiguous,
        reroll=options.reroll,
        # --price-per-image prices every model; without it, each model's own rule.
        price_for=None if price is None else lambda _model: price,
    )
    billed = view.billed if view is not None else 0.0
    print_plan(console, plan, budget=options.batch.budget, billed=billed, price=options.price)
    if not options.balance:
        return EXIT_OK
    from ._balance import balance_note

    console.print(
        await balance_note(
            paid=plan.paid,
            cost=plan.cost,
            api_key=options.api_key,
            base_url=options.base_url,
            api_key_env=options.api_key_env,
        )
    )
    return EXIT_OK


def _first(group: BaseExceptionGroup[JournalError]) -> JournalError:
    """The first JournalError of ``group`` (the task groups around the batch wrap it)."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    assert isinstance(error, JournalError)
    return error


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
    keys, problems, count, found = _prescan(options)
    refused = _refusal(options, keys, problems, count, found, errors)
    if refused is not None:
        return refused
    if options.dry_run:
        return await _dry_run(options, console)
    if options.reroll:
        await _reroll(options, console)
    _say_journal(options, console)
    await _say_retry_cost(options, keys, console)
    outcome = await _run_batch(options, keys, console, errors)
    if outcome.failure is not None:
        errors.print(f"error: {escape(str(outcome.failure))}. Nothing was sent.")
        return EXIT_JOURNAL
    _print_outcome(options, outcome, expected=len(keys), console=console)
    if outcome.stop.exit_code is not None:
        _print_stopped(options, outcome.stop, errors)
        return outcome.stop.exit_code
    if _journal_broke(outcome, errors):
        return EXIT_JOURNAL
    tally = outcome.tally
    return EXIT_OK if tally.all_ok and tally.total == len(keys) else EXIT_FAILED


def _refusal(
    options: RunOptions,
    keys: list[str],
    problems: list[ManifestProblem],
    count: int,
    found: set[str],
    errors: Console,
) -> int | None:
    """The exit code when the manifest (or a key named) is refused before anything runs."""
    if count:
        print_problems(errors, problems, count)
        errors.print(f"{options.manifest}: {count} problem(s); nothing was sent")
        return EXIT_USAGE
    if missing := sorted(options.named - found):
        shown = ", ".join(repr(key) for key in missing[:_SHOWN_PROBLEMS])
        errors.print(
            f"error: {len(missing)} key(s) given are not in {options.manifest}: "
            f"{escape(shown)}; nothing was sent"
        )
        return EXIT_USAGE
    if not keys:
        errors.print(f"{options.manifest}: no rows to run")
        return EXIT_USAGE
    return None


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


@dataclass
class _Outcome:
    """What a run came to: its tally, what it billed, how long it took, what stopped it."""

    tally: Tally
    stop: Stop
    billed: float = 0.0
    elapsed: float = 0.0
    failure: JournalError | None = None  # the journal could not be opened: nothing sent
    sidecar: Unwritten | None = None  # billed ids the journal refused, saved beside it
    broken: JournalUnavailable | None = None  # the journal failed mid-run


def _journal_broke(outcome: _Outcome, errors: Console) -> bool:
    """Say, in one line, that the journal failed mid-run and what the user does now."""
    if outcome.sidecar is not None:
        errors.print(
            f"error: {escape(str(outcome.sidecar.reason))}. The billed ids it could not take "
            f"are in {outcome.sidecar.path}; re-run the same command once it is fixed: they "
            "are fetched by id, not paid again."
        )
        return True
    if outcome.broken is not None:
        errors.print(
            f"error: {escape(str(outcome.broken))}. Items it stopped were not submitted, or "
            "keep their prediction id: re-running the same command picks them all up."
        )
        return True
    return False


async def _run_batch(
    options: RunOptions, keys: list[str], console: Console, errors: Console
) -> _Outcome:
    """The batch itself, with the bar and the report as results come; then the report
    from the journal and the review sheet (also after a stop)."""
    asked: dict[str, EditItem] = {}  # items in flight, for their report lines
    given: dict[str, EditItem] = {}  # every item read, for the lines the journal writes
    lines: dict[str, dict[str, Any]] = {}

    def items() -> Iterator[EditItem]:
        for item in _selected(options):
            asked[item.key] = given[item.key] = item
            yield item

    options.out.mkdir(parents=True, exist_ok=True)
    outcome = _Outcome(tally=Tally(), stop=Stop())
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
        outcome.failure = _first(group)
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


def _print_outcome(
    options: RunOptions, outcome: _Outcome, *, expected: int, console: Console
) -> None:
    tally, billed, elapsed = outcome.tally, outcome.billed, outcome.elapsed
    rule = (options.price or PriceModel()).describe()
    if not options.json_summary:
        console.print(
            summary_table(tally, expected=expected, elapsed=elapsed, billed=billed, price_rule=rule)
        )
    print_failures(console, tally)
    budget = options.batch.budget
    print_next_steps(console, tally, budget=budget, api_key_env=options.api_key_env, billed=billed)
    console.print(f"Outputs: {options.out}")
    console.print(f"Report:  {options.report_path}")
    console.print(f"Review:  {options.review_path}")
    if options.json_summary:
        summary = summary_json(
            tally, expected=expected, elapsed=elapsed, billed=billed, price_rule=rule
        )
        paths = {"out": options.out, "report": options.report_path, "review": options.review_path}
        summary.update({name: str(path) for name, path in paths.items()})
        sys.stdout.write(json.dumps(summary) + "\n")


def _print_stopped(options: RunOptions, stop: Stop, errors: Console) -> None:
    assert stop.signal is not None
    where = options.journal_shown
    if options.resumable:
        errors.print(
            f"Stopped by {stop.signal.name}: nothing new was submitted, and every prediction "
            f"already paid for is in the journal {where}; re-run the same command to "
            "resume (what was paid for is fetched by id, not paid again):\n  "
            f"{resume_command(drop='--reroll' if options.reroll else None)}"
        )
    else:
        errors.print(
            f"Stopped by {stop.signal.name}. The demo's simulator stopped with it, so "
            "running the demo again starts over. A real catalog (seedream-async run) "
            "resumes from its journal."
        )
