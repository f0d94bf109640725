from __future__ import annotations

import base64
import email.utils
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from seedream_async._base._constants import DEFAULT_MODEL, PRICE_PER_EXECUTION
from seedream_async._wire._parsing import Prediction, UploadedMedia
from seedream_async.testing import (
    Faults,
    Ledger,
    Shapes,
    Simulator,
    SimulatorConfig,
    make_png,
    serve,
)

pytestmark = pytest.mark.anyio

PNG = make_png(8, 8, seed=1)
UPLOAD = "/api/v1/model/uploadMedia"
SUBMIT = "/api/v1/model/generateImage"
FAST: dict[str, Any] = {"time_scale": 0.001}


def body(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": DEFAULT_MODEL,
        "prompt": "Put the sneaker on a marble pedestal",
        "images": ["http://127.0.0.1:1/uploads/x/a.png"],
        "max_images": 2,
    }
    payload.update(changes)
    return payload


def client(sim: Simulator, *, auth: bool = True) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {sim.api_key}"} if auth else {}
    return httpx.AsyncClient(base_url=sim.base_url, headers=headers, timeout=10)


async def wait_done(http: httpx.AsyncClient, prediction_id: str) -> Prediction:
    for _ in range(500):
        response = await http.get(f"/api/v1/model/prediction/{prediction_id}")
        assert response.status_code == 200, response.text
        prediction = Prediction.model_validate(response.json())
        if prediction.terminal:
            return prediction
        await anyio.sleep(0.003)
    raise AssertionError("prediction never finished")


async def submit(http: httpx.AsyncClient, **changes: Any) -> str:
    response = await http.post(SUBMIT, json=body(**changes))
    assert response.status_code == 200, response.text
    return Prediction.model_validate(response.json()).id


async def test_upload_round_trip() -> None:
    """An upload is sniffed (not trusted by name), stored, and served from storage."""
    async with serve(**FAST) as sim, client(sim) as http:
        response = await http.post(UPLOAD, files={"file": ("my photo.jpg", PNG, "image/jpeg")})
        assert response.status_code == 200
        raw = response.json()
        assert set(raw) == {"data"}
        media = UploadedMedia.model_validate(raw)
        assert media.content_type == "image/png"
        assert media.size == len(PNG)
        assert media.file_name == "my_photo.jpg"
        assert media.download_url.startswith(f"{sim.storage_url}/uploads/")
        async with httpx.AsyncClient() as plain:
            stored = await plain.get(media.download_url)
        assert stored.content == PNG
        assert stored.headers["content-type"] == "image/png"
        await http.post(UPLOAD, files={"file": ("again.png", PNG)})
        ledger = sim.ledger
        assert len(ledger.uploads) == 2
        assert ledger.upload_count(ledger.uploads[0].sha256) == 2
        assert ledger.distinct_uploads == 1
        assert ledger.requests["upload"] == 2
        assert ledger.requests["upload_file"] == 1
        assert ledger.auth_on_storage == 0


@pytest.mark.parametrize(
    ("files", "auth", "status"),
    [
        pytest.param({"file": ("a.png", PNG)}, False, 401, id="no-key"),
        pytest.param({"file": ("a.png", b"hello, not an image")}, True, 415, id="not-image"),
        pytest.param({"file": ("a.png", b"")}, True, 415, id="empty"),
        # GIF, BMP and TIFF are input formats (ModelArk); SVG is not.
        pytest.param({"file": ("a.svg", b"<svg/>" + b" " * 20)}, True, 415, id="svg"),
        pytest.param({"other": ("a.png", PNG)}, True, 400, id="no-file-part"),
        pytest.param({"file": ("a.png", PNG + b"\0" * 2000)}, True, 413, id="too-large"),
    ],
)
async def test_upload_rejections(files: dict[str, Any], auth: bool, status: int) -> None:
    """Uploads without a key, of non-images, without a file part or too large are refused."""
    async with serve(max_upload_bytes=1000, **FAST) as sim, client(sim, auth=auth) as http:
        response = await http.post(UPLOAD, files=files)
        assert response.status_code == status
        assert response.json()["code"] == status
        assert response.json()["msg"]
        assert sim.ledger.uploads == []


