"""``seedream-async load | work | status --journal postgresql://...``: a fleet on one journal.

``load`` puts a manifest into the journal (idempotent), any number of ``work`` processes on
any machines drain it, and ``status`` shows where it stands without any API request.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._engine._journal import open_journal
from .._engine._pgjournal import PostgresJournal, is_postgres_dsn, redact_dsn
from .._engine._store import JournalState
from .._exceptions import JournalError, JournalUnavailable, SeedreamError
from .._polling import PollPolicy

__all__ = ["add_commands", "postgres_status", "run_command"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_JOURNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
COMMANDS = ("load", "work", "status")
_ENV_DSN = "SEEDREAM_JOURNAL"


async def _fleet_journal(dsn: str) -> PostgresJournal:
    journal = await open_journal(dsn)
    if not isinstance(journal, PostgresJournal):  # _dsn() let only a DSN through
        await journal.aclose()
        raise JournalError("a fleet's journal is a PostgreSQL DSN: postgresql://user@host/dbname")
    return journal


def _dsn(text: str) -> str:
    if not is_postgres_dsn(text):
        raise argparse.ArgumentTypeError(
            "a fleet's journal is a PostgreSQL DSN: postgresql://user@host/dbname"
        )
    return text


def add_commands(commands: Any, *, positive_int: Any, positive_float: Any) -> None:
    """Add ``load``, ``work`` and ``status`` to the CLI's sub-parsers."""
    journal_help = f"postgresql://user[:password]@host[:port]/dbname (default: ${_ENV_DSN})"

    def journal_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--journal",
            type=_dsn,
            default=os.environ.get(_ENV_DSN) or None,
            metavar="DSN",
            help=journal_help,
        )

    load = commands.add_parser(
        "load",
        help="load a manifest into a shared PostgreSQL journal, for `work` to drain",
        description="Load every row of a manifest into the journal. Loading the same "
        "manifest again changes nothing; a row whose prompt, parameters or image contents "
        "changed becomes a new job (its paid attempts stay in the history).",
    )
    load.add_argument("manifest", type=Path)
    journal_option(load)
    load.add_argument("--size", default=None, metavar="W*H", help="for rows without a size")
    load.add_argument("--max-images", type=positive_int, default=None)

    work = commands.add_parser(
        "work",
        help="one worker of a fleet: drain the shared journal until nothing is left",
        description="Claim items from the journal in batches and edit them until no item "
        "is left for any worker. Run any number at once, on any machines; a worker that dies "
        "leaves its items to the others when its leases run out, and nothing is paid twice.",
    )
    journal_option(work)
    work.add_argument("--out", type=Path, default=None, help="folder for outputs")
    work.add_argument(
        "--concurrency",
        type=positive_int,
        default=16,
        help="items in progress in this worker (start from the key's total / workers)",
    )
    work.add_argument(
        "--budget", type=positive_float, default=None, metavar="USD", help="for the whole fleet"
    )
    work.add_argument(
        "--lease", type=positive_float, default=30.0, help="seconds; a dead worker's items wait "
        "this long before another takes them over (default: 30)"
    )  # fmt: skip
    work.add_argument("--batch", type=positive_int, default=32, help="items claimed per trip")
    work.add_argument(
        "--retry-undelivered",
        action="store_true",
        help="also fetch again (by id) billed items whose download fails during this drain "
        "(those that failed before it, and items not submitted before it, are taken again "
        "by every plain `work`)",
    )
    work.add_argument("--first-poll", type=positive_float, default=None, metavar="SECONDS")
    work.add_argument("--poll-interval", type=positive_float, default=None, metavar="SECONDS")
    work.add_argument("--base-url", default=None, help="the API's origin (default: Atlas Cloud)")
    work.add_argument("--api-key-env", default="ATLASCLOUD_API_KEY", metavar="NAME")

    if "status" in commands.choices:
        # Another `status` (a run's folder or SQLite journal) is there already: it hands a
        # postgresql:// target to :func:`postgres_status`.
        return
    status = commands.add_parser(
        "status",
        help="where a catalog stands, from its journal; sends nothing",
        description="Counts by state, money billed over every run, and the ambiguous and "
        "failed keys with their reasons, read from the journal alone; no request is made. "
        "Give a run's --out folder (or its SQLite journal), or --journal postgresql://... "
        "for a fleet's shared journal (then also its workers).",
    )
    status.add_argument(
        "target",
        type=Path,
        nargs="?",
        default=None,
        metavar="OUT|JOURNAL",
        help="a run's --out folder (its .seedream-journal.sqlite) or a journal file",
    )
    journal_option(status)
    status.add_argument("--json", action="store_true", help="print one JSON object")


