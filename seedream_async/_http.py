"""Turn an error response into the right exception, with the server's own message."""

from __future__ import annotations

import httpx

from ._backoff import retry_after
from ._exceptions import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    InsufficientBalance,
    RateLimitError,
    ServerError,
)

__all__ = ["server_message", "status_error"]

_MAX_MESSAGE = 500


def server_message(response: httpx.Response) -> str | None:
    """The error message in a JSON error body (``message``, ``error``, ``detail``), if any."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:_MAX_MESSAGE] or None
    for candidate in (body, body.get("data") if isinstance(body, dict) else None):
        if not isinstance(candidate, dict):
            continue
        for name in ("message", "error", "detail", "msg"):
            value = candidate.get(name)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value:
                return value[:_MAX_MESSAGE]
            if isinstance(value, list) and value:
                return str(value[0])[:_MAX_MESSAGE]
    return None


def status_error(response: httpx.Response, *, what: str) -> APIStatusError:
    """The exception for an error ``response`` to the operation ``what``."""
    status = response.status_code
    message = server_message(response)
    cls: type[APIStatusError]
    if status in (401, 403):
        cls = AuthenticationError
        hint = "check the API key (ATLASCLOUD_API_KEY)"
    elif status == 402:
        cls = InsufficientBalance
        hint = "the account's balance is exhausted; top it up, then run the batch again"
    elif status == 429:
        cls = RateLimitError
        hint = "rate limited; lower concurrency or rate"
    elif status >= 500:
        cls = ServerError
        hint = "the API had trouble"
    else:
        cls = BadRequestError
        hint = "the API rejected the request"
    text = f"{what} failed with HTTP {status}: {message or hint}"
    return cls(
        text,
        status_code=status,
        server_message=message,
        retry_after=retry_after(response.headers),
    )
