"""How often to ask whether a prediction is done: policy and pure arithmetic.

Polling is not retrying (``_retry.py``): a poll that answers "processing" succeeded.
The single-prediction :meth:`AsyncSeedream.wait` walks :func:`poll_delays`; the batch
engine's scheduler (``_engine/_scheduler.py``) places first polls from what it has learned.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace

from ._backoff import backoff_delay

__all__ = ["PollPolicy", "poll_delays"]


@dataclass(frozen=True, kw_only=True)
class PollPolicy:
    """How a prediction is polled.

    Args:
        first_poll: seconds after submit of the first poll, before anything is learned.
        interval: seconds between polls at first.
        multiplier: interval growth per unfinished poll.
        max_interval: the longest interval.
        jitter: fraction of each interval drawn at random, so polls do not march in step.
        deadline: seconds after submit before giving up with ``DeadlineExceeded``
            (the prediction may still finish, and is billed anyway); None waits forever.
        learned_first: in a batch, once durations are learned, the quantile of them at
            which a prediction is first polled.
        learned_spacing: in a batch, once durations are learned, the gap between later
            polls as a fraction of the median duration. The defaults (0.35, 0.15) favour
            finishing the batch sooner (about 2.7 polls a prediction, detection within
            about 10% of its duration); (0.6, 0.3) favour fewer requests (about 1.8
            polls, detection within about 20%).
    """

    first_poll: float = 2.0
    interval: float = 1.0
    multiplier: float = 1.5
    max_interval: float = 10.0
    jitter: float = 0.1
    deadline: float | None = 900.0
    learned_first: float = 0.35
    learned_spacing: float = 0.15

    def __post_init__(self) -> None:
        if not 0.0 <= self.learned_first <= 1.0:
            raise ValueError("learned_first is a quantile, between 0 and 1")
        if self.learned_spacing <= 0:
            raise ValueError("learned_spacing must be more than 0")
        if min(self.first_poll, self.interval, self.max_interval) < 0:
            raise ValueError("poll intervals must not be negative")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError("deadline must be more than 0 seconds, or None")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds between unfinished poll ``attempt`` (0-based) and the next, jitter included."""
        return backoff_delay(
            attempt,
            initial=self.interval,
            multiplier=self.multiplier,
            cap=self.max_interval,
            jitter=self.jitter,
            rng=rng,
        )

    def scaled(self, factor: float) -> PollPolicy:
        """This policy with every duration multiplied by ``factor`` (for simulated time)."""
        return replace(
            self,
            first_poll=self.first_poll * factor,
            interval=self.interval * factor,
            max_interval=self.max_interval * factor,
            deadline=None if self.deadline is None else self.deadline * factor,
        )


def poll_delays(policy: PollPolicy, *, rng: random.Random | None = None) -> Iterator[float]:
    """Yield the waits between polls of one prediction: ``first_poll``, then backoff."""
    yield policy.first_poll
    attempt = 0
    while True:
        yield policy.backoff(attempt, rng)
        attempt += 1
