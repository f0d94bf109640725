from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from seedream_async._constants import DEFAULT_MODEL
from seedream_async._exceptions import InvalidInput
from seedream_async._models import (
    EditRequest,
    Prediction,
    PredictionStatus,
    UploadedMedia,
    build_request,
    unwrap,
)

# The example bodies of shared/api-contract.md, verbatim.
UPLOAD_EXAMPLE = """{"data": {"download_url": "https://storage.atlascloud.ai/uploads/abc123/image.png",
          "file_name": "image.png", "content_type": "image/png", "size": 1024000}}"""
SUBMIT_EXAMPLE = """{"model": "bytedance/seedream-v4.5/edit-sequential",
 "prompt": "Put the sneaker on a marble pedestal, studio light",
 "images": ["https://storage.atlascloud.ai/uploads/abc123/image.png"],
 "size": "2048*2048",
 "max_images": 3,
 "enable_base64_output": false,
 "enable_sync_mode": false}"""
SUBMITTED_DATA = """{"data": {"id": "pred_abc123", "status": "processing", "model": "...",
 "created_at": "2025-01-01T00:00:00Z"}}"""
SUBMITTED_FLAT = """{"id": "pred_abc123", "status": "processing", "model": "...",
 "created_at": "2025-01-01T00:00:00Z"}"""
COMPLETED_EXAMPLE = """{"data": {"id": "pred_abc123", "status": "completed",
          "outputs": ["https://storage.atlascloud.ai/outputs/result.png"],
          "metrics": {"predict_time": 8.3},
          "created_at": "2025-01-01T00:00:00Z", "completed_at": "2025-01-01T00:00:10Z",
          "error": null}}"""


def test_uploaded_media_example() -> None:
    """The contract's upload answer parses, envelope and all."""
    media = UploadedMedia.model_validate(json.loads(UPLOAD_EXAMPLE))
    assert media.download_url == "https://storage.atlascloud.ai/uploads/abc123/image.png"
    assert (media.file_name, media.content_type, media.size) == ("image.png", "image/png", 1024000)
    flat = UploadedMedia.model_validate(json.loads(UPLOAD_EXAMPLE)["data"])
    assert flat == media


def test_edit_request_example() -> None:
    """The contract's submit body validates and round-trips to the same payload."""
    raw = json.loads(SUBMIT_EXAMPLE)
    request = EditRequest.model_validate(raw)
    assert request.model == DEFAULT_MODEL
    assert request.max_images == 3
    assert request.to_payload() == raw


@pytest.mark.parametrize("text", [SUBMITTED_DATA, SUBMITTED_FLAT], ids=["data", "flat"])
def test_submitted_prediction_both_envelopes(text: str) -> None:
    """The submit answer reads the same in both documented shapes."""
    prediction = Prediction.model_validate(json.loads(text))
    assert prediction.id == "pred_abc123"
    assert prediction.status is PredictionStatus.PROCESSING
    assert not prediction.terminal
    assert prediction.created_at is not None
    assert prediction.created_at.year == 2025


def test_completed_prediction_example() -> None:
    """The completed example is done, with its output, metrics and no error."""
    prediction = Prediction.model_validate(json.loads(COMPLETED_EXAMPLE))
    assert prediction.done
    assert not prediction.failed
    assert prediction.outputs == ["https://storage.atlascloud.ai/outputs/result.png"]
    assert prediction.predict_time == 8.3
    assert prediction.error is None
    assert prediction.completed_at is not None


def test_unknown_fields_are_kept() -> None:
    """Extra fields a newer server sends are kept, not rejected."""
    raw = json.loads(COMPLETED_EXAMPLE)
    raw["data"]["queue_position"] = 3
    raw["data"]["metrics"]["gpu"] = "H100"
    prediction = Prediction.model_validate(raw)
    assert prediction.model_extra == {"queue_position": 3}
    assert prediction.metrics is not None
    assert prediction.metrics.model_extra == {"gpu": "H100"}


