"""The submit stage: each submit under the adaptive concurrency limit, the rate limit and
the budget, journaled before it leaves and the moment its id comes back, shielded from a
stop while it is on the wire.

A 429 or 503 means the server did not take the submit, so it is safe to send again. The
driver hands such a refusal to :meth:`Submitter.submit`'s hook, which slows the whole
batch down: the 429 paused every request of the client, the concurrency limit is lowered
(AIMD, ``_limits.py``), and this item gives its slot, its budget and its journaled intent
back and queues again under the lowered limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NoReturn

import anyio
import anyio.lowlevel

from .._exceptions import (
    AmbiguousSubmission,
    APIStatusError,
    AuthenticationError,
    BudgetExceeded,
    InsufficientBalance,
)
from .._limits import AdaptiveLimit, RateLimiter
from .._models import EditRequest, Prediction
from ._api import EngineAPI
from ._budget import Budget
from ._items import Stage
from ._stop import StopControl, Wire
from ._store import JournalStore
from ._tracking import ItemState, Tracker

__all__ = ["JournalSeat", "Submitter"]

logger = logging.getLogger("seedream_async")


class JournalSeat:
    """A run's place at a journal: the journal, the run's owner id, the catalog budget."""

    def __init__(self, journal: JournalStore, owner: str, budget: float | None) -> None:
        self.journal = journal
        self.owner = owner
        self.budget = budget


class _Hold:
    """One submit's hold on a slot, the run's budget and the journal's, each given back once."""

    def __init__(
        self, limit: AdaptiveLimit, budget: Budget, seat: JournalSeat | None, cost: float
    ) -> None:
        self._limit = limit
        self._budget = budget
        self._seat = seat
        self.cost = cost
        self.slot = False
        self.money = False
        self.intent = False

    async def give_back(self, key: str, error: str | None = None) -> None:
        if self.intent and self._seat is not None:
            self.intent = False
            with anyio.CancelScope(shield=True):
                await self._seat.journal.refund(self._seat.owner, key, error=error)
        if self.money:
            self.money = False
            self._budget.refund(self.cost)
        if self.slot:
            self.slot = False
            self._limit.release()


