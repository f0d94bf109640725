"""Where to place each poll, from durations learned as a batch runs: pure policy, no I/O.

The batch's poll scheduler asks :meth:`PollPlanner.due` when to poll a prediction next.
The answer follows an optimal schedule (``_frontier.py``: dynamic programming over poll
times) for the durations of predictions of the same :class:`Shape` (``max_images`` and
size: an edit-sequential run grows with ``max_images``), solved for a budget of expected
polls per prediction, the one knob. Until a shape has enough finished predictions, a prior
stands in: the contract's typical edit (about 8 s) stretched by ``max_images``.

Durations are estimated with Kaplan-Meier (:func:`kaplan_meier`): predictions still in
flight are *censored* observations (each known to take longer than it has run so far),
so the first solve, made when only the quickest predictions of the first wave have
finished, is not biased to short durations (and so does not poll too early).

Schedules are re-solved as samples accumulate (each time their count grows by a quarter
while the first durations, biased to the short ones that finish first, give way to a
fair sample; every half window once the window is full), not per poll: a solve costs a
few milliseconds of the event loop (the kernel's table and a dozen DP solves, the search
for the budget's price starting from the last solve's).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from ._durations import Durations, silverman
from ._frontier import Schedule, schedule_for_polls

__all__ = ["PollPlanner", "Shape", "kaplan_meier"]

# Each extra generated image adds about this share of a one-image edit (prior only).
_PRIOR_PER_EXTRA_IMAGE = 0.5
# The prior's spread (of log duration): wider than a steady API's, as it is a guess.
_PRIOR_SIGMA = 0.4


@dataclass(frozen=True)
class Shape:
    """The request features that shift a prediction's duration.

    Args:
        max_images: images generated in the sequence.
        size: the requested ``W*H``, or None for the API's default.
    """

    max_images: int = 1
    size: str | None = None


def kaplan_meier(events: Sequence[float], censored: Sequence[float] = ()) -> list[float]:
    """A pseudo-sample of durations from finished (``events``) and unfinished (``censored``:
    each known only to exceed the value) predictions, by the Kaplan-Meier product-limit
    estimator (Kaplan and Meier, JASA 1958).

    Returns one value per observation, at evenly spaced quantiles of the estimate, so the
    usual empirical tools (smoothing, the DP) take it unchanged. The mass the estimate
    leaves past the last finished duration (predictions that outlived every finished one)
    sits at their censoring times: a lower bound, the least that is known.
    """
    finished = sorted(v for v in events if v > 0 and math.isfinite(v))
    running = sorted(v for v in censored if v > 0 and math.isfinite(v))
    if not running or not finished:
        return finished
    total = len(finished) + len(running)
    # Walk the distinct event times; at each, those at risk are the observations >= t.
    points: list[tuple[float, float]] = []  # (time, probability mass)
    survival = 1.0
    e = c = 0
    while e < len(finished):
        t = finished[e]
        c = bisect.bisect_left(running, t, lo=c)  # censored before t left the risk set
        at_risk = (len(finished) - e) + (len(running) - c)
        deaths = bisect.bisect_right(finished, t, lo=e) - e
        after = survival * (1.0 - deaths / at_risk)
        points.append((t, survival - after))
        survival, e = after, e + deaths
    tail = [v for v in running if v >= finished[-1]]
    for value in tail:
        points.append((value, survival / len(tail)))
    out: list[float] = []
    cumulative, index = 0.0, 0
    for k in range(total):
        target = (k + 0.5) / total
        while index < len(points) - 1 and cumulative + points[index][1] < target:
            cumulative += points[index][1]
            index += 1
        out.append(points[index][0])
    return out


class _Group:
    def __init__(self, window: int) -> None:
        self.samples: deque[float] = deque(maxlen=window)
        self.durations: Durations | None = None  # what the schedules were solved for
        self.schedules: dict[float, Schedule] = {}  # by poll budget
        self.last: dict[float, Schedule] = {}  # by poll budget, kept across solves
        self.solved_at = 0  # sample count at the last solve
        self.seen = 0
        self.ordered: list[float] = []  # the same samples, sorted (kept as they come and go)

    def add(self, seconds: float) -> None:
        self.seen += 1
        if self.samples.maxlen == 0:
            return  # a window of none keeps nothing
        if len(self.samples) == self.samples.maxlen:
            del self.ordered[bisect.bisect_left(self.ordered, self.samples[0])]
        self.samples.append(seconds)
        bisect.insort(self.ordered, seconds)

    def median(self) -> float:
        # Kept sorted as samples come, not sorted per ask: a batch asks at every submit,
        # and sorting the 512-sample window each time cost more than its solves.
        return self.ordered[len(self.ordered) // 2]


class PollPlanner:
    """Optimal poll times per request shape, for one budget of polls per prediction.

    Args:
        polls: expected polls per prediction (the knob: fewer polls, more detection lag).
        typical: the prior median duration of a one-image edit, in seconds.
        tail_cap: the longest wait between polls once a prediction outlives its schedule.
        min_samples: finished predictions of a shape before its own durations are used.
        window: how many recent durations per shape are kept.
        running: how long each prediction of a shape still in flight is known to have
            run (censored durations for :func:`kaplan_meier`); None to use finished
            ones only.
    """

    def __init__(
        self,
        *,
        polls: float,
        typical: float,
        tail_cap: float,
        min_samples: int = 40,
        window: int = 512,
        running: Callable[[Shape], Sequence[float]] | None = None,
    ) -> None:
        if polls < 1:
            raise ValueError("polls must be at least 1 per prediction")
        if typical <= 0 or tail_cap <= 0:
            raise ValueError("typical and tail_cap must be more than 0 seconds")
        self.polls = polls
        self._typical = typical
        self._tail_cap = tail_cap
        self._min_samples = max(2, min_samples)
        self._window = window
        self._groups: dict[Hashable, _Group] = {}
        self._running = running

    def learn(self, shape: Shape, seconds: float) -> None:
        """Record one finished prediction's duration (seconds from submit to done)."""
        if seconds > 0 and math.isfinite(seconds):
            self._group(shape).add(seconds)

    def learned(self, shape: Shape) -> int:
        """How many durations of ``shape`` were recorded."""
        group = self._groups.get(shape)
        return group.seen if group else 0

    def typical(self, shape: Shape) -> float:
        """The median duration of ``shape``: learned, or the prior's."""
        group = self._groups.get(shape)
        if group is not None and len(group.samples) >= self._min_samples:
            return group.median()
        return self._prior_median(shape)

    def typical_duration(self) -> float | None:
        """The learned median duration of the most learned shape, or None before any."""
        learned = [g for g in self._groups.values() if len(g.samples) >= self._min_samples]
        if not learned:
            return None
        return max(learned, key=lambda group: group.seen).median()

    def schedule(self, shape: Shape, *, polls: float | None = None) -> Schedule:
        """The current optimal schedule for ``shape`` (solved again when due): give it to
        a prediction at submit and place its polls with :meth:`due`.

        Args:
            shape: the request's shape.
            polls: a budget other than the planner's own (fewer polls under pressure).
        """
        group = self._group(shape)
        count = len(group.samples)
        if count >= self._min_samples and (
            group.solved_at < self._min_samples
            or group.seen - group.solved_at >= min(count / 4, self._window / 2)
        ):
            samples = list(group.samples)
            if self._running is not None:
                samples = kaplan_meier(samples, self._running(shape))
            group.durations = Durations.empirical(samples, smoothing=silverman(samples))
            group.solved_at = group.seen
            group.schedules.clear()
        if group.durations is None:
            group.durations = Durations.lognormal(self._prior_median(shape), _PRIOR_SIGMA)
        budget = self.polls if polls is None else polls
        schedule = group.schedules.get(budget)
        if schedule is None:
            # The last answer for this budget starts the search near its price of a poll.
            near = group.last.get(budget)
            schedule = schedule_for_polls(group.durations, budget, near=near)
            group.schedules[budget] = group.last[budget] = schedule
        return schedule

    def due(self, schedule: Schedule, elapsed: float) -> float:
        """Seconds after submit at which to poll next, given ``elapsed`` seconds since submit:
        the first time of ``schedule`` after it; past its end, a growing tail wait.

        A prediction keeps the schedule it was given at submit (pass the same one each
        time): switching a prediction in flight to a re-solved schedule costs polls that
        neither schedule would spend.
        """
        times = schedule.times
        # A poll placed at t may report elapsed = t less a rounding error: skip past it.
        index = bisect.bisect_right(times, elapsed + 1e-9 * (1.0 + abs(elapsed)))
        if index < len(times):
            return times[index]
        last = times[-1] if times else 0.0
        gap = times[-1] - times[-2] if len(times) >= 2 else schedule.mean * 0.05
        # A straggler: wait half as long again as it has outlived the schedule, so its
        # polls thin out geometrically, but never longer than the cap.
        step = min(self._tail_cap, max(gap, 0.5 * (elapsed - last)))
        return max(elapsed, last) + step

    def _group(self, shape: Shape) -> _Group:
        group = self._groups.get(shape)
        if group is None:
            group = self._groups[shape] = _Group(self._window)
        return group

    def _prior_median(self, shape: Shape) -> float:
        return self._typical * (1 + _PRIOR_PER_EXTRA_IMAGE * (max(1, shape.max_images) - 1))
