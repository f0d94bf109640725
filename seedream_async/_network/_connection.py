"""One HTTP/1.1 connection: h11's state machine over a byte stream, errors as httpx's.

Every failure leaves as the httpx exception httpx's own transport raises for it, with the
request attached: the client's retry and ambiguity rules (``_driver``) read only those.
"""

from __future__ import annotations

import ssl
from contextlib import suppress

import anyio
import h11
import httpx

from ._deadline import Steps, Within
from ._stream import Stream, open_stream

__all__ = ["Connection", "Origin", "connect", "h11_head", "step_timeout"]

Origin = tuple[str, str, int]

_FLUSH_AT = 65_536
_BROKEN = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError)


async def connect(
    origin: Origin, tls: ssl.SSLContext | None, within: float | None, request: httpx.Request
) -> Connection:
    """A new connection to ``origin`` (TLS when ``tls`` is given).

    Raises:
        httpx.ConnectTimeout: not connected within ``within`` seconds.
        httpx.ConnectError: refused, unreachable, or the TLS handshake failed.
    """
    _, host, port = origin
    try:
        with Within(within):
            stream = await open_stream(host, port, tls)
    except TimeoutError:
        message = f"no connection to {host}:{port} within {within} s"
        raise httpx.ConnectTimeout(message, request=request) from None
    except _BROKEN as err:
        message = f"cannot connect to {host}:{port}: {err}"
        raise httpx.ConnectError(message, request=request) from err
    return Connection(origin, stream)


def h11_head(request: httpx.Request) -> h11.Request:
    """``request``'s method, target and headers as h11's event (which checks them).

    Raises:
        httpx.LocalProtocolError: a header h11 refuses (a CR or LF in a value, say).
    """
    try:
        return h11.Request(
            method=request.method, target=request.url.raw_path, headers=request.headers.raw
        )
    except h11.LocalProtocolError as err:
        raise httpx.LocalProtocolError(str(err), request=request) from err


