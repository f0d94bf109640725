"""``python -m seedream_async``: the ``seedream-async`` command (needs the ``cli`` extra)."""

from __future__ import annotations

from .cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
