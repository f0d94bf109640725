"""What the fleet's commands share (``load``, ``work``, ``status --journal postgresql://``):
the ``--journal DSN`` option, opening the journal, running a command on it, and the
fleet's status table.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from .._base._exceptions import JournalError, JournalUnavailable
from .._engine import PostgresJournal, open_journal
from .._engine._journal_types import JournalState
from .._engine._pgjournal import redact_dsn
from ._options import ENV_DSN, EXIT_INTERRUPTED, EXIT_JOURNAL, EXIT_OK, EXIT_USAGE, is_dsn

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "add_journal_option",
    "fleet_journal",
    "journal_error_in",
    "print_fleet_status",
    "run_on_journal",
]

_DSN_ERROR = "a fleet's journal is a PostgreSQL DSN: postgresql://user@host/dbname"


def _dsn(text: str) -> str:
    if not is_dsn(text):
        raise argparse.ArgumentTypeError(_DSN_ERROR)
    return text


def add_journal_option(parser: argparse.ArgumentParser) -> None:
    """``--journal DSN`` (default: ``$SEEDREAM_JOURNAL``)."""
    parser.add_argument(
        "--journal",
        type=_dsn,
        default=os.environ.get(ENV_DSN) or None,
        metavar="DSN",
        help=f"postgresql://user[:password]@host[:port]/dbname (default: ${ENV_DSN})",
    )


async def fleet_journal(dsn: str) -> PostgresJournal:
    """Open the fleet's journal at ``dsn`` (:func:`open_journal`)."""
    journal = await open_journal(dsn)
    if not isinstance(journal, PostgresJournal):  # --journal let only a DSN through
        await journal.aclose()
        raise JournalError(_DSN_ERROR)
    return journal


Handler = Callable[[argparse.Namespace, "Console", "Console"], Awaitable[int]]


def run_on_journal(ns: argparse.Namespace, handler: Handler) -> int:
    """Run a fleet command's ``handler`` (which opens ``ns.journal``); the exit code."""
    import anyio

    from ._options import consoles

    console, errors = consoles()
    if not ns.journal:
        errors.print(f"error: pass --journal postgresql://... (or set ${ENV_DSN})")
        return EXIT_USAGE
    try:
        return anyio.run(lambda: handler(ns, console, errors))
    except KeyboardInterrupt:
        errors.print("\nInterrupted: claims were released; nothing billed was lost.")
        return EXIT_INTERRUPTED
    except JournalError as err:
        return _journal_failed(err, errors)
    except BaseExceptionGroup as group:  # the batch's task groups wrap a failure mid-run
        failure = journal_error_in(group)
        if failure is None:
            raise
        return _journal_failed(failure, errors)


def journal_error_in(group: BaseExceptionGroup[BaseException]) -> JournalError | None:
    """The first :class:`JournalError` in ``group`` when that is all it holds (task groups
    around a batch wrap the journal's failure: a paused worker whose session the server
    ended, say); None when it holds anything else."""
    matched, rest = group.split(JournalError)
    if matched is None or rest is not None:
        return None
    error: BaseException = matched
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    assert isinstance(error, JournalError)
    return error


def _journal_failed(err: JournalError, errors: Console) -> int:
    """One sentence for a journal that failed, and the exit code that goes with it."""
    errors.print(f"error: {escape(str(err))}")
    # Down, unreachable, a wrong DSN, a session the server ended: the journal's code.
    return EXIT_JOURNAL if isinstance(err, JournalUnavailable) else EXIT_USAGE


async def print_fleet_status(ns: argparse.Namespace, console: Console, errors: Console) -> int:
    """``status --journal DSN``: items per state, money, workers; no API request."""
    async with await fleet_journal(ns.journal) as journal:
        counts = await journal.counts()
        spend = await journal.spend()
        fleet = await journal.fleet()
    if ns.json:
        summary = {
            "counts": {str(state): n for state, n in counts.items()},
            "billed": round(spend.billed, 6),
            "reserved": round(spend.reserved, 6),
            "in_flight": spend.in_flight,
            "workers": dict(fleet.owners),
            "stale": fleet.stale,
            "unclaimed": fleet.unclaimed,
            "undelivered_noted": fleet.noted,
        }
        console.print_json(json.dumps(summary))
        return EXIT_OK
    table = Table(title=f"Journal {redact_dsn(ns.journal)}")
    table.add_column("state")
    table.add_column("items", justify="right")
    for state in JournalState:
        table.add_row(str(state), str(counts[state]))
    table.add_row("total", str(sum(counts.values())))
    console.print(table)
    console.print(
        f"Billed ${spend.billed:.3f}, reserved now ${spend.reserved:.3f}, "
        f"{spend.in_flight} prediction(s) in flight"
    )
    console.print(
        f"Workers: {len(fleet.owners)} live ({fleet.unclaimed} items unclaimed, "
        f"{fleet.stale} held by expired leases, {fleet.noted} billed but undelivered)"
    )
    for owner, held in sorted(fleet.owners.items()):
        console.print(f"  {escape(owner)}: {held} item(s)")
    return EXIT_OK
