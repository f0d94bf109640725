"""A verified webhook delivery as the client uses it, where it is kept, and who waits on it.

- :class:`Delivery`: one terminal delivery, read from a verified body (``{session_id,
  event_type, status: OK|ERROR, payload: <the poll's result shape>}``) into the same
  :class:`Prediction` a poll returns, plus the attempt its URL token names.
- :class:`DeliverySink`: where the receiver records a delivery before it answers 2xx (the
  journal, in a batch); :class:`MemorySink` keeps them in memory (a single ``edit``, tests).
- :class:`DeliveryHub`: the in-process waiter; a recorded delivery wakes whoever waits on
  its prediction id or its attempt, and one that arrives before anyone waits is kept.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from .._base._exceptions import WebhookVerificationError
from .._wire._parsing import Prediction
from ._signature import VerifiedWebhook
from ._token import WebhookTarget

__all__ = [
    "Delivery",
    "DeliveryHub",
    "DeliveryRecorder",
    "DeliverySink",
    "MemorySink",
    "RecorderSink",
    "read_delivery",
]

_KEEP = 10_000  # deliveries kept for waiters yet to come, oldest dropped first


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One verified terminal delivery.

    Attributes:
        webhook_id: the delivery's id (the same on each retry): the dedupe key.
        event: the event type (``image.task.terminal``).
        prediction_id: the task's id (``session_id``), the id a submit returns.
        ok: the top-level ``status`` was ``OK``.
        prediction: the payload read as a poll's answer; ``done`` or ``failed``.
        target: the attempt the URL token names, or None when the URL had no token.
        received_at: Unix time it was verified.
        raw: the signed body, kept for the record.
    """

    webhook_id: str
    event: str
    prediction_id: str
    ok: bool
    prediction: Prediction
    target: WebhookTarget | None = None
    received_at: float = field(default_factory=time.time)
    raw: bytes = field(default=b"", repr=False)


def _fail(message: str) -> WebhookVerificationError:
    return WebhookVerificationError(f"webhook rejected: {message}", reason="malformed")


def read_delivery(
    verified: VerifiedWebhook, *, raw: bytes = b"", target: WebhookTarget | None = None
) -> Delivery:
    """Read a verified body as a :class:`Delivery`.

    Raises:
        WebhookVerificationError: ``reason="malformed"``: no task id, no payload, or a
            payload that is not a terminal prediction.
    """
    body = verified.body
    session = body.get("session_id")
    if isinstance(session, int) and not isinstance(session, bool):
        session = str(session)
    if not isinstance(session, str) or not session:
        raise _fail("the body has no session_id")
    payload: Any = body.get("payload")
    if not isinstance(payload, dict):
        raise _fail("the body has no payload object")
    status = str(body.get("status", "")).upper()
    if "error" not in payload and isinstance(body.get("error"), str):
        payload = {**payload, "error": body["error"]}
    try:
        prediction = Prediction.model_validate(payload, context={"id": session})
    except ValueError as err:
        raise _fail(f"the payload is not a prediction ({type(err).__name__})") from None
    if not prediction.terminal:
        if status != "ERROR":
            raise _fail(f"the payload's status {prediction.status!s} is not terminal")
        prediction = prediction.model_copy(update={"status": "failed"})
    return Delivery(
        webhook_id=verified.webhook_id,
        event=verified.event or str(body.get("event_type", "")),
        prediction_id=prediction.id or session,
        ok=status == "OK",
        prediction=prediction,
        target=target,
        raw=raw,
    )


class DeliverySink(Protocol):
    """Where a receiver records a delivery; it answers 2xx only after :meth:`record`."""

    async def record(self, delivery: Delivery) -> None:
        """Make the delivery durable (idempotent by ``webhook_id``); raise to refuse it,
        and the sender retries."""
        ...


class MemorySink:
    """A :class:`DeliverySink` in memory: for a single ``edit`` and for tests.

    Attributes:
        deliveries: every recorded delivery, once per ``webhook_id``, in arrival order.
    """

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._ids: set[str] = set()

    async def record(self, delivery: Delivery) -> None:
        """Keep ``delivery`` unless one with its id is kept already."""
        if delivery.webhook_id not in self._ids:
            self._ids.add(delivery.webhook_id)
            self.deliveries.append(delivery)


