"""``seedream-async run MANIFEST --out OUT``: edit every row of a manifest."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._options import (
    BALANCE_HELP,
    EXIT_USAGE,
    add_batch_options,
    add_logging,
    add_manifest_defaults,
    api_key,
    batch_options,
    configure_logging,
    consoles,
    interrupted,
    journal_target,
    price_model,
)

__all__ = ["handle", "register"]


def register(subparsers: Any) -> None:
    """Add ``run`` to the CLI's sub-parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="edit every row of a manifest",
        description="Edit every row of a CSV or JSONL manifest. Re-running the same command "
        "resumes from the journal without paying twice for finished items.",
    )
    parser.add_argument("manifest", type=Path, help="CSV (key,prompt,images,...) or JSONL")
    parser.add_argument("--out", type=Path, required=True, help="folder for outputs and report")
    add_manifest_defaults(parser)
    add_batch_options(parser)
    parser.add_argument(
        "--journal",
        type=journal_target,
        default=None,
        metavar="FILE|DSN",
        help="a journal file, or a postgresql://user@host/db journal other runs and machines "
        "share (default: <out>/.seedream-journal.sqlite)",
    )
    _add_selection(parser)
    add_logging(parser)
    parser.set_defaults(handler=handle)


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be submitted, answered from the journal, fetched again by id or "
        "billed again because its inputs changed, with the cost; send nothing (no key needed)",
    )
    parser.add_argument("--balance", action="store_true", help="with --dry-run: " + BALANCE_HELP)
    parser.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="KEY",
        help="run only these keys (or the keys in a file, one a line); other rows are left alone",
    )
    parser.add_argument(
        "--keys-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="run only the keys in FILE, one a line (as the review sheet exports them)",
    )
    parser.add_argument(
        "--reroll",
        nargs="+",
        default=None,
        metavar="KEY|FILE",
        help="pay again on purpose for these keys (or the keys in a file, as the review "
        "sheet exports them), each with a new seed; earlier outputs move to OUT/rerolled/",
    )
    parser.add_argument(
        "--seed-from-key",
        action="store_true",
        help="rows without a seed get one derived from their key, so results can be made "
        "again (switching it on for rows already billed bills them again: try --dry-run)",
    )


def _only_keys(ns: argparse.Namespace) -> frozenset[str] | None:
    from .._keys import keys_from_args, read_keys

    if ns.only is None and ns.keys_file is None:
        return None
    keys = keys_from_args(ns.only or [])
    if ns.keys_file is not None:
        keys += read_keys(ns.keys_file)
    return frozenset(keys)


def handle(ns: argparse.Namespace) -> int:
    """Run the manifest; the exit code."""
    import anyio

    from .._keys import keys_from_args
    from .._run import RunOptions, run_manifest

    console, errors = consoles()
    configure_logging(ns, errors)
    key = api_key(ns)
    try:
        only = _only_keys(ns)
        reroll = frozenset(keys_from_args(ns.reroll or []))
    except OSError as err:
        errors.print(f"error: cannot read the keys file: {err}")
        return EXIT_USAGE
    if not key and not ns.dry_run:
        errors.print(
            f"error: no API key; set the {ns.api_key_env} environment variable "
            "(or name another variable with --api-key-env)"
        )
        return EXIT_USAGE
    options = RunOptions(
        manifest=ns.manifest,
        out=ns.out,
        api_key=key,
        base_url=ns.base_url,
        journal=ns.journal,
        batch=batch_options(ns),
        price=price_model(ns),
        size=ns.size,
        max_images=ns.max_images,
        model=ns.model,
        json_summary=ns.json,
        dry_run=ns.dry_run,
        balance=ns.balance,
        only=only,
        seed_from_key=ns.seed_from_key,
        reroll=reroll,
        api_key_env=ns.api_key_env,
        webhook_listen=ns.webhook_listen,
    )
    # With --json, stdout carries the JSON alone; everything for people goes to stderr.
    shown = errors if ns.json else console
    try:
        return anyio.run(lambda: run_manifest(options, console=shown, errors=errors))
    except KeyboardInterrupt:
        return interrupted(
            errors,
            f"Finished items are recorded in {options.journal_shown}; re-run the same command "
            "to resume without paying for them again.",
        )
