"""One polling scheduler for every prediction of a batch.

Instead of a sleeping task per prediction, one loop keeps a due-time queue (a binary
heap) of the predictions in flight and starts each poll when it falls due, under a cap
on polls in flight and an optional GCRA cap on polls per second.

Where to poll comes from what the batch has learned: once a few predictions of the same
``max_images`` have finished, the first poll is placed at a quantile of their observed
durations and later ones are spaced a fraction of the median apart, so a prediction is
polled two or three times and noticed soon after it finishes. After a 429, polls are
spaced as the policy's economy setting would space them for a while, since each spends
the key's request budget. Before anything is learned, the :class:`PollPolicy`'s fixed
backoff applies. Past the 99th percentile the spacing backs
off exponentially, so a straggler costs few polls.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import logging
import random
from collections import deque
from dataclasses import dataclass, field

import anyio

from .._exceptions import (
    BadRequestError,
    DeadlineExceeded,
    PredictionFailed,
    RateLimitError,
    SeedreamError,
    ServerError,
    TransportError,
)
from .._limits import RateLimiter
from .._models import Prediction
from .._polling import PollPolicy
from ._api import PollAPI

__all__ = ["DurationEstimator", "PollScheduler"]

logger = logging.getLogger("seedream_async")

# How long a 429 keeps polling sparse, in typical prediction durations.
_PRESSURE_MEMORY = 4.0
# Polls that may answer 404 for a prediction we were just given the id of.
_UNKNOWN_ID_GRACE = 3


class DurationEstimator:
    """Quantiles of the last ``window`` observed prediction durations.

    Args:
        window: how many recent samples to keep.
        min_samples: fewer samples than this give no estimate.
    """

    def __init__(self, *, window: int = 512, min_samples: int = 5) -> None:
        self._order: deque[float] = deque()
        self._sorted: list[float] = []
        self._window = window
        self._min_samples = min_samples

    def add(self, seconds: float) -> None:
        """Record one observed duration."""
        self._order.append(seconds)
        bisect.insort(self._sorted, seconds)
        if len(self._order) > self._window:
            oldest = self._order.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]

    def __len__(self) -> int:
        return len(self._sorted)

    def quantile(self, fraction: float) -> float | None:
        """The ``fraction`` quantile of recent durations, or None before ``min_samples``."""
        if len(self._sorted) < self._min_samples:
            return None
        index = min(len(self._sorted) - 1, max(0, round(fraction * (len(self._sorted) - 1))))
        return self._sorted[index]


@dataclass(eq=False)
class _Watch:
    prediction_id: str
    submitted_at: float
    max_images: int
    deadline_at: float
    polls: int = 0
    tail_interval: float = 0.0
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Prediction | None = None
    error: SeedreamError | None = None
    abandoned: bool = False

    def finish(self, result: Prediction | None = None, error: SeedreamError | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


class PollScheduler:
    """Polls every registered prediction from one loop; :meth:`wait` awaits one of them.

    Args:
        client: what sends the polls and tells of rate-limit pressure.
        policy: fixed backoff before anything is learned, and the deadline.
        max_in_flight: the most polls awaiting an answer at once.
        rate: the most polls started per second (GCRA), or None for no cap.
        rng: the random source for jitter.
    """

    def __init__(
        self,
        client: PollAPI,
        *,
        policy: PollPolicy,
        max_in_flight: int = 64,
        rate: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._policy = policy
        self._slots = anyio.Semaphore(max_in_flight)
        self._rate = RateLimiter(rate, burst=max(1, int(rate))) if rate else None
        self._rng = rng or random.Random()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._counter = itertools.count()
        self._wakeup = anyio.Event()
        self._estimators: dict[int, DurationEstimator] = {}

    def typical_duration(self) -> float | None:
        """The median duration learned so far (of the most common ``max_images``), or None."""
        if not self._estimators:
            return None
        return max(self._estimators.values(), key=len).quantile(0.5)

    async def wait(self, prediction_id: str, *, submitted_at: float, max_images: int) -> Prediction:
        """Wait until the scheduler sees ``prediction_id`` done, and return it.

        Args:
            prediction_id: the prediction.
            submitted_at: when its submit was answered, on the event loop's clock.
            max_images: its ``max_images``; durations are learned per value.

        Raises:
            PredictionFailed: it failed.
            DeadlineExceeded: it was not done by the policy's deadline.
        """
        deadline = self._policy.deadline
        watch = _Watch(
            prediction_id,
            submitted_at,
            max_images,
            submitted_at + (deadline if deadline is not None else float("inf")),
        )
        self._schedule(watch, anyio.current_time())
        try:
            await watch.done.wait()
        finally:
            watch.abandoned = True
        if watch.error is not None:
            raise watch.error
        assert watch.result is not None
        if watch.result.failed:
            raise PredictionFailed(prediction_id, watch.result.error)
        return watch.result

    async def run(self) -> None:
        """The scheduling loop; run it in a task group and cancel it when done."""
        async with anyio.create_task_group() as group:
            while True:
                if not self._heap:
                    await self._sleep_until(float("inf"))
                    continue
                due, _, watch = self._heap[0]
                now = anyio.current_time()
                if due > now:
                    await self._sleep_until(due)
                    continue
                heapq.heappop(self._heap)
                if watch.abandoned:
                    continue
                if now >= watch.deadline_at:
                    limit = self._policy.deadline or 0.0
                    watch.finish(error=DeadlineExceeded(watch.prediction_id, limit))
                    continue
                await self._slots.acquire()
                if self._rate is not None:
                    await self._rate.acquire()
                group.start_soon(self._poll, watch)

    async def _sleep_until(self, due: float) -> None:
        with anyio.move_on_after(due - anyio.current_time()):
            await self._wakeup.wait()
        if self._wakeup.is_set():
            self._wakeup = anyio.Event()

    async def _poll(self, watch: _Watch) -> None:
        try:
            prediction = await self._client.get_prediction(watch.prediction_id)
        except (RateLimitError, ServerError, TransportError) as err:
            # Still failing after the client's retries, but a poll is free and changes
            # nothing: ask again later, until the deadline, rather than fail a paid item.
            logger.info("poll of %s failed (%s); polling again later", watch.prediction_id, err)
            watch.polls += 1
            self._schedule(watch, anyio.current_time())
            return
        except BadRequestError as err:
            if err.status_code == 404 and watch.polls < _UNKNOWN_ID_GRACE:
                # Just submitted and paid for: give a replicated store a moment to know it.
                watch.polls += 1
                self._schedule(watch, anyio.current_time())
            else:
                watch.finish(error=err)
            return
        except SeedreamError as err:
            watch.finish(error=err)
            return
        finally:
            self._slots.release()
        watch.polls += 1
        if prediction.terminal:
            if prediction.done:
                self._learn(watch, prediction)
            watch.finish(prediction)
        else:
            self._schedule(watch, anyio.current_time())

    def _learn(self, watch: _Watch, prediction: Prediction) -> None:
        seconds: float | None = None
        if prediction.created_at and prediction.completed_at:
            seconds = (prediction.completed_at - prediction.created_at).total_seconds()
        if not seconds or seconds <= 0:
            seconds = prediction.predict_time
        if seconds and seconds > 0:
            estimator = self._estimators.setdefault(watch.max_images, DurationEstimator())
            estimator.add(seconds)

    def _next_due(self, watch: _Watch, now: float) -> float:
        estimator = self._estimators.get(watch.max_images)
        median = estimator.quantile(0.5) if estimator else None
        if estimator is None or median is None:
            policy = self._policy
            if watch.polls == 0:
                return watch.submitted_at + policy.first_poll
            return now + policy.backoff(watch.polls - 1, self._rng)
        first_quantile, spacing = self._policy.learned_first, self._policy.learned_spacing
        if now - self._client.rate_limited_at < _PRESSURE_MEMORY * median:
            # Rate limited lately: every poll spends the key's request budget, which the
            # submits need too, so poll as sparingly as the economy setting would.
            first_quantile, spacing = max(first_quantile, 0.6), max(spacing, 0.3)
        if watch.polls == 0:
            first = estimator.quantile(first_quantile) or median
            return watch.submitted_at + first
        step = spacing * median
        tail = estimator.quantile(0.99) or median
        if now - watch.submitted_at > tail:
            # A straggler: back off from the learned spacing up to the policy's cap.
            watch.tail_interval = min(
                max(watch.tail_interval * self._policy.multiplier, step),
                max(self._policy.max_interval, step),
            )
            step = watch.tail_interval
        return now + step * (1.0 + 0.2 * (self._rng.random() - 0.5))

    def _schedule(self, watch: _Watch, now: float) -> None:
        due = min(max(self._next_due(watch, now), now), watch.deadline_at)
        earliest = self._heap[0][0] if self._heap else float("inf")
        heapq.heappush(self._heap, (due, next(self._counter), watch))
        if due < earliest:
            self._wakeup.set()  # due before whatever the loop is sleeping for
