"""``seedream-async simulate``: serve the simulated API on a local port until Ctrl-C."""

from __future__ import annotations

import argparse
from typing import Any

from ..._base._constants import API_KEY_ENV, BASE_URL_ENV

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``simulate`` (the simulator's own options) to the CLI's sub-parsers."""
    from ...testing._cli import add_arguments, serve_from_args

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="serve the simulated API on a local port until Ctrl-C",
        description="Serve the simulated Atlas Cloud API on 127.0.0.1 until Ctrl-C. Point "
        f"`run` at it with --base-url http://127.0.0.1:PORT (or {BASE_URL_ENV}) and "
        f"{API_KEY_ENV}=sim-key (its default --api-key).",
    )
    add_arguments(parser)
    parser.set_defaults(handler=lambda ns: serve_from_args(ns, parser))
