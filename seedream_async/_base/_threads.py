"""Blocking reads (a file's stat, its head, its digest) on a worker thread, cheaply.

``anyio.to_thread.run_sync`` costs three event-loop passes on asyncio (a checkpoint, its
thread limiter's, the answer), and a file's probe is on every item's path. On asyncio the
work goes to the loop's default executor instead: one pass. The work must be safe to
abandon: a cancelled caller leaves at once, and the thread's read ends on its own, its
result dropped. Under trio it is anyio's, abandoned the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
import sniffio

__all__ = ["off_loop"]

T = TypeVar("T")


async def off_loop(func: Callable[[], T]) -> T:
    """``func()``'s result, computed on a worker thread (the event loop never blocks)."""
    if sniffio.current_async_library() == "asyncio":
        return await asyncio.get_running_loop().run_in_executor(None, func)
    return await anyio.to_thread.run_sync(func, abandon_on_cancel=True)
