"""Async file streaming that works under asyncio and trio.

Files are read and written chunk by chunk off the event loop. Under asyncio that is
aiofiles; aiofiles calls ``asyncio.get_running_loop()`` and so cannot run under trio,
where anyio's thread-backed file does the same job. Both stream a chunk at a time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal, Protocol

import aiofiles
import anyio

__all__ = ["AsyncBinaryFile", "open_binary"]


class AsyncBinaryFile(Protocol):
    """The part of an async binary file this library uses."""

    async def read(self, size: int = -1, /) -> bytes: ...

    async def write(self, data: bytes, /) -> int: ...


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@asynccontextmanager
async def open_binary(
    path: str | os.PathLike[str], mode: Literal["rb", "wb"]
) -> AsyncIterator[AsyncBinaryFile]:
    """Open ``path`` for async binary reading or writing on whichever loop is running.

    Opening and closing are shielded from cancellation: each runs in a worker thread, and
    a cancel arriving meanwhile (a stopped batch) would otherwise leave the file open.
    """
    handle: Any
    with anyio.CancelScope(shield=True):
        if _on_asyncio():
            handle = await aiofiles.open(path, mode)
        else:
            handle = await anyio.open_file(path, mode)
    try:
        yield handle
    finally:
        with anyio.CancelScope(shield=True):
            if isinstance(handle, anyio.AsyncFile):
                await handle.aclose()
            else:
                await handle.close()
