"""``seedream-async demo``: a sample catalog through ``run``'s code, against the simulator."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._options import (
    add_logging,
    configure_logging,
    consoles,
    interrupted,
    positive_float,
    positive_int,
)

__all__ = ["handle", "register"]


def register(subparsers: Any) -> None:
    """Add ``demo`` to the CLI's sub-parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run a sample catalog against the bundled simulator (offline, no API key)",
        description="Write a sample catalog (product photos, backdrops, a logo) and run it "
        "through the same code as `run`, against the bundled simulator in this process: no "
        "network, no API key, nothing billed. Each demo starts over in its folder.",
    )
    parser.add_argument(
        "--items", type=positive_int, default=24, help="catalog items to make (default: 24)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("seedream-demo"),
        help="folder for the catalog, outputs, report and review sheet; replaced if it holds "
        "an earlier demo (default: ./seedream-demo)",
    )
    parser.add_argument(
        "--time-scale",
        type=positive_float,
        default=0.02,
        help="simulated latency factor; 1.0 is about 8 s per edit (default: 0.02)",
    )
    add_logging(parser)
    parser.set_defaults(handler=handle)


def handle(ns: argparse.Namespace) -> int:
    """Run the demo; its exit code is ``run``'s."""
    import anyio

    from .._demo import run_demo

    console, errors = consoles()
    configure_logging(ns, errors)
    try:
        return anyio.run(
            lambda: run_demo(
                items=ns.items, out=ns.out, time_scale=ns.time_scale, console=console,
                errors=errors,
            )
        )  # fmt: skip
    except KeyboardInterrupt:
        # The simulator lived in this process: its predictions are gone, so the journal's
        # ids would answer 404. Say what is true rather than promise a resume.
        return interrupted(
            errors,
            "The demo's simulator stopped with it, so running the demo again starts over "
            f"in {ns.out}. A real catalog (seedream-async run) resumes from its journal.",
        )
