from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable

import pytest

from seedream_async._policies._durations import Durations, silverman
from seedream_async._policies._frontier import (
    _GRID,
    Schedule,
    _bisect,
    _table,
    fixed_interval,
    frontier,
    optimal_schedule,
    schedule_for_lag,
    schedule_for_polls,
)

# The simulator's default shape and the contract's typical edit.
DEFAULT = Durations.lognormal(8.3, 0.3)


def _quadratic(durations: Durations, cost: float, grid: int) -> float:
    """The same DP as the module's, written the obvious O(n^2) way: the optimal value."""
    table = _table(durations, grid)
    t, f, m = table.times, table.cdf, table.partial
    n = len(t) - 1
    value = [0.0] * (n + 1)
    for i in range(n - 1, -1, -1):
        value[i] = cost * (1 - f[i]) + min(
            t[j] * (f[j] - f[i]) - (m[j] - m[i]) + value[j] for j in range(i + 1, n + 1)
        )
    return value[0]


@pytest.mark.parametrize(
    ("polls", "lag"),
    [
        pytest.param(1.6, 0.195, id="1.6"),
        pytest.param(2.1, 0.142, id="2.1"),
        pytest.param(2.7, 0.103, id="2.7"),
        pytest.param(3.5, 0.074, id="3.5"),
        pytest.param(4.8, 0.053, id="4.8"),
        pytest.param(6.7, 0.038, id="6.7"),
        pytest.param(10.4, 0.024, id="10.4"),
    ],
)
def test_frontier_reproduces_the_issue_table(polls: float, lag: float) -> None:
    """The best lag at each poll count for lognormal(8.3 s, 0.3) matches issue 15's table
    within one percentage point (1.6 polls comes out at 20.3%, the rest within 0.4)."""
    assert frontier(DEFAULT).best_lag_share(polls) == pytest.approx(lag, abs=0.01)


@pytest.mark.parametrize(
    ("interval", "lag", "polls"),
    [
        pytest.param(0.5, 0.029, 17.8, id="0.5s"),
        pytest.param(1.0, 0.058, 9.2, id="1s"),
        pytest.param(2.0, 0.115, 4.8, id="2s"),
    ],
)
def test_fixed_interval_figures(interval: float, lag: float, polls: float) -> None:
    """Polling every ``interval`` costs E[T]/interval + 1/2 polls and interval/2 of lag."""
    schedule = fixed_interval(DEFAULT, interval)
    assert schedule.lag_share == pytest.approx(lag, abs=0.001)
    assert schedule.polls == pytest.approx(polls, abs=0.1)


@pytest.mark.parametrize("interval", [0.5, 1.0, 2.0], ids=["0.5s", "1s", "2s"])
def test_each_fixed_poller_is_beaten_on_both_axes(interval: float) -> None:
    """Some optimal schedule has fewer polls and less lag than each fixed poller."""
    fixed = fixed_interval(DEFAULT, interval)
    assert any(
        s.polls < fixed.polls and s.lag_share < fixed.lag_share for s in frontier(DEFAULT).schedules
    )


def test_no_schedule_beats_all_three_fixed_pollers() -> None:
    """Under 4.8 polls (2 s polling's count) no schedule gets below 2.9% (0.5 s's lag)."""
    best = frontier(DEFAULT).best_lag_share(fixed_interval(DEFAULT, 2.0).polls)
    assert best is not None
    assert best > fixed_interval(DEFAULT, 0.5).lag_share


@pytest.mark.parametrize(
    ("durations", "cost"),
    [
        pytest.param(DEFAULT, 0.05, id="lognormal-cheap"),
        pytest.param(DEFAULT, 2.0, id="lognormal-dear"),
        pytest.param(Durations.lognormal(3.0, 0.8), 0.3, id="wide"),
        pytest.param(
            Durations.empirical([random.Random(3).expovariate(0.2) for _ in range(300)]),
            0.4,
            id="empirical-exponential",
        ),
    ],
)
def test_convex_hull_trick_matches_the_quadratic_dp(durations: Durations, cost: float) -> None:
    """The O(n) solve finds the same optimum as trying every next poll time."""
    schedule = optimal_schedule(durations, cost=cost, grid=120)
    expected = _quadratic(durations, cost, 120)
    assert cost * schedule.polls + schedule.lag == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_schedule_accounting_is_consistent() -> None:
    """The first poll is always spent; polls are increasing; lag and polls are positive."""
    schedule = optimal_schedule(DEFAULT, cost=0.5)
    assert list(schedule.times) == sorted(set(schedule.times))
    assert schedule.polls >= 1.0
    assert 0 < schedule.lag_share < 1


