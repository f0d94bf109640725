"""Turn an error response into the right exception, with the server's own message
(scrubbed of the key and any bearer token: a careless server may echo them)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from ._backoff import retry_after
from ._exceptions import APIStatusError, scrub, status_error_class

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


def status_error(
    response: httpx.Response, *, what: str, secrets: Sequence[str] = ()
) -> APIStatusError:
    """The exception for an error ``response`` to the operation ``what``.

    Args:
        response: the error response, its body read.
        what: names the request.
        secrets: removed from the server's message (the API key).
    """
    status = response.status_code
    message = server_message(response)
    message = None if message is None else scrub(message, secrets)
    cls, hint = status_error_class(status)
    text = f"{what} failed with HTTP {status}: {message or hint}"
    return cls(
        text,
        status_code=status,
        server_message=message,
        retry_after=retry_after(response.headers),
    )
