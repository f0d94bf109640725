"""Reading what a server sends, within bounds: a size cap, an overall deadline, one origin.

A per-read timeout does not bound a request: a server trickling a byte a second never lets
it fire. And a body has no natural size limit: a 100 MB "poll answer" is parsed whole. So
every request the library sends is read through :func:`bounded`, which gives the whole
exchange (connect, send, headers, body) one deadline, and :func:`read_capped`, which stops
reading at a cap (checking ``Content-Length`` first, then counting what arrives).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx

from .._base._exceptions import MalformedResponse

__all__ = ["bounded", "read_capped", "same_origin"]


@asynccontextmanager
async def bounded(request: httpx.Request, seconds: float | None) -> AsyncIterator[None]:
    """Give everything inside one deadline; past it, raise ``httpx.ReadTimeout``.

    A timeout, not a new kind of error: the retry driver already knows what a timeout
    means (a poll is sent again; a submit that may have arrived is ambiguous).

    Args:
        request: the request, for the timeout's message and its retry bookkeeping.
        seconds: the deadline; None for none.
    """
    if seconds is None:
        yield
        return
    try:
        with anyio.fail_after(seconds):
            yield
    except TimeoutError:
        url = request.url.copy_with(query=None)
        raise httpx.ReadTimeout(
            f"no complete answer from {url} within {seconds:g}s (overall request deadline)",
            request=request,
        ) from None


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
            raise _too_large(response, what, limit, f"{int(declared):,} bytes declared")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise _too_large(response, what, limit, "more arrived")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        await response.aclose()


def _too_large(response: httpx.Response, what: str, limit: int, detail: str) -> MalformedResponse:
    return MalformedResponse(
        f"{what}: the answer is larger than the {limit:,}-byte cap ({detail}); not read",
        status_code=response.status_code,
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