def test_frontier_is_monotone() -> None:
    """Dearer polls never buy more polls, and fewer polls never buy less lag."""
    schedules = frontier(DEFAULT).schedules
    for cheaper, dearer in itertools.pairwise(schedules):
        assert dearer.polls <= cheaper.polls + 1e-9
        assert dearer.lag >= cheaper.lag - 1e-9


@pytest.mark.parametrize("budget", [1.5, 3.0, 5.0, 12.0], ids=str)
def test_schedule_for_polls_spends_at_most_the_budget(budget: float) -> None:
    """The schedule for a budget stays within it and is on the frontier (no better lag)."""
    schedule = schedule_for_polls(DEFAULT, budget)
    assert schedule.polls <= budget
    assert schedule.polls > budget - 0.35
    best = frontier(DEFAULT).best_lag_share(budget)
    assert best is not None
    assert schedule.lag_share == pytest.approx(best, abs=0.01)


@pytest.mark.parametrize("target", [0.02, 0.05, 0.1], ids=str)
def test_schedule_for_lag_meets_the_target(target: float) -> None:
    """The schedule for a target lag reaches it, with about the fewest polls that can."""
    schedule = schedule_for_lag(DEFAULT, target)
    assert schedule.lag_share <= target
    fewest = frontier(DEFAULT).best_polls(target)
    assert fewest is not None
    assert schedule.polls == pytest.approx(fewest, rel=0.05)


def test_empirical_samples_give_the_parametric_frontier() -> None:
    """Durations learned from 2,000 draws, smoothed, give about the lognormal's frontier."""
    rng = random.Random(11)
    samples = [rng.lognormvariate(math.log(8.3), 0.3) for _ in range(2000)]
    learned = Durations.empirical(samples, smoothing=silverman(samples))
    raw = Durations.empirical(samples)
    for budget in (2.0, 5.0, 10.0):
        truth = frontier(DEFAULT).best_lag_share(budget)
        assert truth is not None
        for durations in (learned, raw):
            got = frontier(durations).best_lag_share(budget)
            assert got == pytest.approx(truth, abs=0.006)


def test_a_learned_schedule_is_near_optimal_on_the_true_distribution() -> None:
    """A schedule solved from 200 smoothed samples, evaluated on the true lognormal,
    lands within a percentage point of lag of the true frontier at its poll count."""
    rng = random.Random(5)
    samples = [rng.lognormvariate(math.log(8.3), 0.3) for _ in range(200)]
    learned = schedule_for_polls(Durations.empirical(samples, smoothing=silverman(samples)), 5)
    actual = evaluate(learned, DEFAULT)
    best = frontier(DEFAULT).best_lag_share(actual.polls)
    assert best is not None
    assert actual.lag_share - best < 0.01


def evaluate(schedule: Schedule, durations: Durations) -> Schedule:
    """What ``schedule`` costs on ``durations`` (polls past its last time: none)."""
    polls = lag = 0.0
    previous = (0.0, 0.0)
    for index, t in enumerate(schedule.times):
        cdf, partial = durations.cdf(t), durations.partial_mean(t)
        if index == len(schedule.times) - 1:
            cdf, partial = 1.0, durations.mean
        polls += 1.0 - previous[0]
        lag += t * (cdf - previous[0]) - (partial - previous[1])
        previous = (cdf, partial)
    return Schedule(schedule.times, polls, lag, durations.mean)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda: Durations.lognormal(0, 0.3), "median", id="median"),
        pytest.param(lambda: Durations.empirical([]), "sample", id="empty"),
        pytest.param(lambda: optimal_schedule(DEFAULT, cost=0), "cost", id="cost"),
        pytest.param(lambda: schedule_for_polls(DEFAULT, 0.5), "poll", id="budget"),
        pytest.param(lambda: schedule_for_lag(DEFAULT, 0), "lag_share", id="lag"),
        pytest.param(lambda: fixed_interval(DEFAULT, 0), "interval", id="interval"),
    ],
)
def test_bad_arguments_are_refused(make: object, message: str) -> None:
    """Nonsense settings raise ValueError naming the setting."""
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_groups_share_one_price_per_poll() -> None:
    """Weighted groups (one per max_images) combine into one frontier: two equal groups
    give the single frontier, and mixing two shapes does at least as well as giving each
    group the same budget."""
    single = frontier(DEFAULT)
    twice = frontier([(1.0, DEFAULT), (1.0, DEFAULT)])
    assert twice.best_lag_share(4.0) == pytest.approx(single.best_lag_share(4.0), abs=1e-9)
    long = Durations.lognormal(16.6, 0.3)
    mixed = frontier([(1.0, DEFAULT), (1.0, long)])
    even = [schedule_for_polls(d, 4.0) for d in (DEFAULT, long)]
    even_share = sum(s.lag for s in even) / sum(s.mean for s in even)
    best = mixed.best_lag_share(sum(s.polls for s in even) / 2)
    assert best is not None
    assert best <= even_share + 1e-3


