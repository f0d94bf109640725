"""The ``seedream-async`` command: ``run``, ``validate``, ``status``, ``review``, ``demo``,
``simulate``, and for a fleet of workers on one PostgreSQL journal ``load`` and ``work``
(``status --journal postgresql://...`` shows a fleet's journal).

Each command is one module of ``_commands`` with a ``register(subparsers)``; this module
only assembles them. Options several commands share are defined once in ``_options``.

Needs the ``cli`` extra (``pip install 'seedream-async[cli]'``); the library itself never
imports this package.

Exit codes (also in ``--help``): see :data:`EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._base._version import __version__
from ._options import EXIT_CODES

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from ._commands import COMMANDS

    parser = argparse.ArgumentParser(
        prog="seedream-async",
        description="Bulk image editing with Seedream v4.5 Edit Sequential on Atlas Cloud.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


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
    ns = _parser().parse_args(argv)
    code: int = ns.handler(ns)
    return code