class Submitter:
    """Submits predictions under the batch's limits, journaled and shielded.

    Args:
        client: what submits.
        concurrency: the most predictions in flight at first (AIMD lowers it after a 429).
        rate: the most submits per second (GCRA), or None.
        budget: what this run may spend.
        tracker: the live counters (``concurrency_limit`` is kept up to date).
        round_trip: seconds a prediction typically takes, learned or guessed.
        give_up_after: seconds to keep requeueing a refused submit, or None for ever.
        stop: the batch's stop state.
        seat: the journal, or None.
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
        stop: StopControl,
        seat: JournalSeat | None,
    ) -> None:
        self._client = client
        self.limit = AdaptiveLimit(concurrency)
        self._rate = RateLimiter(rate) if rate else None
        self._budget = budget
        self._tracker = tracker
        self._round_trip = round_trip
        self._give_up_after = give_up_after
        self._stop = stop
        self._seat = seat
        tracker.progress.concurrency_limit = self.limit.limit

    async def submit(self, state: ItemState, request: EditRequest) -> Prediction:
        """Submit under the limits; return the prediction, holding a concurrency slot
        until :meth:`release` (call it once the prediction is done).

        Raises:
            BudgetExceeded: the budget has no room for it; nothing was sent or spent.
            AuthenticationError, InsufficientBalance: the account cannot submit (this
                one was refused, or an earlier one was); nothing was spent on it.
            AmbiguousSubmission: it may have been billed without an answer (counted spent,
                journaled ambiguous).
        """
        give_up_at = anyio.current_time() + (self._give_up_after or float("inf"))
        hold = _Hold(self.limit, self._budget, self._seat, self._budget.cost_of(request.max_images))
        wire = self._stop.open()

        async def requeue(refusal: APIStatusError, wait: float) -> None:
            wire.sending = False
            await hold.give_back(state.key, str(refusal))
            if anyio.current_time() > give_up_at:
                raise refusal
            self._congested(refusal)
            await anyio.sleep(wait)
            state.enter(Stage.WAITING)
            await self._admit(state, request, hold, wire)

        prediction: Prediction | None = None
        try:
            with wire.scope:
                await self._admit(state, request, hold, wire)
                prediction = await self._client.submit(request, on_refused=requeue)
                await self._taken(state, hold, prediction)
        except AmbiguousSubmission as err:
            state.request_id = err.request_id
            await self._ambiguous(state, hold, str(err), request_id=err.request_id)
            raise
        except (AuthenticationError, InsufficientBalance) as err:
            self._stop.fatal(err)
            await hold.give_back(state.key, str(err))
            raise
        except BaseException as err:
            await hold.give_back(state.key, str(err) or type(err).__name__)
            raise
        finally:
            self._stop.close(wire)
        if prediction is None:  # the stop cancelled the wire
            await self._stopped(state, hold, wire)
        assert prediction is not None
        return prediction

    async def _taken(self, state: ItemState, hold: _Hold, prediction: Prediction) -> None:
        """The API took the submit: it is billed, and journaled at once (shielded)."""
        hold.money = hold.intent = False  # taken and billed
        state.cost = self._budget.spend(hold.cost)
        state.submitted(prediction.id)
        state.request_id = prediction.request_id
        self.limit.succeeded()
        if self._seat is not None:
            with anyio.CancelScope(shield=True):  # past the grace too: it is paid
                await self._seat.journal.submitted(
                    self._seat.owner,
                    state.key,
                    prediction_id=prediction.id,
                    cost=hold.cost,
                    request_id=prediction.request_id,
                    price_rule=self._budget.model.describe(),
                )

    async def _stopped(self, state: ItemState, hold: _Hold, wire: Wire) -> NoReturn:
        """A stop cancelled the submit: ambiguous if it was on the wire, else unsent."""
        if wire.sending and not wire.cut:
            message = (
                f"the batch was stopped while this submit was on the wire and no answer "
                f"came within {self._stop.grace:g}s; it may have been billed"
            )
            await self._ambiguous(state, hold, message)
            raise AmbiguousSubmission(message, key=state.key)
        await hold.give_back(state.key, "stopped before it was sent")
        await anyio.lowlevel.checkpoint()  # the stop's cancellation, if it is one
        raise BudgetExceeded("the batch was stopped before this item was submitted")

    async def _ambiguous(
        self, state: ItemState, hold: _Hold, message: str, *, request_id: str | None = None
    ) -> None:
        hold.money = False  # it may have been billed: the reservation stands
        state.cost = self._budget.spend(hold.cost)
        if hold.intent and self._seat is not None:
            hold.intent = False
            with anyio.CancelScope(shield=True):
                await self._seat.journal.ambiguous(
                    self._seat.owner,
                    state.key,
                    cost=hold.cost,
                    error=message,
                    request_id=request_id,
                    price_rule=self._budget.model.describe(),
                )
        await hold.give_back(state.key)

    async def acquire(self) -> None:
        """Take a concurrency slot for a prediction submitted earlier (a resumed one)."""
        await self.limit.acquire()

    def release(self) -> None:
        """Give back the slot of a prediction that is done."""
        self.limit.release()
        self._tracker.progress.concurrency_limit = self.limit.limit

    async def _admit(self, state: ItemState, request: EditRequest, hold: _Hold, wire: Wire) -> None:
        await self.limit.acquire()
        hold.slot = True
        if self._rate is not None:
            await self._rate.acquire()
        refused = self._stop.refused()
        if refused is not None:
            raise refused
        self._budget.reserve(hold.cost)
        hold.money = True
        seat = self._seat
        if seat is not None:
            payload = request.to_payload()
            amount = hold.cost
            if not await seat.journal.reserve(
                seat.owner, state.key, request=payload, amount=amount, budget=seat.budget
            ):
                raise BudgetExceeded(
                    f"budget ${seat.budget or 0:.2f} over the whole journal reached before this "
                    "item; nothing was spent on it"
                )
            hold.intent = True
        state.enter(Stage.RUNNING)
        wire.sending = True

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
