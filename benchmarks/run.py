"""Run the benchmark harness: ``python benchmarks/run.py`` (or ``python -m benchmarks``)."""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, run the contenders, print the table, write the JSON."""
    from benchmarks._harness import main as harness

    return harness(argv)


if __name__ == "__main__":
    # Run as a script: make the repository root importable, as ``-m`` would.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
