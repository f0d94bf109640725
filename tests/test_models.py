from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from seedream_async._base._constants import DEFAULT_MODEL, PRICE_PER_EXECUTION
from seedream_async._base._exceptions import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    InvalidInput,
    MalformedResponse,
    RateLimitError,
    ServerError,
    scrub,
)
from seedream_async._wire._envelope import envelope_error, unwrap
from seedream_async._wire._parsing import (
    Prediction,
    PredictionStatus,
    UploadedMedia,
    read_prediction,
    read_upload,
)
from seedream_async._wire._pricing import PriceModel
from seedream_async._wire._requests import EditRequest, build_request, check_params

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
    """The contract's submit body validates and round-trips to the same payload, less
    ``enable_sync_mode: false``: a default nobody asked for is not sent (issue 18, item 2:
    Atlas's own v4.5 node sends only model, images, prompt, size, max_images and
    enable_base64_output)."""
    raw = json.loads(SUBMIT_EXAMPLE)
    request = EditRequest.model_validate(raw)
    assert request.model == DEFAULT_MODEL
    assert request.max_images == 3
    assert request.to_payload() == {k: v for k, v in raw.items() if k != "enable_sync_mode"}
    synced = EditRequest.model_validate({**raw, "enable_sync_mode": True, "seed": 7})
    assert synced.to_payload()["enable_sync_mode"] is True
    assert synced.to_payload()["seed"] == 7


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
        ("starting", False, False),
        ("processing", False, False),
        ("created", False, False),
        ("error", False, True),
        ("canceled", False, True),
        ("cancelled", False, True),
        ("timeout", False, True),
        ("expired", False, True),
        (None, False, False),
    ],
)
def test_known_statuses(status: str | None, done: bool, failed: bool) -> None:
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
        pytest.param({"size": "500*500"}, "size", "250,000 pixels, outside", id="size-500"),
        pytest.param({"size": "1024*1024"}, "size", "outside", id="size-1024-below-v45"),
        pytest.param({"size": "2559*1440"}, "size", "3,684,960 pixels", id="size-just-below"),
        pytest.param({"size": "4097*4096"}, "size", "16,781,312 pixels", id="size-just-above"),
        pytest.param({"size": "16384*256"}, "size", "aspect ratio 64", id="aspect-64"),
        pytest.param({"size": "256*16384"}, "size", "aspect ratio 0.01562", id="aspect-1/64"),
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


@pytest.mark.parametrize(
    "size", ["2560*1440", "1440*2560", "4096*4096", "4704*3520", "2048*2048", "8192*512"]
)
def test_v45_size_rule_accepts(size: str) -> None:
    """Sizes inside v4.5's pixel range and aspect ratio pass, 4K shapes included."""
    assert build_request(**VALID, size=size).size == size


def test_extra_body_is_merged_last() -> None:
    """extra_body sends unknown fields as they are and wins over the checked ones."""
    request = build_request(
        **VALID, size="2048*2048", extra_body={"output_format": "jpeg", "size": "auto"}
    )
    payload = request.to_payload()
    assert payload["output_format"] == "jpeg"
    assert payload["size"] == "auto"
    assert "extra_body" not in payload
    assert list(payload)[-1] == "output_format"
    with pytest.raises(InvalidInput) as caught:
        build_request(**VALID, extra_body={"when": object()})
    assert caught.value.field.startswith("extra_body")
    with pytest.raises(InvalidInput, match="extra_body"):
        build_request(**VALID, watermark=False)


def test_check_limits_false_skips_limits_not_types() -> None:
    """check_limits=False lets a moved limit through but still checks types and URLs."""
    loose = build_request(
        prompt="x" * 5000,
        images=["https://h/a"] * 12,
        size="1024x1024",
        max_images=20,
        seed=2**40,
        check_limits=False,
    )
    assert loose.to_payload()["size"] == "1024*1024"
    assert build_request(**VALID, size="2K", check_limits=False).size == "2K"
    for bad in ({"max_images": "3"}, {"images": "https://h/a"}, {"images": ["ftp://x"]}):
        with pytest.raises(InvalidInput):
            build_request(**{**VALID, **bad}, check_limits=False)
    with pytest.raises(InvalidInput):
        check_params(prompt="p", images=["a.png"] * 12)
    check_params(prompt="p", images=["a.png"] * 12, check_limits=False)


