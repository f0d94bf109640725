"""Shared helpers for tests that drive the client against the bundled simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from seedream_async import AsyncSeedream, PollPolicy, RetryPolicy
from seedream_async.testing import Simulator, make_png, serve

TIME_SCALE = 0.001
FAST_RETRY = RetryPolicy(initial_delay=0.001, max_delay=0.01, max_attempts=8)
# Poll intervals shrink with the simulated time; the deadline stays in real seconds, since
# client and server overheads do not shrink.
FAST_POLL = replace(PollPolicy().scaled(TIME_SCALE), deadline=60.0)


@asynccontextmanager
async def simulated(
    *, client_options: dict[str, Any] | None = None, **sim_options: Any
) -> AsyncIterator[tuple[Simulator, AsyncSeedream]]:
    """A simulator and a client pointed at it, with fast retries and polls."""
    sim_options.setdefault("time_scale", TIME_SCALE)
    sim_options.setdefault("seed", 7)
    async with serve(**sim_options) as sim:
        options: dict[str, Any] = {"retry": FAST_RETRY, "poll": FAST_POLL}
        options.update(client_options or {})
        async with AsyncSeedream(api_key=sim.api_key, base_url=sim.base_url, **options) as client:
            yield sim, client


def write_images(folder: Path, count: int, *, size: int = 48) -> list[Path]:
    """Write ``count`` distinct PNGs into ``folder`` and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"ref{index}.png"
        path.write_bytes(make_png(size, size, seed=index))
        paths.append(path)
    return paths


@asynccontextmanager
async def external_simulator(*args: str) -> AsyncIterator[tuple[str, str, Any]]:
    """The simulator in its own process (its own core), for the larger runs.

    Yields the base URL, the key, and an async function returning the ledger snapshot.
    """
    import sys

    import anyio
    import httpx

    command = [sys.executable, "-m", "seedream_async.testing", "--port", "0", *args]
    async with await anyio.open_process(command, stderr=None) as process:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(20):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive(1)
        words = line.decode().split()
        base_url, key = words[3], words[7]
        async with httpx.AsyncClient() as http:

            async def ledger() -> Any:
                response = await http.get(
                    f"{base_url}/_sim/ledger", headers={"Authorization": f"Bearer {key}"}
                )
                return response.json()

            try:
                yield base_url, key, ledger
            finally:
                process.terminate()
                await process.wait()


Handler = Callable[[anyio.abc.ByteStream], Awaitable[None]]


def guarded(handler: Handler) -> Handler:
    """``handler`` for one connection of a small test server: the stream closed after it,
    and a peer that hung up (or a stream already closed) ending it quietly."""

    async def run(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            with suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await handler(stream)

    return run
