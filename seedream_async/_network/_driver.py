"""The one async retry driver: every HTTP request of the library is sent through it.

An operation (an API call, an upload, a download) hands the driver one *attempt*, an
async function that sends the request once and either returns or raises
``httpx.TransportError`` / :class:`~seedream_async.APIStatusError`. The driver runs the
attempt, asks the pure policy (:func:`~seedream_async._policies._retry.decide_retry`) what a
failure means, and either sends again after the delay, raises, or (for a 429 or 503,
"refused": the server did not take the request) hands the refusal to the caller's
``on_refused`` hook, so a batch's congestion response plugs in here instead of rewriting
the retry policy. One loop, one home for pausing and logging, as httpx's chain of
``send`` steps gives each concern one place.

A 429 from the API pauses every API request of the client (:class:`PauseGate`): the
limit is the key's, not one request's.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import httpx

from .._base._exceptions import (
    AmbiguousSubmission,
    APIStatusError,
    APIUnreachable,
    TransportError,
    transport_error,
)
from .._base._observe import Observer, Observers
from .._policies._limits import PauseGate
from .._policies._retry import REFUSED_STATUSES, RetryDecision, RetryPolicy, decide_retry

__all__ = ["Driver", "RefusedHook"]

logger = logging.getLogger("seedream_async")

_T = TypeVar("_T")

RefusedHook = Callable[[APIStatusError, float], Awaitable[None]]
"""Called with a refusal (429 or 503) and the seconds the server wants us to wait (0 for a
429, which paused the gate already). It waits as it sees fit and returns to have the
request sent again, or raises (the refusal itself, say) to give up."""

# Failures below HTTP where the request certainly never left: safe to send again.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Failures to reach the host at all: refused, unknown host (DNS), TLS handshake, no route.
_CANNOT_CONNECT = (httpx.ConnectError, httpx.ConnectTimeout)


class Driver:
    """Sends attempts, retrying them by a :class:`RetryPolicy`.

    Args:
        rng: the random source for jitter.
        gate: the pause every API request waits at after a 429.
    """

    def __init__(self, *, rng: random.Random, gate: PauseGate | None = None) -> None:
        self.rng = rng
        self.gate = gate or PauseGate()
        self.requests: Counter[str] = Counter()
        """Attempts sent, by operation (``upload``, ``submit``, ``poll``, ``download``)."""
        self.reached = False
        """Some API request got an answer (any HTTP status): the API is there."""
        self._cannot_connect = 0
        self._unreachable: tuple[str, str] | None = None  # (origin, last failure) once judged
        self.observer: Observer = Observers()
        """Told of every attempt, retry and refusal."""

    async def call(
        self,
        attempt: Callable[[], Awaitable[_T]],
        *,
        policy: RetryPolicy,
        what: str,
        operation: str,
        idempotent: bool = True,
        one_shot: bool = False,
        gated: bool = True,
        on_refused: RefusedHook | None = None,
        keep_trying_for: float | None = None,
    ) -> _T:
        """Run ``attempt`` until it returns, or raise what ends it.

        Args:
            attempt: sends the request once.
            policy: when to retry, and how long to wait.
            what: names the request in messages ("upload of a.png").
            operation: the counter to count each attempt under.
            idempotent: False for a submit, which costs money each time it arrives.
            one_shot: the body can be sent only once (an async byte stream): never retried.
            gated: an API request: waits at the pause gate, and a 429 pauses it.
            on_refused: takes over 429 and 503 (see :data:`RefusedHook`).
            keep_trying_for: seconds to go on with passing failures (429, 5xx, transport)
                after the policy gave up, backing off between rounds of attempts.

        Raises:
            AmbiguousSubmission: a submit failed after it may have reached the server.
            TransportError: a transport failure that is not retried (any more).
            APIStatusError: an error status that is not retried (any more).
        """
        give_up_at = None if keep_trying_for is None else anyio.current_time() + keep_trying_for
        tries = _Tries(policy)
        while True:
            if gated and not self._may_go():
                await self.gate.wait()
            self.requests[operation] += 1
            started = time.perf_counter()
            try:
                result = await self._observed(attempt, operation, started)
            except httpx.TransportError as err:
                if gated:
                    self._judge_reachability(err, policy)
                decision = self._transport_failed(err, tries, what, idempotent, one_shot)
            except APIStatusError as err:
                self.reached = self.reached or gated
                if on_refused is not None and err.status_code in REFUSED_STATUSES and gated:
                    await self._refused(err, policy, on_refused)
                    tries.attempt = 0  # a fresh request, as if sent anew
                    continue
                decision = self._status_failed(err, tries, what, idempotent, one_shot, gated)
            else:
                self.reached = self.reached or gated
                return result
            if decision is None:  # the policy gave up: keep at it for a while, if asked
                await self._next_round(tries, give_up_at)
                continue
            await anyio.sleep(decision.delay)

    async def _observed(
        self, attempt: Callable[[], Awaitable[_T]], operation: str, started: float
    ) -> _T:
        """``attempt()``, its duration and outcome told to the observer."""
        try:
            result = await attempt()
        except Exception as err:
            status = err.status_code if isinstance(err, APIStatusError) else None
            self.observer.attempt(operation, time.perf_counter() - started, status, err)
            raise
        status = result.status_code if isinstance(result, httpx.Response) else None
        self.observer.attempt(operation, time.perf_counter() - started, status, None)
        return result

    def _may_go(self) -> bool:
        """Whether an API request may go at once: raises if the API was judged
        unreachable; False while a 429 holds the gate (wait at it)."""
        self._fail_fast()
        return self.gate.open()

    def _fail_fast(self) -> None:
        """Raise at once, sending nothing, once the API was judged unreachable."""
        if self._unreachable is not None and not self.reached:
            origin, last = self._unreachable
            raise APIUnreachable(url=origin, attempts=self._cannot_connect, last=last)

    def _judge_reachability(self, err: httpx.TransportError, policy: RetryPolicy) -> None:
        """Count a failure to connect while nothing has reached the API; after
        ``policy.unreachable_after`` of them, judge the API unreachable and raise."""
        if self.reached or not policy.unreachable_after or not isinstance(err, _CANNOT_CONNECT):
            return
        self._cannot_connect += 1
        if self._cannot_connect >= policy.unreachable_after and self._unreachable is None:
            origin = _origin(err)
            # A TLS failure often has an empty message; its cause says what went wrong.
            detail = str(err) or str(err.__cause__ or err.__context__ or "") or "no detail"
            self._unreachable = (origin, f"{type(err).__name__}: {detail}")
            logger.info("the API at %s is unreachable; failing every API request", origin)
        if self._unreachable is not None:
            origin, last = self._unreachable
            raise APIUnreachable(url=origin, attempts=self._cannot_connect, last=last) from err

    def _transport_failed(
        self,
        err: httpx.TransportError,
        tries: _Tries,
        what: str,
        idempotent: bool,
        one_shot: bool,
    ) -> RetryDecision | None:
        sent = not isinstance(err, _NEVER_SENT)
        decision = tries.decide(idempotent=idempotent, sent=sent, rng=self.rng)
        if decision.ambiguous:
            raise AmbiguousSubmission(
                f"{what}: {type(err).__name__} after the request was sent, so it may "
                "have been billed; not sent again to avoid paying twice"
            ) from err
        if one_shot:
            raise _wrap(err) from err
        if not decision.retry:
            tries.failure = _wrap(err)
            tries.cause = err
            return None
        logger.info(
            "%s: %s (attempt %d), retrying in %.2fs",
            what, type(err).__name__, tries.attempt + 1, decision.delay,
        )  # fmt: skip
        self.observer.retry(what, tries.attempt + 1, decision.delay, err)
        tries.attempt += 1
        return decision

    def _status_failed(
        self,
        err: APIStatusError,
        tries: _Tries,
        what: str,
        idempotent: bool,
        one_shot: bool,
        gated: bool,
    ) -> RetryDecision | None:
        status = err.status_code
        decision = tries.decide(
            idempotent=idempotent, status=status, retry_after=err.retry_after, rng=self.rng
        )
        policy = tries.policy
        if status == 429 and gated:
            # Everyone waits, not just this request: the limit is the key's, not ours.
            wish = decision.delay if decision.retry else err.retry_after
            self.gate.pause(min(wish or policy.initial_delay, policy.max_retry_after))
        if decision.ambiguous:
            quoted = f" (request id {err.request_id})" if err.request_id else ""
            raise AmbiguousSubmission(
                f"{what}: HTTP {status}{quoted} after the request reached the server, "
                "so it may have been billed; not sent again to avoid paying twice",
                request_id=err.request_id,
            ) from err
        if one_shot:
            raise err
        if not decision.retry:
            tries.failure, tries.cause = err, None
            return None
        logger.info(
            "%s: HTTP %d (attempt %d), retrying in %.2fs%s",
            what, status, tries.attempt + 1, decision.delay,
            " as the server asked" if decision.server_asked else "",
        )  # fmt: skip
        self.observer.retry(what, tries.attempt + 1, decision.delay, err)
        tries.attempt += 1
        if status == 429 and gated:  # the gate is paused for this long already
            return RetryDecision(retry=True)
        return decision

    async def _refused(
        self, err: APIStatusError, policy: RetryPolicy, on_refused: RefusedHook
    ) -> None:
        if err.status_code == 429:
            self.gate.pause(min(err.retry_after or policy.initial_delay, policy.max_retry_after))
            wait = 0.0
        else:
            wait = err.retry_after or policy.initial_delay
        self.observer.refused(err, wait)
        await on_refused(err, wait)

    async def _next_round(self, tries: _Tries, give_up_at: float | None) -> None:
        failure = tries.failure
        assert failure is not None
        passing = not isinstance(failure, APIStatusError) or _passing(failure.status_code)
        if give_up_at is None or not passing or anyio.current_time() >= give_up_at:
            if tries.cause is not None:
                raise failure from tries.cause
            raise failure
        await anyio.sleep(tries.policy.backoff(tries.round, self.rng))
        tries.round += 1
        tries.attempt = 0


class _Tries:
    """Where one call stands: attempts in this round, rounds, the failure that ended one."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.attempt = 0
        self.round = 0
        self.failure: TransportError | APIStatusError | None = None
        self.cause: BaseException | None = None

    def decide(
        self,
        *,
        idempotent: bool,
        sent: bool = True,
        status: int | None = None,
        retry_after: float | None = None,
        rng: random.Random,
    ) -> RetryDecision:
        return decide_retry(
            self.policy,
            attempt=self.attempt,
            idempotent=idempotent,
            status=status,
            retry_after=retry_after,
            sent=sent,
            rng=rng,
        )


def _passing(status: int) -> bool:
    """A failure that may pass if we wait: rate limited or the server in trouble."""
    return status == 429 or status >= 500


def _origin(err: httpx.TransportError) -> str:
    """The scheme, host and port the failed request went to."""
    try:
        url = err.request.url
    except RuntimeError:  # raised without a request (a hand-made transport's error)
        return "the configured base URL"
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}"


def _wrap(err: httpx.TransportError) -> TransportError:
    try:
        request = err.request
    except RuntimeError:  # raised without a request (a hand-made transport's error)
        return TransportError(
            f"request failed: {type(err).__name__}: {err or 'no detail'}", method="", url=""
        )
    return transport_error(err, request)
