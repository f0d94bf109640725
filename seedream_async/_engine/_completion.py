"""Webhook completion in a batch (issue 20): each attempt's tokened URL, and the wait.

With ``completion="webhook"`` every submit carries ``webhook_url`` plus a token naming its
attempt (the item's key and the journal's attempt number). The client's receiver verifies
a delivery, records it in the journal (the "delivery recorded" transition: durable before
its 2xx) and wakes the :class:`~seedream_async._webhook._delivery.DeliveryHub`. An item then
waits on the first of:

- its delivery on the hub, by prediction id or by attempt (so a submit whose answer was
  lost is still found: billed with the delivered id, delivered, never paid again);
- the journal row, read now and then: another worker's receiver may have recorded it (a
  fleet on PostgreSQL, where the URL reaches any worker);
- a fallback poll that starts late and backs off (:func:`fallback_policy`): a lost
  delivery costs time, never the item.

The secret the tokens are made with lives beside a journal file (``<journal>.webhook-secret``)
so a re-run maps the deliveries of an earlier run; a fleet on PostgreSQL shares it through
``SEEDREAM_WEBHOOK_SECRET``.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack
from typing import Any, Protocol

import anyio

from .._base._exceptions import ConfigurationError
from .._policies._polling import PollPolicy, poll_delays
from .._webhook._completion import Webhooks, fallback_policy
from .._webhook._delivery import RecorderSink
from .._webhook._token import SECRET_ENV, WebhookTarget, load_secret
from .._wire._parsing import Prediction, PredictionStatus
from .._wire._requests import EditRequest
from ._journal_types import JournalState
from ._pgjournal import PostgresJournal
from ._pgjournal_schema import is_postgres_dsn
from ._store import JournalStore

__all__ = ["AMBIGUOUS_WAIT", "WebhookCompletion", "attach_webhooks", "recorded", "secret_for"]

AMBIGUOUS_WAIT = 10.0
"""An attempt whose submit's answer was lost waits for its delivery this many times a
typical prediction's duration (within the poll deadline): no poll can find it, the API
has no lookup by request. A submit that never reached billing has no delivery to wait
for; one that comes later still is recorded in the journal (the row leaves AMBIGUOUS),
and the next run delivers it without paying again."""


def secret_for(journal: object, current: bytes) -> bytes:
    """The token secret of a batch with ``journal``: kept beside a journal file, shared
    through the environment by a fleet on PostgreSQL, else the client's own."""
    fleet = isinstance(journal, PostgresJournal) or is_postgres_dsn(journal)
    if not fleet and not isinstance(journal, str | os.PathLike):
        return current  # a journal object of the caller's: the client's secret
    if fleet:
        if not os.environ.get(SECRET_ENV):
            raise ConfigurationError(
                f'completion="webhook" with a PostgreSQL journal needs {SECRET_ENV} set to '
                "the same secret (32+ random bytes, hex) on every worker, so any worker's "
                "receiver can map any worker's deliveries"
            )
        return load_secret()
    assert isinstance(journal, str | os.PathLike)
    return load_secret(f"{os.fspath(journal)}.webhook-secret")


class _Client(Protocol):
    @property
    def webhooks(self) -> Webhooks: ...

    @property
    def rng(self) -> random.Random: ...

    async def get_prediction(self, prediction_id: str) -> Prediction: ...


def attach_webhooks(
    stack: ExitStack | AsyncExitStack,
    client: _Client,
    public_url: str,
    policy: PollPolicy,
    *,
    journal: JournalStore | None,
    where: object,
) -> WebhookCompletion:
    """A batch's :class:`WebhookCompletion`; with a journal, the client's receiver records
    deliveries in it (before its 2xx) and checks tokens with the secret kept beside it
    (:func:`secret_for` of ``where``, the journal option) until ``stack`` closes."""
    webhooks = client.webhooks
    completion = WebhookCompletion(
        webhooks, public_url, policy=policy, poll=client.get_prediction, rng=client.rng,
        journal=journal,
    )  # fmt: skip
    if journal is not None:
        secret = secret_for(where, webhooks.secret)
        stack.enter_context(webhooks.attached(RecorderSink(journal), secret))
    return completion