async def test_oversized_body_refused_before_reading() -> None:
    """A Content-Length over the limit gets 413 at once, without waiting for the body."""
    async with serve(max_upload_bytes=1000, **FAST) as sim:
        port = int(sim.base_url.rsplit(":", 1)[1])
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            head = (
                f"POST {UPLOAD} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {sim.api_key}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 50000000\r\n\r\n"
            )
            await stream.send(head.encode())
            received = b""
            with anyio.fail_after(2):
                while True:
                    try:
                        received += await stream.receive()
                    except anyio.EndOfStream:
                        break
        assert received.startswith(b"HTTP/1.1 413 ")
        assert b"connection: close" in received.lower()


async def test_prediction_lifecycle() -> None:
    """Submit, poll to completion, download every output; the ledger bills one execution."""
    shapes = Shapes(output_count="max", output_format="jpeg")
    async with serve(shapes=shapes, **FAST) as sim, client(sim) as http:
        response = await http.post(SUBMIT, json=body(max_images=3))
        data = response.json()["data"]
        assert data["status"] == "processing"
        assert data["id"].startswith("pred_")
        assert data["model"] == DEFAULT_MODEL
        assert data["created_at"].endswith("Z")
        prediction = await wait_done(http, data["id"])
        assert prediction.done
        assert prediction.error is None
        assert len(prediction.outputs) == 3
        assert prediction.completed_at is not None
        assert prediction.predict_time == pytest.approx(sim.ledger.latencies()[0], abs=1e-5)
        async with httpx.AsyncClient() as plain:
            for url in prediction.outputs:
                assert url.startswith(f"{sim.storage_url}/outputs/{prediction.id}/")
                image = await plain.get(url)
                assert image.status_code == 200
                assert image.content.startswith(b"\xff\xd8\xff")  # JPEG, as ModelArk
                assert image.headers["content-type"] == "image/jpeg"
        ledger = sim.ledger
        assert ledger.executions == 1
        assert ledger.cost == pytest.approx(PRICE_PER_EXECUTION)
        assert ledger.polls[prediction.id] >= 1
        assert ledger.polls_per_prediction == ledger.total_polls
        assert ledger.max_in_flight == 1
        assert len(ledger.detection_lags()) == 1
        assert ledger.detection_lags()[0] >= 0
        # Three images take 1 + 2 * 0.5 = 2x the base latency, scaled to milliseconds.
        assert 0.005 < ledger.latencies()[0] < 0.1


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        pytest.param({"images": []}, "images", "got 0", id="images-0"),
        pytest.param({"images": ["http://h/x.png"] * 11}, "images", "1 to 10", id="images-11"),
        pytest.param({"images": "http://h/x.png"}, "images", "list", id="images-string"),
        pytest.param({"size": "500*500"}, "size", "250000 pixels", id="size-small"),
        pytest.param({"size": "1024*1024"}, "size", "[3686400, 16777216]", id="size-1024"),
        pytest.param({"size": "4097*4096"}, "size", "16781312 pixels", id="size-4097"),
        pytest.param({"size": "16384*256"}, "size", "aspect ratio", id="aspect-64"),
        pytest.param({"size": "2048x2048"}, "size", "'W*H'", id="size-x"),
        pytest.param({"max_images": 0}, "max_images", "1 to 15", id="max-images-0"),
        pytest.param({"max_images": 16}, "max_images", "1 to 15", id="max-images-16"),
        pytest.param({"max_images": True}, "max_images", "integer", id="max-images-bool"),
        pytest.param(
            {"max_images": 6, "images": ["http://h/x"] * 10}, "max_images", "15", id="total"
        ),
        pytest.param({"prompt": "  "}, "prompt", "non-empty", id="blank-prompt"),
        pytest.param({"prompt": "x" * 4001}, "prompt", "4000", id="long-prompt"),
        pytest.param({"images": ["file:///etc/passwd"]}, "images[0]", "http", id="bad-url"),
        pytest.param({"seed": 2**32}, "seed", "-1 to", id="seed-big"),
        pytest.param({"seed": "7"}, "seed", "integer", id="seed-string"),
        pytest.param({"enable_sync_mode": "yes"}, "enable_sync_mode", "true", id="bool"),
        pytest.param({"model": "bytedance/seedream-v4"}, "model", "serves", id="other-model"),
    ],
)
async def test_submit_validation(changes: dict[str, Any], field: str, fragment: str) -> None:
    """Invalid submits get 422 naming the field and why, and are never billed."""
    async with serve(**FAST) as sim, client(sim) as http:
        response = await http.post(SUBMIT, json=body(**changes))
        assert response.status_code == 422
        error = response.json()
        assert error["field"] == field
        assert error["msg"].startswith(f"{field}: ")
        assert fragment in error["msg"]
        assert sim.ledger.executions == 0


