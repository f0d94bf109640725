"""The exceptions seedream-async raises. Catch :class:`SeedreamError` to catch them all.

Our exception hierarchy::

    SeedreamError
    ├── ConfigurationError        - missing API key, bad client settings
    ├── InvalidInput              - a request or item fails validation; nothing was sent
    │   └── InvalidImage          - missing, empty, not an image, too large
    ├── TransportError            - the request may not have completed: connection, timeout
    │   └── APIUnreachable        - no request has reached the API yet, and N could not connect
    ├── APIStatusError            - the API answered with an error status (or an error
    │   │                           ``code`` in a 200 body)
    │   ├── AuthenticationError   - 401 / 403
    │   │   └── RegionBlocked     - 451: the API refuses this region; not retryable
    │   ├── InsufficientBalance   - 402: the account's balance is exhausted
    │   ├── BadRequestError       - 400 / 404 / 413 / 415 / 422
    │   ├── RateLimitError        - 429
    │   ├── ServerError           - 5xx
    │   └── MalformedResponse     - an answer that cannot be read: not JSON, too large,
    │                               missing what it must carry, or a redirect off the API
    ├── AmbiguousSubmission       - a submit may have been billed; not re-sent
    ├── PredictionFailed          - the model reported ``failed``
    │   └── ContentModerationError - ``error_code`` 1039: the input failed moderation
    ├── DeadlineExceeded          - a prediction did not finish in time
    ├── OutputExpired             - an output URL expired before it was downloaded
    ├── OutputInvalid             - an output is not a whole image of an expected type
    ├── BudgetExceeded            - the batch's budget stopped this item's submit
    ├── JournalError              - the batch journal is unreadable or belongs elsewhere
    │   └── JournalUnavailable    - the journal's disk or database cannot be used right now
    └── WebhookVerificationError  - a webhook delivery is forged, replayed, stale, signed
                                    by an unknown key, or malformed; it changes nothing
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import httpx

__all__ = [
    "APIStatusError",
    "APIUnreachable",
    "AmbiguousSubmission",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceeded",
    "ConfigurationError",
    "ContentModerationError",
    "DeadlineExceeded",
    "InsufficientBalance",
    "InvalidImage",
    "InvalidInput",
    "JournalError",
    "JournalUnavailable",
    "MalformedResponse",
    "OutputExpired",
    "OutputInvalid",
    "PredictionFailed",
    "RateLimitError",
    "RegionBlocked",
    "SeedreamError",
    "ServerError",
    "TransportError",
    "WebhookVerificationError",
    "body_message",
    "scrub",
    "status_text",
    "status_error_class",
]


class SeedreamError(Exception):
    """Root of every exception this library raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(SeedreamError):
    """The client is set up in a way that cannot work (for example, no API key)."""


