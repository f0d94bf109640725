from __future__ import annotations

import random
from typing import Any

import pytest

from seedream_async._policies._retry import RetryDecision, RetryPolicy, decide_retry

POLICY = RetryPolicy(initial_delay=0.5, multiplier=2.0, max_delay=20.0, jitter=0.0)

STATUSES = [408, 429, 500, 502, 503, 504, 400, 401, 404, 422]
IDEMPOTENT_RETRIED = {408, 429, 500, 502, 503, 504}
SUBMIT_RETRIED = {429, 503}
SUBMIT_AMBIGUOUS = {500, 502, 504}


def matrix() -> list[Any]:
    cases = []
    for status in STATUSES:
        cases.append(
            pytest.param(True, status, status in IDEMPOTENT_RETRIED, False, id=f"idem-{status}")
        )
        cases.append(
            pytest.param(
                False,
                status,
                status in SUBMIT_RETRIED,
                status in SUBMIT_AMBIGUOUS,
                id=f"submit-{status}",
            )
        )
    return cases


@pytest.mark.parametrize(("idempotent", "status", "retry", "ambiguous"), matrix())
def test_status_matrix(idempotent: bool, status: int, retry: bool, ambiguous: bool) -> None:
    """Each status is retried or not, and flagged ambiguous, exactly as the contract says."""
    decision = decide_retry(POLICY, attempt=0, idempotent=idempotent, status=status)
    assert decision.retry is retry
    assert decision.ambiguous is ambiguous
    if retry:
        assert decision.delay == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("idempotent", "sent", "retry", "ambiguous"),
    [
        pytest.param(True, True, True, False, id="idem-sent"),
        pytest.param(True, False, True, False, id="idem-not-sent"),
        pytest.param(False, False, True, False, id="submit-not-sent"),
        pytest.param(False, True, False, True, id="submit-sent"),
    ],
)
def test_transport_errors(idempotent: bool, sent: bool, retry: bool, ambiguous: bool) -> None:
    """A transport error is retried unless it hit a submit that may have reached the server."""
    decision = decide_retry(POLICY, attempt=0, idempotent=idempotent, sent=sent)
    assert decision.retry is retry
    assert decision.ambiguous is ambiguous


@pytest.mark.parametrize(
    ("kwargs", "ambiguous"),
    [
        pytest.param({"idempotent": True, "status": 503}, False, id="idem-503"),
        pytest.param({"idempotent": True, "sent": True}, False, id="idem-transport"),
        pytest.param({"idempotent": False, "status": 429}, False, id="submit-429"),
        pytest.param({"idempotent": False, "sent": False}, False, id="submit-not-sent"),
        pytest.param({"idempotent": False, "sent": True}, True, id="submit-sent"),
        pytest.param({"idempotent": False, "status": 502}, True, id="submit-502"),
    ],
)
def test_max_attempts_stops(kwargs: dict[str, Any], ambiguous: bool) -> None:
    """The last allowed attempt is never retried, and an ambiguous submit stays ambiguous."""
    policy = RetryPolicy(max_attempts=3, initial_delay=0.01)
    assert decide_retry(policy, attempt=1, **kwargs).retry is not ambiguous
    last = decide_retry(policy, attempt=2, **kwargs)
    assert last.retry is False
    assert last.ambiguous is ambiguous


def test_single_attempt_policy_never_retries() -> None:
    """max_attempts=1 disables retries entirely."""
    policy = RetryPolicy(max_attempts=1)
    for status in IDEMPOTENT_RETRIED:
        assert decide_retry(policy, attempt=0, idempotent=True, status=status).retry is False


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [pytest.param(0, 0.5, id="0"), pytest.param(2, 2.0, id="2"), pytest.param(5, 16.0, id="5")],
)
def test_backoff_grows_per_attempt(attempt: int, expected: float) -> None:
    """Without a Retry-After the delay follows the policy's exponential backoff."""
    policy = RetryPolicy(max_attempts=10, initial_delay=0.5, multiplier=2.0, jitter=0.0)
    decision = decide_retry(policy, attempt=attempt, idempotent=True, status=500)
    assert decision == RetryDecision(retry=True, delay=expected)


def test_jittered_delay_uses_given_rng() -> None:
    """The jitter draw comes from the rng passed in, so a seeded run is reproducible."""
    policy = RetryPolicy(initial_delay=1.0, jitter=1.0)
    first = decide_retry(policy, attempt=0, idempotent=True, status=500, rng=random.Random(5))
    again = decide_retry(policy, attempt=0, idempotent=True, status=500, rng=random.Random(5))
    assert first.delay == again.delay
    assert 0.0 <= first.delay <= 1.0


@pytest.mark.parametrize(
    ("idempotent", "status"),
    [
        pytest.param(True, 429, id="idem-429"),
        pytest.param(True, 503, id="idem-503"),
        pytest.param(False, 429, id="submit-429"),
        pytest.param(False, 503, id="submit-503"),
    ],
)
def test_retry_after_is_honoured(idempotent: bool, status: int) -> None:
    """A Retry-After within max_retry_after replaces our own backoff."""
    decision = decide_retry(
        POLICY, attempt=0, idempotent=idempotent, status=status, headers={"Retry-After": "7"}
    )
    assert decision == RetryDecision(retry=True, delay=7.0, server_asked=True)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Retry-After": "121"}, id="seconds"),
        pytest.param({"retry-after-ms": "3600000"}, id="ms"),
        pytest.param({"Retry-After": "Wed, 01 Jan 2999 00:00:00 GMT"}, id="date"),
    ],
)
def test_retry_after_over_cap_stops(headers: dict[str, str]) -> None:
    """A server asking for longer than max_retry_after gets the error, not a long sleep."""
    decision = decide_retry(POLICY, attempt=0, idempotent=True, status=429, headers=headers)
    assert decision.retry is False
    assert decision.ambiguous is False


def test_unreadable_retry_after_falls_back_to_backoff() -> None:
    """A garbage Retry-After is ignored in favour of the policy's backoff."""
    decision = decide_retry(
        POLICY, attempt=1, idempotent=True, status=429, headers={"Retry-After": "soon"}
    )
    assert decision == RetryDecision(retry=True, delay=1.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"max_attempts": 0}, id="no-attempts"),
        pytest.param({"initial_delay": -1.0}, id="negative-initial"),
        pytest.param({"max_delay": -1.0}, id="negative-max"),
        pytest.param({"max_retry_after": -1.0}, id="negative-retry-after"),
        pytest.param({"jitter": 1.5}, id="jitter-over-one"),
        pytest.param({"jitter": -0.1}, id="negative-jitter"),
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    """A RetryPolicy that cannot work is refused when built."""
    with pytest.raises(ValueError, match=r"."):
        RetryPolicy(**kwargs)