async def test_submit_bad_json_and_missing_model() -> None:
    """A body that is not JSON gets 400; a body without ``model`` gets 422."""
    async with serve(**FAST) as sim, client(sim) as http:
        response = await http.post(SUBMIT, content=b"{nope", headers={"content-type": "json"})
        assert response.status_code == 400
        response = await http.post(SUBMIT, json=[1, 2])
        assert response.status_code == 400
        payload = body()
        del payload["model"]
        response = await http.post(SUBMIT, json=payload)
        assert response.status_code == 422
        assert response.json()["field"] == "model"


async def test_not_found_and_auth() -> None:
    """Unknown predictions get 404 JSON; unknown routes get 401, as Atlas Cloud's gateway
    authenticates before it routes (its errors page), or 404 by the knob; a wrong key
    gets 401."""
    async with serve(**FAST) as sim, client(sim) as http:
        response = await http.get("/api/v1/model/prediction/pred_nope")
        assert response.status_code == 404
        assert response.json()["code"] == 404
        assert (await http.get("/nowhere")).status_code == 401
        assert (await http.get(SUBMIT)).status_code == 401
        sim.configure(shapes=Shapes(unknown_path_status=404))
        assert (await http.get("/nowhere")).status_code == 404
        response = await http.post(SUBMIT, json=body(), headers={"Authorization": "Bearer bad"})
        assert response.status_code == 401
        async with httpx.AsyncClient() as plain:
            assert (await plain.get(f"{sim.storage_url}/outputs/pred_x/0.png")).status_code == 404
            assert (await plain.get(f"{sim.storage_url}/uploads/nope/a.png")).status_code == 404


async def test_no_auth_mode() -> None:
    """With ``api_key=None`` requests without a key are served."""
    async with serve(api_key=None, **FAST) as sim, client(sim, auth=False) as http:
        assert sim.api_key is None
        await submit(http)


@pytest.mark.parametrize("envelope", ["data", "flat", "mixed"])
async def test_envelopes(envelope: str) -> None:
    """Bodies come wrapped in ``data``, bare, or alternating; the models read all of them."""
    async with serve(envelope=envelope, **FAST) as sim, client(sim) as http:
        shapes = []
        for _ in range(4):
            raw = (await http.post(SUBMIT, json=body())).json()
            shapes.append("data" in raw)
            assert Prediction.model_validate(raw).id.startswith("pred_")
        expected = {"data": [True] * 4, "flat": [False] * 4, "mixed": [True, False] * 2}
        assert shapes == expected[envelope]


