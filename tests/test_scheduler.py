"""The one polling scheduler: learned placement, failed polls, deadlines, the estimator."""

from __future__ import annotations

import statistics
from dataclasses import replace

import anyio
import pytest
from _helpers import FAST_POLL, simulated

from seedream_async import DeadlineExceeded, EditItem, PollPolicy, ResultStatus, RetryPolicy
from seedream_async._engine._scheduler import DurationEstimator, PollScheduler, _Watch
from seedream_async._models import Prediction
from seedream_async.testing import Faults

pytestmark = pytest.mark.anyio

URL = "https://cdn.example.com/ref.png"


def items(count: int) -> list[EditItem]:
    return [EditItem(key=f"k{n}", prompt=f"p{n}", images=[URL]) for n in range(count)]


def test_estimator_quantiles_over_a_sliding_window() -> None:
    """Quantiles come from the last ``window`` samples only, and none before min_samples."""
    estimator = DurationEstimator(window=5, min_samples=3)
    estimator.add(10.0)
    estimator.add(20.0)
    assert estimator.quantile(0.5) is None
    for value in (30.0, 40.0, 50.0):
        estimator.add(value)
    assert estimator.quantile(0.0) == 10.0
    assert estimator.quantile(0.5) == 30.0
    assert estimator.quantile(1.0) == 50.0
    estimator.add(60.0)  # 10 leaves the window
    assert estimator.quantile(0.0) == 20.0
    assert len(estimator) == 5


async def test_learned_first_poll_lands_near_the_typical_duration() -> None:
    """With steady durations, predictions after the first wave need about two polls, and are
    noticed within a fraction of their duration: polls follow what the batch learned."""
    policy = replace(FAST_POLL, first_poll=0.001, interval=0.001, multiplier=1.0)
    async with simulated(time_scale=0.005, latency_sigma=0.02) as (sim, client):
        results = await client.edit_all(items(160), concurrency=16, poll=policy, poll_rate=None)
    assert all(result.ok for result in results)
    learned = sim.ledger.submissions[48:]  # after the first waves taught the scheduler
    polls = [sim.ledger.polls[record.prediction_id] for record in learned]
    # Fixed 1 ms polling (the policy before learning) would take ~40 polls for ~41 ms.
    assert statistics.mean(polls) <= 3.0
    median = statistics.median(sim.ledger.latencies())
    assert statistics.median(sim.ledger.detection_lags()) < 0.5 * median


async def test_a_failing_poll_is_tried_again_not_fatal() -> None:
    """Polls refused with 429 or 5xx past the client's retries are rescheduled: a paid
    prediction is not failed for a poll that can simply be asked again."""
    faults = Faults(
        rate_limit=0.4, server_error=0.2, retry_after=0.001, endpoints=frozenset({"poll"})
    )
    no_retries = RetryPolicy(max_attempts=1)
    async with simulated(faults=faults, client_options={"retry": no_retries}) as (sim, client):
        results = await client.edit_all(items(30), concurrency=8, poll_rate=None)
    assert [r.status for r in results] == [ResultStatus.SUCCEEDED] * 30
    assert sim.ledger.faults["429"] > 0
    assert sim.ledger.executions == 30


async def test_deadline_ends_a_prediction_that_runs_too_long() -> None:
    """A prediction still running at the policy's deadline is that item's failure."""
    policy = PollPolicy(first_poll=0.001, interval=0.001, max_interval=0.002, deadline=0.02)
    async with simulated(time_scale=0.05) as (sim, client):
        (result,) = await client.edit_all(items(1), poll=policy, poll_rate=None)
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, DeadlineExceeded)
    assert result.error.prediction_id == result.prediction_id
    assert sim.ledger.executions == 1


async def test_poll_rate_caps_status_requests() -> None:
    """With a poll rate cap, the batch never polls faster than the cap allows (GCRA)."""
    eager = PollPolicy(first_poll=0.0005, interval=0.0005, multiplier=1.0, deadline=30.0)
    async with simulated(time_scale=0.005) as (sim, client):
        started = anyio.current_time()
        results = await client.edit_all(items(20), concurrency=20, poll=eager, poll_rate=40.0)
        elapsed = anyio.current_time() - started
    assert all(result.ok for result in results)
    # Uncapped, this eager policy polls hundreds of times in this span; capped at 40 a
    # second with a burst of 40, never more than burst + rate * elapsed.
    assert sim.ledger.total_polls <= 40 + 40 * elapsed


class _PressureOnly:
    """A typed fake of the scheduler's :class:`PollAPI`: only the pressure signal is read."""

    def __init__(self) -> None:
        self.rate_limited_at = float("-inf")

    async def get_prediction(self, prediction_id: str) -> Prediction:
        raise AssertionError(f"{prediction_id} is never polled in this test")


def test_polls_thin_out_after_a_429() -> None:
    """After a 429 the scheduler places polls later and further apart (each poll spends the
    key's request budget); once the 429 is old news it polls at the policy's pace again."""
    api = _PressureOnly()
    scheduler = PollScheduler(api, policy=PollPolicy())
    estimator = DurationEstimator()
    for tenth in range(5, 16):
        estimator.add(tenth / 10)  # durations 0.5 s .. 1.5 s, median 1.0 s
    scheduler._estimators[1] = estimator

    def first_and_next(now: float) -> tuple[float, float]:
        fresh = _Watch("p", submitted_at=now, max_images=1, deadline_at=float("inf"))
        polled = _Watch("q", submitted_at=now, max_images=1, deadline_at=float("inf"), polls=1)
        return scheduler._next_due(fresh, now) - now, scheduler._next_due(polled, now) - now

    calm_first, calm_gap = first_and_next(100.0)
    api.rate_limited_at = 100.0  # a 429 came at t=100
    pressed_first, pressed_gap = first_and_next(100.5)
    assert pressed_first > calm_first
    assert pressed_gap > 1.5 * calm_gap
    later_first, _ = first_and_next(110.0)  # ten typical durations after the 429
    assert later_first == calm_first
