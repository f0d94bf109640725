"""The HTTP transport the client makes for itself: httpx's own, split into small pools.

httpcore's connection pool (1.0) rescans every connection it holds whenever a request
starts or ends: for each idle connection a socket-readability check (``getpeername`` and a
``poll``) and a count over the whole pool, O(connections^2) per request. At 128 kept-alive
connections that scan, not the HTTP, was a third of the client's CPU per prediction
(``benchmarks/README.md``, the profile). :class:`ShardedTransport` keeps httpx's transport
as it is (TLS, HTTP/1.1, timeouts, error mapping) but as several pools of a few connections
each: a request goes to the first pool with a free connection, so each scan sees at most
``per_pool`` connections, and a quiet run keeps reusing the first pool's warm ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import TracebackType

import httpx

__all__ = ["ShardedTransport"]

_PER_POOL = 2


class _Released(httpx.AsyncByteStream):
    """A response body that reports its pool's slot free once closed."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    def __aiter__(self) -> AsyncIterator[bytes]:
        # The inner stream's own iterator, not a generator of ours around it: a read
        # cancelled midway leaves no half-run async generator of ours to finalise.
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class ShardedTransport(httpx.AsyncBaseTransport):
    """``max_connections`` as ``ceil(max_connections / per_pool)`` httpx transports.

    The counts of requests in flight only choose a pool; each pool still enforces its own
    limits (a request waits, up to the pool timeout, only when every pool is full).

    Args:
        max_connections: connections in all (to every host).
        per_pool: connections per pool: the most any one request's bookkeeping scans.
    """

    def __init__(self, *, max_connections: int, per_pool: int = _PER_POOL) -> None:
        if max_connections < 1 or per_pool < 1:
            raise ValueError("max_connections and per_pool must be positive")
        per_pool = min(per_pool, max_connections)
        count = -(-max_connections // per_pool)
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        # One TLS context for all: loading the CA bundle costs ~30 ms and ~1 MB each time.
        tls = httpx.create_ssl_context()
        self._pools = [httpx.AsyncHTTPTransport(verify=tls, limits=limits) for _ in range(count)]
        self._busy = [0] * count
        self._per_pool = per_pool

    def _choose(self) -> int:
        busy = self._busy
        for index, count in enumerate(busy):
            if count < self._per_pool:
                return index
        return busy.index(min(busy))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self._choose()
        self._busy[index] += 1

        def release() -> None:
            self._busy[index] -= 1

        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Released(response.stream, release)
        return response

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()
