"""A request's head for the client's HTTP/1.1, checked as h11 checks it and encoded once.

Method and header names are tokens; a value has no CR, LF or NUL and no space at either
end; the target is visible ASCII; there is one ``Host`` (sent first); ``Content-Length``
is digits, sent once (``5, 5`` is 5); ``Transfer-Encoding`` is ``chunked`` alone. A
CONNECT is refused: the connection never becomes a tunnel.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

__all__ = ["CHUNKED", "TOKEN", "VALUE", "LocalError", "RequestHead", "comma_values", "one_length"]

TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
VALUE = rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?"
CHUNKED: Final = -1  # a body's framing: chunked, not a length
_NAME_RE = re.compile(TOKEN)
_VALUE_RE = re.compile(VALUE)
_TARGET_RE = re.compile(rb"[\x21-\x7e]+")
_DIGITS_RE = re.compile(rb"[0-9]{1,20}")


class LocalError(Exception):
    """The request cannot be sent as HTTP/1.1 (a header value with a line break, say)."""


class RequestHead(NamedTuple):
    """A request's head, checked and encoded (see :func:`RequestHead.of`)."""

    method: bytes
    data: bytes
    framing: int  # the body's length, or CHUNKED
    keep_alive: bool

    @classmethod
    def of(cls, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> RequestHead:
        """Check and encode a request line and its headers (``Host`` goes first).

        Raises:
            LocalError: a method, target or header HTTP/1.1 does not allow.
        """
        if not _NAME_RE.fullmatch(method):
            raise LocalError(f"Illegal method {method!r}")
        if method == b"CONNECT":  # a tunnel, which this connection never becomes
            raise LocalError("CONNECT is not supported: this transport opens no tunnels")
        if not _TARGET_RE.fullmatch(target):
            raise LocalError(f"Illegal target characters in {target!r}")
        host: list[bytes] = []
        lines: list[bytes] = []
        framing, keep_alive = 0, True
        length: bytes | None = None
        for name, value in headers:
            if not _NAME_RE.fullmatch(name):
                raise LocalError(f"Illegal header name {name!r}")
            if not _VALUE_RE.fullmatch(value):
                raise LocalError(f"Illegal header value {value!r}")
            lower = name.lower()
            if lower == b"host":
                host.append(b"%s: %s\r\n" % (name, value))
                continue
            if lower == b"content-length":  # sent once, as one number (``5, 5`` is 5)
                seen, length = length, one_length(value, length, LocalError)
                if seen is not None:
                    continue
                value = length
                framing = framing if framing == CHUNKED else int(length)
            elif lower == b"transfer-encoding":
                if framing == CHUNKED or value.lower() != b"chunked":
                    raise LocalError("Only one Transfer-Encoding: chunked is supported")
                framing, value = CHUNKED, b"chunked"
            elif lower == b"connection" and b"close" in comma_values(value):
                keep_alive = False
            lines.append(b"%s: %s\r\n" % (name, value))
        if len(host) != 1:
            raise LocalError(
                "Missing mandatory Host: header" if not host else "Found multiple Host: headers"
            )
        data = b"".join([b"%s %s HTTP/1.1\r\n" % (method, target), *host, *lines, b"\r\n"])
        return cls(method, data, framing, keep_alive)


def one_length(value: bytes, seen: bytes | None, error: type[Exception]) -> bytes:
    """A ``Content-Length`` value (``1, 1`` is one), checked against one seen before."""
    lengths = {part.strip() for part in value.split(b",")}
    if len(lengths) != 1 or (seen is not None and seen != next(iter(lengths))):
        raise error("conflicting Content-Length headers")
    length = lengths.pop()
    if not _DIGITS_RE.fullmatch(length):
        raise error("bad Content-Length")
    return length


def comma_values(value: bytes) -> list[bytes]:
    return [part.strip() for part in value.lower().split(b",")]
