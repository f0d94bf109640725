"""Backoff arithmetic: pure functions, no I/O, tested without the network.

``backoff_delay`` is capped exponential backoff with "full jitter" as described in
AWS's *Exponential Backoff And Jitter* (Brooker, 2015): the delay is drawn uniformly
from ``[base * (1 - jitter), base]`` where ``base = min(cap, initial * multiplier**n)``.
``retry_after`` reads the server's own wish (``Retry-After`` in seconds or as an
HTTP date, or ``retry-after-ms``), which always wins over our own guess.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["backoff_delay", "retry_after"]


def backoff_delay(
    attempt: int,
    *,
    initial: float,
    multiplier: float,
    cap: float,
    jitter: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Args:
        attempt: how many retries came before this one.
        initial: the delay before the first retry, before jitter.
        multiplier: growth per attempt.
        cap: the largest delay, before jitter.
        jitter: fraction of the delay drawn at random, 0 (none) to 1 (full jitter).
        rng: the random source; the module's when None.
    """
    try:
        grown = initial * multiplier ** max(attempt, 0)
    except OverflowError:  # a long poll (deadline=None) reaches attempt ~1750 at 1.5x
        grown = float("inf") if initial > 0 else 0.0
    base = min(cap, grown)
    if jitter <= 0:
        return base
    draw = (rng or random).random()
    return base * (1.0 - min(jitter, 1.0) * draw)


def retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds the server asked us to wait, or None when it did not say (or said nonsense).

    Reads ``retry-after-ms`` first (more precise, sent by some gateways), then
    ``Retry-After`` as delta-seconds (fractions accepted) or as an HTTP date.

    Args:
        headers: response headers; keys are matched case-insensitively.
        now: the current time for HTTP dates; the system clock when None.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    milliseconds = _number(lowered.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000.0
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if number != number or number < 0 or number == float("inf"):  # NaN, negative, infinite
        return None
    return number
