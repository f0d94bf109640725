"""Reading what a server sends, within bounds: a size cap, an overall deadline, one origin.

A per-read timeout does not bound a request: a server trickling a byte a second never lets
it fire. And a body has no natural size limit: a 100 MB "poll answer" is parsed whole. So
every request the library sends is read through :func:`bounded`, which gives the whole
exchange (connect, send, headers, body) one deadline, and :func:`read_capped`, which stops
reading at a cap (checking ``Content-Length`` first, then counting what arrives).
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from types import TracebackType

import httpx

from .._base._exceptions import MalformedResponse
from ._connection import step_timeout
from ._deadline import Steps, Within

__all__ = ["bounded", "encoded", "read_capped", "same_origin", "timed_out", "too_large"]


def bounded(request: httpx.Request, seconds: float | None) -> _Bounded:
    """Give everything inside (``async with``) one deadline; past it, raise
    ``httpx.ReadTimeout``.

    A timeout, not a new kind of error: the retry driver already knows what a timeout
    means (a poll is sent again; a submit that may have arrived is ambiguous).

    Args:
        request: the request, for the timeout's message and its retry bookkeeping.
        seconds: the deadline; None for none.
    """
    return _Bounded(request, seconds)


class _Bounded:
    """:func:`bounded`'s context: a plain class over :class:`Within` rather than
    ``anyio.fail_after`` in a generator (every request goes through it)."""

    __slots__ = ("_request", "_seconds", "_within")

    def __init__(self, request: httpx.Request, seconds: float | None) -> None:
        self._request = request
        self._seconds = seconds
        self._within = Within(seconds)

    async def __aenter__(self) -> None:
        self._within.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._within.__exit__(exc_type, exc, tb)
        except TimeoutError:
            raise _overall(self._request, self._seconds) from None


def timed_out(request: httpx.Request, steps: Steps) -> httpx.TimeoutException:
    """The error for an exchange that ``steps`` (its overall deadline, and the write and
    read timeouts of its steps) ended: the overall deadline's, as :func:`bounded` raises
    it, when that had passed; else the step's, as the connection raises it."""
    if steps.overall or not steps.name:
        return _overall(request, steps.limit)
    return step_timeout(steps.name, steps.seconds, request)


def _overall(request: httpx.Request, seconds: float | None) -> httpx.ReadTimeout:
    url = request.url.copy_with(query=None)
    return httpx.ReadTimeout(
        f"no complete answer from {url} within {seconds:g}s (overall request deadline)",
        request=request,
    )


async def read_capped(response: httpx.Response, *, limit: int, what: str) -> bytes:
    """Read a streamed response's body, refusing more than ``limit`` bytes.

    Args:
        response: a response opened with ``stream=True``; it is closed on return.
        limit: the most bytes accepted.
        what: names the request in the error ("poll of pred_1").

    Raises:
        MalformedResponse: the body is (or claims to be) larger than ``limit``.
    """
    try:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            detail = f"{int(declared):,} bytes declared"
            raise too_large(what, limit, detail, response.status_code)
        chunks: list[bytes] = []
        size = 0
        async for chunk in _body(response):
            size += len(chunk)
            if size > limit:
                raise too_large(what, limit, "more arrived", response.status_code)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        await response.aclose()


def _body(response: httpx.Response) -> AsyncIterable[bytes]:
    """The body's chunks, decoded: straight from the stream when it is not encoded
    (httpx's ``aiter_bytes`` layers, decoder and chunker, are then a no-op that still
    costs a tenth of a small answer's CPU)."""
    stream = response.stream
    if encoded(response.headers) or not isinstance(stream, httpx.AsyncByteStream):
        return response.aiter_bytes()
    return stream


def encoded(headers: httpx.Headers) -> bool:
    """Whether a body with ``headers`` is content-encoded (gzip, deflate...), so httpx's
    decoders must read it."""
    return headers.get("content-encoding", "identity").strip().lower() not in ("", "identity")


def too_large(what: str, limit: int, detail: str, status_code: int) -> MalformedResponse:
    """The error for an answer over the ``limit``-byte cap (``detail``: declared or came)."""
    return MalformedResponse(
        f"{what}: the answer is larger than the {limit:,}-byte cap ({detail}); not read",
        status_code=status_code,
    )


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    """True when ``a`` and ``b`` have the same scheme, host and port (RFC 6454)."""
    return (a.scheme, a.host, a.port or _default_port(a)) == (
        b.scheme,
        b.host,
        b.port or _default_port(b),
    )


def _default_port(url: httpx.URL) -> int | None:
    return {"http": 80, "https": 443}.get(url.scheme)
