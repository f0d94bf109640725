"""The HTTP transport the client makes for itself: HTTP/1.1 on anyio, O(1) a request.

httpcore's connection pool (1.0) rescans every connection it holds whenever a request
starts or ends: a socket-readability check per idle connection and a count over the whole
pool, O(connections^2) per request. Even split into small pools, httpcore's own layers
(the pool's request queue, its connection and stream wrappers, trace hooks) cost as much
CPU again as the HTTP itself (``benchmarks/README.md``, the profile). :class:`Http11Transport`
is HTTP/1.1 with h11's rules (``_http11``, checked against h11) over anyio's streams, with a
pool that does only what a client of one API and one storage host needs:

* an idle stack per origin (scheme, host, port), last in first out, so a quiet run keeps
  reusing its warmest connections and the rest expire;
* one readability check on the connection taken (a kept-alive connection the server
  closed reads as ready at EOF), never a scan of the others;
* at most ``max_connections`` requests in flight, waiting (up to the pool timeout) beyond;
* httpx's timeouts (connect, read, write, pool) and its exceptions, so retry and
  ambiguity decisions read the same errors as with httpx's own transport: a request
  whose connection could not be made is a ``ConnectError``/``ConnectTimeout`` (never
  sent), anything later a read, write or protocol error (maybe sent).

It speaks HTTP/1.1 only, over TCP or TLS. An ``http_client`` you pass to the client is
yours, untouched: pass one with ``httpx.AsyncHTTPTransport(http2=True)`` or a proxy for
those.
"""

from __future__ import annotations

import ssl
import time
import weakref
from collections.abc import AsyncIterator
from types import TracebackType
from typing import NamedTuple

import anyio
import httpx

from ._connection import Connection, Origin, connect, request_head
from ._deadline import Steps
from ._http11 import RequestHead, ResponseHead

__all__ = ["Fetched", "Http11Transport"]

_KEEPALIVE_EXPIRY = 5.0


class _Body(httpx.AsyncByteStream, AsyncIterator[bytes]):
    """A response body read from its connection, which goes back to the pool (or is
    closed) when the body is closed.

    Its own iterator, not an async generator: a read cancelled midway leaves no half-run
    generator for the event loop to finalise (trio warns of those).
    """

    def __init__(self, transport: Http11Transport, conn: Connection, request: httpx.Request):
        self._transport = transport
        self._conn: Connection | None = conn
        self._request = request

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None:
            raise httpx.StreamClosed()
        chunk = await conn.next_chunk(self._request)
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._transport._give_back(conn)


class Fetched(NamedTuple):
    """A whole answer read by :meth:`Http11Transport.fetch`.

    Attributes:
        status_code: the HTTP status.
        headers: the headers, as sent.
        reason: the reason phrase.
        body: the body as it came (still content-encoded, if it was); None when it was
            over the limit, declared or as it arrived (then not read, and its
            connection closed).
        over: what was over the limit ("N bytes declared", "more arrived"), or "".
    """

    status_code: int
    headers: list[tuple[bytes, bytes]]
    reason: bytes
    body: bytes | None
    over: str = ""


