"""A connection's byte stream: on asyncio, a protocol that keeps reading; elsewhere anyio's.

anyio's asyncio stream adds its socket to the selector before each read and takes it out
after, and yields to the event loop after each write: two system calls and one loop pass a
request, a few percent of the client's CPU at a catalog's polling rate. On asyncio the
connection therefore speaks to asyncio's transport through :class:`_Buffered`: the socket
stays registered, what arrives (bytes, the peer's EOF) is buffered as it comes, reading
pauses past :data:`_HIGH` buffered bytes, and a write the transport can buffer returns
without yielding. anyio still makes the connection; asyncio's TLS runs over it when asked
(anyio's own is a memory BIO driven from Python). Under trio, anyio's stream is trio's own, which
does none of this.

Either stream raises what anyio's would: :class:`anyio.BrokenResourceError` when the
connection broke, :class:`anyio.ClosedResourceError` once closed; EOF reads as ``b""``.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Protocol

import anyio
import anyio.abc
import anyio.lowlevel
import sniffio
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSStream

__all__ = ["Stream", "open_stream"]

_READ_SIZE = 65_536
_HIGH = 262_144
"""Buffered bytes past which the transport stops reading until the connection catches up."""
_LOW = 65_536


class Stream(Protocol):
    """What a connection needs of its byte stream."""

    async def receive(self) -> bytes:
        """The next bytes that arrived, ``b""`` at the peer's EOF."""

    async def send(self, data: bytes) -> None:
        """Write ``data`` (returning once the transport holds it)."""

    def quiet(self) -> bool:
        """Whether an idle connection is still open with nothing to read: a server that
        closed it, or sent anything unasked, makes it unfit for another request."""

    async def aclose(self) -> None:
        """Close at once (no TLS goodbye: HTTP/1.1 frames its bodies by length)."""


async def open_stream(host: str, port: int, tls: ssl.SSLContext | None) -> Stream:
    """A TCP connection to ``host``:``port`` (TLS when ``tls`` is given).

    anyio connects on every backend (its happy eyeballs close every socket they opened
    when cancelled; asyncio's own race in Python 3.11 can drop a connected one). On
    asyncio the socket then moves to a transport with this module's protocol, asyncio's
    TLS on top when asked; a loop whose transports do not hand their socket over keeps
    anyio's stream, as trio does.

    Raises:
        OSError, ssl.SSLError: refused, unreachable, or the TLS handshake failed.
    """
    tcp = await anyio.connect_tcp(host, port)
    if sniffio.current_async_library() == "asyncio":
        dup = getattr(tcp.extra(SocketAttribute.raw_socket, None), "dup", None)
        if dup is not None:
            return await _moved_to_asyncio(tcp, dup, host, tls)
    if tls is None:
        return _AnyioStream(tcp)
    try:
        wrapped = await TLSStream.wrap(
            tcp, server_side=False, hostname=host, ssl_context=tls, standard_compatible=False
        )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await tcp.aclose()
        raise
    return _AnyioStream(wrapped)


async def _moved_to_asyncio(
    tcp: anyio.abc.SocketStream,
    dup: Callable[[], socket.socket],
    host: str,
    tls: ssl.SSLContext | None,
) -> Stream:
    try:
        sock = dup()
    finally:
        with anyio.CancelScope(shield=True):
            await tcp.aclose()
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_connection(
            lambda: _Buffered(loop),
            sock=sock,
            ssl=tls,
            server_hostname=host if tls is not None else None,
        )
    except BaseException:
        sock.close()
        raise
    return _AsyncioStream(transport, protocol)


class _Buffered(asyncio.Protocol):
    """asyncio's side: what arrived, whether the connection ended, who waits for what."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.ended = False
        self.error: BaseException | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.read_waiter: asyncio.Future[None] | None = None
        self.write_waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(bytes(data))  # the proactor loop may give a bytearray
        self.size += len(data)
        if self.size > _HIGH and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        _wake(self.read_waiter)

    def eof_received(self) -> bool:
        self.ended = True
        _wake(self.read_waiter)
        return False  # the transport closes itself: HTTP/1.1 does not half-close

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        if exc is not None:
            self.error = exc
        _wake(self.read_waiter)
        _wake(self.write_waiter)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        _wake(self.write_waiter)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class _AsyncioStream:
    __slots__ = ("_closed", "_protocol", "_transport")

    def __init__(self, transport: asyncio.Transport, protocol: _Buffered) -> None:
        self._transport = transport
        self._protocol = protocol
        self._closed = False

    async def receive(self) -> bytes:
        protocol = self._protocol
        chunks = protocol.chunks
        if not chunks:
            if not protocol.ended and not self._closed:
                waiter = protocol.read_waiter = protocol.loop.create_future()
                try:
                    await waiter
                finally:
                    protocol.read_waiter = None
            if not chunks:
                self._raise_if_broken()
                return b""
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        protocol.size = 0
        if protocol.reading_paused:
            protocol.reading_paused = False
            self._transport.resume_reading()
        return data

    async def send(self, data: bytes) -> None:
        await anyio.lowlevel.checkpoint_if_cancelled()  # a cancelled caller sends nothing
        protocol = self._protocol
        if protocol.ended or self._transport.is_closing():
            self._raise_if_broken()
            raise anyio.BrokenResourceError("the server closed the connection")
        self._transport.write(data)
        if protocol.writing_paused:  # more than the transport's buffer holds: wait
            waiter = protocol.write_waiter = protocol.loop.create_future()
            try:
                await waiter
            finally:
                protocol.write_waiter = None
            self._raise_if_broken()

    def _raise_if_broken(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        error = self._protocol.error
        if error is not None:
            raise anyio.BrokenResourceError(str(error)) from error

    def quiet(self) -> bool:
        protocol = self._protocol
        return not (protocol.chunks or protocol.ended or self._transport.is_closing())

    async def aclose(self) -> None:
        self._closed = True
        self._transport.abort()
        _wake(self._protocol.read_waiter)
        _wake(self._protocol.write_waiter)
        # abort() closes the socket on the loop's next pass: let it come, as anyio's does
        await anyio.lowlevel.cancel_shielded_checkpoint()


class _AnyioStream:
    __slots__ = ("_socket", "_stream")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream
        self._socket: socket.socket | None = stream.extra(SocketAttribute.raw_socket, None)

    async def receive(self) -> bytes:
        try:
            return await self._stream.receive(_READ_SIZE)
        except anyio.EndOfStream:
            return b""

    async def send(self, data: bytes) -> None:
        await self._stream.send(data)

    def quiet(self) -> bool:
        # anyio reads only when asked: an EOF that came meanwhile shows as "readable"
        sock = self._socket
        if sock is None or sock.fileno() < 0:
            return False
        if not hasattr(select, "poll"):  # Windows
            return not select.select([sock], [], [], 0)[0]
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)

    async def aclose(self) -> None:
        await self._stream.aclose()
