"""A small HTTP/1.1 listener for an ASGI app, on anyio and h11 (asyncio and trio alike).

The CLI's ``--webhook-listen HOST:PORT`` starts it; a web service mounts the receiver in
its own framework instead. It serves what a webhook receiver needs: one ``POST`` at a
time per connection, Content-Length or chunked bodies, keep-alive, no TLS (put it behind
the reverse proxy that ``--webhook-url`` names).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from .._base._exceptions import ConfigurationError

__all__ = ["Listening", "parse_listen", "serve_webhooks"]

ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]
_READ = 65_536


@dataclass(frozen=True)
class Listening:
    """Where the listener is bound.

    Attributes:
        host: the bound address.
        port: the bound port (the real one when 0 was asked).
    """

    host: str
    port: int

    @property
    def url(self) -> str:
        """``http://host:port/``: a public URL only on a reachable host."""
        return f"http://{self.host}:{self.port}/"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) as a pair; ConfigurationError otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigurationError(f"--webhook-listen takes HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


async def _next_event(conn: Any, stream: anyio.abc.ByteStream) -> Any:
    import h11

    while (event := conn.next_event()) is h11.NEED_DATA:
        try:
            data = await stream.receive(_READ)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            data = b""
        conn.receive_data(data)
    return event


async def _serve_one(app: ASGIApp, conn: Any, stream: anyio.abc.ByteStream, event: Any) -> None:
    import h11

    target = event.target.decode("latin-1")
    path, _, query = target.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": event.method.decode("latin-1").upper(),
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("latin-1"),
        "root_path": "",
        "query_string": query.encode("latin-1"),
        "headers": [(k.lower(), v) for k, v in event.headers],
    }

    async def receive() -> MutableMapping[str, Any]:
        item = await _next_event(conn, stream)
        if isinstance(item, h11.Data):
            return {"type": "http.request", "body": bytes(item.data), "more_body": True}
        if isinstance(item, h11.EndOfMessage):
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        out: Any
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"connection", b"keep-alive")]
            out = h11.Response(status_code=message["status"], headers=headers)
        else:
            out = h11.Data(data=message.get("body", b""))
        await stream.send(conn.send(out))
        if message["type"] == "http.response.body" and not message.get("more_body"):
            await stream.send(conn.send(h11.EndOfMessage()))

    await app(scope, receive, send)


async def _connection(app: ASGIApp, stream: anyio.abc.ByteStream) -> None:
    import h11

    conn = h11.Connection(h11.SERVER)
    async with stream:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            while True:
                try:
                    event = await _next_event(conn, stream)
                except h11.RemoteProtocolError:
                    return
                if not isinstance(event, h11.Request):
                    return
                await _serve_one(app, conn, stream, event)
                # Drain what the app did not read, then start the next request.
                while conn.their_state is h11.SEND_BODY:
                    await _next_event(conn, stream)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()


@asynccontextmanager
async def serve_webhooks(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[Listening]:
    """Serve ``app`` on ``host:port`` in the current event loop until the block exits.

    Args:
        app: the ASGI app (a :class:`WebhookReceiver`).
        host: the address to bind.
        port: the port; 0 picks a free one.
    """
    try:
        import h11  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "the webhook listener needs h11: pip install 'seedream-async[webhooks]'"
        ) from err
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(partial(listener.serve, partial(_connection, app)))
        try:
            yield Listening(host, listener.extra(SocketAttribute.local_port))
        finally:
            group.cancel_scope.cancel()
