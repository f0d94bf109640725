"""When to retry a request, and how long to wait first. Pure: no I/O, no clock.

Two kinds of request are treated differently:

* **idempotent** ones (uploads, status polls, downloads) are retried on connection
  errors, timeouts, 408, 429 and 5xx;
* a **submit** costs money each time it reaches the server, so it is retried only when
  the server certainly did not process it: the connection was never made, or the answer
  was 429 or 503 (both mean "not taken"). A read timeout, a dropped connection or a
  500/502/504 after the request was sent may have been billed; the caller gets
  :class:`~seedream_async.AmbiguousSubmission` instead of a second charge.

Polling a running prediction is not retrying: see ``_polling.py`` for that.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from ._backoff import backoff_delay
from ._backoff import retry_after as read_retry_after

__all__ = ["REFUSED_STATUSES", "RetryDecision", "RetryPolicy", "decide_retry"]

REFUSED_STATUSES = frozenset({429, 503})
"""Statuses by which the server says it did not take the request: safe to send again, even
a submit. A caller may hand these to its own congestion response (the driver's
``on_refused`` hook) instead of the plain retry."""


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How the client retries failed requests.

    Args:
        max_attempts: attempts per request, the first included (1 disables retries).
        initial_delay: seconds before the first retry, before jitter.
        max_delay: the largest backoff in seconds, before jitter.
        multiplier: backoff growth per attempt.
        jitter: fraction of each backoff drawn at random (1.0 is "full jitter").
        max_retry_after: the longest ``Retry-After`` we honour by sleeping; a longer
            wish raises the error instead, so a batch never sleeps for an hour unasked.
        retry_statuses: statuses retried for idempotent requests.
        submit_retry_statuses: statuses retried for submits: only those that mean the
            server did not take the request.
        unreachable_after: API requests that failed to connect (refused, unknown host, TLS)
            while none has reached the API yet, after which every API request fails at once
            with :class:`~seedream_async.APIUnreachable`: a wrong URL ends a batch in seconds
            instead of retrying for minutes. 0 turns this off.
    """

    max_attempts: int = 6
    initial_delay: float = 0.5
    max_delay: float = 20.0
    multiplier: float = 2.0
    jitter: float = 1.0
    max_retry_after: float = 120.0
    retry_statuses: frozenset[int] = field(
        default_factory=lambda: frozenset({408, 429, 500, 502, 503, 504})
    )
    submit_retry_statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 503}))
    unreachable_after: int = 3

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")
        if self.unreachable_after < 0:
            raise ValueError("unreachable_after must not be negative")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based), jitter included."""
        return backoff_delay(
            attempt,
            initial=self.initial_delay,
            multiplier=self.multiplier,
            cap=self.max_delay,
            jitter=self.jitter,
            rng=rng,
        )


@dataclass(frozen=True)
class RetryDecision:
    """What to do after a failed attempt.

    Args:
        retry: whether to send again.
        delay: seconds to wait first.
        server_asked: True when ``delay`` came from the server's ``Retry-After``.
        ambiguous: True when a submit may have been processed and must not be resent.
    """

    retry: bool
    delay: float = 0.0
    server_asked: bool = False
    ambiguous: bool = False


_STOP = RetryDecision(retry=False)


def decide_retry(
    policy: RetryPolicy,
    *,
    attempt: int,
    idempotent: bool,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    retry_after: float | None = None,
    sent: bool = True,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Decide whether the failed attempt number ``attempt`` (0-based) is tried again.

    Args:
        policy: the retry policy.
        attempt: attempts already made, minus one.
        idempotent: False for a submit, which may cost money each time it arrives.
        status: the HTTP status, or None when the request failed below HTTP.
        headers: the response headers, for ``Retry-After``.
        retry_after: the server's wish already read from the headers, used when
            ``headers`` is None.
        sent: for a transport failure, whether the request may have reached the server.
        rng: the random source for jitter.
    """
    if status is None:
        ambiguous = sent and not idempotent
        if ambiguous:
            return RetryDecision(retry=False, ambiguous=True)
    else:
        statuses = policy.retry_statuses if idempotent else policy.submit_retry_statuses
        if status not in statuses:
            return RetryDecision(retry=False, ambiguous=not idempotent and status >= 500)
    if attempt + 1 >= policy.max_attempts:
        return _STOP
    asked = read_retry_after(headers) if headers is not None else retry_after
    if asked is not None:
        if asked > policy.max_retry_after:
            return _STOP
        return RetryDecision(retry=True, delay=asked, server_asked=True)
    return RetryDecision(retry=True, delay=policy.backoff(attempt, rng))