class DeliveryRecorder(Protocol):
    """The journal transition a batch's sink calls: "delivery recorded" (part 2 of issue 20).

    Expected of the journal, for both backends: find the attempt row ``(key, attempt)``;
    if its state is SUBMITTING or AMBIGUOUS, make it billed-with-id (``prediction_id``), so
    an ambiguous attempt is recovered without paying again; store the terminal result
    (``prediction``: done or failed, outputs) and ``webhook_id``; commit before returning.
    Idempotent: the same ``webhook_id`` again changes nothing.
    """

    async def record_delivery(
        self,
        *,
        key: str,
        attempt: int,
        prediction_id: str,
        webhook_id: str,
        prediction: Prediction,
    ) -> None:
        """Apply the transition durably, or raise (the receiver then answers 503)."""
        ...


class RecorderSink:
    """A :class:`DeliverySink` over a :class:`DeliveryRecorder` (the journal).

    A delivery without a token names no attempt of ours; it is acknowledged and dropped
    (counted in ``unmapped``), since retrying it cannot make it map.
    """

    def __init__(self, recorder: DeliveryRecorder) -> None:
        self.recorder = recorder
        self.unmapped = 0

    async def record(self, delivery: Delivery) -> None:
        """Hand the delivery to the journal transition."""
        if delivery.target is None:
            self.unmapped += 1
            return
        await self.recorder.record_delivery(
            key=delivery.target.key,
            attempt=delivery.target.attempt,
            prediction_id=delivery.prediction_id,
            webhook_id=delivery.webhook_id,
            prediction=delivery.prediction,
        )


def _names(prediction_id: str | None, target: WebhookTarget | None) -> list[str]:
    names = [f"id:{prediction_id}"] if prediction_id else []
    if target is not None:
        names.append(f"attempt:{target.attempt}:{target.key}")
    return names


class DeliveryHub:
    """Wakes the task waiting on a prediction id or an attempt when its delivery lands.

    Deliveries are kept (the newest ``_KEEP``) until :meth:`forget`, so one that arrives
    before the submit's answer, or before anyone waits, is still found.
    """

    def __init__(self) -> None:
        self._kept: OrderedDict[str, Delivery] = OrderedDict()
        self._events: dict[str, anyio.Event] = {}

    def publish(self, delivery: Delivery) -> None:
        """Hand a recorded delivery to its waiters (call from the event loop)."""
        for name in _names(delivery.prediction_id, delivery.target):
            self._kept[name] = delivery
            self._kept.move_to_end(name)
            if (event := self._events.pop(name, None)) is not None:
                event.set()
        while len(self._kept) > _KEEP:
            self._kept.popitem(last=False)

    def get(
        self, *, prediction_id: str | None = None, target: WebhookTarget | None = None
    ) -> Delivery | None:
        """The kept delivery for the prediction id or the attempt, if one arrived."""
        for name in _names(prediction_id, target):
            if (found := self._kept.get(name)) is not None:
                return found
        return None

    async def wait(
        self, *, prediction_id: str | None = None, target: WebhookTarget | None = None
    ) -> Delivery:
        """Wait until a delivery for the prediction id or the attempt arrives."""
        names = _names(prediction_id, target)
        if not names:
            raise ValueError("wait needs a prediction_id or a target")
        while (found := self.get(prediction_id=prediction_id, target=target)) is None:
            event = anyio.Event()
            for name in names:
                self._events.setdefault(name, event)
            waiting = [self._events[name] for name in names]
            if len(waiting) == 1 or waiting[0] is waiting[1]:
                await waiting[0].wait()
            else:
                await _first(waiting)
        return found

    def forget(
        self, *, prediction_id: str | None = None, target: WebhookTarget | None = None
    ) -> None:
        """Drop what is kept for the prediction id and the attempt."""
        for name in _names(prediction_id, target):
            self._kept.pop(name, None)


async def _first(events: list[anyio.Event]) -> None:
    async with anyio.create_task_group() as group:

        async def one(event: anyio.Event) -> None:
            await event.wait()
            group.cancel_scope.cancel()

        for event in events:
            group.start_soon(one, event)