@pytest.mark.parametrize(
    ("fmt", "retry_after", "header", "check"),
    [
        pytest.param("seconds", 0.05, "retry-after", lambda v: v == "0.05", id="seconds"),
        pytest.param("seconds", 2.0, "retry-after", lambda v: v == "2", id="whole-seconds"),
        pytest.param("ms", 0.05, "retry-after-ms", lambda v: v == "50", id="ms"),
        pytest.param(
            "http-date",
            0.05,
            "retry-after",
            lambda v: email.utils.parsedate_to_datetime(v).timestamp() - time.time() >= 0.9,
            id="http-date",
        ),
        pytest.param("seconds", None, "retry-after", lambda v: v is None, id="no-header"),
    ],
)
async def test_injected_rate_limit(
    fmt: str, retry_after: float | None, header: str, check: Any
) -> None:
    """An injected 429 carries the configured Retry-After in each format."""
    faults = Faults(
        rate_limit=1.0, send_retry_after=True, retry_after=retry_after, retry_after_format=fmt
    )  # type: ignore[arg-type]
    async with serve(faults=faults, **FAST) as sim, client(sim) as http:
        response = await http.post(SUBMIT, json=body())
        assert response.status_code == 429
        assert check(response.headers.get(header))
        assert sim.ledger.faults["429"] == 1
        assert sim.ledger.executions == 0


async def test_requests_per_second_limit() -> None:
    """Over the GCRA rate a request gets 429 with the wait until it would conform."""
    faults = Faults(requests_per_second=20.0, requests_burst=1, send_retry_after=True)
    async with serve(faults=faults, **FAST) as sim, client(sim) as http:
        assert (await http.get("/api/v1/model/prediction/pred_x")).status_code == 404
        response = await http.get("/api/v1/model/prediction/pred_x")
        assert response.status_code == 429
        assert 0.02 < float(response.headers["retry-after"]) <= 0.05
        assert sim.ledger.faults["rps_limit"] == 1
        assert (await http.get("/_sim/ledger")).status_code == 200  # never rate limited
        await anyio.sleep(0.051)
        assert (await http.get("/api/v1/model/prediction/pred_x")).status_code == 404


async def test_requests_per_second_limit_allows_a_burst() -> None:
    """By default a second's worth of requests may come back to back; the next one waits."""
    faults = Faults(requests_per_second=3.0)  # a burst of 3, then one every 333 ms
    async with serve(faults=faults, **FAST) as sim, client(sim) as http:
        statuses = [
            (await http.get("/api/v1/model/prediction/pred_x")).status_code for _ in range(4)
        ]
    assert statuses == [404] * 3 + [429]
    assert sim.ledger.faults["rps_limit"] == 1


async def test_max_in_flight() -> None:
    """A submit while ``max_in_flight`` predictions run gets 429 and is not billed."""
    faults = Faults(max_in_flight=2, send_retry_after=True, retry_after=0.01)
    async with serve(faults=faults, time_scale=0.01, latency_sigma=0.0) as sim, client(sim) as http:
        first = await submit(http)
        await submit(http)
        response = await http.post(SUBMIT, json=body(prompt="third"))
        assert response.status_code == 429
        assert response.headers["retry-after"] == "0.01"
        assert sim.ledger.faults["in_flight_limit"] == 1
        assert sim.ledger.executions == 2
        assert sim.ledger.max_in_flight == 2
        await wait_done(http, first)
        await anyio.sleep(0.01)
        await submit(http, prompt="third")
        assert sim.ledger.executions == 3


@pytest.mark.parametrize(
    ("code", "processed", "billed"),
    [
        pytest.param(500, 1.0, 1, id="500-processed"),
        pytest.param(502, 0.0, 0, id="502-not-processed"),
        pytest.param(503, 1.0, 0, id="503-never-processed"),
        pytest.param(504, 1.0, 1, id="504-processed"),
    ],
)
async def test_server_errors_on_submit(code: int, processed: float, billed: int) -> None:
    """Injected 5xx on submit; 500/502/504 may still bill the prediction, 503 never does."""
    faults = Faults(server_error=1.0, server_error_codes=(code,), processed_on_error=processed)
    async with serve(faults=faults, **FAST) as sim, client(sim) as http:
        response = await http.post(SUBMIT, json=body())
        assert response.status_code == code
        assert response.json()["code"] == code
        assert sim.ledger.faults[str(code)] == 1
        assert sim.ledger.executions == billed
        assert all(record.processed_before_error for record in sim.ledger.submissions)