@pytest.mark.parametrize("status", ["warming_up", "PAUSED"])
def test_unknown_status_is_kept_and_not_terminal(status: str) -> None:
    """An unknown status is kept as a string and read as still running."""
    prediction = Prediction.model_validate({"id": "p", "status": status})
    assert prediction.status == status
    assert not prediction.done
    assert not prediction.failed
    assert not prediction.terminal


@pytest.mark.parametrize(
    ("status", "done", "failed"),
    [
        ("succeeded", True, False),
        ("COMPLETED", True, False),
        ("failed", False, True),
        ("queued", False, False),
        ("running", False, False),
    ],
)
def test_known_statuses(status: str, done: bool, failed: bool) -> None:
    """Documented statuses and their synonyms map to done/failed as the contract says."""
    prediction = Prediction.model_validate({"id": "p", "status": status, "outputs": None})
    assert (prediction.done, prediction.failed) == (done, failed)
    assert prediction.outputs == []


def test_error_object_is_read() -> None:
    """A failed prediction's error may be a string or an object with a message."""
    prediction = Prediction.model_validate(
        {"data": {"id": "p", "status": "failed", "error": {"message": "nsfw"}}}
    )
    assert prediction.failed
    assert prediction.error == "nsfw"


def test_unwrap_leaves_bare_objects() -> None:
    """``unwrap`` opens a data envelope and leaves bare objects alone."""
    assert unwrap({"data": {"id": "x"}}) == {"id": "x"}
    assert unwrap({"id": "x", "data": {"id": "y"}}) == {"id": "x", "data": {"id": "y"}}
    assert unwrap([1]) == [1]


VALID: dict[str, Any] = {"prompt": "make it shine", "images": ["https://h/a.png"]}


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        pytest.param({"images": []}, "images", "at least 1", id="images-0"),
        pytest.param({"images": ["https://h/a"] * 11}, "images", "at most 10", id="images-11"),
        pytest.param({"size": "500*500"}, "size", "width 500 is outside", id="size-500"),
        pytest.param({"size": "5000*1024"}, "size", "width 5000 is outside", id="size-5000"),
        pytest.param({"size": "big"}, "size", "must look like", id="size-big"),
        pytest.param({"max_images": 0}, "max_images", "greater than or equal to 1", id="max-0"),
        pytest.param({"max_images": 16}, "max_images", "less than or equal to 15", id="max-16"),
        pytest.param(
            {"images": ["https://h/a"] * 5, "max_images": 11}, "request", "= 16", id="total-16"
        ),
        pytest.param({"prompt": ""}, "prompt", "at least 1 character", id="prompt-empty"),
        pytest.param({"prompt": " \n "}, "prompt", "blank", id="prompt-blank"),
        pytest.param({"prompt": "x" * 4001}, "prompt", "at most 4000", id="prompt-4001"),
        pytest.param({"images": ["ftp://h/a.png"]}, "images", "http(s) URL", id="non-http"),
        pytest.param({"steps": 30}, "steps", "unknown edit parameter", id="unknown-field"),
    ],
)
def test_edit_request_rules(changes: dict[str, Any], field: str, fragment: str) -> None:
    """Every contract limit is enforced with a message naming the field and why."""
    with pytest.raises(InvalidInput) as caught:
        build_request("item-1", **{**VALID, **changes})
    assert caught.value.field == field
    assert caught.value.key == "item-1"
    assert caught.value.message.startswith(f"{field}: ")
    assert fragment in caught.value.message
    assert str(caught.value).startswith("item 'item-1': ")
    with pytest.raises(ValidationError):
        EditRequest(**{**VALID, **changes})


def test_edit_request_accepts_limits_and_normalises_size() -> None:
    """The limits themselves are accepted, and ``2048x1024`` becomes ``2048*1024``."""
    request = build_request(
        prompt="x" * 4000, images=["http://h/a"] * 10, max_images=5, size="4096x1024"
    )
    assert request.size == "4096*1024"
    assert "seed" not in request.to_payload()
    assert build_request(**VALID, seed=-1).to_payload()["seed"] == -1
