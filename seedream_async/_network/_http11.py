"""HTTP/1.1 for the client's connections: a request's bytes out, its response read back.

h11, the engine httpcore uses, carried the client's connections until it was a fifth of the
client's CPU on a catalog (``benchmarks/README.md``, sixth pass): an event object, a state
machine pass and a header re-validation per event, three or four events a response. This
is the client half only, with h11's rules, which it was checked against
(``tests/test_http11.py`` feeds both the same bytes, cut at every point):

* a request's head is checked and encoded once (``_request_head``), so a poll sent again
  costs nothing to build;
* a response's head is read when whole (up to :data:`MAX_HEAD` bytes; CRLF or bare LF
  line ends, folded lines unfolded), its body framed as RFC 9112 6.3 says (none after
  a HEAD or for 204 and 304, chunked, ``Content-Length``, or up to the close), and 1xx
  answers are skipped;
* a connection is reused only when both messages ended, neither side asked to close,
  the answer was HTTP/1.1 or later, and nothing arrived past the answer's end (h11
  would read such bytes as the next answer).

Errors: :class:`LocalError` for a request that cannot be sent as is, :class:`Broken` for
a server that broke the protocol, :class:`Closed` (a :class:`Broken`) for one that hung up
before its answer was whole.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from ._request_head import CHUNKED, TOKEN, VALUE, LocalError, RequestHead, comma_values, one_length

__all__ = [
    "END",
    "MAX_HEAD",
    "NEED_DATA",
    "Broken",
    "ClientConnection",
    "Closed",
    "LocalError",
    "RequestHead",
    "ResponseHead",
]

MAX_HEAD: Final = 16_384  # h11's default cap on a head in the making
NEED_DATA: Final = b""  # next_data(): nothing to hand out until more bytes arrive
END: Final = None  # next_data(): the body has ended

_FIELD_RE = re.compile(rb"(" + TOKEN + rb"):[ \t]*(" + VALUE + rb")[ \t]*")
_STATUS_RE = re.compile(rb"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: ((?:[ \t]|[^\x00\s])*))?")
_CHUNK_RE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*")
_HEAD_END_RE = re.compile(rb"\r?\n\r?\n")
_LINE_RE = re.compile(rb"\r?\n")
_FOLD_RE = re.compile(rb"[ \t]+")

# How a response body is framed: its length, CHUNKED, or this.
_UNTIL_CLOSE: Final = -2


class Broken(Exception):
    """The server broke HTTP/1.1."""


class Closed(Broken):
    """The server closed the connection before its answer was whole."""


class ResponseHead(NamedTuple):
    """A response's status line and headers (names lowercased, values as sent)."""

    status_code: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    http_version: bytes


