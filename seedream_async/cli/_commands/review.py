"""``seedream-async review OUT``: write the review sheet of a run's outputs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._options import EXIT_OK, EXIT_USAGE, consoles

__all__ = ["handle", "register"]


def register(subparsers: Any) -> None:
    """Add ``review`` to the CLI's sub-parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "review",
        help="write the review sheet (review.html) of a run's outputs",
        description="Write review.html beside OUT's report.jsonl: a static page, opened "
        "straight from disk, with each item's inputs and outputs, filters by status, and "
        "approve / reject buttons that export the rejected keys for run --reroll.",
    )
    parser.add_argument(
        "out", type=Path, metavar="OUT", help="the run's --out folder (or its report.jsonl)"
    )
    parser.set_defaults(handler=handle)


def handle(ns: argparse.Namespace) -> int:
    """Write the sheet; 2 when there is no report to read."""
    from .._review import read_report, write_review
    from .._run import REPORT_NAME

    console, errors = consoles()
    report = ns.out if ns.out.is_file() else ns.out / REPORT_NAME
    if not report.is_file():
        errors.print(f"error: no {REPORT_NAME} in {ns.out}; pass the --out folder of a run")
        return EXIT_USAGE
    page = write_review(report)
    console.print(f"Review sheet: {page} ({len(read_report(report))} items); open it in a browser")
    return EXIT_OK
