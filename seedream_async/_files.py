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
from typing import Literal, Protocol

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

    The file is closed even when the block is cancelled (a download past its deadline):
    the close is shielded, or a cancelled close would leak the descriptor.
    """
    if _on_asyncio():
        handle = await aiofiles.open(path, mode)
        try:
            yield handle
        finally:
            with anyio.CancelScope(shield=True):
                await handle.close()
    else:
        trio_handle = await anyio.open_file(path, mode)
        try:
            yield trio_handle
        finally:
            with anyio.CancelScope(shield=True):
                await trio_handle.aclose()