URL = "https://storage.atlascloud.ai/outputs/r.png"


@pytest.mark.parametrize(
    ("body", "outputs"),
    [
        pytest.param({"outputs": [URL]}, [URL], id="outputs-list"),
        pytest.param({"output": [URL, URL]}, [URL, URL], id="output-list"),
        pytest.param({"outputs": URL}, [URL], id="outputs-string"),
        pytest.param({"output": URL}, [URL], id="output-string"),
        pytest.param({"outputs": [{"url": URL}]}, [URL], id="objects"),
        pytest.param({"output": {"url": URL}}, [URL], id="one-object"),
        pytest.param({"outputs": ["iVBORw0KGgo="]}, ["iVBORw0KGgo="], id="base64-bare"),
        pytest.param({"outputs": [None, " ", URL]}, [URL], id="blanks-dropped"),
        pytest.param({"outputs": None, "output": [URL]}, [URL], id="null-outputs-then-output"),
    ],
)
def test_output_variants(body: dict[str, Any], outputs: list[str]) -> None:
    """Every first-party output shape reads as a list of strings."""
    raw = {"code": 200, "message": "success", "data": {"id": "p", "status": "completed", **body}}
    prediction = Prediction.model_validate(raw)
    assert prediction.done
    assert prediction.outputs == outputs


@pytest.mark.parametrize(
    "outputs", [[{"width": 3}], [3], 7], ids=["object-without-url", "number", "scalar"]
)
def test_unreadable_outputs_are_a_validation_error(outputs: Any) -> None:
    """Outputs that hold no URL are a ValidationError (a ValueError), never a crash."""
    with pytest.raises(ValidationError, match="outputs"):
        Prediction.model_validate({"id": "p", "status": "completed", "outputs": outputs})


@pytest.mark.parametrize(
    ("stamp", "year"),
    [
        pytest.param("2025-01-01T00:00:00Z", 2025, id="iso"),
        pytest.param("", None, id="empty"),
        pytest.param("yesterday-ish", None, id="garbage"),
        pytest.param(None, None, id="null"),
        pytest.param({"when": 1}, None, id="object"),
    ],
)
def test_timestamps_are_lenient(stamp: Any, year: int | None) -> None:
    """A timestamp that is missing, empty or unreadable becomes None, not an error."""
    prediction = Prediction.model_validate(
        {"id": 12345, "created_at": stamp, "completed_at": stamp, "metrics": "n/a"}
    )
    assert prediction.id == "12345"
    assert (prediction.created_at.year if prediction.created_at else None) == year
    assert prediction.metrics is None
    assert Prediction.model_validate({"id": 7}).created_at is None


def test_poll_answer_without_id_takes_the_polled_id() -> None:
    """A poll body without an id is read with the id that was polled, when given."""
    assert Prediction.model_validate({"status": "running"}, context={"id": "p9"}).id == "p9"
    with pytest.raises(ValidationError):
        Prediction.model_validate({"status": "running"})
    with pytest.raises(ValidationError):
        Prediction.model_validate({"id": True, "status": "running"})


@pytest.mark.parametrize(
    "raw",
    [
        {"data": {"download_url": URL, "file_name": "a.png", "content_type": "image/png"}},
        {"code": 200, "data": {"download_url": URL, "filename": "a.png", "type": "image/png"}},
        {"data": {"url": URL}},
        {"url": URL, "size": "big"},
    ],
    ids=["file_name", "filename-type", "url-only", "bare-url-bad-size"],
)
def test_upload_variants(raw: dict[str, Any]) -> None:
    """Upload answers read in every first-party variant."""
    media = UploadedMedia.model_validate(raw)
    assert media.download_url == URL
    assert media.file_name in ("a.png", None)
    assert media.content_type in ("image/png", None)
    with pytest.raises(ValidationError):
        UploadedMedia.model_validate({"data": {"file_name": "a.png"}})


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (400, BadRequestError),
        ("422", BadRequestError),
        (401, AuthenticationError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
    ],
)
@pytest.mark.parametrize("model", [Prediction, UploadedMedia])
def test_error_envelope_in_a_200(code: Any, cls: type[APIStatusError], model: Any) -> None:
    """{"code": 4xx/5xx, ...} is the error its status would be, with the server's message."""
    body = {"code": code, "message": "prompt rejected by moderation", "data": None}
    with pytest.raises(cls) as caught:
        model.model_validate(body)
    assert caught.value.status_code == int(code)
    assert caught.value.server_message == "prompt rejected by moderation"
    error = envelope_error(body, what="submit")
    assert isinstance(error, cls)
    assert str(error).startswith("submit failed")
    # Even with a data object inside, the code wins.
    with pytest.raises(cls):
        model.model_validate({**body, "data": {"id": "p", "download_url": URL}})


