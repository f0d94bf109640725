"""``seedream-async status OUT|JOURNAL`` or ``status --journal DSN``: where a catalog
stands, read from its journal alone; no API request."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._fleet import add_journal_option, print_fleet_status, run_on_journal
from .._options import EXIT_OK, EXIT_USAGE, consoles

__all__ = ["handle", "register"]


def register(subparsers: Any) -> None:
    """Add ``status`` to the CLI's sub-parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="where a catalog stands, from its journal; sends nothing",
        description="Counts by state, money billed over every run, and the ambiguous and "
        "failed keys with their reasons, read from the journal alone; no request is made. "
        "Give a run's --out folder (or its SQLite journal), or --journal postgresql://... "
        "for a fleet's shared journal (then also its workers).",
    )
    parser.add_argument(
        "target",
        type=Path,
        nargs="?",
        default=None,
        metavar="OUT|JOURNAL",
        help="a run's --out folder (its .seedream-journal.sqlite) or a journal file",
    )
    add_journal_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=handle)


def handle(ns: argparse.Namespace) -> int:
    """Print the journal's status; 2 when there is none to read."""
    if ns.target is not None:
        return _file_status(ns)  # a run's folder or its SQLite journal
    if not ns.journal:
        _, errors = consoles()
        errors.print(
            "seedream-async status: pass a run's --out folder (or its journal file), or "
            "--journal postgresql://... for a fleet's journal"
        )
        return EXIT_USAGE
    return run_on_journal(ns, print_fleet_status)


def _file_status(ns: argparse.Namespace) -> int:
    import json

    import anyio

    from .._journal_view import journal_exists, load_journal
    from .._run import JOURNAL_NAME
    from .._status import print_status, status_json

    console, errors = consoles()
    journal = ns.target / JOURNAL_NAME if ns.target.is_dir() else ns.target
    if not journal_exists(journal):
        errors.print(f"error: no journal at {journal}; pass a run's --out folder or --journal")
        return EXIT_USAGE
    view = anyio.run(load_journal, journal)
    if ns.json:
        print(json.dumps(status_json(view)))
    else:
        print_status(console, view)
    return EXIT_OK