async def test_server_error_on_poll_and_endpoint_selection() -> None:
    """Random faults hit only the configured endpoints."""
    faults = Faults(server_error=1.0, server_error_codes=(500,), endpoints=frozenset({"poll"}))
    async with serve(faults=faults, **FAST) as sim, client(sim) as http:
        prediction_id = await submit(http)
        response = await http.get(f"/api/v1/model/prediction/{prediction_id}")
        assert response.status_code == 500
        sim.configure(faults=Faults())
        assert (await wait_done(http, prediction_id)).done


@pytest.mark.parametrize("processed", [0.0, 1.0])
async def test_drop(processed: float) -> None:
    """A dropped connection raises in httpx; a dropped submit may still have been billed."""
    faults = Faults(drop=1.0, processed_on_error=processed)
    async with serve(faults=faults, **FAST) as sim, client(sim) as http:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await http.post(SUBMIT, json=body())
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await http.post(UPLOAD, files={"file": ("a.png", PNG)})
        assert sim.ledger.faults["drop"] == 2
        assert sim.ledger.executions == int(processed)
        assert sim.ledger.uploads == []
        sim.configure(faults=Faults())
        await submit(http)


async def test_slow() -> None:
    """A slow fault holds the response for ``slow_seconds``."""
    faults = Faults(slow=1.0, slow_seconds=0.05)
    async with serve(faults=faults, **FAST) as sim, client(sim) as http:
        start = anyio.current_time()
        await submit(http)
        assert anyio.current_time() - start >= 0.05
        assert sim.ledger.faults["slow"] == 1


async def test_request_latency() -> None:
    """``request_latency`` delays every response."""
    async with serve(request_latency=0.03, **FAST) as sim, client(sim) as http:
        start = anyio.current_time()
        await http.get("/api/v1/model/prediction/pred_x")
        assert anyio.current_time() - start >= 0.03


async def test_failed_prediction() -> None:
    """A prediction drawn to fail ends ``failed`` with the configured error, still billed."""
    faults = Faults(prediction_failure=1.0, failure_message="nope")
    async with serve(faults=faults, **FAST) as sim, client(sim) as http:
        prediction = await wait_done(http, await submit(http))
        assert prediction.failed
        assert prediction.error == "nope"
        assert prediction.outputs == []
        assert sim.ledger.faults["failed_prediction"] == 1
        assert sim.ledger.executions == 1
        assert sim.ledger.submissions[0].failed


async def test_expiring_outputs() -> None:
    """Output URLs expire after ``output_ttl`` and then answer 404, as Atlas Cloud's
    data-retention page says (issue 18, item 8); a new poll hands out fresh ones."""
    # Half a second: long enough that a loaded CI machine still fetches within it.
    async with serve(faults=Faults(output_ttl=0.5), **FAST) as sim, client(sim) as http:
        prediction = await wait_done(http, await submit(http, max_images=1))
        url = prediction.outputs[0]
        async with httpx.AsyncClient() as plain:
            assert (await plain.get(url)).status_code == 200
            tampered = url.replace("sig=", "sig=0")
            assert (await plain.get(tampered)).status_code == 403
            await anyio.sleep(0.55)
            expired = await plain.get(url)
            assert expired.status_code == 404
            assert "expired" in expired.json()["msg"]
            fresh = (await wait_done(http, prediction.id)).outputs[0]
            assert fresh != url
            assert (await plain.get(fresh)).status_code == 200
        assert sim.ledger.faults["expired_output"] == 1


