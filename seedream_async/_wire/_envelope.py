"""The envelope around every API answer, opened in each shape the API is known to send.

Answers come bare, in ``{"data": {...}}`` or in ``{"code": 200, "message": ..., "data": {...}}``;
:func:`unwrap` opens all three, and :func:`envelope_error` turns a body whose ``code`` is
4xx/5xx into the exception that HTTP status would raise, even when the HTTP status was 200.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._base._exceptions import (
    APIStatusError,
    body_message,
    scrub,
    status_error_class,
    status_text,
)

__all__ = ["envelope_error", "unwrap"]


# -- envelopes ------------------------------------------------------------------------------


def unwrap(body: Any) -> Any:
    """Return the object inside a ``{"data": {...}}`` or ``{"code", "message", "data"}``
    envelope, or ``body`` itself if it is bare."""
    if isinstance(body, dict) and "id" not in body and "download_url" not in body:
        inner = body.get("data")
        if isinstance(inner, dict):
            return inner
    return body


def _code(body: dict[str, Any]) -> int | None:
    code = body.get("code")
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code.strip())
    return None


def envelope_error(
    body: Any, *, what: str = "request", secrets: Sequence[str] = ()
) -> APIStatusError | None:
    """The error a body's own ``code`` reports (4xx/5xx), or None for a normal answer.

    Atlas Cloud's first-party clients read ``{"code": 400, "message": ..., "data": null}``
    as an error even when the HTTP status is 200; so does this client, mapped exactly as
    that HTTP status would be (so a 4xx on a submit is a definite rejection, never billed).

    Args:
        body: the decoded JSON body.
        what: the operation, for the message (``submit``, ``poll of pred_1``).
        secrets: removed from the server's message (see :func:`scrub`).
    """
    if not isinstance(body, dict):
        return None
    code = body.get("code")
    if code is None or (type(code) is int and code < 400):
        return None  # the usual answer (no code, or 200), checked twice per answer read
    code = _code(body)
    if code is None or not 400 <= code <= 599:
        return None
    cls, hint = status_error_class(code)
    message = body_message(body)
    message = None if message is None else scrub(message, secrets)
    rid = body.get("request_id")
    return cls(
        f"{what} failed: the API answered with error code {code} in its body: "
        f"{status_text(code, message, hint)}",
        status_code=code,
        server_message=message,
        request_id=rid if isinstance(rid, str) and rid else None,
    )


def _open(data: Any) -> Any:
    # An error envelope raises its APIStatusError here: pydantic passes exceptions that are
    # not ValueError/AssertionError through unchanged, so ``model_validate`` of an error
    # body raises what that HTTP status would have, not a ValidationError.
    if not isinstance(data, dict):
        return data
    # Every answer passes here: a plain int code below 400 (the usual 200) cannot be an
    # error, so only an unusual ``code`` costs envelope_error's call.
    code = data.get("code")
    if code is not None and not (type(code) is int and code < 400):
        error = envelope_error(data)
        if error is not None:
            raise error
    if "data" in data and "id" not in data and "download_url" not in data:
        inner = data["data"]  # unwrap's rule, inline: a call per answer less
        if isinstance(inner, dict):
            return inner
    return data
