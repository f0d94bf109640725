"""The ``seedream-async`` command: ``run``, ``validate``, ``status``, ``review``, ``demo``,
``simulate``, and for a fleet of workers on one PostgreSQL journal ``load`` and ``work``
(``status --journal postgresql://...`` shows a fleet's journal).

Needs the ``cli`` extra (``pip install 'seedream-async[cli]'``); the library itself never
imports this package.

Exit codes (also in ``--help``): see :data:`EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._constants import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL
from .._polling import PollPolicy
from .._version import __version__

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["EXIT_CODES", "main"]

EXIT_CODES = """exit codes:
  0    every item succeeded (validate: the manifest is valid)
  1    some item did not succeed (validate: the manifest has problems)
  2    a usage or manifest error, or a fleet journal that is not a DSN; nothing was sent
  3    the journal's disk or database failed (full, read-only, deleted, down, a wrong
       DSN); the last line names the resource and what to do, and where any billed ids
       it could not take were saved (the next run reads them: fetched by id, not paid
       again)
  130  stopped by Ctrl-C (SIGINT); 143 stopped by SIGTERM: re-run the same command"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seedream-async",
        description="Bulk image editing with Seedream v4.5 Edit Sequential on Atlas Cloud.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="edit every row of a manifest",
        description="Edit every row of a CSV or JSONL manifest. Re-running the same command "
        "resumes from the journal without paying twice for finished items.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("manifest", type=Path, help="CSV (key,prompt,images,...) or JSONL")
    run.add_argument("--out", type=Path, required=True, help="folder for outputs and report")
    _add_manifest_defaults(run)
    run.add_argument("--concurrency", type=_positive_int, default=64, help="default: 64")
    run.add_argument("--rate", type=_positive_float, default=None, help="submits per second")
    run.add_argument(
        "--budget",
        type=_positive_float,
        default=None,
        metavar="USD",
        help="stop submitting before the catalog's cost (every run of its journal counted) "
        "would pass USD (default: no limit)",
    )
    run.add_argument(
        "--journal", type=Path, default=None, help="default: <out>/.seedream-journal.sqlite"
    )
    run.add_argument(
        "--resubmit-ambiguous",
        action="store_true",
        help="send again items an earlier run may have paid for without an answer "
        "(each may then be paid for twice)",
    )
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="pay for a new attempt of items the API reported failed in an earlier run",
    )
    run.add_argument(
        "--first-poll",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="wait before a prediction's first status poll before durations are learned "
        f"(default: {PollPolicy().first_poll:g}; a batch assumes edits take 4x this)",
    )
    run.add_argument(
        "--poll-interval",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help=f"first wait between status polls, growing after (default: {PollPolicy().interval:g})",
    )
    run.add_argument(
        "--polls",
        type=_positive_float,
        default=None,
        metavar="N",
        help="status polls to spend per prediction on average: fewer save requests, more "
        f"finish the batch sooner (thrifty 3, default {PollPolicy().polls:g}, fast 12)",
    )
    run.add_argument(
        "--typical",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="a one-image edit's duration to assume until durations are learned "
        f"(default: {PollPolicy().prior_duration:g}, or 4x --first-poll)",
    )
    run.add_argument(
        "--base-url",
        default=None,
        help=f"the API's origin, e.g. a simulator's http://127.0.0.1:8787 (default: "
        f"${BASE_URL_ENV}, else {DEFAULT_BASE_URL})",
    )
    run.add_argument(
        "--api-key-env",
        default=API_KEY_ENV,
        metavar="NAME",
        help=f"environment variable holding the API key (default: {API_KEY_ENV})",
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON object on stdout (the bar and notes go to stderr)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be submitted, answered from the journal, fetched again by id or "
        "billed again because its inputs changed, with the cost; send nothing (no key needed)",
    )
    run.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="KEY",
        help="run only these keys (or the keys in a file, one a line); other rows are left alone",
    )
    run.add_argument(
        "--keys-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="run only the keys in FILE, one a line (as the review sheet exports them)",
    )
    run.add_argument(
        "--reroll",
        nargs="+",
        default=None,
        metavar="KEY|FILE",
        help="pay again on purpose for these keys (or the keys in a file, as the review "
        "sheet exports them), each with a new seed; earlier outputs move to OUT/rerolled/",
    )
    run.add_argument(
        "--seed-from-key",
        action="store_true",
        help="rows without a seed get one derived from their key, so results can be made "
        "again (switching it on for rows already billed bills them again: try --dry-run)",
    )
    run.add_argument(
        "--journal-wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to retry writing a billed prediction id the journal refused (disk "
        "full, read-only, deleted, database down) before the item gives up; ids still "
        "unwritten go to a sidecar file beside the journal that the next run reads "
        "(default: 30)",
    )
    _add_logging(run)

    validate = commands.add_parser(
        "validate",
        help="check a manifest and its images without sending anything",
        description="Check every row, parameter, key and local image; no network request.",
    )
    validate.add_argument("manifest", type=Path, help="CSV (key,prompt,images,...) or JSONL")
    _add_manifest_defaults(validate)

    review = commands.add_parser(
        "review",
        help="write the review sheet (review.html) of a run's outputs",
        description="Write review.html beside OUT's report.jsonl: a static page, opened "
        "straight from disk, with each item's inputs and outputs, filters by status, and "
        "approve / reject buttons that export the rejected keys for run --reroll.",
    )
    review.add_argument(
        "out", type=Path, metavar="OUT", help="the run's --out folder (or its report.jsonl)"
    )

    demo = commands.add_parser(
        "demo",
        help="run a sample catalog against the bundled simulator (offline, no API key)",
        description="Write a sample catalog (product photos, backdrops, a logo) and run it "
        "through the same code as `run`, against the bundled simulator in this process: no "
        "network, no API key, nothing billed. Each demo starts over in its folder.",
    )
    demo.add_argument(
        "--items", type=_positive_int, default=24, help="catalog items to make (default: 24)"
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("seedream-demo"),
        help="folder for the catalog, outputs, report and review sheet; replaced if it holds "
        "an earlier demo (default: ./seedream-demo)",
    )
    demo.add_argument(
        "--time-scale",
        type=_positive_float,
        default=0.02,
        help="simulated latency factor; 1.0 is about 8 s per edit (default: 0.02)",
    )
    _add_logging(demo)

    simulate = commands.add_parser(
        "simulate",
        help="serve the simulated API on a local port until Ctrl-C",
        description="Serve the simulated Atlas Cloud API on 127.0.0.1 until Ctrl-C. Point "
        f"`run` at it with --base-url http://127.0.0.1:PORT (or {BASE_URL_ENV}) and "
        f"{API_KEY_ENV}=sim-key (its default --api-key).",
    )
    from ..testing._cli import add_arguments

    add_arguments(simulate)
    from ._fleet import add_commands

    add_commands(commands, positive_int=_positive_int, positive_float=_positive_float)
    return parser


