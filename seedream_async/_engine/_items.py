"""What goes into a batch and what comes out: items, results, progress counters."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from .._base._exceptions import InvalidInput, SeedreamError
from .._wire._parsing import ImageRef

__all__ = [
    "BatchProgress",
    "BatchResult",
    "EditItem",
    "Job",
    "ITEM_FIELDS",
    "ProgressCallback",
    "ResultStatus",
    "Stage",
    "Timings",
    "as_item",
]


@dataclass(frozen=True, kw_only=True)
class EditItem:
    """One item of a batch (a job): a key of yours (a SKU, say), a prompt, reference images
    and the model that makes it.

    Args:
        key: unique within the batch; names the output files and the journal row.
        prompt: what to do.
        images: reference images: http(s) URLs, paths, or bytes; 1 to 10 for the default
            model, none for text-to-image and sequential models (see ``_family.MODELS``).
        size: ``"W*H"``, the request's default when None.
        max_images: images generated in the sequence, the request's default when None.
        seed: a fixed seed, or None for random.
        model: the model id; the client's default (v4.5 edit-sequential) when None.
        options: the model's own extra fields, checked against its row in the table:
            ``{"output_format": "png", "optimize_prompt_options.mode": "fast"}``.
        params: any other request field (``enable_base64_output``, ...).
        extra_body: fields sent as they are, merged last into the request's JSON body:
            parameters this client does not know (``{"watermark": False}``).
    """

    key: str
    prompt: str
    images: Sequence[ImageRef] = ()
    size: str | None = None
    max_images: int | None = None
    seed: int | None = None
    model: str | None = None
    options: Mapping[str, Any] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    extra_body: Mapping[str, Any] | None = None

    def request_params(self) -> dict[str, Any]:
        """The request fields besides prompt and images, without the unset ones."""
        fields: dict[str, Any] = dict(self.params)
        if self.extra_body is not None:
            fields["extra_body"] = {**dict(fields.get("extra_body") or {}), **self.extra_body}
        if self.options is not None:
            fields["options"] = {**dict(fields.get("options") or {}), **self.options}
        for name in ("size", "max_images", "seed", "model"):
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        return fields


Job = EditItem
"""Another name for :class:`EditItem`, for batches that generate rather than edit."""

ITEM_FIELDS: tuple[str, ...] = tuple(spec.name for spec in fields(EditItem))
"""The fields of :class:`EditItem`, in order: the one list of them."""


def as_item(value: EditItem | Mapping[str, Any]) -> EditItem:
    """Accept an :class:`EditItem` or a mapping with the same fields (a JSON row, say)."""
    if isinstance(value, EditItem):
        return value
    if isinstance(value, Mapping):
        given = {name: value[name] for name in ITEM_FIELDS if name in value}
        extra = {name: value[name] for name in value if name not in ITEM_FIELDS}
        key = given.get("key")
        if not isinstance(key, str):
            raise InvalidInput("an item needs a string 'key'", field="key")
        if "prompt" not in given:
            raise InvalidInput("missing 'prompt'", field="prompt", key=key)
        if extra:
            given["params"] = {**dict(given.get("params") or {}), **extra}
        return EditItem(**given)
    raise InvalidInput(f"a batch item must be an EditItem or a mapping, got {type(value).__name__}")


class Stage(StrEnum):
    """Where an item in progress is; each value names its :class:`BatchProgress` counter."""

    QUEUED = "queued"
    """Read, waiting for room to start."""
    UPLOADING = "uploading"
    """Preparing and uploading its images."""
    WAITING = "waiting"
    """Waiting for a concurrency slot, the rate limiter or the budget."""
    RUNNING = "running"
    """Submitted; the prediction is not yet known to be finished."""
    DOWNLOADING = "downloading"
    """Saving its outputs."""


class ResultStatus(StrEnum):
    """How an item ended; each value names its :class:`BatchProgress` counter."""

    SUCCEEDED = "succeeded"
    """Done; outputs (and files, with ``out_dir``) are in the result."""
    FAILED = "failed"
    """Bad input, a failed upload, a failed prediction, a deadline or a failed download."""
    AMBIGUOUS = "ambiguous"
    """The submit may have been billed but its answer was lost; not sent again."""
    NOT_SUBMITTED = "not_submitted"
    """The budget ran out first; nothing was spent on it."""


@dataclass(frozen=True, kw_only=True)
class Timings:
    """Seconds an item spent in each stage (None for a stage it did not reach).

    Args:
        upload: preparing and uploading its images.
        queued: waiting for a concurrency slot and the rate limiter.
        running: from the submit to the client knowing the prediction finished.
        download: saving the outputs.
        total: from start to result.
    """

    upload: float | None = None
    queued: float | None = None
    running: float | None = None
    download: float | None = None
    total: float = 0.0

    @classmethod
    def from_marks(cls, marks: Mapping[Stage, float], *, started: float, now: float) -> Timings:
        """The timings of an item that entered each stage in ``marks`` at the time given
        there, started at ``started`` and ended at ``now`` (all on one clock)."""

        def span(stage: Stage, until: Stage | None = None) -> float | None:
            start = marks.get(stage)
            if start is None:
                return None
            return (marks.get(until, now) if until else now) - start

        return cls(
            upload=span(Stage.UPLOADING, Stage.WAITING),
            queued=span(Stage.WAITING, Stage.RUNNING),
            running=span(Stage.RUNNING, Stage.DOWNLOADING),
            download=span(Stage.DOWNLOADING),
            total=now - started,
        )


@dataclass(frozen=True, kw_only=True)
class BatchResult:
    """What became of one item.

    Args:
        key: the item's key.
        status: how it ended.
        prediction_id: the prediction's id, once submitted.
        outputs: output URLs (or base64 strings), as the API gave them.
        files: the saved outputs, with ``out_dir``.
        error: what went wrong, for anything but success.
        cost: US dollars billed for it in this run (0 when nothing was submitted).
        predict_time: seconds the model ran, as the API reported.
        timings: seconds per stage.
        from_journal: True when it came from the journal of an earlier run.
        request_id: the API's id for the item's submit (or for the request that failed
            it), its ``X-Request-ID``: quote it to Atlas Cloud's support to ask whether
            an ambiguous item was billed.
        nsfw: one flag per output, True where the API flagged it (``has_nsfw_contents``).
    """

    key: str
    status: ResultStatus
    prediction_id: str | None = None
    outputs: tuple[str, ...] = ()
    files: tuple[Path, ...] = ()
    error: SeedreamError | None = None
    cost: float = 0.0
    predict_time: float | None = None
    timings: Timings = field(default_factory=Timings)
    from_journal: bool = False
    request_id: str | None = None
    nsfw: tuple[bool, ...] = ()

    @property
    def flagged(self) -> bool:
        """True when the API flagged any of the item's outputs as NSFW."""
        return any(self.nsfw)

    @property
    def ok(self) -> bool:
        """True when the item succeeded."""
        return self.status is ResultStatus.SUCCEEDED

    @property
    def error_message(self) -> str | None:
        """The error as text, or None."""
        return None if self.error is None else str(self.error)


