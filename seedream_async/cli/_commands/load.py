"""``seedream-async load MANIFEST --journal DSN``: put a catalog into a fleet's journal."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from .._fleet import add_journal_option, fleet_journal, run_on_journal
from .._options import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_manifest_defaults

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["handle", "register"]


def register(subparsers: Any) -> None:
    """Add ``load`` to the CLI's sub-parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "load",
        help="load a manifest into a shared PostgreSQL journal, for `work` to drain",
        description="Load every row of a manifest into the journal. Loading the same "
        "manifest again changes nothing; a row whose prompt, parameters or image contents "
        "changed becomes a new job (its paid attempts stay in the history).",
    )
    parser.add_argument("manifest", type=Path, help="CSV (key,prompt,images,...) or JSONL")
    add_journal_option(parser)
    add_manifest_defaults(parser)
    parser.set_defaults(handler=handle)


def handle(ns: argparse.Namespace) -> int:
    """Load the manifest; 1 when some rows' output names were taken."""
    return run_on_journal(ns, _load)


async def _load(ns: argparse.Namespace, console: Console, errors: Console) -> int:
    from ..._base._exceptions import SeedreamError
    from ..._engine import load_items
    from ..._engine._pgjournal import redact_dsn
    from .._manifest import ManifestError, iter_items

    items = iter_items(ns.manifest, size=ns.size, max_images=ns.max_images, model=ns.model)
    started = time.monotonic()
    async with await fleet_journal(ns.journal) as journal:
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