def _add_manifest_defaults(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default=None, metavar="W*H", help="for rows without a size")
    parser.add_argument(
        "--max-images", type=_positive_int, default=None, help="for rows without max_images"
    )


def _add_logging(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log retries and waits (-v), and every request (-vv)",
    )
    group.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        type=str.upper,
        default=None,
        help="the library's log level (-v is INFO, -vv DEBUG; default: WARNING)",
    )


def _configure_logging(ns: argparse.Namespace, errors: Console) -> None:
    """Send the library's log to stderr, drawn above the progress bar."""
    import logging

    from rich.logging import RichHandler

    level = ns.log_level or {0: "WARNING", 1: "INFO"}.get(ns.verbose, "DEBUG")
    handler = RichHandler(console=errors, show_path=False, markup=False, log_time_format="%X")
    logger = logging.getLogger("seedream_async")
    logger.addHandler(handler)
    logger.setLevel(level)


def _poll_policy(ns: argparse.Namespace) -> PollPolicy | None:
    changes = {
        name: value
        for name, value in (
            ("first_poll", ns.first_poll),
            ("interval", ns.poll_interval),
            ("polls", ns.polls),
            ("typical", ns.typical),
        )
        if value is not None
    }
    return dataclasses.replace(PollPolicy(), **changes) if changes else None


def _consoles() -> tuple[Console, Console]:
    from rich.console import Console

    return (
        Console(soft_wrap=True, highlight=False),
        Console(stderr=True, soft_wrap=True, highlight=False),
    )


def _interrupted(errors: Console, message: str) -> int:
    from ._run import EXIT_INTERRUPTED

    errors.print(f"\nInterrupted. {message}")
    return EXIT_INTERRUPTED


def _command_run(ns: argparse.Namespace) -> int:
    import anyio

    from ._keys import keys_from_args
    from ._run import EXIT_USAGE, RunOptions, run_manifest

    console, errors = _consoles()
    _configure_logging(ns, errors)
    api_key = os.environ.get(ns.api_key_env, "").strip()
    try:
        only = _only_keys(ns)
        reroll = frozenset(keys_from_args(ns.reroll or []))
    except OSError as err:
        errors.print(f"error: cannot read the keys file: {err}")
        return EXIT_USAGE
    if ns.journal is not None and str(ns.journal).startswith(("postgresql:", "postgres:")):
        errors.print(
            "error: run keeps its journal in a file; for a PostgreSQL journal load the "
            "manifest (seedream-async load MANIFEST --journal DSN) and start workers "
            "(seedream-async work --journal DSN)"
        )
        return EXIT_USAGE
    if not api_key and not ns.dry_run:
        errors.print(
            f"error: no API key; set the {ns.api_key_env} environment variable "
            "(or name another variable with --api-key-env)"
        )
        return EXIT_USAGE
    options = RunOptions(
        manifest=ns.manifest,
        out=ns.out,
        api_key=api_key,
        base_url=ns.base_url,
        journal=ns.journal,
        concurrency=ns.concurrency,
        rate=ns.rate,
        budget=ns.budget,
        size=ns.size,
        max_images=ns.max_images,
        resubmit_ambiguous=ns.resubmit_ambiguous,
        retry_failed=ns.retry_failed,
        poll=_poll_policy(ns),
        json_summary=ns.json,
        dry_run=ns.dry_run,
        only=only,
        seed_from_key=ns.seed_from_key,
        reroll=reroll,
        api_key_env=ns.api_key_env,
        journal_wait=max(0.0, ns.journal_wait),
    )
    # With --json, stdout carries the JSON alone; everything for people goes to stderr.
    shown = errors if ns.json else console
    try:
        return anyio.run(lambda: run_manifest(options, console=shown, errors=errors))
    except KeyboardInterrupt:
        return _interrupted(
            errors,
            f"Finished items are recorded in {options.journal_path}; re-run the same command "
            "to resume without paying for them again.",
        )