@dataclass
class BatchProgress:
    """Live counters of a batch, updated in place; read them whenever you like.

    Args:
        queued: items read and not yet finished, not counting those in a later stage.
        uploading: items preparing or uploading images.
        waiting: items waiting for a concurrency slot, the rate limiter or the budget.
        running: predictions submitted and not yet known to be finished.
        downloading: items saving outputs.
        succeeded: items done.
        failed: items failed.
        ambiguous: items whose submit may have been billed without an answer.
        not_submitted: items stopped by the budget.
        from_journal: items answered from an earlier run's journal.
        executions: predictions submitted (each one billed).
        spent: US dollars billed in this run (ambiguous submits counted, to be safe).
        concurrency_limit: predictions allowed in flight now (shrinks after a 429).
    """

    queued: int = 0
    uploading: int = 0
    waiting: int = 0
    running: int = 0
    downloading: int = 0
    succeeded: int = 0
    failed: int = 0
    ambiguous: int = 0
    not_submitted: int = 0
    from_journal: int = 0
    executions: int = 0
    spent: float = 0.0
    concurrency_limit: int = 0

    @property
    def finished(self) -> int:
        """Items with a result."""
        return self.succeeded + self.failed + self.ambiguous + self.not_submitted

    @property
    def in_progress(self) -> int:
        """Items started and not finished."""
        return self.queued + self.uploading + self.waiting + self.running + self.downloading


ProgressCallback = Callable[[BatchProgress], None]
"""Called with the live counters after every change; keep it cheap."""
