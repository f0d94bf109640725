"""Pydantic models for what crosses the wire, read in both documented envelopes.

The API answers either ``{"data": {...}}`` or the bare object; :func:`unwrap` accepts
both. Unknown fields are kept (``extra="allow"``) and unknown status strings are kept
and read as "still running", so a new server field or status never crashes a batch.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._constants import (
    DEFAULT_MODEL,
    DEFAULT_SIZE,
    MAX_GENERATED_IMAGES,
    MAX_PROMPT_CHARS,
    MAX_REFERENCE_IMAGES,
    MAX_SIDE,
    MAX_TOTAL_IMAGES,
    MIN_SIDE,
)
from ._exceptions import InvalidInput

__all__ = [
    "EditRequest",
    "ImageRef",
    "Metrics",
    "Prediction",
    "PredictionStatus",
    "UploadedMedia",
    "build_request",
    "check_params",
    "is_url",
    "unwrap",
]

ImageRef = str | os.PathLike[str] | bytes
"""A reference image in an edit: an http(s) URL, a local path, or the image's bytes."""


def is_url(value: object) -> bool:
    """True for an http(s) URL string: the one check of "is this a URL" in the package."""
    return isinstance(value, str) and value.startswith(("https://", "http://"))


_SIZE = re.compile(r"^\s*(\d+)\s*[*xX\u00d7]\s*(\d+)\s*$")


class PredictionStatus(StrEnum):
    """The documented status strings. :class:`Prediction` keeps unknown ones as plain str."""

    CREATED = "created"
    QUEUED = "queued"
    STARTING = "starting"
    PROCESSING = "processing"
    RUNNING = "running"
    COMPLETED = "completed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # Not in Atlas Cloud's page, but sibling hosts use them for a prediction that ended badly.
    CANCELED = "canceled"
    CANCELLED = "cancelled"
    ERROR = "error"


_DONE = frozenset({PredictionStatus.COMPLETED, PredictionStatus.SUCCEEDED})
_FAILED = frozenset(
    {
        PredictionStatus.FAILED,
        PredictionStatus.CANCELED,
        PredictionStatus.CANCELLED,
        PredictionStatus.ERROR,
    }
)


def unwrap(body: Any) -> Any:
    """Return the object inside a ``{"data": {...}}`` envelope, or ``body`` if it is bare."""
    if isinstance(body, dict) and "id" not in body and "download_url" not in body:
        inner = body.get("data")
        if isinstance(inner, dict):
            return inner
    return body


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        return unwrap(data)


class UploadedMedia(_Wire):
    """A reference image stored by the API, ready to pass in :attr:`EditRequest.images`.

    Args:
        download_url: the URL to put in a request's ``images``.
        file_name: the stored file name.
        content_type: the MIME type the API recorded.
        size: the size in bytes.
    """

    download_url: str
    file_name: str | None = None
    content_type: str | None = None
    size: int | None = None


class Metrics(_Wire):
    """Timing the API reports for a prediction. ``predict_time`` is in seconds."""

    predict_time: float | None = None


class Prediction(_Wire):
    """A prediction as the API reports it.

    Args:
        id: the prediction id.
        status: a :class:`PredictionStatus`, or the raw string when the API sends an unknown one.
        outputs: output image URLs (or base64 strings with ``enable_base64_output``).
        error: the server's error message for a failed prediction.
        metrics: timing, when reported.
    """

    id: str
    status: PredictionStatus | str = PredictionStatus.PROCESSING
    model: str | None = None
    outputs: list[str] = Field(default_factory=list)
    error: str | None = None
    metrics: Metrics | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return PredictionStatus(value.strip().lower())
            except ValueError:
                return value
        return value

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("error", mode="before")
    @classmethod
    def _error(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value or None
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return value["message"]
        return str(value)

    @property
    def done(self) -> bool:
        """True once the prediction completed (``completed`` or ``succeeded``)."""
        return self.status in _DONE

    @property
    def failed(self) -> bool:
        """True once the prediction ended badly (``failed`` and its synonyms)."""
        return self.status in _FAILED

    @property
    def terminal(self) -> bool:
        """True when the status will not change again."""
        return self.done or self.failed

    @property
    def predict_time(self) -> float | None:
        """Seconds the model ran, when the API reported it."""
        return self.metrics.predict_time if self.metrics else None


def _check_size(value: str) -> str:
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"size must look like '2048*2048' (width*height), got {value!r}")
    width, height = int(match[1]), int(match[2])
    for name, side in (("width", width), ("height", height)):
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise ValueError(
                f"{name} {side} is outside {MIN_SIDE}..{MAX_SIDE} pixels (size {value!r})"
            )
    return f"{width}*{height}"


