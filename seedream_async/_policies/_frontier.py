"""The best possible poll schedules for a duration distribution: pure arithmetic, no I/O.

A polling client notices a finished prediction only at its next poll, so each prediction
costs some polls and some *detection lag* (from the moment it finishes to the poll that
sees it). For a known distribution of durations ``T`` there is a best trade-off between
the two, found by dynamic programming over poll times ``0 = t_0 < t_1 < ... < t_n`` on a
grid (a poll at ``t`` is spent only if the prediction was still running at the previous
poll ``s``):

    V(s) = min over t > s of [ lam * P(T > s) + E[(t - T) * 1{s < T <= t}] + V(t) ]

with ``V(t_n) = 0`` at the grid's end (past almost all the mass). ``lam`` prices one
poll in seconds of lag; sweeping it traces the *frontier*: expected polls per prediction
against mean lag, where no schedule does better on both. The inner minimum is a lower
envelope of lines in ``F(s)`` (one line per candidate ``t``, added in order of slope,
queried at monotone points), so the convex hull trick makes each solve O(n) instead of
O(n^2) (see e.g. https://cp-algorithms.com/geometry/convex_hull_trick.html).

Durations (a lognormal, or observed samples smoothed by a kernel) are ``_durations.py``'s.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from ._durations import Durations

__all__ = [
    "Frontier",
    "Schedule",
    "fixed_interval",
    "frontier",
    "optimal_schedule",
    "schedule_for_lag",
    "schedule_for_polls",
]

# Grid points: the schedule's poll times are chosen among these many candidates.
_GRID = 320
# How close (in log price) to where two schedules' costs cross a probe is placed.
_HAIR = 1e-6
# The grid ends at this quantile; the mass beyond it is detected by the tail backoff.
_TOP = 1.0 - 1e-5


@dataclass(frozen=True)
class Schedule:
    """A poll schedule and what it costs on the distribution it was solved for.

    Args:
        times: seconds after submit of each poll, increasing; past the last one a
            scheduler backs off on its own.
        polls: expected polls per prediction.
        lag: expected detection lag, seconds.
        mean: the distribution's mean duration, seconds.
        price: the price of a poll (seconds of lag) it is optimal at, or 0 when it is
            not one solve's (not compared: equal times and costs are equal schedules).
    """

    times: tuple[float, ...]
    polls: float
    lag: float
    mean: float
    price: float = field(default=0.0, compare=False)

    @property
    def lag_share(self) -> float:
        """Mean lag as a share of the mean duration (0.05 is 5%)."""
        return self.lag / self.mean if self.mean > 0 else 0.0


def _grid(durations: Durations, size: int) -> list[float]:
    """Candidate poll times: half spaced evenly in probability (dense where predictions
    finish), half evenly in time (so the tails are not starved), merged and sorted."""
    top = durations.quantile(_TOP)
    low = durations.quantile(1e-4)
    half = size // 2
    points = {durations.quantile((i + 0.5) / half) for i in range(half)}
    points |= {low + (top - low) * (i + 1) / (size - half) for i in range(size - half)}
    points.add(top)
    return sorted(p for p in points if 0 < p <= top)


@dataclass(frozen=True)
class _Table:
    times: list[float]  # t_0 = 0, then the grid
    cdf: list[float]
    partial: list[float]
    mean: float
    # Per point, independent of the price, for the DP's inner loop: i, S_i = 1 - F_i and
    # t_i F_i - M_i, last point first (the DP runs backwards).
    rows: list[tuple[int, float, float, float, float, float]]


@lru_cache(maxsize=64)
def _table(durations: Durations, size: int) -> _Table:
    times = [0.0, *_grid(durations, size)]
    cdf = [durations.cdf(t) for t in times]
    # The grid's last point detects everything, so the mass past it counts as there.
    cdf[-1] = 1.0
    partial = [durations.partial_mean(t) for t in times]
    partial[-1] = durations.mean
    rows = [
        (i, cdf[i], times[i], partial[i], 1.0 - cdf[i], times[i] * cdf[i] - partial[i])
        for i in range(len(times) - 2, -1, -1)
    ]
    return _Table(times, cdf, partial, durations.mean, rows)


def _solve(table: _Table, cost: float) -> Schedule:
    """One DP solve for one price of a poll (``cost`` seconds of lag), by the convex hull
    trick: V_i = cost * S_i + M_i + min_{j>i} [A_j - t_j * F_i], A_j = t_j F_j - M_j + V_j."""
    t, f, m = table.times, table.cdf, table.partial
    n = len(t) - 1
    choice = [n] * (n + 1)
    # The hull's lines as parallel lists (slope t_j, intercept A_j, index j): [0] has the
    # largest t (the back), [-1] the smallest.
    slopes, intercepts, lines = [t[n]], [t[n] * f[n] - m[n]], [n]
    start = 0  # lines before ``start`` are no longer optimal for any query to come
    for i, x, ti, mi, survival, base in table.rows:
        # Queries x = F_i only decrease, so the optimum moves toward smaller t.
        last = len(lines) - 1
        while start < last and (
            intercepts[start + 1] - slopes[start + 1] * x <= intercepts[start] - slopes[start] * x
        ):
            start += 1
        choice[i] = lines[start]
        intercept = base + (cost * survival + mi + intercepts[start] - slopes[start] * x)
        # Add line i (the smallest t so far): drop lines it makes useless.
        while last > start:
            left = (intercepts[last] - intercept) * (slopes[last - 1] - slopes[last])
            right = (intercepts[last - 1] - intercepts[last]) * (slopes[last] - ti)
            if left < right:
                break
            del slopes[last], intercepts[last], lines[last]
            last -= 1
        slopes.append(ti)
        intercepts.append(intercept)
        lines.append(i)
    times = []
    polls = lag = 0.0
    i = 0
    while i < n:
        j = choice[i]
        polls += 1.0 - f[i]
        lag += t[j] * (f[j] - f[i]) - (m[j] - m[i])
        times.append(t[j])
        i = j
    return Schedule(tuple(times), polls, lag, table.mean, cost)


def optimal_schedule(durations: Durations, *, cost: float, grid: int = _GRID) -> Schedule:
    """The schedule minimising ``cost * polls + lag`` in expectation.

    Args:
        durations: the duration distribution.
        cost: the price of one poll in seconds of lag (> 0).
        grid: how many candidate poll times.
    """
    if cost <= 0:
        raise ValueError("cost must be more than 0 seconds")
    return _solve(_table(durations, grid), cost)


@dataclass(frozen=True)
class Frontier:
    """Optimal (polls, lag) trade-offs of one distribution, fewest polls last.

    Args:
        schedules: optimal schedules, by increasing cost per poll (so decreasing polls).
    """

    schedules: tuple[Schedule, ...]

    def best_lag_share(self, polls: float) -> float | None:
        """The least mean lag (share of the mean duration) any schedule reaches with at
        most ``polls`` expected polls, interpolating linearly between frontier points (a
        mix of two schedules reaches every point between them); None if below the range."""
        points = sorted({(s.polls, s.lag_share) for s in self.schedules})
        if not points or polls < points[0][0]:
            return None
        if polls >= points[-1][0]:
            return points[-1][1]
        index = bisect.bisect_right([p for p, _ in points], polls)
        (p0, l0), (p1, l1) = points[index - 1], points[index]
        return l0 + (l1 - l0) * (polls - p0) / (p1 - p0) if p1 > p0 else min(l0, l1)

    def best_polls(self, lag_share: float) -> float | None:
        """The fewest expected polls reaching mean lag ``lag_share``, or None if none does."""
        points = sorted({(s.lag_share, s.polls) for s in self.schedules})
        if not points or lag_share < points[0][0]:
            return None
        if lag_share >= points[-1][0]:
            return points[-1][1]
        index = bisect.bisect_right([lag for lag, _ in points], lag_share)
        (l0, p0), (l1, p1) = points[index - 1], points[index]
        return p0 + (p1 - p0) * (lag_share - l0) / (l1 - l0) if l1 > l0 else min(p0, p1)


def frontier(
    durations: Durations | Sequence[tuple[float, Durations]], *, low: float = 3e-4,
    high: float = 1.0, steps: int = 96, grid: int = _GRID,
) -> Frontier:  # fmt: skip
    """Sweep the price of a poll from ``low`` to ``high`` mean durations (geometrically).

    Given several groups (``[(weight, durations), ...]``, e.g. one per ``max_images``,
    where the poller knows each prediction's group), every price is solved per group and
    the results are mixed by weight: one price for all groups is what minimises the total
    ``polls * price + lag``, so the mix is the frontier of the whole workload.

    Args:
        durations: the duration distribution, or weighted groups of them.
        low: the cheapest poll, as a fraction of the mean duration (many polls).
        high: the dearest poll, likewise (one or two polls).
        steps: how many prices.
        grid: how many candidate poll times.
    """
    groups = [(1.0, durations)] if isinstance(durations, Durations) else list(durations)
    total = sum(weight for weight, _ in groups)
    if not groups or total <= 0:
        raise ValueError("a frontier needs at least one group of positive weight")
    tables = [(weight / total, _table(group, grid)) for weight, group in groups]
    mean = sum(weight * table.mean for weight, table in tables)
    ratio = (high / low) ** (1.0 / max(1, steps - 1))
    schedules = []
    for k in range(steps):
        solved = [(w, _solve(table, mean * low * ratio**k)) for w, table in tables]
        if len(solved) == 1:
            schedules.append(solved[0][1])
            continue
        polls = sum(w * s.polls for w, s in solved)
        lag = sum(w * s.lag for w, s in solved)
        schedules.append(Schedule((), polls, lag, mean))
    return Frontier(tuple(schedules))


def _bisect(
    durations: Durations,
    grid: int,
    fits: Callable[[Schedule], bool],
    near: Schedule | None,
    dear_fits: bool,
) -> Schedule:
    """The optimal schedule at the price of a poll where ``fits`` turns: ``fits`` must hold
    for dear polls (few) and fail for cheap ones, or the reverse (``dear_fits`` says which
    is expected; it is checked); bisected on log price.

    ``fits`` turns once (the optimal polls fall as the price rises), so a midpoint at or
    above a price known to answer as the dear end does, or at or below one known not to,
    is answered without a solve. ``near`` (a schedule solved for a similar distribution)
    seeds those bounds by a few solves about its price: the bisection takes the same path
    and returns the same schedule, with a solve only for the midpoints between them."""
    table = _table(durations, grid)
    solved: dict[float, Schedule] = {}

    def solve(log_price: float) -> Schedule:
        if log_price not in solved:
            solved[log_price] = _solve(table, math.exp(log_price))
        return solved[log_price]

    def same(log_price: float) -> bool:
        return fits(solve(log_price)) == dear_fits

    cheap, dear = math.log(durations.mean * 1e-6), math.log(durations.mean * 10.0)
    bounds = [-math.inf, dear]  # answers differ from the dear end's at or below [0]; not above [1]
    if near is not None and near.price > 0 and near.mean > 0:
        _gallop(same, math.log(near.price / near.mean * durations.mean), cheap, bounds)
        _narrow(solved, same, bounds)
    if bounds[0] == -math.inf or bounds[1] not in solved:
        # Not bracketed, so the dear end's answer is solved for: had it been expected
        # wrongly, no probe could have bracketed the turn (each side answers alike).
        dear_fits = fits(solve(dear))
        bounds = [
            max((x for x in solved if not same(x)), default=-math.inf),
            min(x for x in solved if same(x)),
        ]
    # 16 halvings of a bracket 16 wide (in log price) pin the price within 0.03%: far
    # finer than the schedules it tells apart (a solve is a fraction of a millisecond).
    for _ in range(16):
        middle = (cheap + dear) / 2
        if bounds[0] < middle < bounds[1]:
            answer = same(middle)
            bounds[answer] = middle
        else:
            answer = middle >= bounds[1]
        if answer:
            dear = middle
        else:
            cheap = middle
    return solve(dear if dear_fits else cheap)


def _gallop(same: Callable[[float], bool], guess: float, cheap: float, bounds: list[float]) -> None:
    """Narrow ``bounds`` (where ``same`` last fails, where it first holds; log prices)
    around ``guess``: probe it, then ever further (1%, 2%, 4%... in price) the way the
    turn lies, until it is bracketed or the search's cheap end is passed."""
    step, x = 0.01, guess
    while max(bounds[0], cheap) < x < bounds[1]:
        if same(x):
            bounds[1], x = x, x - step
        else:
            bounds[0], x = x, x + step
        step *= 2


def _narrow(
    solved: dict[float, Schedule], same: Callable[[float], bool], bounds: list[float]
) -> None:
    """Narrow ``bounds`` (log prices, solved) to where the lines ``price -> price * polls
    + lag`` of their two schedules cross: the optimal schedule changes there, so the answer
    turns there unless a third schedule is optimal between. A probe a hair either side
    tells (it brackets the turn, or it finds the third schedule, and the next round starts
    from it), for a few rounds: the schedules between are few once the bounds are close."""
    for _ in range(5):
        low, high = bounds
        if low == -math.inf or high not in solved or high - low <= 4 * _HAIR:
            return
        cheaper, dearer = solved[low], solved[high]
        if cheaper.polls <= dearer.polls or dearer.lag <= cheaper.lag:
            return
        cross = math.log((dearer.lag - cheaper.lag) / (cheaper.polls - dearer.polls))
        if not low + _HAIR < cross < high - _HAIR:
            return
        for x in (cross - _HAIR, cross + _HAIR):
            if bounds[0] < x < bounds[1]:
                bounds[same(x)] = x


def schedule_for_polls(
    durations: Durations, polls: float, *, grid: int = _GRID, near: Schedule | None = None
) -> Schedule:
    """The optimal schedule spending at most ``polls`` expected polls (the least lag).

    Args:
        durations: the duration distribution.
        polls: the budget, expected polls per prediction (>= 1).
        grid: how many candidate poll times.
        near: the answer for a similar distribution (the last solve's, as durations are
            learned), to search from its price: the same schedule, in fewer solves.
    """
    if polls < 1:
        raise ValueError("a prediction needs at least one poll")
    return _bisect(durations, grid, lambda schedule: schedule.polls <= polls, near, True)


def schedule_for_lag(
    durations: Durations, lag_share: float, *, grid: int = _GRID, near: Schedule | None = None
) -> Schedule:
    """The optimal schedule with mean lag at most ``lag_share`` of the mean (fewest polls).

    Args:
        durations: the duration distribution.
        lag_share: the target, a fraction of the mean duration (> 0).
        grid: how many candidate poll times.
        near: the answer for a similar distribution, to search from its price (as
            :func:`schedule_for_polls`).
    """
    if lag_share <= 0:
        raise ValueError("lag_share must be more than 0")

    def fits(schedule: Schedule) -> bool:
        return schedule.lag_share <= lag_share

    return _bisect(durations, grid, fits, near, False)


def fixed_interval(durations: Durations, interval: float) -> Schedule:
    """What polling every ``interval`` seconds from submit costs on ``durations``: about
    ``E[T] / interval + 1/2`` polls and ``interval / 2`` lag (exactly, by summation)."""
    if interval <= 0:
        raise ValueError("interval must be more than 0 seconds")
    top = durations.quantile(_TOP)
    polls = lag = 0.0
    previous_cdf = previous_partial = 0.0
    k = 1
    while True:
        t = k * interval
        cdf, partial = durations.cdf(t), durations.partial_mean(t)
        if t >= top:
            cdf, partial = 1.0, durations.mean
        polls += 1.0 - previous_cdf
        lag += t * (cdf - previous_cdf) - (partial - previous_partial)
        if cdf >= 1.0:
            break
        previous_cdf, previous_partial = cdf, partial
        k += 1
    return Schedule((), polls, lag, durations.mean)
