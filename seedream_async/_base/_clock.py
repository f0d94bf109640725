"""The running event loop's clock, bound once.

``anyio.current_time`` finds the running backend (through sniffio) on every call, which
costs more than reading the clock; a request reads it two or three times.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio

__all__ = ["loop_clock"]


def loop_clock() -> Callable[[], float]:
    """The clock ``anyio.current_time`` reads in the running loop, as a bound function
    (valid while that loop runs)."""
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:
        pass
    try:
        import trio

        return trio.lowlevel.current_clock().current_time  # RuntimeError outside trio
    except (ImportError, RuntimeError):
        return anyio.current_time