def _check_url(index: int, url: str) -> None:
    if not is_url(url):
        shown = url if len(url) <= 60 else url[:57] + "..."
        raise ValueError(f"images[{index}] must be an http(s) URL, got {shown!r}")


class EditRequest(BaseModel):
    """One edit-sequential prediction, validated against the contract's limits.

    Args:
        prompt: what to do, 1 to 4,000 characters.
        images: 1 to 10 reference image URLs (upload local files with ``client.upload``).
        size: output ``"W*H"``, each side 1024 to 4096 (``"2048x2048"`` is accepted too).
        max_images: images generated in the sequence, 1 to 15; references plus this <= 15.
        seed: a fixed seed, or None / -1 for random.
        enable_base64_output: ask for base64 strings instead of URLs.
        enable_sync_mode: ask the API to answer only when the prediction is done.
        model: the model id; the edit-sequential model unless you say otherwise.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = DEFAULT_MODEL
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    images: list[str] = Field(min_length=1, max_length=MAX_REFERENCE_IMAGES)
    size: str = DEFAULT_SIZE
    max_images: int = Field(default=1, ge=1, le=MAX_GENERATED_IMAGES, strict=True)
    seed: int | None = Field(default=None, ge=-1, le=2**32 - 1, strict=True)
    enable_base64_output: bool = False
    enable_sync_mode: bool = False

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt is blank")
        return value

    @field_validator("images")
    @classmethod
    def _images(cls, value: list[str]) -> list[str]:
        for index, url in enumerate(value):
            _check_url(index, url)
        return value

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        if isinstance(value, tuple | list) and len(value) == 2:
            value = f"{value[0]}*{value[1]}"
        return _check_size(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _total(self) -> EditRequest:
        total = len(self.images) + self.max_images
        if total > MAX_TOTAL_IMAGES:
            raise ValueError(
                f"{len(self.images)} reference images + max_images {self.max_images} = {total}, "
                f"more than the {MAX_TOTAL_IMAGES} images one sequence allows"
            )
        return self

    def to_payload(self) -> dict[str, Any]:
        """The flat JSON body ``generateImage`` takes (``seed`` left out when random)."""
        payload = self.model_dump()
        if payload["seed"] is None:
            del payload["seed"]
        return payload


def build_request(key: str | None = None, **fields: Any) -> EditRequest:
    """Build an :class:`EditRequest`, turning a validation failure into :class:`InvalidInput`.

    The message names the field and why, and the item's ``key`` when there is one.
    """
    try:
        return EditRequest(**fields)
    except ValidationError as err:
        first = err.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "request"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown edit parameter"
        raise InvalidInput(f"{location}: {message}", field=location, key=key) from None


def check_params(*, key: str | None = None, prompt: Any, images: Any, **params: Any) -> None:
    """Check every rule of an edit that can be checked before any image is uploaded.

    Local images (paths, bytes) stand in as placeholder URLs, so counts and limits are
    checked exactly as :class:`EditRequest` will check them after upload.

    Raises:
        InvalidInput: naming the field, and ``key`` when given.
    """
    if isinstance(images, str | bytes) or not hasattr(images, "__len__"):
        raise InvalidInput(
            f"images must be a list of URLs, paths or bytes, got {type(images).__name__}",
            field="images",
            key=key,
        )
    stand_ins = [
        image if isinstance(image, str) and "://" in image else f"https://local.invalid/{index}"
        for index, image in enumerate(images)
    ]
    build_request(key, prompt=prompt, images=stand_ins, **params)