class ClientConnection:
    """One connection's HTTP/1.1, one request and response at a time.

    Send :meth:`head`, then :meth:`data` and :meth:`end` as the body goes; feed what
    arrives to :meth:`receive` (``b""`` at EOF) and read :meth:`next_head`, then
    :meth:`next_data` until :data:`END`. :meth:`next_cycle` readies the next request.
    """

    __slots__ = (
        "_buf",
        "_eof",
        "_framing",
        "_keep_alive",
        "_left",
        "_method",
        "_received",
        "_scan",
        "_sent",
        "_to_send",
    )

    def __init__(self) -> None:
        self._buf = bytearray()
        self._eof = False
        self._scan = 0  # where the search for a head's end resumes
        self._reset()

    def _reset(self) -> None:
        self._method = b""
        self._to_send = 0  # body bytes still to send (framed by length), or CHUNKED
        self._sent = False  # the request ended
        self._keep_alive = True
        self._framing = 0  # the response body's framing, once its head is read
        self._left = 0  # its bytes still to read (by length), or in the current chunk
        self._received = False  # the response ended

    # The request.

    def head(self, head: RequestHead) -> bytes:
        """The bytes of a request's head (its body follows through :meth:`data`)."""
        if self._method:
            raise LocalError("a request is already under way on this connection")
        self._method = head.method
        self._to_send = head.framing
        self._keep_alive = head.keep_alive
        return head.data

    def data(self, data: bytes) -> bytes:
        """The bytes that carry ``data`` of the body.

        Raises:
            LocalError: more than the declared ``Content-Length``.
        """
        if self._to_send == CHUNKED:
            return b"%x\r\n%s\r\n" % (len(data), data) if data else b""
        if len(data) > self._to_send:
            raise LocalError("Too much data for declared Content-Length")
        self._to_send -= len(data)
        return data

    def end(self) -> bytes:
        """The bytes that end the request.

        Raises:
            LocalError: less than the declared ``Content-Length`` was sent.
        """
        if self._to_send > 0:
            raise LocalError("Too little data for declared Content-Length")
        self._sent = True
        return b"0\r\n\r\n" if self._to_send == CHUNKED else b""

    # The response.

    def receive(self, data: bytes) -> None:
        """What arrived; ``b""``: the server's EOF."""
        if data:
            self._buf += data
        else:
            self._eof = True

    def next_head(self) -> ResponseHead | None:
        """The response's head, 1xx answers skipped; None until more bytes arrive.

        Raises:
            Closed: EOF before the head was whole.
            Broken: a head HTTP/1.1 does not allow, or one over :data:`MAX_HEAD` bytes.
        """
        while True:
            block = self._block()
            if block is None:
                if self._eof:
                    raise Closed("peer unexpectedly closed connection")
                return None
            parsed = _parse_head(block)
            code = parsed.head.status_code
            if code >= 200:
                break
            if code < 100:
                raise Broken(f"status code {code} is not HTTP's (100 to 599)")
            if code == 101:
                raise Broken("switched protocols (101) without being asked to")
        self._framing = _framing(self._method, parsed)
        self._left = max(self._framing, 0)
        if self._framing == _UNTIL_CLOSE or parsed.close or parsed.head.http_version < b"1.1":
            self._keep_alive = False
        return parsed.head

    def _block(self) -> bytes | None:
        """The bytes up to the next blank line, taken from the buffer with it; None until
        it arrives (the search resumes where the last one stopped).

        Raises:
            Broken: over :data:`MAX_HEAD` bytes and still no blank line.
        """
        buf = self._buf
        found = _HEAD_END_RE.search(buf, self._scan)
        if found is None:
            if len(buf) > MAX_HEAD:
                raise Broken("Receive buffer too long")
            self._scan = max(0, len(buf) - 3)  # a blank line may have begun in the last 3
            return None
        self._scan = 0
        block = bytes(buf[: found.start()])
        del buf[: found.end()]
        return block

    def next_data(self) -> bytes | None:
        """The body's next bytes; :data:`NEED_DATA` until more arrive; :data:`END` at its
        end.

        Raises:
            Broken: a malformed chunk, or EOF before the body's end (as :class:`Broken`,
                not :class:`Closed`: the head arrived).
        """
        if self._received:
            return END
        framing = self._framing
        if framing >= 0:
            return self._by_length()
        if framing == _UNTIL_CLOSE:
            return self._until_close()
        return self._chunk()

    def _by_length(self) -> bytes | None:
        buf = self._buf
        if not self._left:
            self._received = True
            return END
        if not buf:
            if self._eof:
                got = self._framing - self._left
                raise Broken(
                    "peer closed connection without sending complete message body "
                    f"(received {got} bytes, expected {self._framing})"
                )
            return NEED_DATA
        take = min(self._left, len(buf))
        data = bytes(buf[:take])
        del buf[:take]
        self._left -= take
        return data

    def _until_close(self) -> bytes | None:
        buf = self._buf
        if buf:
            data = bytes(buf)
            buf.clear()
            return data
        if self._eof:
            self._received = True
            return END
        return NEED_DATA

    def _chunk(self) -> bytes | None:
        buf = self._buf
        while True:
            if self._left > 0:  # inside a chunk's data
                if not buf:
                    return self._short()
                take = min(self._left, len(buf))
                data = bytes(buf[:take])
                del buf[:take]
                self._left -= take
                if not self._left:
                    self._left = -2  # its CRLF is next
                return data
            if self._left == -2:  # a chunk's data ends with CRLF
                if len(buf) < 2:
                    if buf and buf[:1] != b"\r":
                        raise Broken(f"malformed chunk footer: {bytes(buf)!r} (expected b'\\r\\n')")
                    return self._short()
                if buf[:2] != b"\r\n":
                    raise Broken(f"malformed chunk footer: {bytes(buf[:2])!r} (expected b'\\r\\n')")
                del buf[:2]
                self._left = 0
            if self._left == 0:  # a chunk's size line is next
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise Broken("Receive buffer too long")
                    return self._short()
                line = bytes(buf[:end])
                del buf[: end + 2]
                match = _CHUNK_RE.fullmatch(line)
                if match is None:
                    raise Broken(f"illegal chunk header: {line!r}")
                self._left = int(match[1], 16) or -1  # -1: the last chunk, trailers next
            if self._left == -1:
                return self._trailers()

    def _trailers(self) -> bytes | None:
        buf = self._buf
        if buf[:2] == b"\r\n" or buf[:1] == b"\n":  # none
            del buf[: 2 if buf[:1] == b"\r" else 1]
        else:
            block = self._block()
            if block is None:
                return self._short()
            _fields(_LINE_RE.split(block))  # checked, not kept
        self._received = True
        return END

    def _short(self) -> bytes:
        if self._eof:
            raise Broken(
                "peer closed connection without sending complete message body "
                "(incomplete chunked read)"
            )
        return NEED_DATA

    def next_cycle(self) -> bool:
        """Ready the connection for another request: False when it must be closed
        instead (the exchange did not end, either side asked to close, or bytes arrived
        past the answer)."""
        if not (self._sent and self._received and self._keep_alive) or self._buf or self._eof:
            return False
        self._reset()
        return True


