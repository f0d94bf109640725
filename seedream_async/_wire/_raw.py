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
    """The last answer per prediction id, for the most recent ``keep`` predictions.

    An answer is kept as it came and masked when asked for (:meth:`get`): every poll
    records one, and few are ever read.
    """

    def __init__(self, keep: int = _KEEP) -> None:
        self._keep = keep
        self._by_id: OrderedDict[str, _Kept] = OrderedDict()

    def record(
        self,
        prediction_id: str,
        response: httpx.Response,
        *,
        operation: str,
        secrets: Sequence[str] = (),
    ) -> None:
        """Keep ``response`` (its body read) as the last answer about ``prediction_id``;
        ``secrets`` (the API key) and bearer tokens a careless server echoed are masked
        when it is read back."""
        by_id = self._by_id
        by_id[prediction_id] = _Kept(response, operation, tuple(secrets))
        by_id.move_to_end(prediction_id)
        while len(by_id) > self._keep:
            by_id.popitem(last=False)

    def get(self, prediction_id: str) -> RawResponse | None:
        """The last answer about ``prediction_id``, or None if none is kept."""
        kept = self._by_id.get(prediction_id)
        return None if kept is None else kept.masked()


class _Kept:
    """An answer as recorded: at most ``_MAX_BODY`` of its body, masked when read."""

    __slots__ = (
        "_masked",
        "content",
        "headers",
        "operation",
        "secrets",
        "status_code",
        "truncated",
        "url",
    )

    def __init__(self, response: httpx.Response, operation: str, secrets: tuple[str, ...]):
        whole = response.content
        self.content = whole[:_MAX_BODY]  # the same bytes object when it is shorter
        self.truncated = len(whole) > _MAX_BODY
        self.status_code = response.status_code
        self.headers = response.headers
        self.operation = operation
        self.secrets = secrets
        self.url = _url(response)  # spelled out when read: few are
        self._masked: RawResponse | None = None

    def masked(self) -> RawResponse:
        """The answer, masked (built on the first call, the same object after)."""
        if self._masked is not None:
            return self._masked
        text = self.content.decode("utf-8", errors="replace")
        self._masked = RawResponse(
            status_code=self.status_code,
            headers=httpx.Headers(self.headers),
            content=scrub(text, self.secrets).encode(),
            truncated=self.truncated,
            operation=self.operation,
            url="" if self.url is None else str(self.url),
        )
        return self._masked


def _url(response: httpx.Response) -> httpx.URL | None:
    try:
        return response.request.url
    except RuntimeError:  # a response made without a request
        return None