class WebhookCompletion:
    """A batch's webhook side: tokened URLs out, deliveries (or the fallback) back.

    Args:
        webhooks: the client's receiver bundle.
        public_url: the URL that reaches the receiver.
        policy: the batch's poll policy (its deadline bounds a wait; the fallback is paced
            by :func:`fallback_policy` of it).
        poll: fetches a prediction by id.
        rng: jitter source.
        journal: the batch's journal (its rows are read while waiting), or None; without
            one, token keys carry a per-run tag so another run's deliveries never match.
    """

    def __init__(
        self,
        webhooks: Webhooks,
        public_url: str,
        *,
        policy: PollPolicy,
        poll: Callable[[str], Awaitable[Prediction]],
        rng: random.Random,
        journal: JournalStore | None,
    ) -> None:
        self.webhooks = webhooks
        self.public_url = public_url
        self.policy = policy
        self._poll = poll
        self._rng = rng
        self._journal = journal
        self._tag = None if journal is not None else secrets.token_hex(6)

    def target(self, key: str, attempt: int) -> WebhookTarget:
        """The attempt a token names (attempt 1 for every item of a run without journal)."""
        if self._tag is not None:
            return WebhookTarget(f"{self._tag}/{key}", 1)
        return WebhookTarget(key, attempt)

    def request_for(self, request: EditRequest, target: WebhookTarget) -> EditRequest:
        """``request`` with the attempt's tokened ``webhook_url``."""
        extra: dict[str, Any] = dict(request.extra_body or {})
        extra["webhook_url"] = self.webhooks.url_for(self.public_url, target)
        return request.model_copy(update={"extra_body": extra})

    async def wait(
        self, key: str, target: WebhookTarget, prediction_id: str | None
    ) -> Prediction | None:
        """The terminal prediction from the first of the delivery, the journal row and the
        fallback poll (none without a ``prediction_id``); None when the deadline passes
        first (without an id, after :data:`AMBIGUOUS_WAIT` typical durations)."""
        found: list[Prediction] = []
        limit = self.policy.deadline if self.policy.deadline is not None else float("inf")
        typical = self.policy.typical or self.policy.first_poll * 4
        if prediction_id is None:
            limit = min(limit, AMBIGUOUS_WAIT * typical)

        async def finish(scope: anyio.CancelScope, prediction: Prediction) -> None:
            found.append(prediction)
            scope.cancel()

        async def by_webhook(scope: anyio.CancelScope) -> None:
            hub = self.webhooks.hub
            delivery = await hub.wait(prediction_id=prediction_id, target=target)
            await finish(scope, delivery.prediction)

        async def by_journal(scope: anyio.CancelScope) -> None:
            assert self._journal is not None
            while True:
                await anyio.sleep(typical)
                record = await self._journal.get(key)
                if record is not None and (done := recorded(record.state, record)) is not None:
                    await finish(scope, done)
                    return

        async def by_polling(scope: anyio.CancelScope, prediction_id: str) -> None:
            for delay in poll_delays(fallback_policy(self.policy), rng=self._rng):
                await anyio.sleep(delay)
                prediction = await self._poll(prediction_id)
                if prediction.terminal:
                    await finish(scope, prediction)
                    return

        with anyio.move_on_after(limit):
            async with anyio.create_task_group() as group:
                group.start_soon(by_webhook, group.cancel_scope)
                if self._journal is not None:
                    group.start_soon(by_journal, group.cancel_scope)
                if prediction_id is not None:
                    group.start_soon(by_polling, group.cancel_scope, prediction_id)
        self.webhooks.hub.forget(prediction_id=prediction_id, target=target)
        return found[0] if found else None


def recorded(state: JournalState, record: Any) -> Prediction | None:
    """The terminal prediction a journal row holds once a delivery (or a poll) recorded it:
    DONE with its outputs, or API_FAILED; None otherwise."""
    if record.prediction_id is None:
        return None
    if state is JournalState.DONE and record.outputs:
        return Prediction(
            id=record.prediction_id,
            status=PredictionStatus.COMPLETED,
            outputs=list(record.outputs),
        )
    if state is JournalState.API_FAILED:
        return Prediction(
            id=record.prediction_id, status=PredictionStatus.FAILED, error=record.error
        )
    return None
