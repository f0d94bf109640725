from __future__ import annotations

import heapq
import itertools
import math
import random
import statistics

import pytest

from seedream_async._policies._durations import Durations
from seedream_async._policies._frontier import Schedule, fixed_interval, frontier
from seedream_async._policies._planner import PollPlanner, Shape, kaplan_meier

ONE = Shape(max_images=1)
TRUE = Durations.lognormal(8.3, 0.3)


def _planner(polls: float = 5.0, **kwargs: float) -> PollPlanner:
    return PollPlanner(polls=polls, typical=8.0, tail_cap=10.0, **kwargs)  # type: ignore[arg-type]


def _play(
    planner: PollPlanner, shape: Shape, durations: list[float], *, slots: int = 32
) -> tuple[float, float]:
    """A batch without a clock: ``slots`` predictions in flight, each submitted when one
    before it is seen done, polled where the planner says (on the schedule it got at
    submit) and learned from as it is seen done, in time order, as the scheduler does.
    Returns (polls per prediction, mean lag as a share of the mean duration)."""
    events: list[tuple[float, int, float, Schedule]] = []
    polls = lag = 0.0
    pending = iter(range(len(durations)))

    def submit(now: float) -> None:
        index = next(pending, None)
        if index is not None:
            schedule = planner.schedule(shape)
            heapq.heappush(events, (now + planner.due(schedule, 0.0), index, now, schedule))

    for _ in range(slots):
        submit(0.0)
    while events:
        now, index, submitted, schedule = heapq.heappop(events)
        polls += 1
        if now - submitted >= durations[index]:
            lag += now - submitted - durations[index]
            planner.learn(shape, durations[index])
            submit(now)
        else:
            due = planner.due(schedule, now - submitted)
            heapq.heappush(events, (submitted + due, index, submitted, schedule))
    mean = sum(durations) / len(durations)
    return polls / len(durations), lag / len(durations) / mean


def test_prior_schedule_before_anything_is_learned() -> None:
    """With nothing learned, polls follow the optimal schedule for the contract's ~8 s edit:
    none in the first few seconds, within the budget in expectation."""
    planner = _planner(5.0)
    schedule = planner.schedule(ONE)
    assert schedule.polls <= 5.0
    assert 3.0 < schedule.times[0] < 8.0
    assert planner.due(schedule, 0.0) == schedule.times[0]


def test_prior_stretches_with_max_images() -> None:
    """Before learning, a three-image sequence is expected to take longer than one image."""
    planner = _planner()
    three = planner.schedule(Shape(max_images=3))
    assert planner.due(three, 0.0) > planner.due(planner.schedule(ONE), 0.0)


@pytest.mark.parametrize("budget", [3.0, 6.0, 12.0], ids=["thrifty", "default", "fast"])
def test_learned_polling_stays_within_a_point_of_the_bound(budget: float) -> None:
    """A batch of 800 predictions, 32 in flight, learning as they finish, costs about the
    budget, with a mean lag within one percentage point of the best any schedule reaches
    at that count on the very same durations."""
    rng = random.Random(7)
    durations = [rng.lognormvariate(math.log(8.3), 0.3) for _ in range(800)]
    polls, lag = _play(_planner(budget), ONE, durations)
    # The budget holds once durations are learned; the first waves, polled from the prior
    # and then from the shortest finishers, overspend a little.
    assert polls <= budget * 1.08
    best = frontier(Durations.empirical(durations)).best_lag_share(polls)
    assert best is not None
    assert lag - best < 0.01


@pytest.mark.parametrize(
    ("budget", "interval"),
    [(3.0, 2.0), (6.0, 1.0), (12.0, 0.5)],
    ids=["thrifty-vs-2s", "default-vs-1s", "fast-vs-0.5s"],
)
def test_each_preset_budget_beats_its_fixed_poller(budget: float, interval: float) -> None:
    """In play, each preset's budget gives fewer polls and less lag than its fixed poller."""
    rng = random.Random(3)
    durations = [rng.lognormvariate(math.log(8.3), 0.3) for _ in range(600)]
    polls, lag = _play(_planner(budget), ONE, durations)
    fixed = fixed_interval(TRUE, interval)
    assert polls < fixed.polls
    assert lag < fixed.lag_share


def test_shapes_are_learned_apart() -> None:
    """Durations of three-image sequences move their schedule, not the one-image one's."""
    planner = _planner(min_samples=10)
    before = planner.schedule(ONE)
    three = Shape(max_images=3)
    for value in (20.0, 21.0, 22.0, 19.0, 20.5) * 4:
        planner.learn(three, value)
    assert planner.schedule(ONE) is before
    assert planner.schedule(three).times[0] > before.times[0]
    assert planner.typical(three) == pytest.approx(20.5, abs=0.6)


