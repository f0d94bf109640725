"""The ``seedream-async`` command: ``run``, ``validate``, ``demo``, ``simulate``, and for a
fleet of workers on one PostgreSQL journal ``load``, ``work`` and ``status``.

Needs the ``cli`` extra (``pip install 'seedream-async[cli]'``); the library itself never
imports this package.

Exit codes: 0 every item succeeded (or the manifest is valid), 1 some item did not (or the
manifest has problems, for ``validate``), 2 a usage or manifest error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._constants import API_KEY_ENV
from .._polling import PollPolicy
from .._version import __version__

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["main"]


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
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="edit every row of a manifest",
        description="Edit every row of a CSV or JSONL manifest. Re-running the same command "
        "resumes from the journal without paying twice for finished items.",
    )
    run.add_argument("manifest", type=Path, help="CSV (key,prompt,images,...) or JSONL")
    run.add_argument("--out", type=Path, required=True, help="folder for outputs and report")
    _add_manifest_defaults(run)
    run.add_argument("--concurrency", type=_positive_int, default=64, help="default: 64")
    run.add_argument("--rate", type=_positive_float, default=None, help="submits per second")
    run.add_argument("--budget", type=_positive_float, default=None, metavar="USD")
    run.add_argument(
        "--journal", type=Path, default=None, help="default: <out>/.seedream-journal.sqlite"
    )
    run.add_argument(
        "--resubmit-ambiguous",
        action="store_true",
        help="send again items an earlier run may have paid for without an answer",
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
    run.add_argument("--base-url", default=None, help="the API's origin (default: Atlas Cloud)")
    run.add_argument(
        "--api-key-env",
        default=API_KEY_ENV,
        metavar="NAME",
        help=f"environment variable holding the API key (default: {API_KEY_ENV})",
    )

    validate = commands.add_parser(
        "validate",
        help="check a manifest and its images without sending anything",
        description="Check every row, parameter, key and local image; no network request.",
    )
    validate.add_argument("manifest", type=Path)
    _add_manifest_defaults(validate)

    demo = commands.add_parser(
        "demo",
        help="run a sample catalog against the bundled simulator (offline, no API key)",
    )
    demo.add_argument("--items", type=_positive_int, default=24, help="default: 24")
    demo.add_argument("--out", type=Path, default=Path("seedream-demo"))
    demo.add_argument(
        "--time-scale",
        type=_positive_float,
        default=0.02,
        help="simulated latency factor; 1.0 is about 8 s per edit (default: 0.02)",
    )

    simulate = commands.add_parser(
        "simulate", help="serve the simulated API on a local port until Ctrl-C"
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


def _interrupted(errors: Console, journal: Path) -> int:
    from ._run import EXIT_INTERRUPTED

    errors.print(
        f"\nInterrupted. Finished items are recorded in {journal}; "
        "re-run the same command to resume without paying for them again."
    )
    return EXIT_INTERRUPTED


def _run(ns: argparse.Namespace) -> int:
    import anyio

    from ._run import EXIT_USAGE, RunOptions, run_manifest

    console, errors = _consoles()
    api_key = os.environ.get(ns.api_key_env, "").strip()
    if not api_key:
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
        poll=_poll_policy(ns),
    )
    try:
        return anyio.run(lambda: run_manifest(options, console=console, errors=errors))
    except KeyboardInterrupt:
        return _interrupted(errors, options.journal_path)


def _validate(ns: argparse.Namespace) -> int:
    from rich.markup import escape

    from ._manifest import ManifestProblem
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
    return EXIT_OK


def _demo(ns: argparse.Namespace) -> int:
    import anyio

    from ._demo import run_demo
    from ._run import JOURNAL_NAME

    console, errors = _consoles()
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
        return _interrupted(errors, ns.out / "outputs" / JOURNAL_NAME)


def _simulate(ns: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
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
        return _run(ns)
    if ns.command == "validate":
        return _validate(ns)
    if ns.command == "demo":
        return _demo(ns)
    if ns.command in ("load", "work", "status"):
        from ._fleet import run_command

        return run_command(ns, *_consoles())
    return _simulate(ns, parser)