def _only_keys(ns: argparse.Namespace) -> frozenset[str] | None:
    from ._keys import keys_from_args, read_keys

    if ns.only is None and ns.keys_file is None:
        return None
    keys = keys_from_args(ns.only or [])
    if ns.keys_file is not None:
        keys += read_keys(ns.keys_file)
    return frozenset(keys)


def _command_status(ns: argparse.Namespace) -> int:
    import json

    import anyio

    from ._run import EXIT_OK, EXIT_USAGE, JOURNAL_NAME
    from ._status import journal_exists, load_journal, print_status, status_json

    console, errors = _consoles()
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


def _command_validate(ns: argparse.Namespace) -> int:
    from rich.markup import escape

    from ._manifest import ManifestProblem
    from ._report import estimate
    from ._run import EXIT_FAILED, EXIT_OK
    from ._validate import scan

    console, errors = _consoles()
    rows = problems = 0
    for row in scan(ns.manifest, size=ns.size, max_images=ns.max_images):
        if isinstance(row, ManifestProblem):
            problems += 1
            errors.print(f"[red]error[/] {escape(str(row))}")
        else:
            rows += 1
    if problems:
        errors.print(f"{ns.manifest}: {problems} problem(s); {rows} row(s) OK")
        return EXIT_FAILED
    console.print(f"{ns.manifest}: {rows} row(s) OK, every local image readable")
    console.print(
        f"Cost if every row is submitted: {estimate(rows)} (billed per prediction, "
        "whatever its max_images; rows already done in a journal are not paid again)"
    )
    return EXIT_OK


def _command_review(ns: argparse.Namespace) -> int:
    from ._review import read_report, write_review
    from ._run import EXIT_OK, EXIT_USAGE, REPORT_NAME

    console, errors = _consoles()
    report = ns.out if ns.out.is_file() else ns.out / REPORT_NAME
    if not report.is_file():
        errors.print(f"error: no {REPORT_NAME} in {ns.out}; pass the --out folder of a run")
        return EXIT_USAGE
    page = write_review(report)
    console.print(f"Review sheet: {page} ({len(read_report(report))} items); open it in a browser")
    return EXIT_OK


def _command_demo(ns: argparse.Namespace) -> int:
    import anyio

    from ._demo import run_demo

    console, errors = _consoles()
    _configure_logging(ns, errors)
    try:
        return anyio.run(
            lambda: run_demo(
                items=ns.items,
                out=ns.out,
                time_scale=ns.time_scale,
                console=console,
                errors=errors,
            )
        )
    except KeyboardInterrupt:
        # The simulator lived in this process: its predictions are gone, so the journal's
        # ids would answer 404. Say what is true rather than promise a resume.
        return _interrupted(
            errors,
            "The demo's simulator stopped with it, so running the demo again starts over "
            f"in {ns.out}. A real catalog (seedream-async run) resumes from its journal.",
        )


def _command_simulate(ns: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..testing._cli import serve_from_args

    return serve_from_args(ns, parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``seedream-async`` command and return its exit code.

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` when None.
    """
    try:
        import rich  # noqa: F401
    except ImportError:
        print(
            "seedream-async: the command line needs the 'cli' extra: "
            "pip install 'seedream-async[cli]'",
            file=sys.stderr,
        )
        return 2
    parser = _parser()
    ns = parser.parse_args(argv)
    if ns.command == "run":
        return _command_run(ns)
    if ns.command == "validate":
        return _command_validate(ns)
    if ns.command == "status" and ns.target is not None:
        return _command_status(ns)  # a run's folder or its SQLite journal
    if ns.command == "status" and not ns.journal:
        print(
            "seedream-async status: pass a run's --out folder (or its journal file), or "
            "--journal postgresql://... for a fleet's journal",
            file=sys.stderr,
        )
        return 2
    if ns.command == "review":
        return _command_review(ns)
    if ns.command == "demo":
        return _command_demo(ns)
    if ns.command in ("load", "work", "status"):
        from ._fleet import run_command

        return run_command(ns, *_consoles())
    return _command_simulate(ns, parser)