class _Parsed(NamedTuple):
    head: ResponseHead
    length: int | None  # its Content-Length
    chunked: bool
    close: bool  # it asked to close the connection


def _parse_head(block: bytes) -> _Parsed:
    lines = _LINE_RE.split(block)
    status = _STATUS_RE.fullmatch(lines[0])
    if status is None:
        raise Broken(f"illegal status line: {lines[0]!r}")
    version, code, reason = status.groups()
    fields, length, chunked, close = _fields(lines[1:])
    head = ResponseHead(int(code), reason or b"", fields, version)
    return _Parsed(head, None if length is None else int(length), chunked, close)


def _fields(lines: list[bytes]) -> tuple[list[tuple[bytes, bytes]], bytes | None, bool, bool]:
    """Header lines as (lowercased name, value) pairs, checked as h11 checks them; with
    the ``Content-Length``, whether the body is chunked, and whether ``Connection`` says
    close."""
    if any(line[:1] in (b" ", b"\t") for line in lines):
        lines = _unfold(lines)
    fields: list[tuple[bytes, bytes]] = []
    length: bytes | None = None
    chunked = close = False
    for line in lines:
        match = _FIELD_RE.fullmatch(line)
        if match is None:
            raise Broken(f"illegal header line: {line!r}")
        name, value = match[1].lower(), match[2]
        if name == b"content-length":
            seen, length = length, one_length(value, length, Broken)
            if seen is None:
                fields.append((name, length))
            continue
        if name == b"transfer-encoding":
            if chunked:
                raise Broken("multiple Transfer-Encoding headers")
            value = value.lower()
            if value != b"chunked":
                raise Broken("Only Transfer-Encoding: chunked is supported")
            chunked = True
        elif name == b"connection" and b"close" in comma_values(value):
            close = True
        fields.append((name, value))
    return fields, length, chunked, close


def _unfold(lines: list[bytes]) -> list[bytes]:
    """Obsolete line folding: a line that starts with a space or tab continues the last."""
    out: list[bytes] = []
    for line in lines:
        fold = _FOLD_RE.match(line)
        if fold is None:
            out.append(line)
        elif not out:
            raise Broken("continuation line at start of headers")
        else:
            out[-1] += b" " + line[fold.end() :]
    return out


def _framing(method: bytes, parsed: _Parsed) -> int:
    """The body's framing (RFC 9112 6.3): its length, CHUNKED or _UNTIL_CLOSE."""
    if parsed.head.status_code in (204, 304) or method == b"HEAD":
        return 0
    if parsed.chunked:
        return CHUNKED  # beats Content-Length
    return _UNTIL_CLOSE if parsed.length is None else parsed.length
