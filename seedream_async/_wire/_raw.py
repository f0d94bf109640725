"""The raw answers behind predictions: status, headers and body of the last API answer
about each one, for debugging and for support tickets (the ``X-Request-ID`` header)."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from .._base._exceptions import scrub

__all__ = ["RawResponse", "RawResponses"]

# Answers kept, most recent predictions first; older ones are forgotten.
_KEEP = 1024
# Bodies larger than this (base64 outputs) are kept only up to it.
_MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class RawResponse:
    """One API answer as it came: what :meth:`AsyncSeedream.last_response` returns.

    Attributes:
        status_code: the HTTP status.
        headers: the response headers (httpx's case-insensitive mapping).
        content: the body's bytes (at most 64 KiB of it: see ``truncated``).
        truncated: the body was longer (base64 outputs) and ``content`` is its start.
        operation: ``"submit"`` or ``"poll"``.
        url: the request's URL.
    """

    status_code: int
    headers: httpx.Headers
    content: bytes
    truncated: bool
    operation: str
    url: str

    @property
    def request_id(self) -> str | None:
        """The server's ``X-Request-ID`` for this answer: quote it to Atlas Cloud's support."""
        value: str | None = self.headers.get("x-request-id")
        return value

    @property
    def text(self) -> str:
        """The body as text."""
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` when it is not, or was truncated)."""
        return json.loads(self.content)

    def __repr__(self) -> str:
        return f"<RawResponse {self.operation} HTTP {self.status_code} {self.url}>"


class RawResponses:
    """The last answer per prediction id, for the most recent ``keep`` predictions."""

    def __init__(self, keep: int = _KEEP) -> None:
        self._keep = keep
        self._by_id: OrderedDict[str, RawResponse] = OrderedDict()

    def record(
        self,
        prediction_id: str,
        response: httpx.Response,
        *,
        operation: str,
        secrets: Sequence[str] = (),
    ) -> None:
        """Keep ``response`` (its body read) as the last answer about ``prediction_id``,
        with ``secrets`` (the API key) and bearer tokens a careless server echoed masked."""
        whole = response.content
        content = scrub(whole[:_MAX_BODY].decode("utf-8", errors="replace"), secrets).encode()
        self._by_id[prediction_id] = RawResponse(
            status_code=response.status_code,
            headers=httpx.Headers(response.headers),
            content=content,
            truncated=len(whole) > _MAX_BODY,
            operation=operation,
            url=_url(response),
        )
        self._by_id.move_to_end(prediction_id)
        while len(self._by_id) > self._keep:
            self._by_id.popitem(last=False)

    def get(self, prediction_id: str) -> RawResponse | None:
        """The last answer about ``prediction_id``, or None if none is kept."""
        return self._by_id.get(prediction_id)


def _url(response: httpx.Response) -> str:
    try:
        return str(response.request.url)
    except RuntimeError:  # a response made without a request
        return ""
