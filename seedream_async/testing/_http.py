"""A minimal HTTP/1.1 server loop on anyio streams and h11.

It runs in whatever event loop anyio runs in (asyncio or trio), keeps connections alive,
reads Content-Length and chunked bodies, refuses oversized bodies without buffering them,
and lets the application drop a connection without answering (a returned ``None``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

import anyio
import anyio.abc
import h11

__all__ = ["Handler", "Request", "Response", "serve_connection"]

logger = logging.getLogger("seedream_async.testing")

_READ_SIZE = 65_536
# After refusing a body, read and discard what the client still sends for this long before
# closing, so the refusal is not lost to a TCP reset (Apache's "lingering close").
_LINGER_SECONDS = 1.0
_TRICKLE_TICK = 0.05


@dataclass(kw_only=True)
class Request:
    """A request as the application sees it.

    Args:
        method: upper-case method.
        path: the decoded path, without the query string.
        query: query parameters (the last value wins).
        headers: lower-case names; repeated headers joined with ``", "``.
        body: the whole body (empty when ``body_too_large``).
        body_too_large: the body was over the application's limit and was not read; the
            connection closes after the response.
        target: the raw request target, path and query as sent.
    """

    method: str
    path: str
    target: str = "/"
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    body_too_large: bool = False


@dataclass(frozen=True, kw_only=True)
class Response:
    """A complete response.

    Args:
        status: the status code.
        body: the body bytes.
        content_type: the Content-Type header.
        headers: extra headers.
        trickle: send the body at this many bytes per real second (a hostile server);
            None sends it at once.
    """

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    trickle: float | None = None


@dataclass(frozen=True, kw_only=True)
class Handler:
    """What a listener serves.

    Args:
        body_limit: the largest body accepted for a request (seen before its body).
        handle: answers a request, or returns None to drop the connection unanswered.
    """

    body_limit: Callable[[Request], int]
    handle: Callable[[Request], Awaitable[Response | None]]


def _make_request(event: h11.Request) -> Request:
    target = event.target.decode("latin-1")
    parts = urlsplit(target)
    headers: dict[str, str] = {}
    for raw_name, raw_value in event.headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return Request(
        method=event.method.decode("latin-1").upper(),
        path=unquote(parts.path),
        target=target,
        query=dict(parse_qsl(parts.query)),
        headers=headers,
    )


class _Connection:
    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER)

    async def next_event(self) -> object:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self.stream.receive(_READ_SIZE)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                data = b""
            self.h11.receive_data(data)

    async def send(self, event: h11.Event) -> None:
        data = self.h11.send(event)
        if data:
            await self.stream.send(data)

    async def read_body(self, limit: int) -> bytes | None:
        """The body, or None once it exceeds ``limit`` (the rest is left unread)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    return None
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            else:
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} in a body")

    async def respond(self, response: Response, *, close: bool) -> None:
        headers = [
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
            ("server", "seedream-sim"),
            *response.headers,
        ]
        if close:
            headers.append(("connection", "close"))
        head = h11.Response(status_code=response.status, headers=headers)
        if response.trickle is not None:
            await self.send(head)
            await self._trickle(response.body, response.trickle)
            await self.send(h11.EndOfMessage())
            return
        # Head and body in one write, as a production server's buffered writer (or a CDN's
        # TLS record) delivers a small answer: not two segments a client reads apart.
        events: list[h11.Event] = [head, h11.Data(data=response.body), h11.EndOfMessage()]
        data = b"".join(self.h11.send(event) or b"" for event in events if _nonempty(event))
        await self.stream.send(data)

    async def _trickle(self, body: bytes, rate: float) -> None:
        # A few bytes every tick: slow enough to defeat a per-read timeout, never silent.
        chunk = max(1, int(rate * _TRICKLE_TICK))
        for start in range(0, len(body), chunk):
            await anyio.sleep(chunk / rate)
            await self.send(h11.Data(data=body[start : start + chunk]))

    async def linger(self) -> None:
        try:
            await self.stream.send_eof()
            with anyio.move_on_after(_LINGER_SECONDS):
                while True:
                    await self.stream.receive(_READ_SIZE)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass


async def _serve(connection: _Connection, handler: Handler) -> None:
    while True:
        event = await connection.next_event()
        if isinstance(event, h11.ConnectionClosed):
            return
        if not isinstance(event, h11.Request):
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")
        request = _make_request(event)
        limit = handler.body_limit(request)
        declared = request.headers.get("content-length", "")
        complete = True
        if declared.isdigit() and int(declared) > limit:
            request.body_too_large, complete = True, False
        else:
            if connection.h11.they_are_waiting_for_100_continue:
                await connection.send(h11.InformationalResponse(status_code=100, headers=[]))
            body = await connection.read_body(limit)
            if body is None:
                request.body_too_large, complete = True, False
            else:
                request.body = body
        response = await handler.handle(request)
        if response is None:
            return  # dropped: the caller closes the socket without a word
        await connection.respond(response, close=not complete)
        if not complete:
            await connection.linger()
            return
        if connection.h11.our_state is not h11.DONE:
            return
        connection.h11.start_next_cycle()


async def serve_connection(stream: anyio.abc.ByteStream, handler: Handler) -> None:
    """Serve HTTP/1.1 requests on ``stream`` until either side closes it.

    Args:
        stream: an accepted connection; closed on return.
        handler: the application.
    """
    async with stream:
        connection = _Connection(stream)
        try:
            await _serve(connection, handler)
        except h11.RemoteProtocolError as err:
            if connection.h11.our_state is h11.SEND_RESPONSE:
                body = b'{"message": "malformed HTTP request", "code": 400}'
                with contextlib.suppress(h11.LocalProtocolError, anyio.BrokenResourceError):
                    await connection.respond(Response(status=400, body=body), close=True)
            logger.debug("closing connection on a protocol error: %s", err)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            pass
        except Exception:
            logger.exception("simulator connection crashed")


def _nonempty(event: h11.Event) -> bool:
    return not isinstance(event, h11.Data) or bool(event.data)
