"""How often to ask whether a prediction is done: policy and pure arithmetic.

Polling is not retrying (``_retry.py``): a poll that answers "processing" succeeded.
The single-prediction :meth:`AsyncSeedream.wait` walks :func:`poll_delays`; the batch
engine's scheduler (``_engine/_scheduler.py``) places every poll by an optimal schedule
(``_planner.py``) for the durations it has learned, spending :attr:`PollPolicy.polls`
polls a prediction on average: the one knob between fewer requests and a shorter batch.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from ._backoff import backoff_delay

__all__ = ["Completion", "PollPolicy", "as_completion", "poll_delays"]

# The presets' poll budgets. On the simulator's durations (lognormal, sigma 0.3) each one
# beats a fixed-interval poller on both polls and detection lag: thrifty (3) vs every 2 s
# (4.8 polls, 11.5% lag), the default (6) vs every 1 s (9.2, 5.8%), fast (12) vs every
# 0.5 s (17.8, 2.9%). The best lag for a budget is the frontier in ``_frontier.py``.
# The default is 6, not 5: a batch's makespan is about (1 + mean lag share) x its ideal,
# and 1.05x needs a lag under ~4.5% of a duration, which the frontier reaches at ~5.7.
THRIFTY_POLLS = 3.0
DEFAULT_POLLS = 6.0
FAST_POLLS = 12.0


class Completion(StrEnum):
    """How the client learns that a prediction is done."""

    POLL = "poll"
    """Submit, then poll its status (see :class:`PollPolicy`): the default."""
    SYNC = "sync"
    """Submit with ``enable_sync_mode``: the answer comes when the prediction is done, with
    no polls and no detection lag, but the connection stays open for the whole run, and a
    connection lost meanwhile leaves a billed item ambiguous (its id never came back, so
    it can be neither fetched nor, safely, sent again). If the API answers before the
    prediction is done anyway, the client falls back to polling."""
    WEBHOOK = "webhook"
    """Submit with a ``webhook_url`` (one per attempt, carrying a signed token): Atlas
    Cloud POSTs the result when the prediction is done, to a receiver you run
    (``client.webhooks``). No polls in the common case; polling stays as a late, thrifty
    fallback, so a lost delivery costs time, not the item; and a delivery still arrives
    when the submit's answer was lost."""


def as_completion(value: Completion | str) -> Completion:
    """``value`` as a :class:`Completion`; ValueError names the choices."""
    try:
        return Completion(value)
    except ValueError:
        choices = ", ".join(repr(c.value) for c in Completion)
        raise ValueError(f"completion must be one of {choices}, got {value!r}") from None


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
        polls: in a batch, the polls to spend per prediction on average: the one knob.
            Polls go where they notice predictions soonest for the durations learned (an
            optimal schedule, re-solved as the batch learns), so each budget gets about
            the least detection lag any schedule can: about 9% of a prediction's
            duration at 3 polls, 4.3% at 6, 2% at 12 for the API's typical spread. Fewer
            polls spend less of the key's request budget; more finish the batch sooner
            (a slot is held until a poll sees its prediction done). Presets:
            :meth:`thrifty` (3), the default (6), :meth:`fast` (12).
        typical: in a batch, the median duration of a one-image edit assumed until
            durations are learned, in seconds; None assumes four times ``first_poll``
            (8 s by default: the API documents about 8 s).

    The first five fields pace :meth:`AsyncSeedream.wait` for a single prediction; in a
    batch, ``max_interval`` caps the wait between polls of a prediction that outlives
    every learned duration.
    """

    first_poll: float = 2.0
    interval: float = 1.0
    multiplier: float = 1.5
    max_interval: float = 10.0
    jitter: float = 0.1
    deadline: float | None = 900.0
    polls: float = DEFAULT_POLLS
    typical: float | None = None

    @classmethod
    def thrifty(cls, **changes: Any) -> PollPolicy:
        """Fewer requests: 3 polls a prediction (beats polling every 2 s on polls and lag).

        Args:
            **changes: any other field.
        """
        return cls(**{"polls": THRIFTY_POLLS, **changes})

    @classmethod
    def fast(cls, **changes: Any) -> PollPolicy:
        """A shorter batch: 12 polls a prediction (beats polling every 0.5 s on both).
        At high concurrency raise the batch's ``poll_rate`` to match (64 predictions of
        ~8 s at 12 polls each ask ~100 polls a second).

        Args:
            **changes: any other field.
        """
        return cls(**{"polls": FAST_POLLS, **changes})

    def __post_init__(self) -> None:
        if self.polls < 1:
            raise ValueError("polls must be at least 1 per prediction")
        if self.typical is not None and self.typical <= 0:
            raise ValueError("typical must be more than 0 seconds, or None")
        if min(self.first_poll, self.interval, self.max_interval) < 0:
            raise ValueError("poll intervals must not be negative")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError("deadline must be more than 0 seconds, or None")

    @property
    def prior_duration(self) -> float:
        """The one-image edit duration a batch assumes before it has learned any."""
        return self.typical if self.typical is not None else 4.0 * max(self.first_poll, 1e-6)

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
            typical=None if self.typical is None else self.typical * factor,
        )


def poll_delays(policy: PollPolicy, *, rng: random.Random | None = None) -> Iterator[float]:
    """Yield the waits between polls of one prediction: ``first_poll``, then backoff."""
    yield policy.first_poll
    attempt = 0
    while True:
        yield policy.backoff(attempt, rng)
        attempt += 1