@pytest.mark.parametrize("code", [0, 200, "200", True, None, 1001])
def test_success_codes_are_not_errors(code: Any) -> None:
    """Codes outside 400..599 are not errors; the data inside is read."""
    body = {"code": code, "message": "ok", "data": {"id": "p", "status": "queued"}}
    assert envelope_error(body) is None
    assert Prediction.model_validate(body).id == "p"


def test_price_model() -> None:
    """Per-execution by default; per-image on request; worst case covers every image."""
    default = PriceModel()
    assert default.per_execution == PRICE_PER_EXECUTION == 0.036
    assert default.cost(executions=10, images=30) == pytest.approx(0.36)
    per_image = PriceModel.per_generated_image(0.04)
    assert per_image.cost(executions=10, images=30) == pytest.approx(1.2)
    assert per_image.worst_case(max_images=3) == pytest.approx(0.12)
    assert default.worst_case(max_images=3) == pytest.approx(0.036)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="PriceModel"):
            PriceModel(per_execution=bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key sk-live-123456 rejected", "key ********** rejected"),
        ("Authorization: Bearer abc.DEF_123 was wrong", "Authorization: Bearer ********** was"),
        ("bearer    tok/en+= end", "bearer ********** end"),
        ("nothing secret", "nothing secret"),
    ],
)
def test_scrub(text: str, expected: str) -> None:
    """The key and any bearer token are removed from server-provided text."""
    assert scrub(text, ["sk-live-123456", ""]).removesuffix(" wrong") == expected


SECRET = "sk-LEAK-987654321"


def test_read_prediction_contains_and_scrubs() -> None:
    """Unreadable answers become MalformedResponse naming the request, never echoing input;
    server text (errors, envelope messages) loses the key and bearer tokens."""
    with pytest.raises(MalformedResponse) as caught:
        read_prediction({"status": "running", "note": SECRET}, what="poll of p1", secrets=[SECRET])
    assert str(caught.value).startswith("poll of p1: the API answered HTTP 200 without")
    assert "id" in str(caught.value)
    assert SECRET not in str(caught.value)
    with pytest.raises(MalformedResponse, match="outputs"):
        read_prediction({"id": "p", "outputs": [{"w": SECRET}]}, what="poll", secrets=[SECRET])
    polled = read_prediction({"status": "queued"}, what="poll", prediction_id="p1")
    assert polled.id == "p1"
    failed = read_prediction(
        {"id": "p", "status": "failed", "error": f"bad key {SECRET}, Bearer {SECRET}"},
        what="poll",
        secrets=[SECRET],
    )
    assert failed.error == "bad key **********, Bearer **********"
    with pytest.raises(BadRequestError) as rejected:
        read_prediction(
            {"code": 400, "message": f"Authorization: Bearer {SECRET}", "data": None},
            what="submit",
            secrets=[SECRET],
        )
    assert SECRET not in str(rejected.value)
    assert SECRET not in (rejected.value.server_message or "")


def test_read_upload() -> None:
    """Upload answers read in every variant; an answer without a URL is MalformedResponse."""
    assert read_upload({"data": {"url": URL}}, what="upload").download_url == URL
    with pytest.raises(MalformedResponse, match=r"upload of a\.png"):
        read_upload({"data": {"name": "a.png"}}, what="upload of a.png")
    with pytest.raises(ServerError):
        read_upload({"code": 503, "msg": "busy"}, what="upload")