def run_command(ns: argparse.Namespace, console: Console, errors: Console) -> int:
    """Run ``load``, ``work`` or ``status``; return the exit code."""
    import anyio

    if not ns.journal:
        errors.print(f"error: pass --journal postgresql://... (or set ${_ENV_DSN})")
        return EXIT_USAGE
    handler = {"load": _load, "work": _work, "status": _status}[ns.command]
    # The pool logs every failed reconnect; the journal says it once, in a sentence.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    try:
        return anyio.run(lambda: handler(ns, console, errors))
    except KeyboardInterrupt:
        errors.print("\nInterrupted: claims were released; nothing billed was lost.")
        return EXIT_INTERRUPTED
    except JournalUnavailable as err:  # down, unreachable, a wrong DSN: one sentence
        errors.print(f"error: {escape(str(err))}")
        return EXIT_JOURNAL
    except JournalError as err:
        errors.print(f"error: {escape(str(err))}")
        return EXIT_USAGE


async def _load(ns: argparse.Namespace, console: Console, errors: Console) -> int:
    from .._engine import load_items
    from ._manifest import ManifestError, iter_items

    items = iter_items(ns.manifest, size=ns.size, max_images=ns.max_images)
    started = time.monotonic()
    async with await _fleet_journal(ns.journal) as journal:
        try:
            report = await load_items(journal, items)
        except (ManifestError, SeedreamError) as err:
            errors.print(f"error: {escape(str(err))}; rows before it were loaded")
            return EXIT_USAGE
    console.print(
        f"Loaded {ns.manifest} into {redact_dsn(ns.journal)} in "
        f"{time.monotonic() - started:.1f} s: {report.added} added, {report.changed} "
        f"changed (new jobs), {report.unchanged} unchanged"
    )
    for key, other in report.name_conflicts:
        errors.print(f"not loaded: {key!r}: its output name is taken by {other!r}")
    return EXIT_FAILED if report.name_conflicts else EXIT_OK


async def _work(ns: argparse.Namespace, console: Console, errors: Console) -> int:
    from .._client import AsyncSeedream
    from .._engine import drain
    from .._engine._owners import new_owner

    api_key = os.environ.get(ns.api_key_env, "").strip()
    if not api_key:
        errors.print(f"error: no API key; set the {ns.api_key_env} environment variable")
        return EXIT_USAGE
    owner = new_owner()
    started = time.monotonic()
    timing = {"first_poll": ns.first_poll, "interval": ns.poll_interval}
    poll = dataclasses.replace(
        PollPolicy(), **{name: value for name, value in timing.items() if value is not None}
    )
    console.print(f"Worker {owner} on {redact_dsn(ns.journal)}")
    async with (
        await _fleet_journal(ns.journal) as journal,
        AsyncSeedream(api_key, base_url=ns.base_url, poll=poll) as client,
    ):
        tally = await drain(
            client,
            journal,
            concurrency=ns.concurrency,
            out_dir=ns.out,
            budget=ns.budget,
            lease=ns.lease,
            batch=ns.batch,
            owner=owner,
            retry_noted=ns.retry_undelivered,
        )
    results = ", ".join(f"{status} {n}" for status, n in sorted((tally.results or {}).items()))
    console.print(
        f"Worker {owner} done in {time.monotonic() - started:.1f} s: claimed {tally.claimed} "
        f"(taken over {tally.taken_over}), submitted {tally.executions}, from the journal "
        f"{tally.from_journal}; {results or 'no results'}"
    )
    if tally.unrecorded is not None:
        errors.print(
            f"error: {escape(tally.unrecorded.reason)}. The billed ids it could not take are "
            f"in {tally.unrecorded.path}; run `work` again with the same --out (or from this "
            "folder) once it is fixed: it reads them first, fetched by id, not paid again."
        )
        return EXIT_JOURNAL
    return EXIT_OK


def postgres_status(dsn: str, *, as_json: bool, console: Console, errors: Console) -> int:
    """``status`` of a PostgreSQL journal: items per state, money, workers; no API request."""
    ns = argparse.Namespace(command="status", journal=dsn, json=as_json)
    return run_command(ns, console, errors)


async def _status(ns: argparse.Namespace, console: Console, errors: Console) -> int:
    async with await _fleet_journal(ns.journal) as journal:
        counts = await journal.counts()
        spend = await journal.spend()
        fleet = await journal.fleet()
    if ns.json:
        console.print_json(
            json.dumps(
                {
                    "counts": {str(state): n for state, n in counts.items()},
                    "billed": round(spend.billed, 6),
                    "reserved": round(spend.reserved, 6),
                    "in_flight": spend.in_flight,
                    "workers": dict(fleet.owners),
                    "stale": fleet.stale,
                    "unclaimed": fleet.unclaimed,
                    "undelivered_noted": fleet.noted,
                }
            )
        )
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
