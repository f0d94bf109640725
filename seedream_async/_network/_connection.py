"""One HTTP/1.1 connection: the client's HTTP/1.1 (``_http11``) over a byte stream, errors
as httpx's.

Every failure leaves as the httpx exception httpx's own transport raises for it, with the
request attached: the client's retry and ambiguity rules (``_driver``) read only those.
"""

from __future__ import annotations

import ssl
from contextlib import suppress

import anyio
import httpx

from ._deadline import Steps, Within
from ._http11 import END, Broken, ClientConnection, Closed, LocalError, RequestHead, ResponseHead
from ._stream import Stream, open_stream

__all__ = ["Connection", "Origin", "connect", "request_head", "step_timeout"]

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


def request_head(request: httpx.Request) -> RequestHead:
    """``request``'s method, target and headers, checked and encoded.

    Raises:
        httpx.LocalProtocolError: what HTTP/1.1 does not allow (a CR or LF in a header
            value, say).
    """
    try:
        return RequestHead.of(
            request.method.encode("ascii"), request.url.raw_path, request.headers.raw
        )
    except (LocalError, UnicodeEncodeError) as err:
        raise httpx.LocalProtocolError(str(err), request=request) from err


class Connection:
    """An open connection: send one request, read its response, then maybe another."""

    def __init__(self, origin: Origin, stream: Stream) -> None:
        self.origin = origin
        self.idle_since = 0.0
        self._stream = stream
        self._http = ClientConnection()
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
        return self._http.next_cycle()

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            with suppress(*_BROKEN):
                await self._stream.aclose()

    async def exchange(
        self,
        request: httpx.Request,
        head: RequestHead,
        write_timeout: float | None,
        read_timeout: float | None,
    ) -> ResponseHead:
        """Send ``request`` (``head``: its :func:`request_head`) and read its response's head
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
        self, request: httpx.Request, head: RequestHead, within: float | None
    ) -> None:
        # The body goes out in as few writes as it can (a multipart upload streams six or
        # seven small pieces): joined up to _FLUSH_AT bytes, then written with the head.
        try:
            first = self._http.head(head)
        except LocalError as err:
            raise httpx.LocalProtocolError(str(err), request=request) from err
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
        try:
            data = self._http.data(body) if body else b""
            end = self._http.end() if last else b""
        except LocalError as err:
            raise httpx.LocalProtocolError(str(err), request=request) from err
        await self._send(head + data + end if data or end else head, within, request)

    async def _send(self, data: bytes, within: float | None, request: httpx.Request) -> None:
        try:
            with self._step("write", within):
                await self._stream.send(data)
        except TimeoutError:
            raise step_timeout("write", within, request) from None
        except _BROKEN as err:
            message = f"connection broke while sending: {err}"
            raise httpx.WriteError(message, request=request) from err

    async def _head(self, request: httpx.Request) -> ResponseHead:
        http = self._http
        while True:
            try:
                head = http.next_head()
            except Broken as err:
                raise _remote_error(err, request) from err
            if head is not None:
                return head
            http.receive(await self._receive(request))

    async def next_chunk(self, request: httpx.Request) -> bytes | None:
        """The response body's next bytes, or None at its end."""
        http = self._http
        while True:
            try:
                data = http.next_data()
            except Broken as err:
                raise _remote_error(err, request) from err
            if data is END or data:
                return data
            http.receive(await self._receive(request))

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


def step_timeout(
    name: str, seconds: float | None, request: httpx.Request
) -> httpx.TimeoutException:
    """The error for a ``write`` or ``read`` step that took more than ``seconds``."""
    if name == "write":
        return httpx.WriteTimeout(f"request not sent within {seconds} s", request=request)
    return httpx.ReadTimeout(f"no answer within {seconds} s", request=request)


def _remote_error(err: Broken, request: httpx.Request) -> httpx.RemoteProtocolError:
    if isinstance(err, Closed):
        message = "Server disconnected without sending a complete response."
    else:
        message = f"the server broke HTTP/1.1: {err}"
    return httpx.RemoteProtocolError(message, request=request)
