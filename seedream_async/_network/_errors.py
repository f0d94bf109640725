"""Turn an error response into the right exception, with the server's own message
(scrubbed of the key and any bearer token: a careless server may echo them)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from .._base._exceptions import APIStatusError, body_message, scrub, status_error_class, status_text
from .._policies._backoff import retry_after

__all__ = ["request_id", "server_message", "status_error"]

_MAX_MESSAGE = 500


def server_message(response: httpx.Response) -> str | None:
    """The error message of an error response: its JSON body's (:func:`body_message`),
    else the start of its text."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:_MAX_MESSAGE] or None
    return body_message(body)


def request_id(response: httpx.Response) -> str | None:
    """The API's id for this request: the ``X-Request-ID`` header, else the JSON body's
    ``request_id`` (Atlas Cloud sends both on errors)."""
    header = str(response.headers.get("x-request-id", "")).strip()
    if header:
        return header[:200]
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("request_id") if isinstance(body, dict) else None
    return str(value)[:200] if isinstance(value, str | int) and str(value) else None


def status_error(
    response: httpx.Response, *, what: str, secrets: Sequence[str] = (), note: str = ""
) -> APIStatusError:
    """The exception for an error ``response`` to the operation ``what``.

    Args:
        response: the error response, its body read.
        what: names the request.
        secrets: removed from the server's message (the API key).
        note: appended to the message (what the user should check).
    """
    status = response.status_code
    message = server_message(response)
    message = None if message is None else scrub(message, secrets)
    cls, hint = status_error_class(status)
    text = f"{what} failed with HTTP {status}: {status_text(status, message, hint)}{note}"
    return cls(
        text,
        status_code=status,
        server_message=message,
        retry_after=retry_after(response.headers),
        request_id=request_id(response),
        data=_data(response),
    )


def _data(response: httpx.Response) -> dict[str, object] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else None