class Http11Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 connections kept alive per origin, reused last in first out.

    Args:
        max_connections: requests in flight at once (each holds one connection); also the
            most idle connections kept per origin.
        ssl_context: for ``https`` origins; httpx's default (certifi) when None.
        keepalive_expiry: seconds an idle connection is kept.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float = _KEEPALIVE_EXPIRY,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be positive")
        self._slots = anyio.Semaphore(max_connections)
        self._max_idle = max_connections
        self._idle: dict[Origin, list[Connection]] = {}
        self._ssl_context = ssl_context
        self._expiry = keepalive_expiry
        self._closed = False
        # The HTTP/1.1 head of each GET sent while that request lives: a caller that
        # sends one request again (a poll) has it validated and built once.
        self._heads: weakref.WeakKeyDictionary[httpx.Request, RequestHead] = (
            weakref.WeakKeyDictionary()
        )
        self.opened = 0
        """Connections opened so far (a reused one is not counted again)."""

    @property
    def in_flight(self) -> int:
        """Requests holding a connection now (their response bodies not yet closed)."""
        return self._max_idle - self._slots.value

    @property
    def idle(self) -> int:
        """Connections kept alive, idle, over every origin."""
        return sum(len(stack) for stack in self._idle.values())

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        conn, head = await self._exchange(request)
        return httpx.Response(
            head.status_code,
            headers=head.headers,
            stream=_Body(self, conn, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason},
        )

    async def _exchange(
        self, request: httpx.Request, steps: Steps | None = None
    ) -> tuple[Connection, ResponseHead]:
        """A slot and a connection for ``request``, the request sent and its answer's head
        read; the slot and connection are the caller's to give back (the body unread).
        ``steps``: the caller's bound on the send and reads (see :class:`Steps`)."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        timeouts = request.extensions.get("timeout", {})
        await self._acquire(timeouts.get("pool"), request, steps)
        try:
            conn = await self._checkout(request, timeouts.get("connect"), steps)
        except BaseException:
            self._slots.release()
            raise
        conn.steps = steps
        try:
            head = await conn.exchange(
                request, self._head(request), timeouts.get("write"), timeouts.get("read")
            )
        except BaseException:
            await self._drop(conn)
            raise
        return conn, head

    def _head(self, request: httpx.Request) -> RequestHead:
        head = self._heads.get(request)
        if head is None:
            head = request_head(request)
            if request.method == "GET":
                self._heads[request] = head
        return head

    async def fetch(
        self, request: httpx.Request, limit: int, steps: Steps | None = None
    ) -> Fetched:
        """Send ``request`` and read its whole answer, at most ``limit`` bytes of body: the
        client's own API calls, which read every answer whole, skip the streamed
        ``httpx.Response`` and the body iterator that :meth:`handle_async_request` builds.

        ``steps``: a :class:`Steps` the caller has entered around this call; the send and
        each read then move its deadline (write and read timeouts) instead of entering
        scopes of their own, and a timeout raises ``TimeoutError`` from the caller's
        ``with``, for it to name (``steps.name``). Without it, as
        :meth:`handle_async_request`: httpx's timeout errors.

        Raises what :meth:`handle_async_request` and reading its body raise.
        """
        conn, head = await self._exchange(request, steps)
        try:
            fetched = await _read_body(conn, request, head, limit)
        except BaseException:
            await self._drop(conn)
            raise
        conn.steps = None
        if fetched.body is None:  # not read to its end: the connection cannot be reused
            await conn.close()
            self._slots.release()
        else:
            await self._give_back(conn)
        return fetched

    async def _drop(self, conn: Connection) -> None:
        """Close ``conn`` after a failed exchange, and free its slot."""
        conn.steps = None
        await conn.close()
        self._slots.release()

    async def _acquire(
        self, within: float | None, request: httpx.Request, steps: Steps | None
    ) -> None:
        slots = self._slots
        if slots.value:
            slots.acquire_nowait()
            return
        if steps is not None:  # a wait: within the overall deadline
            steps.step("pool", None)
        try:
            with anyio.fail_after(within):
                await slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout(
                "timed out waiting for a free connection", request=request
            ) from None

    async def _checkout(
        self, request: httpx.Request, within: float | None, steps: Steps | None
    ) -> Connection:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        origin: Origin = (url.scheme, url.host, port)
        stack = self._idle.get(origin)
        if stack:
            await self._expire(stack)
            while stack:
                conn = stack.pop()
                if conn.reusable():
                    return conn
                await conn.close()
        tls = self._tls() if origin[0] == "https" else None
        if steps is not None:  # a wait: within the overall deadline
            steps.step("connect", None)
        conn = await connect(origin, tls, within, request)
        self.opened += 1
        return conn

    async def _expire(self, stack: list[Connection]) -> None:
        """Close the idle connections past the keep-alive expiry: the stack's bottom, as
        it is ordered by the time each was given back."""
        cutoff = time.monotonic() - self._expiry
        while stack and stack[0].idle_since < cutoff:
            await stack.pop(0).close()

    async def _give_back(self, conn: Connection) -> None:
        self._slots.release()
        if self._closed or not conn.next_cycle():
            await conn.close()
            return
        stack = self._idle.setdefault(conn.origin, [])
        conn.idle_since = time.monotonic()
        stack.append(conn)
        if len(stack) > self._max_idle:
            await stack.pop(0).close()

    async def aclose(self) -> None:
        self._closed = True
        stacks, self._idle = self._idle, {}
        for stack in stacks.values():
            for conn in stack:
                await conn.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()


async def _read_body(
    conn: Connection, request: httpx.Request, head: ResponseHead, limit: int
) -> Fetched:
    """The rest of the answer ``head`` begins, its body capped at ``limit`` bytes."""
    headers = list(head.headers)
    for name, value in headers:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            return Fetched(
                head.status_code, headers, head.reason, None, f"{int(value):,} bytes declared"
            )
    chunks: list[bytes] = []
    size = 0
    while (chunk := await conn.next_chunk(request)) is not None:
        size += len(chunk)
        if size > limit:
            return Fetched(head.status_code, headers, head.reason, None, "more arrived")
        chunks.append(chunk)
    return Fetched(head.status_code, headers, head.reason, b"".join(chunks))
