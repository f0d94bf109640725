"""API answers about predictions and uploads, read in every shape the API is known to send.

Predictions are read leniently (see :class:`Prediction`): ids may be numbers, outputs may sit
in ``outputs`` or ``output`` as a string, a list, or objects with a ``url``; a timestamp that
cannot be read becomes None; an unknown status means "still running". Unknown fields are
kept (``extra="allow"``), so a new server field never crashes a batch. The envelope around an
answer is ``_envelope.py``'s; edit requests are validated in ``_requests.py``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from .._base._exceptions import (
    MalformedResponse,
    scrub,
)
from ._envelope import _open, envelope_error

__all__ = [
    "ImageRef",
    "Metrics",
    "Prediction",
    "PredictionStatus",
    "UploadedMedia",
    "read_prediction",
    "read_upload",
]

ImageRef = str | os.PathLike[str] | bytes
"""A reference image in an edit: an http(s) URL, a local path, or the image's bytes."""


_MAX_MESSAGE = 500
# Keys an output object may carry its image under, most specific first.
_OUTPUT_KEYS = ("url", "download_url", "image_url", "image", "b64_json", "base64", "data")


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
    # Not in Atlas Cloud's page, but first-party clients and sibling hosts use them for a
    # prediction that ended badly.
    CANCELED = "canceled"
    CANCELLED = "cancelled"
    ERROR = "error"
    TIMEOUT = "timeout"
    EXPIRED = "expired"


_DONE = frozenset({PredictionStatus.COMPLETED, PredictionStatus.SUCCEEDED})
_FAILED = frozenset(
    {
        PredictionStatus.FAILED,
        PredictionStatus.CANCELED,
        PredictionStatus.CANCELLED,
        PredictionStatus.ERROR,
        PredictionStatus.TIMEOUT,
        PredictionStatus.EXPIRED,
    }
)


_STATUSES = {status.value: status for status in PredictionStatus}


_WIRE = ConfigDict(extra="allow", frozen=True)


class _Wire(BaseModel):
    model_config = _WIRE

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        return _open(data)