async def test_base64_outputs() -> None:
    """With ``enable_base64_output`` outputs are bare base64 PNGs of ``output_size``."""
    shapes = Shapes(output_count="max", output_format="png")
    async with serve(output_size=(32, 16), shapes=shapes, **FAST) as sim, client(sim) as http:
        prediction = await wait_done(http, await submit(http, enable_base64_output=True))
        assert len(prediction.outputs) == 2
        png = base64.b64decode(prediction.outputs[0], validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert int.from_bytes(png[16:20]) == 32
        assert int.from_bytes(png[20:24]) == 16
        assert sim.ledger.requests["output"] == 0


async def test_sync_mode() -> None:
    """With ``enable_sync_mode`` the submit answers with the finished prediction."""
    async with serve(**FAST) as sim, client(sim) as http:
        response = await http.post(SUBMIT, json=body(enable_sync_mode=True))
        prediction = Prediction.model_validate(response.json())
        assert prediction.done
        assert len(prediction.outputs) == sim.ledger.submissions[0].outputs  # 1 or 2
        assert sim.ledger.total_polls == 0
        assert len(sim.ledger.detection_lags()) == 1


async def test_sync_mode_drop_is_billed_and_fetchable() -> None:
    """A sync-mode submit dropped during its wait was billed: the prediction exists and
    finishes, so a client can recover it by id (never by a new submit)."""
    faults = Faults(drop=1.0, processed_on_error=1.0, endpoints=frozenset({"submit"}))
    async with serve(faults=faults, **FAST) as sim, client(sim) as http:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await http.post(SUBMIT, json=body(enable_sync_mode=True))
        (record,) = sim.ledger.submissions
        assert record.processed_before_error
        assert (await wait_done(http, record.prediction_id)).done
        assert sim.ledger.executions == 1


async def test_duplicate_submissions_and_chunked_body() -> None:
    """The same body billed twice counts as a duplicate; chunked request bodies are read."""
    async with serve(**FAST) as sim, client(sim) as http:
        await submit(http)
        payload = json.dumps(body()).encode()

        async def chunks() -> AsyncIterator[bytes]:
            yield payload[:10]
            yield payload[10:]

        response = await http.post(SUBMIT, content=chunks())
        assert response.status_code == 200
        await submit(http, prompt="something else")
        assert sim.ledger.executions == 3
        assert sim.ledger.duplicate_submissions == 1
        assert sim.ledger.cost == pytest.approx(3 * PRICE_PER_EXECUTION)


async def test_auth_on_storage_is_recorded() -> None:
    """Storage requests carrying an Authorization header are counted."""
    async with serve(**FAST) as sim, client(sim) as http:
        media = UploadedMedia.model_validate(
            (await http.post(UPLOAD, files={"file": ("a.png", PNG)})).json()
        )
        async with httpx.AsyncClient() as plain:
            await plain.get(media.download_url)
            assert sim.ledger.auth_on_storage == 0
            await plain.get(media.download_url, headers={"Authorization": "Bearer sim-key"})
        assert sim.ledger.auth_on_storage == 1


async def test_ledger_route() -> None:
    """``GET /_sim/ledger`` returns the snapshot (with the key) for out-of-process runs."""
    async with serve(**FAST) as sim, client(sim) as http:
        await wait_done(http, await submit(http))
        assert (await http.get("/_sim/ledger", headers={"Authorization": ""})).status_code == 401
        snapshot = (await http.get("/_sim/ledger")).json()
        assert snapshot == json.loads(json.dumps(sim.ledger.snapshot()))
        assert snapshot["executions"] == 1
        assert snapshot["requests"]["submit"] == 1
        assert len(snapshot["latencies"]) == 1


async def test_seed_makes_runs_repeatable() -> None:
    """The same seed and request order give the same ids and latencies."""
    runs = []
    for _ in range(2):
        async with serve(seed=7, **FAST) as sim, client(sim) as http:
            ids = [await submit(http, prompt=str(i)) for i in range(3)]
            runs.append((ids, sim.ledger.latencies()))
    assert runs[0] == runs[1]


async def test_configure_at_runtime() -> None:
    """``configure`` replaces config fields on the running server."""
    async with serve(**FAST) as sim, client(sim) as http:
        config = sim.configure(faults=Faults(rate_limit=1.0))
        assert isinstance(config, SimulatorConfig)
        assert sim.config.faults.rate_limit == 1.0
        assert (await http.post(SUBMIT, json=body())).status_code == 429
        sim.configure(faults=Faults())
        assert (await http.post(SUBMIT, json=body())).status_code == 200
        assert isinstance(sim.ledger, Ledger)


async def test_caller_exception_is_not_wrapped() -> None:
    """An exception raised inside ``serve()`` comes out as itself, not an exception group."""
    with pytest.raises(KeyError):
        async with serve(**FAST):
            raise KeyError("boom")


def test_invalid_config() -> None:
    """Out-of-range knobs are refused at construction."""
    with pytest.raises(ValueError, match="rate_limit"):
        Faults(rate_limit=2.0)
    with pytest.raises(ValueError, match="endpoints"):
        Faults(endpoints=frozenset({"nope"}))
    with pytest.raises(ValueError, match="envelope"):
        SimulatorConfig(envelope="xml")  # type: ignore[arg-type]


def test_standalone_process() -> None:
    """``python -m seedream_async.testing`` prints its one line and answers requests."""
    command = [sys.executable, "-m", "seedream_async.testing", "--port", "0", "--time-scale", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            words = line.split()
            assert words[:3] == ["seedream-sim", "listening", "on"]
            assert words[4] == "storage"
            assert words[6] == "key"
            base_url, key = words[3], words[7]
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base_url, headers=headers) as http:
                response = http.post(SUBMIT, json=body())
                assert response.status_code == 200
                assert http.get("/_sim/ledger").json()["executions"] == 1
        finally:
            process.terminate()
            process.wait(timeout=10)


async def test_exit_with_open_and_busy_connections() -> None:
    """Leaving ``serve()`` closes idle keep-alive and mid-request connections cleanly."""
    errors: list[Exception] = []
    failed = anyio.Event()
    async with httpx.AsyncClient(timeout=5) as http, anyio.create_task_group() as tg:
        async with serve(time_scale=10.0) as sim:
            headers = {"Authorization": f"Bearer {sim.api_key}"}
            url = f"{sim.base_url}/api/v1/model/prediction/pred_x"
            assert (await http.get(url, headers=headers)).status_code == 404

            async def held_submit() -> None:
                try:
                    await http.post(
                        f"{sim.base_url}{SUBMIT}", json=body(enable_sync_mode=True), headers=headers
                    )
                except httpx.HTTPError as err:
                    errors.append(err)
                    failed.set()

            tg.start_soon(held_submit)
            for _ in range(400):
                if sim.ledger.executions:
                    break
                await anyio.sleep(0.005)
            assert sim.ledger.executions == 1
        with anyio.fail_after(2):
            await failed.wait()
    assert isinstance(errors[0], httpx.RemoteProtocolError | httpx.ReadError)


class _Recorder(anyio.abc.ByteStream):
    """A byte stream that records each ``send``: what a server's answer went out as."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, item: bytes) -> None:
        self.sent.append(item)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        raise anyio.EndOfStream

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def test_a_small_answer_goes_out_in_one_write_and_a_trickle_apart() -> None:
    """The simulator sends an answer's head and body in one write, as a production
    server's buffered writer (or a CDN's TLS record) delivers a small answer, so a client
    is measured reading what the real API sends; a trickled answer still comes apart."""
    from seedream_async.testing._http import Response, _Connection

    async def answer(response: Response) -> list[bytes]:
        stream = _Recorder()
        connection = _Connection(stream)
        connection.h11.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await connection.next_event()
        await connection.respond(response, close=False)
        return stream.sent

    [written] = await answer(Response(status=200, body=b'{"code": 200}'))
    assert written.startswith(b"HTTP/1.1 200 ")
    assert written.endswith(b'\r\n\r\n{"code": 200}')
    trickled = await answer(Response(status=200, body=b"abc", trickle=20.0))
    assert len(trickled) == 4  # the head, then a byte at a time
    assert b"".join(trickled).endswith(b"\r\n\r\nabc")
