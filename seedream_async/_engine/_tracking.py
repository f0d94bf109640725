"""Where each item is: the live counters, and one item's way through the stages."""

from __future__ import annotations

from pathlib import Path

import anyio

from .._base._exceptions import APIStatusError, InvalidInput, SeedreamError
from .._base._observe import Observer
from .._wire._parsing import Prediction
from ._items import (
    BatchProgress,
    BatchResult,
    EditItem,
    ProgressCallback,
    ResultStatus,
    Stage,
    Timings,
)

__all__ = ["ItemState", "Tracker"]


class Tracker:
    """The live counters plus the callback, moved together.

    A :class:`Stage` and a :class:`ResultStatus` each name their counter in
    :class:`BatchProgress` (a test checks it), so an item moves by its enum values.
    """

    def __init__(
        self,
        progress: BatchProgress,
        callback: ProgressCallback | None,
        observer: Observer | None = None,
    ) -> None:
        self.progress = progress
        self._callback = callback
        self.observer = observer or Observer()

    def move(self, source: Stage | None, target: Stage | ResultStatus | None) -> None:
        """Count one item out of ``source`` and into ``target`` (either may be None)."""
        if source is not None:
            setattr(self.progress, source.value, getattr(self.progress, source.value) - 1)
        if target is not None:
            setattr(self.progress, target.value, getattr(self.progress, target.value) + 1)
        self.changed()

    def changed(self) -> None:
        """Tell the callback the counters changed."""
        if self._callback is not None:
            self._callback(self.progress)


class ItemState:
    """One item's way through the stages: where it is, and when it got there."""

    def __init__(self, item: EditItem, tracker: Tracker) -> None:
        self.item = item
        self.key = item.key
        self.stage: Stage = Stage.QUEUED
        self.started = anyio.current_time()
        self.marks: dict[Stage, float] = {}
        self.prediction_id: str | None = None
        self.request_id: str | None = None  # the submit's X-Request-ID, for support
        self.claimed = False  # holds its journal claim
        self.cost = 0.0
        self._tracker = tracker
        tracker.move(None, Stage.QUEUED)
        tracker.observer.item_started(self.key)

    def enter(self, stage: Stage) -> None:
        """Move the item to ``stage``, now."""
        self.marks[stage] = anyio.current_time()
        self._tracker.move(self.stage, stage)
        self.stage = stage
        self._tracker.observer.item_stage(self.key, stage.value, self.prediction_id)

    def submitted(self, prediction_id: str) -> None:
        """The API took the item's submit: note its prediction id, and tell the observer."""
        self.prediction_id = prediction_id
        self._tracker.observer.item_stage(self.key, "submitted", prediction_id)

    def drop(self) -> None:
        """Count the item out without a result (it is put back for later)."""
        self._tracker.move(self.stage, None)

    def end(self, status: ResultStatus) -> None:
        """Count the item as ended, ``status``."""
        self._tracker.move(self.stage, status)

    def finish(self, result: BatchResult) -> None:
        """Count the item as ended with ``result``, and tell the observer."""
        self.end(result.status)
        self._tracker.observer.item_ended(result)

    def result(
        self,
        status: ResultStatus,
        *,
        error: SeedreamError | None = None,
        prediction: Prediction | None = None,
        files: tuple[Path, ...] = (),
        from_journal: bool = False,
        outputs: tuple[str, ...] = (),
        predict_time: float | None = None,
    ) -> BatchResult:
        """The item's result, with its timings so far."""
        if isinstance(error, InvalidInput) and error.key is None:
            error = type(error)(error.message, field=error.field, key=self.key)
        return BatchResult(
            request_id=_request_id(error) or self.request_id,
            nsfw=tuple(_nsfw(prediction)) if prediction else (),
            key=self.key,
            status=status,
            prediction_id=self.prediction_id,
            outputs=tuple(prediction.outputs) if prediction else outputs,
            files=files,
            error=error,
            cost=self.cost,
            predict_time=prediction.predict_time if prediction else predict_time,
            timings=Timings.from_marks(self.marks, started=self.started, now=anyio.current_time()),
            from_journal=from_journal,
        )


def _request_id(error: BaseException | None) -> str | None:
    """The API's request id an error (or the status error behind it) carries."""
    for candidate in (error, error.__cause__ if error is not None else None):
        if isinstance(candidate, APIStatusError) and candidate.request_id:
            return candidate.request_id
    return None


def _nsfw(prediction: Prediction) -> list[bool]:
    """One NSFW flag per output (False where the API sent none)."""
    return [prediction.flagged(index) for index in range(len(prediction.outputs))]