def _cold_and_warm(
    search: object,
    durations: Durations,
    target: float,
    near: Schedule,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Schedule, Schedule, int, int]:
    """``search`` from scratch and from ``near``'s price, with the DP solves each made."""
    from seedream_async._policies import _frontier

    solve = _frontier._solve
    counts = [0]

    def counted(table: object, cost: float) -> Schedule:
        counts[0] += 1
        return solve(table, cost)  # type: ignore[arg-type]

    monkeypatch.setattr(_frontier, "_solve", counted)
    cold = search(durations, target)  # type: ignore[operator]
    cold_solves, counts[0] = counts[0], 0
    warm = search(durations, target, near=near)  # type: ignore[operator]
    return cold, warm, cold_solves, counts[0]


def _kernel_durations(seed: int, sigma: float, n: int) -> Durations:
    rng = random.Random(seed)
    samples = [rng.lognormvariate(math.log(8.0), sigma) for _ in range(n)]
    return Durations.empirical(samples, smoothing=silverman(samples))


@pytest.mark.parametrize("seed", range(6))
def test_a_search_from_a_near_answer_returns_the_same_schedule(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The planner re-solves as samples come: the last answer seeds the next search, which
    # must land exactly where a search from scratch does (the early waves depend on it).
    sigma, budget = (0.15, 0.3, 0.6)[seed % 3], (1.5, 3.0, 6.0)[seed % 3]
    before = _kernel_durations(seed, sigma, 120)
    after = _kernel_durations(seed + 100, sigma * 1.05, 400)
    near = schedule_for_polls(before, budget)
    cold, warm, cold_solves, warm_solves = _cold_and_warm(
        schedule_for_polls, after, budget, near, monkeypatch
    )
    assert warm.times == cold.times
    assert (warm.polls, warm.lag) == (cold.polls, cold.lag)
    assert warm_solves < cold_solves


@pytest.mark.parametrize("hint", [0.01, 0.5, 2.0, 300.0])
def test_a_far_or_odd_hint_changes_nothing(hint: float, monkeypatch: pytest.MonkeyPatch) -> None:
    durations = _kernel_durations(7, 0.3, 300)
    near = Schedule((1.0,), 1.0, 1.0, 8.0, price=hint)
    cases: list[tuple[object, float, Callable[[Schedule], bool]]] = [
        (schedule_for_polls, 4.0, lambda s: s.polls <= 4.0),
        (schedule_for_lag, 0.05, lambda s: s.lag_share <= 0.05),
    ]
    for search, target, fits in cases:
        cold, warm, _, _ = _cold_and_warm(search, durations, target, near, monkeypatch)
        monkeypatch.undo()
        assert warm.times == cold.times
        # The dear end's answer is only expected, and checked: expected wrongly, the same.
        wrong = search is schedule_for_lag
        assert _bisect(durations, _GRID, fits, near, wrong).times == cold.times


def test_the_kernel_table_matches_the_mixture_summed_in_full() -> None:
    # Components far from a point are counted whole (below) or skipped (above): the table
    # must equal the plain sum over every component, to rounding.
    from seedream_async._policies._durations import _phi, _tabulate

    rng = random.Random(3)
    bandwidth = 0.12
    centres = sorted(
        (k * bandwidth / 3, rng.random()) for k in range(-40, 90) if rng.random() < 0.7
    )
    total = sum(w for _, w in centres)
    centres = [(x, w / total) for x, w in centres]
    points = [math.exp(-6.0 + 0.02 * k) for k in range(800)]
    cdfs, partials = _tabulate(points, centres, bandwidth)
    shift = math.exp(bandwidth * bandwidth / 2)
    for t, cdf, partial in zip(points, cdfs, partials, strict=True):
        z = [(math.log(t) - x) / bandwidth for x, _ in centres]
        full_cdf = sum(w * _phi(zk) for zk, (_, w) in zip(z, centres, strict=True))
        pairs = zip(z, centres, strict=True)
        full_partial = sum(w * math.exp(x) * shift * _phi(zk - bandwidth) for zk, (x, w) in pairs)
        assert cdf == pytest.approx(full_cdf, rel=1e-12, abs=1e-16)
        assert partial == pytest.approx(full_partial, rel=1e-12, abs=1e-16)
