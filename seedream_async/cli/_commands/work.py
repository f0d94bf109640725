"""``seedream-async work --journal DSN``: one worker of a fleet, draining the shared journal.

It takes ``run``'s batch options (one definition, ``_options.add_batch_options``), and with
``--out`` writes this worker's report and review sheet under ``OUT/reports/<worker>/``
(several workers may share one ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._fleet import add_journal_option, fleet_journal, run_on_journal
from .._options import (
    EXIT_OK,
    EXIT_USAGE,
    add_batch_options,
    add_logging,
    api_key,
    batch_options,
    configure_logging,
    positive_int,
    price_model,
    webhook_listener,
)

if TYPE_CHECKING:
    from rich.console import Console

    from ..._engine import BatchResult, WorkTally

__all__ = ["handle", "register"]


def register(subparsers: Any) -> None:
    """Add ``work`` to the CLI's sub-parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "work",
        help="one worker of a fleet: drain the shared journal until nothing is left",
        description="Claim items from the journal in batches and edit them until no item "
        "is left for any worker. Run any number at once, on any machines; a worker that dies "
        "leaves its items to the others when its leases run out, and nothing is paid twice.",
    )
    add_journal_option(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for outputs, and this worker's report and review sheet "
        "(OUT/reports/WORKER/); without it, only the outputs' URLs are recorded",
    )
    add_batch_options(parser, concurrency=16)
    parser.add_argument(
        "--batch", type=positive_int, default=32, help="items claimed per trip (default: 32)"
    )
    parser.add_argument(
        "--retry-undelivered",
        action="store_true",
        help="also fetch again (by id) billed items whose download failed before",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="say what is left in the journal and what submitting it would cost; send "
        "nothing (no key needed)",
    )
    add_logging(parser)
    parser.set_defaults(handler=handle)


def handle(ns: argparse.Namespace) -> int:
    """Drain the journal; 0 when every result of this worker succeeded."""
    return run_on_journal(ns, _dry_run if ns.dry_run else _work)


async def _dry_run(ns: argparse.Namespace, console: Console, errors: Console) -> int:
    from ..._engine._journal_types import JournalState
    from .._fleet import print_fleet_status
    from .._summary import estimate

    code = await print_fleet_status(ns, console, errors)
    async with await fleet_journal(ns.journal) as journal:
        counts = await journal.counts()
    pending = counts[JournalState.PENDING]
    console.print(
        f"Dry run: {pending} item(s) would be submitted ({estimate(pending)}), "
        f"{counts[JournalState.SUBMITTED] + counts[JournalState.DONE]} fetched again by id; "
        "nothing was sent."
    )
    return code


async def _work(ns: argparse.Namespace, console: Console, errors: Console) -> int:
    from ..._clients._async import AsyncSeedream
    from ..._engine import drain
    from ..._engine._options import as_kwargs
    from ..._engine._owners import new_owner
    from ..._engine._pgjournal import redact_dsn

    configure_logging(ns, errors)
    key = api_key(ns)
    if not key:
        errors.print(f"error: no API key; set the {ns.api_key_env} environment variable")
        return EXIT_USAGE
    options = dataclasses.replace(batch_options(ns), owner=new_owner(), out_dir=ns.out)
    assert options.owner is not None
    started = time.monotonic()
    console.print(f"Worker {options.owner} on {redact_dsn(ns.journal)}")
    report = _Report(ns.out, options.owner)
    kwargs = {name: value for name, value in as_kwargs(options).items() if name != "journal"}
    async with (
        await fleet_journal(ns.journal) as journal,
        AsyncSeedream(
            key, base_url=ns.base_url, poll=options.poll, price=price_model(ns)
        ) as client,
        webhook_listener(client, ns.webhook_listen),
    ):
        try:
            tally = await drain(
                client, journal, batch=ns.batch, retry_noted=ns.retry_undelivered,
                on_result=report.add, **kwargs,  # type: ignore[arg-type]
            )  # fmt: skip
        finally:
            await report.write(ns.journal)
    if ns.json:  # stdout carries the JSON alone
        summary = {**dataclasses.asdict(tally), "elapsed": round(time.monotonic() - started, 3)}
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        _print_tally(console, tally, time.monotonic() - started, report)
    # A worker that drained the journal did its job, whatever each item's outcome (the
    # budget's not_submitted included): the report and status say what became of them.
    return EXIT_OK


class _Report:
    """This worker's results, written as ``report.jsonl`` and ``review.html`` at the end."""

    def __init__(self, out: Path | None, owner: str) -> None:
        from .._summary import Tally

        self.folder = None if out is None else out / "reports" / re.sub(r"[^\w.-]", "-", owner)
        self.tally = Tally()
        self.lines: dict[str, dict[str, Any]] = {}

    def add(self, result: BatchResult) -> None:
        from .._report import record

        self.tally.add(result)
        self.lines[result.key] = record(result)

    async def write(self, journal: str) -> None:
        import anyio

        from .._report import write_report
        from .._review import write_review

        if self.folder is None:
            return
        with anyio.CancelScope(shield=True):
            await anyio.Path(self.folder).mkdir(parents=True, exist_ok=True)
            report = self.folder / "report.jsonl"
            await write_report(report, list(self.lines), journal, self.lines, {})
            await anyio.to_thread.run_sync(write_review, report, self.folder / "review.html")


def _print_tally(console: Console, tally: WorkTally, elapsed: float, report: _Report) -> None:
    from .._summary import print_failures

    results = ", ".join(f"{status} {n}" for status, n in sorted(tally.results.items()))
    console.print(
        f"Worker {tally.owner} done in {elapsed:.1f} s: claimed {tally.claimed} "
        f"(taken over {tally.taken_over}), submitted {tally.executions}, from the journal "
        f"{tally.from_journal}; {results or 'no results'}"
    )
    print_failures(console, report.tally)
    if report.folder is not None:
        console.print(f"Report:  {report.folder / 'report.jsonl'}")
        console.print(f"Review:  {report.folder / 'review.html'}")