class InvalidInput(SeedreamError):
    """A request or batch item is invalid. Raised before any request is sent.

    Attributes:
        field: the offending field (``prompt``, ``images[3]``, ``size``, ...) or None.
        key: the batch item's key, when the input came from a batch item.
    """

    def __init__(self, message: str, *, field: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.key = key

    def __str__(self) -> str:
        return f"item {self.key!r}: {self.message}" if self.key is not None else self.message


class InvalidImage(InvalidInput):
    """A reference image is missing, empty, not a supported image, or too large."""


class TransportError(SeedreamError):
    """A request failed below HTTP: connection refused or dropped, or a timeout.

    Attributes:
        method: the HTTP method.
        url: the URL, without query string.
    """

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class APIUnreachable(TransportError):
    """No request has reached the API yet and the first attempts could not connect (refused,
    no such host, TLS failure), so every API request now fails at once instead of retrying
    for minutes: the URL, the network or TLS is wrong, not a passing blip. Nothing was billed.

    Attributes:
        attempts: the attempts that failed to connect.
    """

    def __init__(self, *, url: str, attempts: int, last: str) -> None:
        super().__init__(
            f"cannot reach the API at {url}: {attempts} attempts to connect failed and none "
            f"has reached it yet (last: {last}). Check the URL (--base-url or "
            "ATLASCLOUD_BASE_URL; Atlas Cloud's is https://api.atlascloud.ai), that its host "
            "name resolves, your network or proxy, and TLS (http vs https, certificates). "
            "Nothing was sent to be billed.",
            method="",
            url=url,
        )
        self.attempts = attempts


class APIStatusError(SeedreamError):
    """The API answered with an error status.

    Attributes:
        status_code: the HTTP status.
        server_message: the error message from the response body, when it had one.
        retry_after: seconds the server asked us to wait, when it said.
        request_id: the API's id for the request (its ``X-Request-ID`` header, or the
            error body's ``request_id``); quote it to Atlas Cloud's support.
        data: the error body's ``data`` object, when it had one (a sync-mode 504 may name
            the prediction that goes on).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        server_message: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        data: dict[str, object] | None = None,
    ) -> None:
        if request_id:
            message = f"{message} (request id {request_id})"
        super().__init__(message)
        self.status_code = status_code
        self.server_message = server_message
        self.retry_after = retry_after
        self.request_id = request_id
        self.data = data


class AuthenticationError(APIStatusError):
    """401 or 403: the API key is missing, wrong or not allowed."""


class RegionBlocked(AuthenticationError):
    """451: the API refuses requests from this region. Not retryable, and fatal for a whole
    batch like 403: no new submit can succeed from here."""


class InsufficientBalance(APIStatusError):
    """402: the account's balance is exhausted. Fatal for a whole batch: no new submit can
    succeed until the balance is topped up; predictions already paid for still finish."""


class BadRequestError(APIStatusError):
    """The API rejected the request itself (400, 404, 413, 415, 422)."""


class RateLimitError(APIStatusError):
    """429: too many requests, still refused after the retry policy gave up."""


class ServerError(APIStatusError):
    """5xx: the API had trouble, still failing after the retry policy gave up."""


class MalformedResponse(APIStatusError):
    """The API (or storage) answered, but not with anything this client can read.

    A body that is not JSON, larger than the configured cap, without the fields it must
    carry (a prediction without an id), or a redirect to another origin. On a poll the
    next poll may be fine, so pollers retry it; on a submit it is ambiguous (billed?).
    """


class AmbiguousSubmission(SeedreamError):
    """A submit may have reached the server, so it may be billed; it was not sent again.

    Sending it again could pay twice for one item. The batch engine reports the item as
    ``ambiguous``; re-run with ``resubmit_ambiguous=True`` to pay for it again knowingly.

    Attributes:
        key: the batch item's key, when known.
        request_id: the ``X-Request-ID`` of the answer that left it ambiguous (a 5xx), if
            any: quote it to Atlas Cloud's support to learn whether it was billed.
    """

    def __init__(
        self, message: str, *, key: str | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.key = key
        self.request_id = request_id


class PredictionFailed(SeedreamError):
    """The prediction ended with status ``failed``.

    Attributes:
        prediction_id: the prediction's id.
        error: the server's error message.
    """

    def __init__(
        self, prediction_id: str, error: str | None, *, error_code: int | None = None
    ) -> None:
        text = f"prediction {prediction_id} failed: {error or 'no error message'}"
        if error_code is not None:
            text += f" (error code {error_code})"
        super().__init__(text)
        self.prediction_id = prediction_id
        self.error = error
        self.error_code = error_code

    @staticmethod
    def of(prediction_id: str, error: str | None, error_code: int | None) -> PredictionFailed:
        """The right class for a failed prediction: :class:`ContentModerationError` for
        Atlas Cloud's ``error_code`` 1039, else :class:`PredictionFailed`."""
        if error_code == CONTENT_MODERATION_CODE:
            return ContentModerationError(prediction_id, error, error_code=error_code)
        return PredictionFailed(prediction_id, error, error_code=error_code)


# Atlas Cloud's task-level error code for an input refused by content moderation.
CONTENT_MODERATION_CODE = 1039


class ContentModerationError(PredictionFailed):
    """The prediction failed content moderation (Atlas Cloud's ``error_code`` 1039).

    The execution was still submitted, so under per-execution pricing it was billed;
    running the same prompt and images again will most likely be refused again, and
    billed again.
    """


class DeadlineExceeded(SeedreamError):
    """A prediction was not done before the caller's deadline. It may still finish server-side.

    Attributes:
        prediction_id: the prediction's id.
        deadline: the deadline in seconds.
    """

    def __init__(self, prediction_id: str, deadline: float) -> None:
        super().__init__(f"prediction {prediction_id} not done after {deadline:g}s")
        self.prediction_id = prediction_id
        self.deadline = deadline


class OutputExpired(SeedreamError):
    """An output URL had expired and a fresh one could not be had."""


class OutputInvalid(SeedreamError):
    """An output is not a whole image of an expected type: an HTML page, junk, a file cut
    short, or over the size cap. The prediction is paid for: a re-run fetches it again."""


class BudgetExceeded(SeedreamError):
    """The batch's budget was reached before this item was submitted; nothing was spent on it."""


class JournalError(SeedreamError):
    """The journal file cannot be used: corrupt, not a journal, or from a newer version."""


class JournalUnavailable(JournalError):
    """The infrastructure under the journal failed: its disk is full or read-only, its file
    was deleted, its database is down or its DSN is wrong. Unlike a corrupt journal this
    may pass: the engine waits for it, keeps every billed id it could not write, and stops
    new submits.

    Attributes:
        resource: the journal's file or (password-free) DSN.
        reason: what failed, in a few words ("disk full").
        hint: what to do about it.
        maybe_committed: the failure came while a write was being committed: it may have
            landed (a write retried after it must be idempotent).
        gone: the journal's file was deleted or moved while in use: what it held must be
            saved elsewhere before the run ends.
    """

    def __init__(
        self,
        resource: str,
        reason: str,
        hint: str,
        *,
        maybe_committed: bool = False,
        gone: bool = False,
    ) -> None:
        super().__init__(f"the journal {resource} cannot be used: {reason}; {hint}")
        self.resource = resource
        self.reason = reason
        self.hint = hint
        self.maybe_committed = maybe_committed
        self.gone = gone


def transport_error(err: httpx.TransportError, request: httpx.Request) -> TransportError:
    """Wrap an httpx transport error without its URL's query string (signed URLs)."""
    url = str(request.url.copy_with(query=None))
    kind = type(err).__name__
    detail = str(err) or "no detail"
    return TransportError(
        f"{request.method} {url} failed: {kind}: {detail}", method=request.method, url=url
    )


def status_error_class(status: int) -> tuple[type[APIStatusError], str]:
    """The exception class for an error ``status`` (HTTP, or a body's ``code``), and a hint."""
    if status in (401, 403):
        return AuthenticationError, "check the API key (ATLASCLOUD_API_KEY)"
    if status == 402:
        return (
            InsufficientBalance,
            "the account's balance is exhausted; top it up, then run the batch again",
        )
    if status == 451:
        return RegionBlocked, "blocked in your region (HTTP 451); not retryable"
    if status == 413:
        return (
            BadRequestError,
            "the request body is over the API's 50 MB limit; send image URLs instead of "
            "inline base64, or upload the images first",
        )
    if status == 429:
        return RateLimitError, "rate limited; lower concurrency or rate"
    if status >= 500:
        return ServerError, "the API had trouble"
    return BadRequestError, "the API rejected the request"


_MAX_MESSAGE = 500
# Statuses whose hint says what to do even when the server sent a message of its own.
_ALWAYS_HINT = frozenset({413, 451})


def status_text(status: int, message: str | None, hint: str) -> str:
    """The server's message, the hint when it had none (or when the hint says what to do)."""
    if message and status in _ALWAYS_HINT:
        return f"{message} ({hint})"
    return message or hint


def body_message(body: object) -> str | None:
    """The error message in a decoded JSON error body, or None.

    Reads Atlas Cloud's ``{"code", "msg", "request_id", "data"}`` and the other shapes seen
    (``message``, ``error`` (a string or ``{"message": ...}``), ``detail`` (a string or a
    list)), at the top level or inside ``data``. The one reader for HTTP error bodies and
    for an error ``code`` in a 200 body.
    """
    for candidate in (body, body.get("data") if isinstance(body, dict) else None):
        if not isinstance(candidate, dict):
            continue
        for name in ("msg", "message", "error", "detail"):
            value = candidate.get(name)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, list) and value:
                value = str(value[0])
            if isinstance(value, str) and value.strip():
                return value.strip()[:_MAX_MESSAGE]
    return None


_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_REDACTED = "**********"


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret, and any ``Bearer <token>``, replaced by asterisks.

    Server-provided text (error messages, bodies) may echo the request's Authorization
    header; it is scrubbed before it is stored in an exception, a journal or a report.

    Args:
        text: the text to clean.
        secrets: the strings to remove (the API key); empty or very short ones are skipped,
            since removing every "a" would only mangle the message.
    """
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, _REDACTED)
    return _BEARER.sub(lambda match: f"{match[1]} {_REDACTED}", text)


class WebhookVerificationError(SeedreamError):
    """A webhook delivery failed verification and must change nothing.

    Args:
        message: what is wrong, for a log line; never the body or a key.
        reason: a stable machine name: ``missing_header``, ``malformed``, ``stale``,
            ``unknown_key``, ``bad_signature``, ``bad_token`` or ``no_keys``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
