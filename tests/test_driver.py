"""The one retry driver: policy-driven retries, the refused hook, keep-trying rounds.

Attempts here are plain async functions that fail on cue, so each rule is checked without
a server; the client's own tests cover the same driver end to end.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import httpx
import pytest

from seedream_async import (
    AmbiguousSubmission,
    APIStatusError,
    BadRequestError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TransportError,
)
from seedream_async._network._driver import Driver

pytestmark = pytest.mark.anyio

QUICK = RetryPolicy(initial_delay=0.0, max_delay=0.0, max_attempts=3)


def failing(*errors: BaseException) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """An attempt that raises ``errors`` in turn, then answers "ok"; and its call count."""
    calls = [0]

    async def attempt() -> str:
        calls[0] += 1
        if calls[0] <= len(errors):
            raise errors[calls[0] - 1]
        return "ok"

    return attempt, calls


def refused(status: int, retry_after: float | None = None) -> APIStatusError:
    cls = RateLimitError if status == 429 else ServerError
    return cls(f"HTTP {status}", status_code=status, retry_after=retry_after)


def dropped() -> httpx.ReadError:
    return httpx.ReadError("dropped", request=httpx.Request("POST", "https://api.test/x"))


def driver() -> Driver:
    return Driver(rng=random.Random(1))


async def test_idempotent_failures_are_retried_then_raised() -> None:
    """A passing failure is retried up to max_attempts; the last one is raised as itself."""
    attempt, calls = failing(refused(500), refused(502), refused(504), refused(500))
    with pytest.raises(ServerError) as info:
        await driver().call(attempt, policy=QUICK, what="poll", operation="poll")
    assert info.value.status_code == 504
    assert calls[0] == 3


async def test_every_attempt_is_counted_under_its_operation() -> None:
    """The request counter counts attempts, not calls."""
    sender = driver()
    attempt, _ = failing(refused(500))
    assert await sender.call(attempt, policy=QUICK, what="poll", operation="poll") == "ok"
    assert sender.requests["poll"] == 2


async def test_a_submit_dropped_after_sending_is_ambiguous_not_resent() -> None:
    """A submit whose connection dropped after sending may be billed: never sent again."""
    attempt, calls = failing(dropped())
    with pytest.raises(AmbiguousSubmission):
        await driver().call(
            attempt, policy=QUICK, what="submit", operation="submit", idempotent=False
        )
    assert calls[0] == 1


async def test_one_shot_bodies_are_never_resent() -> None:
    """An attempt whose body can be read once is not retried, even for a passing failure."""
    attempt, calls = failing(dropped())
    with pytest.raises(TransportError):
        await driver().call(attempt, policy=QUICK, what="upload", operation="upload", one_shot=True)
    assert calls[0] == 1


@pytest.mark.parametrize(
    ("status", "retry_after", "wait"),
    [
        pytest.param(429, 0.001, 0.0, id="429-gate-paused"),
        pytest.param(503, 0.25, 0.25, id="503-server-asked"),
        pytest.param(503, None, 0.125, id="503-policy-delay"),
    ],
)
async def test_refusals_go_to_the_hook_and_are_sent_again(
    status: int, retry_after: float | None, wait: float
) -> None:
    """With a hook, 429 and 503 are the hook's: it gets the wait, and the request is sent
    again however many times it is refused (the hook, not max_attempts, decides). A 429
    pauses the gate for everyone, so the hook is told to wait 0 itself."""
    sender = driver()
    policy = RetryPolicy(initial_delay=0.125, max_attempts=2)
    attempt, calls = failing(*(refused(status, retry_after) for _ in range(4)))
    seen: list[tuple[int, float]] = []

    async def hook(error: APIStatusError, seconds: float) -> None:
        seen.append((error.status_code, seconds))

    result = await sender.call(
        attempt,
        policy=policy,
        what="submit",
        operation="submit",
        idempotent=False,
        on_refused=hook,
    )
    assert result == "ok"
    assert calls[0] == 5
    assert seen == [(status, wait)] * 4
    assert (sender.gate.paused_at > float("-inf")) is (status == 429)


async def test_refusals_by_a_storage_host_are_the_policys() -> None:
    """A request that is not the API's (a download) neither waits at nor pauses the gate,
    and its 429s are retried by the policy, never handed to a hook."""
    sender = driver()
    attempt, calls = failing(refused(429, 0.0), refused(429, 0.0))
    seen: list[float] = []

    async def hook(error: APIStatusError, seconds: float) -> None:
        seen.append(seconds)

    result = await sender.call(
        attempt, policy=QUICK, what="download", operation="download", gated=False, on_refused=hook
    )
    assert result == "ok"
    assert calls[0] == 3
    assert seen == []
    assert sender.gate.paused_at == float("-inf")


async def test_a_hook_that_raises_ends_the_call() -> None:
    """The hook gives up by raising; nothing more is sent."""
    attempt, calls = failing(refused(429, 0.0), refused(429, 0.0))

    async def hook(error: APIStatusError, seconds: float) -> None:
        raise error

    with pytest.raises(RateLimitError):
        await driver().call(
            attempt,
            policy=QUICK,
            what="submit",
            operation="submit",
            idempotent=False,
            on_refused=hook,
        )
    assert calls[0] == 1


async def test_keep_trying_goes_on_after_the_policy_gave_up() -> None:
    """With keep_trying_for, passing failures go on in rounds after max_attempts."""
    errors = [refused(500)] * 7
    attempt, calls = failing(*errors)
    result = await driver().call(
        attempt, policy=QUICK, what="upload", operation="upload", keep_trying_for=30.0
    )
    assert result == "ok"
    assert calls[0] == 8


async def test_keep_trying_does_not_retry_what_cannot_pass() -> None:
    """A 4xx is not a passing failure: raised at once even with keep_trying_for."""
    attempt, calls = failing(BadRequestError("HTTP 400", status_code=400))
    with pytest.raises(BadRequestError):
        await driver().call(
            attempt, policy=QUICK, what="upload", operation="upload", keep_trying_for=30.0
        )
    assert calls[0] == 1


async def test_without_keep_trying_the_policy_has_the_last_word() -> None:
    """Without keep_trying_for, max_attempts ends it."""
    attempt, calls = failing(*[refused(500)] * 7)
    with pytest.raises(ServerError):
        await driver().call(attempt, policy=QUICK, what="upload", operation="upload")
    assert calls[0] == 3