def test_schedules_are_solved_again_only_as_samples_grow() -> None:
    """A schedule is reused between polls and re-solved once samples grew by a quarter."""
    planner = _planner(min_samples=8)
    for value in range(8):
        planner.learn(ONE, 4.0 + value * 0.1)
    first = planner.schedule(ONE)
    assert planner.schedule(ONE) is first
    planner.learn(ONE, 4.2)
    assert planner.schedule(ONE) is first  # 1 new sample of 9: not yet
    planner.learn(ONE, 4.3)
    assert planner.schedule(ONE) is first  # 2 new of 10: not yet
    planner.learn(ONE, 4.3)
    assert planner.schedule(ONE) is not first  # 3 new of 11


def test_a_straggler_is_polled_ever_more_rarely_up_to_the_cap() -> None:
    """Past the schedule's end, waits grow and never exceed the tail cap."""
    planner = _planner()
    schedule = planner.schedule(ONE)
    elapsed, waits = schedule.times[-1], []
    for _ in range(30):
        due = planner.due(schedule, elapsed)
        waits.append(due - elapsed)
        elapsed = due
    assert all(later >= earlier - 1e-9 for earlier, later in itertools.pairwise(waits))
    assert max(waits) == pytest.approx(10.0)
    assert all(wait > 0 for wait in waits)


def test_due_skips_times_already_past() -> None:
    """A poll that ran late is followed by the next scheduled time after now, not a burst."""
    planner = _planner()
    schedule = planner.schedule(ONE)
    times = schedule.times
    assert planner.due(schedule, times[2] + 1e-6) == times[3]
    assert planner.due(schedule, times[2] - 1e-12) == times[3]  # rounding: not twice


@pytest.mark.parametrize(
    "kwargs",
    [{"polls": 0.5}, {"typical": 0.0}, {"tail_cap": 0.0}],
    ids=["polls", "typical", "tail_cap"],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    """Nonsense settings raise ValueError."""
    settings = {"polls": 5.0, "typical": 8.0, "tail_cap": 10.0, **kwargs}
    with pytest.raises(ValueError, match="must"):
        PollPlanner(**settings)  # type: ignore[arg-type]


def test_kaplan_meier_without_censoring_is_the_sample() -> None:
    """With nothing in flight the estimate is the finished durations themselves."""
    assert kaplan_meier([3.0, 1.0, 2.0]) == [1.0, 2.0, 3.0]
    assert kaplan_meier([3.0, 1.0], []) == [1.0, 3.0]


def test_kaplan_meier_matches_the_product_limit_by_hand() -> None:
    """Events 1, 3; censored at 2 and 4. S(1) = 3/4; at 3 two are at risk, S(3) = 3/8;
    the 3/8 left sits on the censored 4. Masses 1/4, 3/8, 3/8 over four pseudo-values."""
    assert kaplan_meier([1.0, 3.0], [2.0, 4.0]) == [1.0, 3.0, 3.0, 4.0]


def test_kaplan_meier_undoes_the_first_waves_bias() -> None:
    """64 predictions start together; when the 40 quickest have finished, their median
    is far below the true one, while Kaplan-Meier (the 24 others censored at that time)
    lands close to it."""
    rng = random.Random(5)
    draws = sorted(TRUE.quantile(rng.random()) for _ in range(64))
    now = draws[39]
    naive = statistics.median(draws[:40])
    estimate = statistics.median(kaplan_meier(draws[:40], [now] * 24))
    truth = TRUE.quantile(0.5)
    assert abs(estimate - truth) < abs(naive - truth)
    assert naive < estimate


def test_the_planner_counts_predictions_in_flight() -> None:
    """Given censored durations, the first solve places its first poll later than from
    the finished (quickest) ones alone."""
    rng = random.Random(9)
    draws = sorted(TRUE.quantile(rng.random()) for _ in range(64))
    plain = _planner()
    censored = PollPlanner(
        polls=5.0, typical=8.0, tail_cap=10.0, running=lambda shape: [draws[39]] * 24
    )
    for seconds in draws[:40]:
        plain.learn(ONE, seconds)
        censored.learn(ONE, seconds)
    assert censored.schedule(ONE).times[0] > plain.schedule(ONE).times[0]


@pytest.mark.parametrize("window", [0, 1, 7, 50])
def test_the_median_follows_the_window(window: int) -> None:
    # The samples are kept sorted as they come and leave the window: the median read
    # from them is the window's own, whatever was evicted.
    planner = _planner(min_samples=2, window=window)
    rng = random.Random(window)
    kept: list[float] = []
    for _ in range(120):
        seconds = rng.choice([rng.uniform(1, 20), 5.0])  # ties too
        planner.learn(ONE, seconds)
        kept = [*kept, seconds][-window:] if window else []
        if len(kept) >= 2:
            assert planner.typical(ONE) == sorted(kept)[len(kept) // 2]
            assert planner.typical_duration() == sorted(kept)[len(kept) // 2]
    assert planner.learned(ONE) == 120
