"""One item through the stages: claimed, uploaded, submitted, waited for, delivered, and
what becomes of it when one of them fails.

:class:`ItemStages` holds the per-item steps of the batch engine; :class:`~._pipeline.Engine`
(``_pipeline.py``) subclasses it, wires the parts these steps use (the journal's claims, the
submitter, the poller, the deliverer...) and feeds the items through. What each stage
promises is in ``_pipeline.py``'s docstring: an item with a prediction id is fetched by id,
never submitted again, and an error after billing keeps the id in the journal.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import anyio

from .._base._constants import DEFAULT_SIZE
from .._base._exceptions import (
    AmbiguousSubmission,
    AuthenticationError,
    BudgetExceeded,
    DeadlineExceeded,
    InsufficientBalance,
    InvalidInput,
    JournalUnavailable,
    PredictionFailed,
    SeedreamError,
)
from .._policies._polling import Completion, PollPolicy
from .._wire._parsing import Prediction, PredictionStatus
from .._wire._requests import build_request, check_params
from ._api import EngineAPI
from ._budget import Budget
from ._claims import Busy, Claims, name_taken
from ._completion import WebhookCompletion, recorded
from ._delivery import Deliverer
from ._identity import DigestCache
from ._items import BatchResult, ResultStatus, Stage
from ._journal_types import ItemRecord, LostClaim
from ._names import NameRegistry, output_stem
from ._options import BatchOptions
from ._resume import Resume, ambiguous_before, failed_before, fingerprint, resume_action
from ._scheduler import PollScheduler, Shape
from ._stop import StopControl
from ._submit import Submitter
from ._tracking import ItemState, Tracker
from ._unrecorded import Unrecorded
from ._upload_cache import UploadCache

__all__ = ["ItemStages"]

logger = logging.getLogger("seedream_async")

_ACCOUNT_ERRORS = (AuthenticationError, InsufficientBalance)
# Unpaid items these stopped are NOT_SUBMITTED: the next plain run (or `work`) takes them.
_NOT_SENT = (
    BudgetExceeded,
    AuthenticationError,
    InsufficientBalance,
    JournalUnavailable,
    LostClaim,
)


class ItemStages:
    """The steps one item takes through a batch, from its claim to its result.

    The parts they use are set by the subclass that runs the batch
    (:class:`~._pipeline.Engine`); those made only for some batches (with a journal, a
    webhook, an output folder) are None otherwise.
    """

    client: EngineAPI
    options: BatchOptions
    tracker: Tracker
    poll_policy: PollPolicy
    uploads: UploadCache
    scheduler: PollScheduler
    budget: Budget
    stop: StopControl
    names: NameRegistry
    digests: DigestCache
    deliverer: Deliverer | None
    webhook: WebhookCompletion | None
    claims: Claims | None
    unrecorded: Unrecorded | None
    submitter: Submitter | None

    async def _process(self, state: ItemState, *, may_defer: bool) -> BatchResult:
        try:
            return await self._through_stages(state, may_defer=may_defer)
        except Busy:
            self.names.discard_key(state.key)  # it comes back, deferred
            raise
        except SeedreamError as err:
            return await self._failed(state, err)
        except OSError as err:  # the disk (full, read-only): after billing, keep the id
            wrapped = SeedreamError(f"{type(err).__name__}: {err}")
            wrapped.__cause__ = err
            return await self._failed(state, wrapped)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as err:  # a bug must not sink the batch
            logger.exception("item %r failed unexpectedly", state.key)
            wrapped = SeedreamError(f"unexpected {type(err).__name__}: {err}")
            wrapped.__cause__ = err
            return await self._failed(state, wrapped)
        finally:
            if self.claims is not None and state.claimed:
                with anyio.CancelScope(shield=True):
                    await self.claims.release(state.key)

    async def _failed(self, state: ItemState, err: SeedreamError) -> BatchResult:
        """The result of an item that raised ``err``, journaled without losing an id."""
        if isinstance(err, AmbiguousSubmission):
            err.key = state.key
            return state.result(ResultStatus.AMBIGUOUS, error=err)
        paid = state.prediction_id is not None
        if self.unrecorded is not None:
            self.unrecorded.noticed(err)
        if not paid and isinstance(err, _ACCOUNT_ERRORS):
            self.stop.fatal(err)
        status = ResultStatus.FAILED
        if not paid and isinstance(err, _NOT_SENT):
            status = ResultStatus.NOT_SUBMITTED
        if paid and not isinstance(err, PredictionFailed | JournalUnavailable):
            err = _kept(err, state.prediction_id)
        claims = self.claims
        if claims is not None and state.claimed and not isinstance(err, PredictionFailed):
            with anyio.CancelScope(shield=True):
                await claims.record_failure(state.key, err, paid=paid)
        return state.result(status, error=err)

    async def _through_stages(self, state: ItemState, *, may_defer: bool) -> BatchResult:
        item = state.item
        name = output_stem(item.key)
        if not self.names.add_key(item.key):
            raise InvalidInput("duplicate key: an earlier item of this batch has it", field="key")
        params = item.request_params()
        check_params(key=item.key, prompt=item.prompt, images=item.images, **params)
        if (other := self.names.claim(item.key, name)) is not None:
            raise name_taken(item.key, other)

        attempts, resumed = await self._claim(state, params, name, may_defer=may_defer)
        if resumed is not None:
            return resumed

        refused = self.stop.refused()
        if refused is not None:
            raise refused
        state.enter(Stage.UPLOADING)
        urls = await self._urls(item.key, item.images, params)
        if self.options.completion == Completion.SYNC:
            params = {**params, "enable_sync_mode": True}
        request = build_request(item.key, prompt=item.prompt, images=urls, **params)
        target = None
        if self.webhook is not None:
            target = self.webhook.target(item.key, attempts + 1)
            request = self.webhook.request_for(request, target)

        state.enter(Stage.WAITING)
        assert self.submitter is not None
        try:
            prediction = await self.submitter.submit(state, request)
        except AmbiguousSubmission:
            if self.webhook is None or target is None:
                raise
            # The answer was lost, not the prediction: its delivery names the attempt.
            found = await self.webhook.wait(item.key, target, None)
            if found is None:
                raise
            state.prediction_id = found.id
            return await self._finish(state, found, name)
        try:
            shape = Shape(request.max_images, request.size)
            prediction = await self._wait(prediction, shape, item.key, attempts + 1)
        finally:
            self.submitter.release()
        unrecorded = self.unrecorded
        # An id not in the journal yet: a delivery now could not be journaled; wait for it.
        keeping = unrecorded is not None and unrecorded.holds(state.key)
        if keeping and unrecorded is not None and not await unrecorded.settled(state.key):
            raise unrecorded.refusal_of(state.key)
        return await self._finish(state, prediction, name)

    async def _claim(
        self, state: ItemState, params: dict[str, Any], name: str, *, may_defer: bool
    ) -> tuple[int, BatchResult | None]:
        """Claim the item in the journal (when there is one): its attempts so far, and its
        result when the journal already answers it (delivered, or paid and fetched by id)."""
        item = state.item
        if self.claims is None:
            return 0, None
        fp = await fingerprint(item, params, self.digests)
        record = await self.claims.claim(item.key, fp, name, wait=not may_defer)
        attempts = record.attempts
        state.claimed = True
        if self.unrecorded is not None and item.key in self.unrecorded.loaded:
            await self.unrecorded.after_claim(item.key)  # an id an earlier run kept
            record = await self.claims.journal.get(item.key) or record
        if self.deliverer is not None:
            await self.deliverer.remove_stale(name)
        return attempts, await self._resume(state, record, name)

    async def _urls(self, key: str, images: Any, params: dict[str, Any]) -> list[str]:
        """Each image as the request names it, checked before anything is paid; an image
        refused says which item it belongs to."""
        limits = params.get("check_limits", True) is not False
        try:
            return [await self.uploads.url_for(image, check_limits=limits) for image in images]
        except InvalidInput as err:
            err.key = err.key if err.key is not None else key
            raise

    async def _wait(
        self, prediction: Prediction, shape: Shape, key: str = "", attempt: int = 0
    ) -> Prediction:
        if prediction.terminal:
            return prediction
        if self.webhook is not None:
            found = await self.webhook.wait(key, self.webhook.target(key, attempt), prediction.id)
            if found is None:
                raise DeadlineExceeded(prediction.id, self.poll_policy.deadline or 0.0)
            return found
        try:
            return await self.scheduler.wait(
                prediction.id, submitted_at=anyio.current_time(), shape=shape
            )
        except PredictionFailed as err:
            # Back to a failed prediction, so _finish journals it API_FAILED (not left
            # SUBMITTED, which every later run would fetch by id again).
            return Prediction(
                id=prediction.id,
                status=PredictionStatus.FAILED,
                error=err.error,
                error_code=err.error_code,
                request_id=prediction.request_id,
            )

    async def _settle(self, state: ItemState, prediction: Prediction) -> None:
        """Per-image pricing: the submit held ``max_images`` images' price; now the bill is
        the images returned (a failed prediction: none). The budget and journal follow."""
        price = self.budget.model
        if not price.per_image:
            return
        images = 0 if prediction.failed else len(prediction.outputs)
        bill = price.cost(executions=1, images=images)
        if state.cost:  # billed in this run (a resumed one was counted by its own run)
            state.cost = self.budget.settle(state.cost, min(bill, state.cost))
            bill = state.cost
        if self.claims is not None and self.claims.holds(state.key):
            await self.claims.settle(state.key, bill)

    async def _finish(self, state: ItemState, prediction: Prediction, name: str) -> BatchResult:
        claims = self.claims
        await self._settle(state, prediction)
        if prediction.failed:
            failure = PredictionFailed.of(prediction.id, prediction.error, prediction.error_code)
            if claims is not None:
                error = prediction.error or "no error message"
                await claims.api_failed(state.key, error, type(failure).__name__)
            raise failure
        files: tuple[Path, ...] = ()
        if self.deliverer is not None:
            state.enter(Stage.DOWNLOADING)
            try:
                files = await self.deliverer.deliver(prediction, name)
            except BaseException:
                # Done at the API, not delivered: the next run fetches it by id. (Journaled
                # only now: on the way to a download, output URLs may be seconds from expiry.)
                if claims is not None and claims.holds(state.key):
                    with anyio.CancelScope(shield=True):
                        await claims.done(state.key, prediction)
                raise
        if claims is not None:
            flagged = sum(prediction.has_nsfw_contents or ())
            await claims.delivered(state.key, files, prediction.outputs, flagged)
        return state.result(ResultStatus.SUCCEEDED, prediction=prediction, files=files)

    async def _resume(self, state: ItemState, record: ItemRecord, name: str) -> BatchResult | None:
        """Answer an item from its journal row, fetch it by id, or None to run it."""
        action = resume_action(
            record,
            resubmit_ambiguous=self.options.resubmit_ambiguous,
            retry_failed=self.options.retry_failed,
        )
        if action is Resume.RUN:
            return None
        state.prediction_id = record.prediction_id
        self.tracker.progress.from_journal += 1
        if action is Resume.ANSWER:
            files = tuple(Path(file) for file in record.files)
            if self.deliverer is None or await self.deliverer.verified(record.files):
                return state.result(
                    ResultStatus.SUCCEEDED,
                    files=files,
                    outputs=record.outputs,
                    predict_time=record.predict_time,
                    from_journal=True,
                )
        if action is Resume.AMBIGUOUS:
            return state.result(
                ResultStatus.AMBIGUOUS, error=ambiguous_before(state.key), from_journal=True
            )
        if action is Resume.FAILED:
            return state.result(ResultStatus.FAILED, error=failed_before(record), from_journal=True)
        # Recorded by a webhook (this run's receiver or another's): deliver, no poll.
        if self.webhook is not None and (done := recorded(record.state, record)) is not None:
            with contextlib.suppress(SeedreamError):  # e.g. expired URLs: fetch by id
                return _from_journal(await self._finish(state, done, name))
        # Paid for already: fetch it by id (fresh output URLs) and deliver, never resubmit.
        assert record.prediction_id is not None
        assert self.submitter is not None
        state.enter(Stage.WAITING)
        await self.submitter.acquire()
        try:
            state.enter(Stage.RUNNING)
            request = record.request or {}
            shape = Shape(int(request.get("max_images", 1)), str(request.get("size", DEFAULT_SIZE)))
            prediction = await self._wait(
                Prediction(id=record.prediction_id), shape, state.key, record.attempts
            )
        finally:
            self.submitter.release()
        result = await self._finish(state, prediction, name)
        return _from_journal(result)


def _kept(err: SeedreamError, prediction_id: str | None) -> SeedreamError:
    """``err``, its message saying the prediction is paid for and a re-run fetches it."""
    note = (
        f" (prediction {prediction_id} is paid for and kept in the journal: run the batch "
        "again to fetch it by id, without paying again)"
    )
    if note not in err.message:
        err.message += note
        err.args = (err.message, *err.args[1:])
    return err


def _from_journal(result: BatchResult) -> BatchResult:
    from dataclasses import replace

    return replace(result, from_journal=True)
