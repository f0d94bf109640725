"""Webhook completion, as a client uses it: the receiver, the token secret, the waiter.

``client.webhooks`` is a :class:`Webhooks`: mount ``client.webhooks.app`` in a web service
(FastAPI: ``app.mount("/hooks/atlas", client.webhooks.app)``) or start
``client.webhooks.listen(host, port)``, then pass the public URL that reaches it::

    async with AsyncSeedream() as client, client.webhooks.listen("0.0.0.0", 8080):
        done = await client.edit(prompt, images, completion="webhook",
                                 webhook_url="https://hooks.example.com/")

Each submit's ``webhook_url`` gets a token naming its attempt (``_webhook_token``); the
receiver verifies the signature, records the delivery in the sink, and wakes the waiter
(:func:`wait_for_result`), which also polls, late and sparingly, in case the delivery is
lost.
"""

from __future__ import annotations

import dataclasses
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Protocol

import anyio

from .._base._exceptions import (
    AmbiguousSubmission,
    ConfigurationError,
    DeadlineExceeded,
    PredictionFailed,
)
from .._policies._polling import PollPolicy, poll_delays
from .._wire._parsing import Prediction
from .._wire._requests import EditRequest
from ._delivery import Delivery, DeliveryHub, DeliverySink, MemorySink
from ._listen import Listening, serve_webhooks
from ._receiver import KeySource, WebhookReceiver
from ._signature import DEFAULT_TOLERANCE, WebhookKey
from ._token import WebhookTarget, load_secret, make_token, webhook_url_with_token

__all__ = [
    "FALLBACK_START",
    "Webhooks",
    "fallback_policy",
    "submit_and_wait",
    "wait_for_result",
]

FALLBACK_START = 4.0
"""The fallback's first poll comes this many times the policy's ``typical`` duration (or
``first_poll`` x 4) after the submit: a delivery normally lands long before."""


def fallback_policy(policy: PollPolicy) -> PollPolicy:
    """The polling that backs up a webhook: it starts late and spends few polls."""
    typical = policy.typical if policy.typical is not None else policy.first_poll * 4
    start = typical * FALLBACK_START
    return dataclasses.replace(
        policy,
        first_poll=start,
        interval=max(policy.interval, typical),
        multiplier=2.0,
        max_interval=max(policy.max_interval, start),
    )


