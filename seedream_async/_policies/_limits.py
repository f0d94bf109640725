"""Flow control for a batch: a rate limiter, an adaptive concurrency limit, a pause gate.

* :class:`RateLimiter` is GCRA, the generic cell rate algorithm of ATM networks
  (ATM Forum TM 4.0; a readable account: https://brandur.org/rate-limiting). It keeps one
  number, the theoretical arrival time (TAT), and spaces requests ``1/rate`` apart while
  allowing a burst of ``burst`` back to back.
* :class:`AdaptiveLimit` is AIMD, additive increase / multiplicative decrease, as TCP's
  congestion avoidance (RFC 5681): a 429 halves the number of predictions allowed in
  flight, and each success grows it by ``1/limit``, about one slot per window. Since a
  window here lasts a whole prediction (seconds, not a network round trip), it first
  returns quickly, one slot per success, to 90% of the level where congestion struck,
  as CUBIC does (RFC 9438, "fast convergence" to W_max), and probes slowly past it.
* :class:`PauseGate` makes a whole client wait out a server's ``Retry-After`` together,
  instead of each request discovering the 429 on its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import anyio

__all__ = ["AdaptiveLimit", "PauseGate", "RateLimiter"]

Clock = Callable[[], float]

_NEVER = float("-inf")


class RateLimiter:
    """GCRA: at most ``rate`` acquisitions per second on average, bursts up to ``burst``.

    Args:
        rate: acquisitions per second, more than 0.
        burst: how many may go back to back after an idle spell.
        clock: the time source (seconds); the event loop's clock when None.
    """

    def __init__(self, rate: float, *, burst: int = 1, clock: Clock | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be more than 0 per second")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate
        self._interval = 1.0 / rate
        self._tolerance = self._interval * (burst - 1)
        self._tat = float("-inf")
        self._clock = clock or anyio.current_time

    def reserve(self, now: float) -> float:
        """Take the next slot at time ``now``; return the seconds to wait until it comes."""
        tat = max(self._tat, now)
        wait = max(0.0, tat - self._tolerance - now)
        self._tat = tat + self._interval
        return wait

    async def acquire(self) -> None:
        """Wait for the next slot."""
        wait = self.reserve(self._clock())
        if wait > 0:
            await anyio.sleep(wait)


class AdaptiveLimit:
    """A concurrency limit that shrinks on congestion and grows back on success (AIMD).

    Args:
        limit: the most holders at once, and the limit it grows back to.
        minimum: the least it shrinks to.
        decrease: the factor applied on congestion.
        clock: the time source; the event loop's clock when None.
    """

    def __init__(
        self,
        limit: int,
        *,
        minimum: int = 1,
        decrease: float = 0.5,
        clock: Clock | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.maximum = limit
        self.minimum = max(1, min(minimum, limit))
        self._limit = float(limit)
        self._decrease = decrease
        self._in_use = 0
        self._waiters: deque[anyio.Event] = deque()
        self._calm_after = float("-inf")
        self._recover_to = 0.0
        self._clock = clock or anyio.current_time
        self.peak_in_use = 0

    @property
    def limit(self) -> int:
        """The number of holders allowed now."""
        return int(self._limit)

    @property
    def in_use(self) -> int:
        """The number of holders now."""
        return self._in_use

    async def acquire(self) -> None:
        """Wait until fewer than :attr:`limit` hold it, then hold it."""
        if self._in_use < self.limit and not self._waiters:
            # A cancellation may land only before the slot is taken, never after, or the
            # caller (whose acquire raised) would leak it. No yield after it, unlike
            # anyio's CapacityLimiter: the caller goes straight on to send its request,
            # which yields anyway, and a yield here was a whole loop pass per submit.
            await anyio.lowlevel.checkpoint_if_cancelled()
            self._take()
            return
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event in self._waiters:
                self._waiters.remove(event)
            elif event.is_set():
                self.release()  # woken and cancelled in the same breath: hand the slot on
            raise

    def release(self) -> None:
        """Give a holding back."""
        self._in_use -= 1
        self._wake()

    def succeeded(self) -> None:
        """Increase: one slot per success up to 90% of the last congested level, then
        ``1/limit`` per success (about one slot per window)."""
        if self._limit < self.maximum:
            step = 1.0 if self._limit < self._recover_to else 1.0 / self._limit
            self._limit = min(float(self.maximum), self._limit + step)
            self._wake()

    def congested(self, cooldown: float = 1.0) -> None:
        """Multiplicative decrease, at most once per ``cooldown`` seconds.

        One burst of 429s answers many requests sent before the first came back; counting
        each of them would shrink the limit to the minimum for one event.
        """
        now = self._clock()
        if now < self._calm_after:
            return
        self._calm_after = now + cooldown
        self._recover_to = 0.9 * self._limit
        self._limit = max(float(self.minimum), self._limit * self._decrease)

    def _take(self) -> None:
        self._in_use += 1
        self.peak_in_use = max(self.peak_in_use, self._in_use)

    def _wake(self) -> None:
        while self._waiters and self._in_use < self.limit:
            self._take()
            self._waiters.popleft().set()


class PauseGate:
    """Every caller waits while the gate is paused; a 429's ``Retry-After`` pauses it.

    Args:
        clock: the time source; the event loop's clock when None.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._until = _NEVER
        self._clock = clock or anyio.current_time
        self.paused_at = float("-inf")
        """When the gate was last paused, on its clock."""

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` from now (a longer pause already set stands)."""
        self.paused_at = self._clock()
        self._until = max(self._until, self.paused_at + seconds)

    def open(self) -> bool:
        """Whether a caller may go now (never paused: without reading the clock)."""
        return self._until == _NEVER or self._until <= self._clock()

    async def wait(self) -> None:
        """Return once the gate is open."""
        # A sleep, not an Event: a later 429 may push the end further while we wait.
        while (remaining := self._until - self._clock()) > 0:  # noqa: ASYNC110
            await anyio.sleep(remaining)
