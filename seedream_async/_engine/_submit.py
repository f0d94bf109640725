"""The submit stage: each submit under the adaptive concurrency limit, the rate limit and
the budget, with the batch's congestion response plugged into the driver's refused hook.

A 429 or 503 means the server did not take the submit, so it is safe to send again. The
driver hands such a refusal to :meth:`Submitter.submit`'s hook, which slows the whole
batch down: the 429 paused every request of the client, the concurrency limit is lowered
(AIMD, ``_limits.py``), and this item gives its slot and its budget back and queues again
under the lowered limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from .._exceptions import AmbiguousSubmission, APIStatusError
from .._limits import AdaptiveLimit, RateLimiter
from .._models import EditRequest, Prediction
from ._api import EngineAPI
from ._budget import Budget
from ._items import Stage
from ._journal import Journal
from ._tracking import ItemState, Tracker

__all__ = ["Submitter"]

logger = logging.getLogger("seedream_async")


class _Hold:
    """One submit's hold on a concurrency slot and on the budget, each given back once."""

    def __init__(self, limit: AdaptiveLimit, budget: Budget, cost: float) -> None:
        self._limit = limit
        self._budget = budget
        self.cost = cost
        self.slot = False
        self.money = False

    def give_back(self) -> None:
        if self.money:
            self.money = False
            self._budget.refund(self.cost)
        if self.slot:
            self.slot = False
            self._limit.release()


class Submitter:
    """Submits predictions under the batch's limits.

    Args:
        client: what submits.
        concurrency: the most predictions in flight at first (AIMD lowers it after a 429).
        rate: the most submits per second (GCRA), or None.
        budget: what the batch may spend.
        tracker: the live counters (``concurrency_limit`` is kept up to date).
        round_trip: seconds a prediction typically takes, learned or guessed.
        give_up_after: seconds to keep requeueing a refused submit, or None for ever.
    """

    def __init__(
        self,
        client: EngineAPI,
        *,
        concurrency: int,
        rate: float | None,
        budget: Budget,
        tracker: Tracker,
        round_trip: Callable[[], float],
        give_up_after: float | None,
    ) -> None:
        self._client = client
        self.limit = AdaptiveLimit(concurrency)
        self._rate = RateLimiter(rate) if rate else None
        self._budget = budget
        self._tracker = tracker
        self._round_trip = round_trip
        self._give_up_after = give_up_after
        tracker.progress.concurrency_limit = self.limit.limit

    async def submit(
        self, state: ItemState, request: EditRequest, journal: Journal | None
    ) -> Prediction:
        """Submit under the limits; return the prediction, holding a concurrency slot
        until :meth:`release` (call it once the prediction is done).

        Raises:
            BudgetExceeded: the budget has no room for it; nothing was sent or spent.
            AmbiguousSubmission: it may have been billed without an answer (counted spent).
        """
        give_up_at = anyio.current_time() + (self._give_up_after or float("inf"))
        hold = _Hold(self.limit, self._budget, self._budget.cost_of(request.max_images))

        async def requeue(refusal: APIStatusError, wait: float) -> None:
            hold.give_back()
            if anyio.current_time() > give_up_at:
                raise refusal
            self._congested(refusal)
            await anyio.sleep(wait)
            state.enter(Stage.WAITING)
            await self._admit(state, request, journal, hold)

        try:
            await self._admit(state, request, journal, hold)
            prediction = await self._client.submit(request, on_refused=requeue)
            hold.money = False  # taken and billed
            state.cost = self._budget.spend(hold.cost)
            self.limit.succeeded()
            state.prediction_id = prediction.id
            if journal is not None:
                await journal.record_submitted(state.key, prediction.id, hold.cost)
        except AmbiguousSubmission:
            hold.money = False  # it may have been billed: the reservation stands
            state.cost = self._budget.spend(hold.cost)
            hold.give_back()
            raise
        except BaseException:
            hold.give_back()
            raise
        return prediction

    async def acquire(self) -> None:
        """Take a concurrency slot for a prediction submitted earlier (a resumed one)."""
        await self.limit.acquire()

    def release(self) -> None:
        """Give back the slot of a prediction that is done."""
        self.limit.release()
        self._tracker.progress.concurrency_limit = self.limit.limit

    async def _admit(
        self, state: ItemState, request: EditRequest, journal: Journal | None, hold: _Hold
    ) -> None:
        await self.limit.acquire()
        hold.slot = True
        if self._rate is not None:
            await self._rate.acquire()
        self._budget.reserve(hold.cost)
        hold.money = True
        if journal is not None:
            await journal.record_intent(state.key, request.to_payload())
        state.enter(Stage.RUNNING)

    def _congested(self, refusal: APIStatusError) -> None:
        # Only a refused submit lowers the concurrency: a 429 on a poll says the request
        # rate is high, which the client's pause gate already paces. Decrease at most once
        # per round trip of this control loop, which is a prediction's duration (the number
        # in flight only falls as predictions finish): the refusals that come sooner answer
        # submits made before the last decrease took effect, and carry no new information.
        self.limit.congested(cooldown=max(refusal.retry_after or 0.0, self._round_trip()))
        self._tracker.progress.concurrency_limit = self.limit.limit
        logger.info(
            "submit refused (HTTP %d): concurrency lowered to %d",
            refusal.status_code,
            self.limit.limit,
        )
