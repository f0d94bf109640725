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
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn

import anyio
import anyio.lowlevel

from .._base._exceptions import (
    AmbiguousSubmission,
    APIStatusError,
    APIUnreachable,
    AuthenticationError,
    BudgetExceeded,
    InsufficientBalance,
    JournalError,
    JournalUnavailable,
    TransportError,
)
from .._policies._limits import AdaptiveLimit, RateLimiter
from .._wire._parsing import Prediction
from .._wire._requests import EditRequest
from ._api import EngineAPI
from ._budget import Budget
from ._items import Stage
from ._journal_types import JournalState, LostClaim
from ._stop import StopControl, Wire
from ._store import JournalStore
from ._tracking import ItemState, Tracker
from ._unrecorded import Unrecorded

__all__ = ["JournalSeat", "Submitter"]

logger = logging.getLogger("seedream_async")


class JournalSeat:
    """A run's place at a journal: the journal, the run's owner id, the catalog budget, and
    the billed ids the journal has not taken yet."""

    def __init__(
        self,
        journal: JournalStore,
        owner: str,
        budget: float | None,
        unrecorded: Unrecorded,
        *,
        lease: float,
    ) -> None:
        self.journal = journal
        self.owner = owner
        self.budget = budget
        self.unrecorded = unrecorded
        self.lease = lease

    async def reserve(self, key: str, payload: Mapping[str, Any], amount: float) -> bool:
        """Record the intent to submit (see :meth:`JournalStore.reserve`). When this run
        still holds the item but its lease ran out (the journal was down for longer than
        it, or the run was paused), no one has taken the item over yet: the run renews its
        leases and asks once more; a claim another run took is refused (:class:`LostClaim`)."""
        try:
            return await self.journal.reserve(
                self.owner, key, request=payload, amount=amount, budget=self.budget
            )
        except JournalUnavailable as err:
            if not err.maybe_committed:
                raise
            # Cut off at the COMMIT: the row says whether it landed (INTENT under this run
            # can only be this reserve's); if not, ask again.
            record = await self.journal.get(key)
            mine = record is not None and record.owner == self.owner
            if mine and record is not None and record.state is JournalState.INTENT:
                return True
            return await self.journal.reserve(
                self.owner, key, request=payload, amount=amount, budget=self.budget
            )
        except LostClaim as err:
            if not err.expired or err.holder != self.owner:
                raise
        await self.journal.heartbeat(self.owner, lease=self.lease)
        return await self.journal.reserve(
            self.owner, key, request=payload, amount=amount, budget=self.budget
        )

    async def submitted(
        self,
        key: str,
        prediction_id: str,
        cost: float,
        *,
        request_id: str | None = None,
        price_rule: str | None = None,
    ) -> None:
        """Journal a billed id (with the submit's request id and the price rule it was
        billed by); one the journal refuses is kept (:class:`Unrecorded`)."""
        try:
            with anyio.CancelScope(shield=True):  # past the grace too: it is paid
                await self.journal.submitted(
                    self.owner, key, prediction_id=prediction_id, cost=cost,
                    request_id=request_id, price_rule=price_rule,
                )  # fmt: skip
        except JournalError as err:  # full, read-only, deleted, down, or the claim lost
            self.unrecorded.keep(key, prediction_id, cost, err)


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
        self._jitter = random.Random()
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
        cost = self._budget.cost_of(request.max_images, request.model)
        hold = _Hold(self.limit, self._budget, self._seat, cost)
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
                prediction = await self._send(state, request, hold, wire, requeue, give_up_at)
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
        if self._seat is not None:  # shielded; an id the journal refuses is kept
            await self._seat.submitted(
                state.key,
                prediction.id,
                hold.cost,
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

    async def _send(
        self,
        state: ItemState,
        request: EditRequest,
        hold: _Hold,
        wire: Wire,
        requeue: Callable[[APIStatusError, float], Awaitable[None]],
        give_up_at: float,
    ) -> Prediction:
        """The POST, sent again while the API cannot be reached after this run has reached
        it (an outage): a connection that failed before the request left bills nothing
        (one that may have left raises :class:`AmbiguousSubmission` instead), so the item
        gives its hold back, waits with capped exponential backoff and queues again, until
        ``give_up_at`` (the batch's deadline)."""
        delay = 1.0
        while True:
            try:
                return await self._client.submit(request, on_refused=requeue)
            except APIUnreachable:
                raise  # nothing ever reached it: a wrong URL, not an outage
            except TransportError as err:
                if anyio.current_time() + delay > give_up_at:
                    raise
                wire.sending = False
                await hold.give_back(state.key, str(err))
                if delay == 1.0:
                    logger.warning("the API cannot be reached (%s); items wait for it", err)
                await anyio.sleep(delay * (0.5 + self._jitter.random() / 2))
                delay = min(delay * 2, 30.0)
                state.enter(Stage.WAITING)
                await self._admit(state, request, hold, wire)

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
            if not await seat.unrecorded.clear():
                raise seat.unrecorded.refusal()
            if not await seat.reserve(state.key, request.to_payload(), hold.cost):
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