class Webhooks:
    """The webhook side of one client: receiver, token secret, sink and waiter.

    Args:
        keys: the trusted signing keys, or a :class:`KeySource` (``JwksKeys`` fetching
            ``<base_url>/api/v1/webhooks/jwks.json``, as the client sets up).
        sink: where deliveries are recorded before the 2xx; in memory when None.
        secret: the token secret; :func:`load_secret` (``SEEDREAM_WEBHOOK_SECRET``, or a
            process-only one) when None. A batch with a journal keeps its own beside it.
        tolerance: seconds a signed timestamp may be off.

    Attributes:
        hub: wakes waiters when a delivery is recorded.
        app: the ASGI receiver to mount.
    """

    def __init__(
        self,
        keys: KeySource | Sequence[WebhookKey],
        *,
        sink: DeliverySink | None = None,
        secret: bytes | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> None:
        self.secret = secret if secret is not None else load_secret()
        self.sink: DeliverySink = sink if sink is not None else MemorySink()
        self.hub = DeliveryHub()
        self._attached = False
        self.app = WebhookReceiver(
            keys, self.sink, hub=self.hub, secret=self.secret, tolerance=tolerance
        )

    def __repr__(self) -> str:
        return f"<Webhooks sink={type(self.sink).__name__} secret='**********'>"

    def url_for(self, public_url: str, target: WebhookTarget) -> str:
        """The ``webhook_url`` one attempt submits: ``public_url`` plus its token."""
        token = make_token(self.secret, target.key, target.attempt)
        return webhook_url_with_token(public_url, token)

    @contextmanager
    def attached(self, sink: DeliverySink, secret: bytes) -> Iterator[None]:
        """Record deliveries in ``sink`` and check tokens with ``secret`` while the block
        runs (a batch's journal and the secret kept beside it); restored after.

        Raises:
            ConfigurationError: another batch of this client is attached already (two
                batches with webhooks at once need two clients, one receiver each).
        """
        if self._attached:
            raise ConfigurationError(
                'another batch of this client is using completion="webhook"; run them one '
                "after the other, or give each its own client and receiver"
            )
        before = (self.sink, self.secret)
        self._attached = True
        self.sink = self.app.sink = sink
        self.secret = self.app.secret = secret
        try:
            yield
        finally:
            self.sink, self.secret = before
            self.app.sink, self.app.secret = before
            self._attached = False

    @asynccontextmanager
    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[Listening]:
        """Serve the receiver on ``host:port`` until the block exits."""
        async with serve_webhooks(self.app, host, port) as listening:
            yield listening


async def wait_for_result(
    hub: DeliveryHub,
    *,
    prediction_id: str | None,
    target: WebhookTarget | None,
    poll: Callable[[str], Awaitable[Prediction]] | None,
    policy: PollPolicy,
    rng: random.Random | None = None,
) -> tuple[Prediction, Delivery | None]:
    """Wait for the prediction's delivery; poll late and sparingly meanwhile.

    Args:
        hub: where deliveries land.
        prediction_id: the submit's id; None when its answer was lost (then only a
            delivery, found by ``target``, can end the wait).
        target: the attempt the submit's token names.
        poll: fetches a prediction (``client.get_prediction``); None never polls.
        policy: the poll policy; its ``deadline`` bounds the wait, and
            :func:`fallback_policy` of it paces the fallback polls.
        rng: jitter source.

    Returns:
        the terminal prediction, and the delivery it came from (None when a poll won).

    Raises:
        DeadlineExceeded: neither a delivery nor a poll saw it finish in time.
    """
    found: list[tuple[Prediction, Delivery | None]] = []

    async def by_webhook(scope: anyio.CancelScope) -> None:
        delivery = await hub.wait(prediction_id=prediction_id, target=target)
        found.append((delivery.prediction, delivery))
        scope.cancel()

    async def by_polling(scope: anyio.CancelScope, prediction_id: str) -> None:
        assert poll is not None
        for delay in poll_delays(fallback_policy(policy), rng=rng):
            await anyio.sleep(delay)
            prediction = await poll(prediction_id)
            if prediction.terminal:
                found.append((prediction, None))
                scope.cancel()
                return

    limit = policy.deadline if policy.deadline is not None else float("inf")
    with anyio.move_on_after(limit):
        async with anyio.create_task_group() as group:
            group.start_soon(by_webhook, group.cancel_scope)
            if poll is not None and prediction_id is not None:
                group.start_soon(by_polling, group.cancel_scope, prediction_id)
    if not found:
        raise DeadlineExceeded(prediction_id or "(unknown id)", limit)
    hub.forget(prediction_id=prediction_id, target=target)
    return found[0]


class _Submitter(Protocol):
    poll: PollPolicy
    rng: random.Random

    async def submit(self, request: EditRequest) -> Prediction: ...

    async def get_prediction(self, prediction_id: str) -> Prediction: ...


async def submit_and_wait(
    client: _Submitter, webhooks: Webhooks, request: EditRequest, webhook_url: str
) -> Prediction:
    """Submit ``request`` with a tokened ``webhook_url`` and wait for its delivery.

    A submit whose answer is lost (:class:`AmbiguousSubmission`) is not sent again: its
    delivery still names the attempt, so the wait goes on for it; only if none comes
    before the deadline is the ambiguity raised.

    Raises:
        PredictionFailed: the prediction failed.
        AmbiguousSubmission: the answer was lost and no delivery came in time.
        DeadlineExceeded: it did not finish in time.
    """
    target = WebhookTarget(f"edit-{secrets.token_hex(8)}", 1)
    extra = dict(request.extra_body or {})
    extra["webhook_url"] = webhooks.url_for(webhook_url, target)
    request = request.model_copy(update={"extra_body": extra})
    prediction_id: str | None
    ambiguous: AmbiguousSubmission | None = None
    try:
        prediction = await client.submit(request)
        prediction_id = prediction.id
    except AmbiguousSubmission as err:
        ambiguous, prediction_id = err, None
    else:
        if prediction.terminal:
            return _finished(prediction)
    try:
        done, _ = await wait_for_result(
            webhooks.hub,
            prediction_id=prediction_id,
            target=target,
            poll=client.get_prediction,
            policy=client.poll,
            rng=client.rng,
        )
    except DeadlineExceeded:
        if ambiguous is not None:
            raise ambiguous from None
        raise
    return _finished(done)


def _finished(prediction: Prediction) -> Prediction:
    if prediction.failed:
        raise PredictionFailed(prediction.id, prediction.error)
    return prediction