def _lenient(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate, or None when the value cannot be read (a garbled optional field)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return handler(value)
    except ValidationError:
        return None


class _Lenient:
    """Marks an optional field read as None when its value cannot be read (garbled).

    :func:`_lenient` without a call into Python: pydantic-core's own ``on_error="default"``
    (the field's type is unchanged; a blank string fails it as it failed ``_lenient``).
    Used where every answer carries the field, so the per-answer cost counts.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.with_default_schema(handler(source), default=None, on_error="default")


# -- answers ------------------------------------------------------------------------------


class UploadedMedia(_Wire):
    """A reference image stored by the API, ready to pass in :attr:`EditRequest.images`.

    Read from ``{download_url, file_name, content_type, size}``,
    ``{download_url, filename, type, size}`` or a bare ``{url}``.

    Args:
        download_url: the URL to put in a request's ``images``.
        file_name: the stored file name.
        content_type: the MIME type the API recorded.
        size: the size in bytes.
    """

    download_url: str = Field(min_length=1)
    file_name: str | None = None
    content_type: str | None = None
    size: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        data = _open(data)
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, alias in (("download_url", "url"), ("file_name", "filename")):
            if data.get(name) is None and isinstance(data.get(alias), str):
                data[name] = data[alias]
        kind = data.get("type")
        if data.get("content_type") is None and isinstance(kind, str) and "/" in kind:
            data["content_type"] = kind
        return data

    @field_validator("file_name", "content_type", "size", mode="wrap")
    @classmethod
    def _optional(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _lenient(value, handler)


class Metrics(_Wire):
    """Timing the API reports for a prediction. ``predict_time`` is in seconds."""

    predict_time: Annotated[float | None, _Lenient] = None


def _output_list(value: Any) -> list[str]:
    """Every output as a string: URL or bare base64, from any of the variants seen."""
    if value is None:
        return []
    if type(value) is list and not value:
        return value  # a running prediction's: nothing to read
    # Tuples, not unions, in isinstance: faster, and this runs for every answer read.
    items = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(items, (list, tuple)):
        # ValueError, not TypeError: pydantic turns only ValueError into a ValidationError.
        kind = type(value).__name__
        raise ValueError(f"outputs must be a string, an object or a list, got {kind}")  # noqa: TRY004
    outputs: list[str] = []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            found = next(
                (item[key] for key in _OUTPUT_KEYS if isinstance(item.get(key), str)), None
            )
            if found is None:
                keys = ", ".join(sorted(str(key) for key in item)[:5]) or "no keys"
                raise ValueError(f"outputs[{index}] is an object without a url ({keys})")
            item = found
        if item is None:
            continue
        if not isinstance(item, str):
            kind = type(item).__name__
            raise ValueError(f"outputs[{index}] is a {kind}, not a URL")  # noqa: TRY004
        text = item.strip()
        if text:
            outputs.append(text)
    return outputs


def _status(value: Any) -> PredictionStatus | str:
    """A known status (any case), else the text as sent; missing or blank: processing."""
    if type(value) is str and value in _STATUSES:
        return _STATUSES[value]  # the usual: sent exactly as documented
    if value is None:
        return PredictionStatus.PROCESSING
    text = str(value).strip()
    return _STATUSES.get(text.lower()) or text or PredictionStatus.PROCESSING


def _error(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        message: str = value["message"]
        return message
    return str(value)


def _error_code(value: Any) -> int | None:
    """Atlas Cloud's task code; 0 (its "no error"), blank or garbled: None."""
    try:
        return int(value) if value not in (None, "", 0, "0") else None
    except (TypeError, ValueError):
        return None


class Prediction(BaseModel):
    """A prediction as the API reports it.

    Read leniently: ``id`` may be a number (kept as its string); outputs may come as
    ``outputs`` or ``output``, a string or a list, each a URL, a bare base64 string, or an
    object with a ``url``; timestamps and metrics that cannot be read become None; a
    missing or unknown status reads as running. A poll answer without an id takes the
    polled id when given as validation context: ``model_validate(body, context={"id": id})``.

    Args:
        id: the prediction id.
        status: a :class:`PredictionStatus`, or the raw string when the API sends an unknown one.
        outputs: output image URLs (or base64 strings with ``enable_base64_output``).
        error: the server's error message for a failed prediction.
        error_code: Atlas Cloud's task-level code for a failure (1039: content moderation).
        has_nsfw_contents: one flag per output, True where the API flagged it as NSFW.
        request_id: the API's id for the request that returned this answer
            (``X-Request-ID``), for support.
        metrics: timing, when reported.
    """

    model_config = _WIRE

    id: str = Field(min_length=1)
    status: PredictionStatus | str = PredictionStatus.PROCESSING
    model: Annotated[str | None, _Lenient] = None
    outputs: list[str] = Field(default_factory=list)
    error: str | None = None
    error_code: int | None = None
    has_nsfw_contents: list[bool] = Field(default_factory=list)
    request_id: str | None = None
    metrics: Annotated[Metrics | None, _Lenient] = None
    created_at: Annotated[datetime | None, _Lenient] = None
    completed_at: Annotated[datetime | None, _Lenient] = None

    # Every poll answer passes here (tens of thousands in a batch), so the envelope and the
    # variants are read in this one call into Python, not in a validator per field (not a
    # _Wire: its validator would be a second call); ``_Lenient`` makes a garbled optional
    # field None inside pydantic-core. Only ``outputs``, whose errors name the field, keeps a
    # validator of its own.
    @model_validator(mode="before")
    @classmethod
    def _variants(cls, data: Any, info: ValidationInfo) -> Any:
        data = _open(data)
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("outputs") is None and "output" in data:
            data["outputs"] = data["output"]
        context = info.context
        if isinstance(context, dict):
            known = context.get("id")
            if isinstance(known, str) and data.get("id") in (None, ""):
                data["id"] = known
            header = context.get("request_id")
            if isinstance(header, str) and header and data.get("request_id") in (None, ""):
                data["request_id"] = header
        # Opened a second time after the fills, as when _Wire's validator ran after this
        # one: an envelope inside the envelope still reads as it did.
        if "code" in data or "data" in data:
            inner = _open(data)
            if inner is not data:
                data = dict(inner)
        # The fields present, brought to their types' shapes (inline: a call per answer less).
        value = data.get("id")
        if isinstance(value, str):
            data["id"] = value.strip()
        elif isinstance(value, int) and not isinstance(value, bool):
            data["id"] = str(value)
        value = data.get("status")
        if type(value) is str and value in _STATUSES:
            data["status"] = _STATUSES[value]  # the usual: sent exactly as documented
        elif "status" in data:
            data["status"] = _status(value)
        if "error" in data:
            data["error"] = _error(data["error"])
        if "error_code" in data:
            data["error_code"] = _error_code(data["error_code"])
        if "has_nsfw_contents" in data:
            flags = data["has_nsfw_contents"]
            data["has_nsfw_contents"] = [bool(f) for f in flags] if isinstance(flags, list) else []
        if "request_id" in data:
            value = data["request_id"]
            readable = isinstance(value, (str, int)) and str(value)
            data["request_id"] = str(value) if readable else None
        value = data.get("model")
        if isinstance(value, str) and not value.strip():
            data["model"] = None  # blank; any other unreadable model is _Lenient's
        value = data.get("metrics")
        if isinstance(value, dict) and "code" in value:
            _open(value)  # an error envelope in ``metrics`` raises its APIStatusError, as it did
        return data

    # The function itself, not a classmethod calling it: one Python frame fewer per answer.
    _outputs = field_validator("outputs", mode="before")(staticmethod(_output_list))

    def flagged(self, index: int) -> bool:
        """True when the API flagged output ``index`` (0-based) as NSFW."""
        return index < len(self.has_nsfw_contents) and self.has_nsfw_contents[index]

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
        """True when the status will not change again. Unknown statuses are not terminal."""
        return self.done or self.failed

    @property
    def predict_time(self) -> float | None:
        """Seconds the model ran, when the API reported it."""
        return self.metrics.predict_time if self.metrics else None


def _explain(err: ValidationError) -> str:
    """The first problem of a ValidationError, without the input (it may echo anything)."""
    first = err.errors(include_input=False, include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{location}: {first['msg'].removeprefix('Value error, ')}"


_PREDICTION = Prediction.__pydantic_validator__


def read_prediction(
    body: Any,
    *,
    what: str,
    prediction_id: str | None = None,
    status_code: int = 200,
    secrets: Sequence[str] = (),
    request_id: str | None = None,
) -> Prediction:
    """Read a submit or poll answer, or raise an error that says why it cannot be read.

    Args:
        body: the decoded JSON body.
        what: names the request (``submit``, ``poll of pred_1``).
        prediction_id: the polled id, used when the answer leaves it out.
        request_id: the answer's ``X-Request-ID``, used when the body names none.
        status_code: the HTTP status the body came with.
        secrets: removed from every server-provided text kept (see :func:`scrub`).

    Raises:
        APIStatusError: the body carries an error ``code`` (mapped like that HTTP status).
        MalformedResponse: the body holds no readable prediction.
    """
    error = envelope_error(body, what=what, secrets=secrets)
    if error is not None:
        raise error
    context = {"id": prediction_id, "request_id": request_id}
    try:
        # model_validate without its Python wrapper (a tenth of a poll's reading).
        prediction: Prediction = _PREDICTION.validate_python(body, context=context)
    except ValidationError as err:
        raise MalformedResponse(
            f"{what}: the API answered HTTP {status_code} without a readable prediction "
            f"({scrub(_explain(err), secrets)})",
            status_code=status_code,
        ) from None
    if prediction.error is not None:
        prediction = prediction.model_copy(update={"error": scrub(prediction.error, secrets)})
    return prediction


def read_upload(
    body: Any, *, what: str, status_code: int = 200, secrets: Sequence[str] = ()
) -> UploadedMedia:
    """Read an upload answer; like :func:`read_prediction`.

    Raises:
        APIStatusError: the body carries an error ``code``.
        MalformedResponse: the body holds no download URL.
    """
    error = envelope_error(body, what=what, secrets=secrets)
    if error is not None:
        raise error
    try:
        return UploadedMedia.model_validate(body)
    except ValidationError as err:
        raise MalformedResponse(
            f"{what}: the API answered HTTP {status_code} without a readable upload "
            f"({scrub(_explain(err), secrets)})",
            status_code=status_code,
        ) from None
