"""CPU per poll of the batch's poll scheduler alone, against a naive poller, in one run.

    python -m benchmarks.scheduler_cost [--n 640] [--concurrency 64] [--runs 3]
        [--time-scale 0.025] [--backend asyncio|trio]

No HTTP and no simulator: a fake client answers each poll at once (one checkpoint, then a
prediction built in advance), so what is measured is the scheduling around the poll. Two
contenders poll the same fake for the same predictions (lognormal durations around 8 s
times ``--time-scale``), ``--concurrency`` of them in flight:

* ``scheduler``: :class:`~seedream_async._engine._scheduler.PollScheduler` with the default
  :class:`~seedream_async.PollPolicy` scaled by ``--time-scale``, as a batch runs it (one
  task per prediction awaiting ``wait``, the scheduler's loop in the background);
* ``naive``: one task per prediction that sleeps a fixed interval (1 s scaled) and polls,
  until the prediction is done, the loop an ``asyncio.gather`` poller runs.

It prints the CPU per poll (user + system, ``time.process_time``) of each run and the ratio
of the medians, measured in the same process so machine load weighs on both alike. Issue 22
asks the scheduler's own work to cost at most ~150 us a poll; the HTTP poll itself costs
several hundred more (``python -m benchmarks.request_cost``).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Awaitable, Callable

import anyio

from seedream_async import PollPolicy
from seedream_async._engine._scheduler import PollScheduler, Shape
from seedream_async._policies._frontier import Schedule
from seedream_async._wire._parsing import Prediction

_NAIVE_INTERVAL = 1.0  # seconds at time scale 1, as gather-1 of the main benchmark


def _completed(prediction_id: str, seconds: float) -> Prediction:
    body = {"id": prediction_id, "status": "completed", "outputs": ["https://x/y.png"]}
    return Prediction.model_validate({**body, "metrics": {"predict_time": seconds}})


class _Fake:
    """A client answering every poll at once: running until the prediction's duration."""

    rate_limited_at = float("-inf")

    def __init__(self, durations: dict[str, float]) -> None:
        self.durations = durations
        self.started: dict[str, float] = {}
        self.polls = 0
        self._running = {
            pid: Prediction.model_validate({"id": pid, "status": "processing"}) for pid in durations
        }
        self._done = {pid: _completed(pid, seconds) for pid, seconds in durations.items()}

    async def get_prediction(self, prediction_id: str) -> Prediction:
        self.polls += 1
        await anyio.lowlevel.checkpoint()
        elapsed = anyio.current_time() - self.started[prediction_id]
        if elapsed >= self.durations[prediction_id]:
            return self._done[prediction_id]
        return self._running[prediction_id]


Waiter = Callable[[_Fake, str], Awaitable[None]]


async def _drive(fake: _Fake, concurrency: int, wait: Waiter) -> None:
    slots = anyio.Semaphore(concurrency)

    async def one(pid: str) -> None:
        async with slots:
            fake.started[pid] = anyio.current_time()
            await wait(fake, pid)

    async with anyio.create_task_group() as group:
        for pid in fake.durations:
            group.start_soon(one, pid)


class _PlanningClock:
    """CPU spent choosing schedules (the planner's solves, at submit): reported apart, as
    it is paid per prediction, re-solved as durations are learned, not per poll."""

    seconds = 0.0

    @classmethod
    def wrap(cls, scheduler: PollScheduler) -> None:
        solve = scheduler._schedule_for

        def timed(shape: Shape, now: float) -> Schedule:
            start = time.process_time()
            try:
                return solve(shape, now)
            finally:
                cls.seconds += time.process_time() - start

        scheduler._schedule_for = timed  # type: ignore[method-assign]


async def _scheduler(fake: _Fake, concurrency: int, time_scale: float) -> None:
    scheduler = PollScheduler(fake, policy=PollPolicy().scaled(time_scale), max_in_flight=64)
    _PlanningClock.wrap(scheduler)

    async def wait(fake: _Fake, pid: str) -> None:
        await scheduler.wait(pid, submitted_at=anyio.current_time(), shape=Shape())

    async with anyio.create_task_group() as group:
        group.start_soon(scheduler.run)
        await _drive(fake, concurrency, wait)
        group.cancel_scope.cancel()


async def _naive(fake: _Fake, concurrency: int, time_scale: float) -> None:
    interval = _NAIVE_INTERVAL * time_scale

    async def wait(fake: _Fake, pid: str) -> None:
        while True:
            await anyio.sleep(interval)
            if (await fake.get_prediction(pid)).terminal:
                return

    await _drive(fake, concurrency, wait)


_CONTENDERS = {"scheduler": _scheduler, "naive": _naive}


def _run(name: str, args: argparse.Namespace, seed: int) -> tuple[float, float, float]:
    """One run of contender ``name``: CPU seconds per poll, of which planning, and polls
    per prediction."""
    rng = random.Random(seed)
    typical = math.log(8.0 * args.time_scale)
    fake = _Fake({f"p{n}": rng.lognormvariate(typical, 0.3) for n in range(args.n)})
    contender = _CONTENDERS[name]
    _PlanningClock.seconds = 0.0
    start = time.process_time()
    anyio.run(contender, fake, args.concurrency, args.time_scale, backend=args.backend)
    used = time.process_time() - start
    return used / fake.polls, _PlanningClock.seconds / fake.polls, fake.polls / args.n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=640, help="predictions per run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3, help="runs of each contender")
    parser.add_argument("--time-scale", type=float, default=0.025)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    per_poll: dict[str, list[float]] = {name: [] for name in _CONTENDERS}
    per_prediction: dict[str, list[float]] = {name: [] for name in _CONTENDERS}
    unplanned: list[float] = []  # the scheduler's CPU per poll without planning
    for run in range(args.runs):
        for name in _CONTENDERS:  # interleaved, so a load spike weighs on both
            cpu, plan, polls = _run(name, args, args.seed + run)
            per_poll[name].append(cpu)
            per_prediction[name].append(cpu * polls)
            unplanned += [cpu - plan] if name == "scheduler" else []
            print(f"run {run + 1} {name:>9}: {1e6 * cpu:4.0f} us CPU per poll "
                  f"({1e6 * (cpu - plan):.0f} us without planning), {polls:.2f} polls "
                  f"and {1e3 * cpu * polls:.2f} ms CPU per prediction")  # fmt: skip
    poll = {name: statistics.median(values) for name, values in per_poll.items()}
    pred = {name: statistics.median(values) for name, values in per_prediction.items()}
    loop = statistics.median(unplanned)
    print(
        f"median CPU per poll ({args.backend}): scheduler {1e6 * poll['scheduler']:.0f} us "
        f"({1e6 * loop:.0f} us without planning), naive {1e6 * poll['naive']:.0f} us: "
        f"ratio {poll['scheduler'] / poll['naive']:.2f} "
        f"({loop / poll['naive']:.2f} without planning); per prediction "
        f"{1e3 * pred['scheduler']:.2f} ms against {1e3 * pred['naive']:.2f} ms: "
        f"ratio {pred['scheduler'] / pred['naive']:.2f}"
    )


if __name__ == "__main__":
    main()
