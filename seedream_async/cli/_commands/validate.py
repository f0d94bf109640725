"""``seedream-async validate MANIFEST``: check a manifest and its images, sending nothing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._options import BALANCE_HELP, EXIT_FAILED, EXIT_OK, add_manifest_defaults, consoles

__all__ = ["handle", "register"]


def register(subparsers: Any) -> None:
    """Add ``validate`` to the CLI's sub-parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "validate",
        help="check a manifest and its images without sending anything",
        description="Check every row, parameter, key and local image; no network request.",
    )
    parser.add_argument("manifest", type=Path, help="CSV (key,prompt,images,...) or JSONL")
    add_manifest_defaults(parser)
    parser.add_argument("--balance", action="store_true", help=BALANCE_HELP)
    parser.add_argument(
        "--base-url", default=None, help="the API's origin, for --balance (default: env or Atlas)"
    )
    parser.set_defaults(handler=handle)


def handle(ns: argparse.Namespace) -> int:
    """Check the manifest; 0 when it is valid, 1 when it has problems."""
    from rich.markup import escape

    from .._cost import cost_lines, paid_item
    from .._manifest import ManifestProblem
    from .._validate import scan

    console, errors = consoles()
    rows = problems = 0
    costs = []
    for row in scan(ns.manifest, size=ns.size, max_images=ns.max_images, model=ns.model):
        if isinstance(row, ManifestProblem):
            problems += 1
            errors.print(f"[red]error[/] {escape(str(row))}")
        else:
            rows += 1
            costs.append(paid_item(row.item))
    if problems:
        errors.print(f"{ns.manifest}: {problems} problem(s); {rows} row(s) OK")
        return EXIT_FAILED
    console.print(f"{ns.manifest}: {rows} row(s) OK, every local image readable")
    # Each row at its model's price rule (per run, or per image it may generate).
    for line in cost_lines(costs):
        console.print(escape(line.replace("Cost", "Cost if every row is submitted", 1)))
    console.print("(rows already done in a journal are not paid again)")
    if ns.balance:
        import anyio

        from .._balance import balance_note

        cost = sum(paid.cost for paid in costs)
        console.print(anyio.run(lambda: balance_note(paid=rows, cost=cost, base_url=ns.base_url)))
    return EXIT_OK
