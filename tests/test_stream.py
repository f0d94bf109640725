"""A connection's byte stream (``_network/_stream``), on both backends: asyncio's kept-reading
protocol and anyio's stream must keep the same promises (whole bytes in order, back-pressure
both ways, EOF seen on an idle connection, nothing sent once cancelled, close wakes a
reader)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest
from _helpers import Handler, guarded

from seedream_async._network._stream import Stream, open_stream

pytestmark = pytest.mark.anyio

_MB = 1 << 20


@asynccontextmanager
async def _connected(handler: Handler) -> AsyncIterator[Stream]:
    """A stream to a server on 127.0.0.1 that runs ``handler`` on its one connection."""
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)

    async with tcp, anyio.create_task_group() as group:
        group.start_soon(tcp.serve, guarded(handler))
        stream = await open_stream("127.0.0.1", port, None)
        try:
            yield stream
        finally:
            await stream.aclose()
            group.cancel_scope.cancel()


def _pattern(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


async def _read_all(stream: Stream) -> bytes:
    parts = []
    while chunk := await stream.receive():
        parts.append(chunk)
    return b"".join(parts)


async def _no_longer_quiet(stream: Stream) -> None:
    """Wait (5 s at most) for what the peer did to show: quiet() is a snapshot, not an event."""
    for _ in range(500):
        if not stream.quiet():
            return
        await anyio.sleep(0.01)
    raise AssertionError("the stream is still quiet 5 s after the peer acted")


async def test_an_answer_larger_than_the_buffer_arrives_whole_and_in_order() -> None:
    """4 MiB left unread for a while (past the buffer's bound: reading pauses) is read back
    byte for byte, then EOF as b"" and the stream no longer quiet."""
    body = _pattern(4 * _MB)

    async def send_and_close(peer: anyio.abc.ByteStream) -> None:
        await peer.send(body)

    async with _connected(send_and_close) as stream:
        await anyio.sleep(0.3)  # the server writes what the buffers take meanwhile
        with anyio.fail_after(10):  # a reader that never resumed would hang here
            assert await _read_all(stream) == body
        assert await stream.receive() == b""
        assert not stream.quiet()


async def test_a_send_larger_than_the_buffers_waits_for_the_reader() -> None:
    """8 MiB sent to a server that reads only after a pause: the send waits (back-pressure)
    and every byte arrives in order."""
    body = _pattern(8 * _MB)
    got = bytearray()
    done = anyio.Event()

    async def slow_reader(peer: anyio.abc.ByteStream) -> None:
        await anyio.sleep(0.3)
        while len(got) < len(body):
            got.extend(await peer.receive())
        done.set()

    async with _connected(slow_reader) as stream:
        await stream.send(body)
        with anyio.fail_after(10):
            await done.wait()
    assert bytes(got) == body


async def test_a_cancelled_caller_sends_nothing() -> None:
    """A send inside a cancelled scope raises the cancellation before writing: the server
    sees the connection end with no byte sent (a submit cancelled is never billed)."""
    seen = bytearray()
    ended = anyio.Event()

    async def record(peer: anyio.abc.ByteStream) -> None:
        try:
            while True:
                seen.extend(await peer.receive())
        finally:
            ended.set()

    async with _connected(record) as stream:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await stream.send(b"POST /billable HTTP/1.1\r\n\r\n")
        assert scope.cancelled_caught
        await stream.aclose()
        with anyio.fail_after(5):
            await ended.wait()
    assert bytes(seen) == b""


async def test_an_idle_stream_the_server_closed_is_no_longer_quiet() -> None:
    """Quiet while the server keeps the connection; once it closes, not quiet (so never
    reused) and reads end at once."""
    close_now = anyio.Event()

    async def close_when_told(peer: anyio.abc.ByteStream) -> None:
        await close_now.wait()

    async with _connected(close_when_told) as stream:
        await anyio.sleep(0.05)
        assert stream.quiet()
        close_now.set()
        await _no_longer_quiet(stream)
        assert await stream.receive() == b""


async def test_an_idle_stream_sent_something_unasked_is_not_quiet() -> None:
    async def chatter(peer: anyio.abc.ByteStream) -> None:
        await peer.send(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        await anyio.sleep(10)

    async with _connected(chatter) as stream:
        await _no_longer_quiet(stream)
        assert (await stream.receive()).startswith(b"HTTP/1.1 408")


async def test_closing_wakes_a_waiting_reader_with_closed_resource() -> None:
    async def silent(peer: anyio.abc.ByteStream) -> None:
        await anyio.sleep(10)

    async with _connected(silent) as stream:
        failures: list[BaseException] = []

        async def reader() -> None:
            try:
                await stream.receive()
            except anyio.ClosedResourceError as err:
                failures.append(err)

        async with anyio.create_task_group() as group:
            group.start_soon(reader)
            await anyio.sleep(0.05)
            await stream.aclose()
        assert len(failures) == 1
        with pytest.raises(anyio.ClosedResourceError):
            await stream.send(b"x")


class _Hidden(anyio.abc.ByteStream):
    """anyio's stream with its socket hidden, as a loop whose transports keep theirs."""

    def __init__(self, inner: anyio.abc.ByteStream) -> None:
        self.inner = inner

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_loop_that_keeps_its_sockets_gets_anyio_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a socket to move (uvloop's transports, say), the connection keeps anyio's
    stream and still carries bytes both ways."""
    connect = anyio.connect_tcp

    async def hiding(host: str, port: int) -> anyio.abc.ByteStream:
        return _Hidden(await connect(host, port))

    monkeypatch.setattr(anyio, "connect_tcp", hiding)

    async def echo(peer: anyio.abc.ByteStream) -> None:
        await peer.send(await peer.receive())

    async with _connected(echo) as stream:
        assert type(stream).__name__ == "_AnyioStream"
        await stream.send(b"ping")
        assert await stream.receive() == b"ping"
