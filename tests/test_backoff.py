from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from seedream_async._policies._backoff import backoff_delay, retry_after
from seedream_async._policies._polling import PollPolicy, poll_delays

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        pytest.param(0, 0.5, id="first"),
        pytest.param(1, 1.0, id="second"),
        pytest.param(2, 2.0, id="third"),
        pytest.param(4, 8.0, id="fifth"),
        pytest.param(-3, 0.5, id="negative-attempt-is-first"),
    ],
)
def test_exponential_growth_without_jitter(attempt: int, expected: float) -> None:
    """Without jitter the delay is exactly initial * multiplier**attempt."""
    delay = backoff_delay(attempt, initial=0.5, multiplier=2.0, cap=100.0, jitter=0.0)
    assert delay == pytest.approx(expected)


@pytest.mark.parametrize(
    "attempt",
    [
        pytest.param(6, id="just-over"),
        pytest.param(60, id="far-over"),
        pytest.param(5_000, id="would-overflow-a-float"),
    ],
)
def test_cap(attempt: int) -> None:
    """The delay never exceeds the cap, even when multiplier**attempt overflows a float."""
    delay = backoff_delay(attempt, initial=0.5, multiplier=2.0, cap=20.0, jitter=0.0)
    assert delay == 20.0


def test_zero_initial_stays_zero_for_huge_attempts() -> None:
    """A zero initial delay stays zero instead of turning into the cap on overflow."""
    assert backoff_delay(5_000, initial=0.0, multiplier=2.0, cap=20.0, jitter=0.0) == 0.0


@pytest.mark.parametrize(
    "jitter",
    [pytest.param(0.1, id="tenth"), pytest.param(0.5, id="half"), pytest.param(1.0, id="full")],
)
def test_jitter_bounds(jitter: float) -> None:
    """Jittered delays fall in [base * (1 - jitter), base] and actually spread out."""
    rng = random.Random(42)
    base = 4.0
    draws = [
        backoff_delay(3, initial=0.5, multiplier=2.0, cap=100.0, jitter=jitter, rng=rng)
        for _ in range(2_000)
    ]
    assert all(base * (1 - jitter) <= d <= base for d in draws)
    assert max(draws) - min(draws) > base * jitter * 0.9


def test_jitter_over_one_is_clamped() -> None:
    """A jitter above 1 never yields a negative delay."""
    rng = random.Random(3)
    draws = [
        backoff_delay(0, initial=1.0, multiplier=2.0, cap=10.0, jitter=5.0, rng=rng)
        for _ in range(500)
    ]
    assert all(0.0 <= d <= 1.0 for d in draws)


def test_seeded_rng_is_reproducible() -> None:
    """The same seed draws the same delays."""

    def run(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [
            backoff_delay(n, initial=0.1, multiplier=2.0, cap=5.0, jitter=1.0, rng=rng)
            for n in range(10)
        ]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_poll_delays_survive_a_very_long_wait() -> None:
    """Polling with no deadline keeps yielding the capped interval instead of overflowing."""
    policy = PollPolicy(deadline=None, jitter=0.0)
    delays = poll_delays(policy)
    values = [next(delays) for _ in range(5_000)]
    assert values[0] == policy.first_poll
    assert values[-1] == policy.max_interval


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Retry-After": "2"}, 2.0, id="seconds"),
        pytest.param({"Retry-After": "0"}, 0.0, id="zero"),
        pytest.param({"Retry-After": "0.25"}, 0.25, id="fractional"),
        pytest.param({"Retry-After": " 3 "}, 3.0, id="whitespace"),
        pytest.param({"retry-after": "5"}, 5.0, id="lowercase-name"),
        pytest.param({"RETRY-AFTER": "5"}, 5.0, id="uppercase-name"),
        pytest.param({"Retry-After": http_date(NOW + timedelta(seconds=30))}, 30.0, id="date"),
        pytest.param({"Retry-After": http_date(NOW - timedelta(seconds=30))}, 0.0, id="past"),
        pytest.param({"Retry-After": "Wed, 01 Jan 2025 12:00:10 -0000"}, 10.0, id="naive-date"),
        pytest.param({"retry-after-ms": "150"}, 0.15, id="ms"),
        pytest.param({"Retry-After-Ms": "2.5"}, 0.0025, id="fractional-ms"),
        pytest.param({"retry-after-ms": "50", "Retry-After": "9"}, 0.05, id="ms-wins"),
        pytest.param({"retry-after-ms": "soon", "Retry-After": "9"}, 9.0, id="bad-ms-falls-back"),
        pytest.param({}, None, id="absent"),
        pytest.param({"Retry-After": "soon"}, None, id="garbage"),
        pytest.param({"Retry-After": ""}, None, id="empty"),
        pytest.param({"Retry-After": "-5"}, None, id="negative"),
        pytest.param({"retry-after-ms": "-5"}, None, id="negative-ms"),
        pytest.param({"Retry-After": "nan"}, None, id="nan"),
        pytest.param({"Retry-After": "inf"}, None, id="infinite"),
        pytest.param({"Retry-After": "Wed, 99 Foo 2025"}, None, id="broken-date"),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    """Retry-After is read as seconds, fractions, HTTP dates or retry-after-ms; nonsense is None."""
    result = retry_after(headers, now=NOW)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_retry_after_reads_httpx_headers() -> None:
    """The client's own header type, httpx.Headers, is read the same as a dict."""
    headers = httpx.Headers([("Retry-After", http_date(NOW + timedelta(seconds=4)))])
    assert retry_after(headers, now=NOW) == pytest.approx(4.0)


def test_retry_after_date_uses_system_clock_by_default() -> None:
    """Without an injected ``now`` a date far ahead reads as a long, positive wait."""
    headers = {"Retry-After": http_date(datetime.now(UTC) + timedelta(hours=1))}
    result = retry_after(headers)
    assert result is not None
    assert 3_500 < result <= 3_600
