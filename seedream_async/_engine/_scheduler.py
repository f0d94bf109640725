"""One polling scheduler for every prediction of a batch.

Instead of a sleeping task per prediction, one loop keeps a due-time queue (a binary
heap) of the predictions in flight and starts each poll when it falls due, under a cap
on polls in flight and an optional GCRA cap on polls per second. Polls run on a pool of
worker tasks (no more than the cap, started as the load needs them): a worker that ends a
poll takes the next due prediction itself, so the loop only wakes to hand one to an idle
worker, and a poll costs neither a new task nor a cancel scope of its own (issue 22: the
scheduler's CPU per poll; ``python -m benchmarks.scheduler_cost``).

Where to poll comes from a :class:`~seedream_async._policies._planner.PollPlanner`: at submit, a
prediction is given the optimal schedule (dynamic programming over poll times,
``_frontier.py``) for the durations learned from finished predictions of the same shape
(``max_images`` and size), spending the policy's ``polls`` on average; before a shape has
enough finished predictions, a prior (the typical edit) stands in. After a 429, new
predictions get the thrifty budget for a while, since each poll spends the key's request
budget. Past the end of its schedule a straggler is polled ever more rarely, up to the
policy's ``max_interval``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from .._base._clock import loop_clock
from .._base._exceptions import (
    APIUnreachable,
    BadRequestError,
    DeadlineExceeded,
    MalformedResponse,
    PredictionFailed,
    RateLimitError,
    SeedreamError,
    ServerError,
    TransportError,
)
from .._policies._frontier import Schedule
from .._policies._limits import RateLimiter
from .._policies._planner import PollPlanner, Shape
from .._policies._polling import THRIFTY_POLLS, PollPolicy
from .._wire._parsing import Prediction
from ._api import PollAPI

__all__ = ["PollScheduler", "Shape"]

logger = logging.getLogger("seedream_async")

# How long a 429 keeps polling sparse, in typical prediction durations.
_PRESSURE_MEMORY = 4.0
# Polls due within this share of the typical duration of each other start together, in one
# wake-up of the event loop (their answers then arrive together too): up to this much
# early, never late. A wake-up costs the process far more CPU than a poll's own Python on
# some machines (``python -m benchmarks.wake_cost``), so the batch's CPU falls with them.
_COALESCE = 0.015
# Polls that may answer 404 for a prediction we were just given the id of.
_UNKNOWN_ID_GRACE = 3


@dataclass(eq=False)
class _Watch:
    prediction_id: str
    submitted_at: float
    shape: Shape
    schedule: Schedule
    deadline_at: float
    polls: int = 0
    alive: float = 0.0  # seconds after submit a poll last saw it still running
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Prediction | None = None
    error: SeedreamError | None = None
    abandoned: bool = False
    # When its current poll was due (it may have been started a little before: see
    # _COALESCE); its next poll is placed after this time, not after the poll's start.
    planned: float = 0.0

    def finish(self, result: Prediction | None = None, error: SeedreamError | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


class _Handoff:
    """Where an idle poll worker waits for the loop to hand it a prediction."""

    __slots__ = ("_event", "_watch")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._watch: _Watch | None = None

    def hand(self, watch: _Watch) -> None:
        self._watch = watch
        self._event.set()

    async def take(self) -> _Watch:
        await self._event.wait()
        watch, self._watch = self._watch, None
        self._event = anyio.Event()
        assert watch is not None
        return watch


class PollScheduler:
    """Polls every registered prediction from one loop; :meth:`wait` awaits one of them.

    Args:
        client: what sends the polls and tells of rate-limit pressure.
        policy: the poll budget, the prior, the straggler cap and the deadline.
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
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._max_in_flight = max_in_flight
        self._workers = 0  # poll workers started
        self._idle: list[_Handoff] = []  # workers waiting for a prediction to poll
        self._starved = False  # the loop waits for a worker to go idle
        self._clock: Callable[[], float] | None = None
        self._rate = RateLimiter(rate, burst=max(1, int(rate))) if rate else None
        self._rng = rng or random.Random()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._slack = _COALESCE * policy.prior_duration  # see _COALESCE
        self._counter = itertools.count()
        # The loop's sleep, while it sleeps: cancelled to wake it early.
        self._sleep: anyio.CancelScope | None = None
        self._planner = PollPlanner(
            polls=policy.polls,
            typical=policy.prior_duration,
            tail_cap=max(policy.max_interval, 1e-6),
            running=self._running,
        )
        # The predictions being waited for: bounded by the batch's concurrency.
        self._live: set[_Watch] = set()

    def _now(self) -> float:
        clock = self._clock
        if clock is None:
            clock = self._clock = loop_clock()
        return clock()

    def _running(self, shape: Shape) -> list[float]:
        """How long each prediction of ``shape`` in flight is known to have run (censored
        durations: the planner's Kaplan-Meier estimate counts them)."""
        return [watch.alive for watch in self._live if watch.shape == shape]

    def typical_duration(self) -> float | None:
        """The median duration learned so far (of the most common shape), or None."""
        return self._planner.typical_duration()

    async def wait(self, prediction_id: str, *, submitted_at: float, shape: Shape) -> Prediction:
        """Wait until the scheduler sees ``prediction_id`` done, and return it.

        Args:
            prediction_id: the prediction.
            submitted_at: when its submit was answered, on the event loop's clock.
            shape: its request's shape; durations are learned per shape.

        Raises:
            PredictionFailed: it failed.
            DeadlineExceeded: it was not done by the policy's deadline.
        """
        deadline = self._policy.deadline
        watch = _Watch(
            prediction_id,
            submitted_at,
            shape,
            self._schedule_for(shape, self._now()),
            submitted_at + (deadline if deadline is not None else float("inf")),
        )
        self._schedule(watch, self._now())
        self._live.add(watch)
        try:
            await watch.done.wait()
        finally:
            watch.abandoned = True
            self._live.discard(watch)
        if watch.error is not None:
            raise watch.error
        assert watch.result is not None
        if watch.result.failed:
            result = watch.result
            raise PredictionFailed.of(prediction_id, result.error, result.error_code)
        return watch.result

    async def run(self) -> None:
        """The scheduling loop; run it in a task group and cancel it when done.

        Polls run on a pool of worker tasks, at most ``max_in_flight`` of them, started as
        the load needs them: a worker that ends a poll takes the next due prediction itself,
        and this loop only wakes to hand a due prediction to an idle worker (a task per poll
        costs more CPU than the poll's own work).
        """
        self._clock = loop_clock()
        try:
            async with anyio.create_task_group() as group:
                while True:
                    self._dispatch(group)
                    free = self._idle or self._workers < self._max_in_flight
                    # Every worker busy: the first to finish takes what falls due, and
                    # wakes this loop when it goes idle.
                    self._starved = not free
                    await self._sleep_until(self._heap[0][0] if free and self._heap else math.inf)
        finally:  # the workers ended with the task group
            self._workers, self._idle, self._starved, self._sleep = 0, [], False, None

    def _dispatch(self, group: anyio.abc.TaskGroup) -> None:
        """Hand every due prediction to an idle worker, or to a new one below the cap."""
        while self._idle or self._workers < self._max_in_flight:
            watch = self._take_due()
            if watch is None:
                return
            if self._idle:
                self._idle.pop().hand(watch)
            else:
                self._workers += 1
                group.start_soon(self._work, watch)

    def _take_due(self) -> _Watch | None:
        """The next prediction due for a poll, or None; ends those past their deadline."""
        heap = self._heap
        now = self._now()
        horizon = now + self._slack
        while heap and heap[0][0] <= horizon:
            due, _, watch = heapq.heappop(heap)
            watch.planned = due
            if watch.abandoned:
                continue
            if now >= watch.deadline_at:
                limit = self._policy.deadline or 0.0
                watch.finish(error=DeadlineExceeded(watch.prediction_id, limit))
                continue
            return watch
        return None

    async def _work(self, first: _Watch) -> None:
        """A poll worker: polls ``first``, then whatever falls due, idling in between."""
        watch: _Watch | None = first
        handoff = _Handoff()
        while True:
            # One cancel scope bounds this worker's polls, its deadline moved to that of
            # each poll's prediction (cheaper than a scope per poll). A deadline that fires
            # spends the scope: the worker leaves it and takes a new one.
            with anyio.CancelScope() as scope:
                while not scope.cancel_called:
                    if watch is None:
                        scope.deadline = math.inf  # idle: no prediction's deadline applies
                        self._idle.append(handoff)
                        if self._starved:
                            self._wake()  # the loop waits for a free worker
                        watch = await handoff.take()
                    # The prediction's deadline bounds its polls too: a poll whose answer
                    # trickles in, or whose retries each get the full request deadline,
                    # ends at it. Moved from poll to poll, and cleared only to go idle
                    # (moving a deadline reschedules a timer).
                    scope.deadline = watch.deadline_at
                    if self._rate is not None:
                        await self._rate.acquire()
                    await self._poll(watch)
                    watch = self._take_due()
            if scope.cancelled_caught and watch is not None:
                # The deadline ended the poll of ``watch`` (or its wait for the poll rate).
                limit = self._policy.deadline or 0.0
                watch.finish(error=DeadlineExceeded(watch.prediction_id, limit))
                watch = self._take_due()

    async def _sleep_until(self, due: float) -> None:
        """Sleep until ``due`` or until :meth:`_wake`. A plain sleep ends at ``due`` (the
        usual way: no cancellation to raise and catch); waking early cancels it."""
        with anyio.CancelScope() as self._sleep:
            await anyio.sleep(max(0.0, due - self._now()))
        self._sleep = None

    def _wake(self) -> None:
        if self._sleep is not None:
            self._sleep.cancel()
            self._sleep = None

    async def _poll(self, watch: _Watch) -> None:
        """Poll ``watch`` once and act on the answer (under the worker's scope, whose
        deadline is the prediction's)."""
        try:
            prediction = await self._client.get_prediction(watch.prediction_id)
        except APIUnreachable as err:
            # Nothing has reached the API: asking again until the deadline would only hide
            # a wrong URL for minutes. The id stays with the item's result.
            watch.finish(error=err)
            return
        except (RateLimitError, ServerError, TransportError, MalformedResponse) as err:
            # Still failing after the client's retries, or an answer that could not be read
            # (an HTML page, an error envelope, a body over the cap), but a poll is free and
            # changes nothing: ask again later, until the deadline, rather than fail a paid
            # item.
            logger.info("poll of %s failed (%s); polling again later", watch.prediction_id, err)
            watch.polls += 1
            self._schedule(watch, self._now())
            return
        except BadRequestError as err:
            if err.status_code != 404 or watch.polls < _UNKNOWN_ID_GRACE:
                # 404: just submitted and paid for, give a replicated store a moment to know
                # it. Another 4xx on a GET of a paid prediction (an error envelope, say) may
                # pass too: polling again costs nothing, failing loses what was paid for.
                logger.info(
                    "poll of %s refused (%s); polling again later", watch.prediction_id, err
                )
                watch.polls += 1
                self._schedule(watch, self._now())
            else:
                watch.finish(error=err)
            return
        except SeedreamError as err:
            watch.finish(error=err)
            return
        except Exception as err:  # a bug must fail this item, never the whole batch
            logger.exception("poll of %s failed unexpectedly", watch.prediction_id)
            wrapped = SeedreamError(
                f"poll of {watch.prediction_id}: unexpected {type(err).__name__}"
            )
            wrapped.__cause__ = err
            watch.finish(error=wrapped)
            return
        watch.polls += 1
        if prediction.terminal:
            if prediction.done:
                self._learn(watch, prediction)
            watch.finish(prediction)
        else:
            now = self._now()
            watch.alive = max(watch.alive, now - watch.submitted_at)
            self._schedule(watch, now)

    def _learn(self, watch: _Watch, prediction: Prediction) -> None:
        seconds: float | None = None
        if prediction.created_at and prediction.completed_at:
            seconds = (prediction.completed_at - prediction.created_at).total_seconds()
        if not seconds or seconds <= 0:
            seconds = prediction.predict_time
        if seconds and seconds > 0:
            self._planner.learn(watch.shape, seconds)

    def _schedule_for(self, shape: Shape, now: float) -> Schedule:
        """The schedule a prediction submitted ``now`` keeps until it is seen done."""
        typical = self._planner.typical_duration() or self._policy.prior_duration
        self._slack = _COALESCE * typical
        if now - self._client.rate_limited_at < _PRESSURE_MEMORY * typical:
            # Rate limited lately: every poll spends the key's request budget, which the
            # submits need too, so poll as sparingly as the thrifty preset would.
            return self._planner.schedule(shape, polls=min(self._policy.polls, THRIFTY_POLLS))
        return self._planner.schedule(shape)

    def _next_due(self, watch: _Watch, now: float) -> float:
        # A poll started early (coalesced) counts as made at its planned time.
        elapsed = max(now, watch.planned) - watch.submitted_at
        return watch.submitted_at + self._planner.due(watch.schedule, elapsed)

    def _schedule(self, watch: _Watch, now: float) -> None:
        due = min(max(self._next_due(watch, now), now), watch.deadline_at)
        earliest = self._heap[0][0] if self._heap else float("inf")
        heapq.heappush(self._heap, (due, next(self._counter), watch))
        if due < earliest:
            self._wake()  # due before whatever the loop is sleeping for