class Connection:
    """An open connection: send one request, read its response, then maybe another."""

    def __init__(self, origin: Origin, stream: Stream) -> None:
        self.origin = origin
        self.idle_since = 0.0
        self._stream = stream
        self._h11 = h11.Connection(h11.CLIENT)
        self._read_timeout: float | None = None
        self.steps: Steps | None = None
        """Set while a caller bounds the whole exchange with one :class:`Steps`: the send
        and each read then move its deadline instead of entering a scope of their own,
        and a timeout is the caller's to name."""

    def reusable(self) -> bool:
        """Whether an idle connection can carry another request: still open, with
        nothing to read (a server that closed it has sent its EOF)."""
        return self._stream.quiet()

    def next_cycle(self) -> bool:
        """Ready the connection for its next request; False when it must be closed (the
        response was not read to its end, or either side asked to close)."""
        conn = self._h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            return True
        return False

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            with suppress(*_BROKEN):
                await self._stream.aclose()

    async def exchange(
        self,
        request: httpx.Request,
        head: h11.Request,
        write_timeout: float | None,
        read_timeout: float | None,
    ) -> h11.Response:
        """Send ``request`` (``head``: its :func:`h11_head`) and read its response's head
        (1xx answers skipped).

        A server may answer and close before the whole body is sent (a 413, say): a write
        error is then held back and the answer read instead, as httpx's transport does.
        """
        self._read_timeout = read_timeout
        try:
            await self._send_request(request, head, write_timeout)
        except httpx.WriteError as err:
            # That answer's read has its own timeout (under ``steps`` too: only the overall
            # deadline stays shared), so a read that fails leaves the write error standing.
            steps, self.steps = self.steps, None
            if steps is not None:
                steps.step("answer", None)
            try:
                return await self._head(request)
            except httpx.TransportError:
                raise err from None
            finally:
                self.steps = steps
        return await self._head(request)

    async def _send_request(
        self, request: httpx.Request, head: h11.Request, within: float | None
    ) -> None:
        # The body goes out as few h11 events as it can (a multipart upload streams six or
        # seven small pieces): joined up to _FLUSH_AT bytes, then written with the head.
        first = self._encode(head, request)
        stream = request.stream
        if isinstance(stream, httpx.ByteStream):  # a body httpx holds whole (a poll, a JSON
            # submit): its one chunk read without a coroutine for asyncio to track
            await self._flush(first, b"".join(stream), True, within, request)
            return
        assert isinstance(stream, httpx.AsyncByteStream)
        pending: list[bytes] = []
        size = 0
        async for chunk in stream:
            if chunk:
                pending.append(chunk)
                size += len(chunk)
                if size >= _FLUSH_AT:
                    await self._flush(first, b"".join(pending), False, within, request)
                    first, pending, size = b"", [], 0
        await self._flush(first, b"".join(pending), True, within, request)

    async def _flush(
        self, head: bytes, body: bytes, last: bool, within: float | None, request: httpx.Request
    ) -> None:
        parts = [head]
        if body:
            parts.append(self._encode(h11.Data(data=body), request))
        if last:
            parts.append(self._encode(_END, request))
        await self._send(b"".join(parts), within, request)

    def _encode(self, event: h11.Event, request: httpx.Request) -> bytes:
        try:
            return self._h11.send(event) or b""
        except h11.LocalProtocolError as err:
            raise httpx.LocalProtocolError(str(err), request=request) from err

    async def _send(self, data: bytes, within: float | None, request: httpx.Request) -> None:
        try:
            with self._step("write", within):
                await self._stream.send(data)
        except TimeoutError:
            raise step_timeout("write", within, request) from None
        except _BROKEN as err:
            message = f"connection broke while sending: {err}"
            raise httpx.WriteError(message, request=request) from err

    async def _head(self, request: httpx.Request) -> h11.Response:
        while True:
            event = await self._next_event(request)
            if isinstance(event, h11.Response):
                return event

    async def next_chunk(self, request: httpx.Request) -> bytes | None:
        """The response body's next bytes, or None at its end."""
        while True:
            event = await self._next_event(request)
            if isinstance(event, h11.Data):
                if event.data:
                    return bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return None

    async def _next_event(self, request: httpx.Request) -> h11.Event:
        conn = self._h11
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as err:
                raise httpx.RemoteProtocolError(_protocol_message(err), request=request) from err
            if event is h11.NEED_DATA:
                conn.receive_data(await self._receive(request))
            elif event is h11.PAUSED:  # only after a whole response, which ends the reads
                raise httpx.RemoteProtocolError("read past the response's end", request=request)
            else:
                assert isinstance(event, h11.Event)
                return event

    def _step(self, name: str, seconds: float | None) -> Within:
        """The bound on one step: its own scope, or (under :attr:`steps`) none, the
        shared scope's deadline moved."""
        steps = self.steps
        if steps is None:
            return Within(seconds)
        steps.step(name, seconds)
        return _UNBOUNDED

    async def _receive(self, request: httpx.Request) -> bytes:
        timeout = self._read_timeout
        try:
            with self._step("read", timeout):
                return await self._stream.receive()
        except TimeoutError:
            raise step_timeout("read", timeout, request) from None
        except _BROKEN as err:
            message = f"connection broke while reading: {err}"
            raise httpx.ReadError(message, request=request) from err


_UNBOUNDED = Within(None)
_END = h11.EndOfMessage()  # an event is immutable: one for every request


def step_timeout(
    name: str, seconds: float | None, request: httpx.Request
) -> httpx.TimeoutException:
    """The error for a ``write`` or ``read`` step that took more than ``seconds``."""
    if name == "write":
        return httpx.WriteTimeout(f"request not sent within {seconds} s", request=request)
    return httpx.ReadTimeout(f"no answer within {seconds} s", request=request)


def _protocol_message(err: h11.RemoteProtocolError) -> str:
    text = str(err)
    if "ConnectionClosed" in text or "peer unexpectedly closed" in text:
        return "Server disconnected without sending a complete response."
    return f"the server broke HTTP/1.1: {text}"
