"""The simulator as an independent party: its own contract checks, every documented
response shape, and the hostile behaviours (tested here over raw httpx, not the client)."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import seedream_async.testing
from seedream_async._base._constants import DEFAULT_MODEL
from seedream_async.testing import Faults, Hostile, Shapes, Simulator, make_png, serve

pytestmark = pytest.mark.anyio

PNG = make_png(8, 8, seed=1)
UPLOAD = "/api/v1/model/uploadMedia"
SUBMIT = "/api/v1/model/generateImage"
POLL = "/api/v1/model/prediction/{}"
FAST: dict[str, Any] = {"time_scale": 0.001}


def body(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": DEFAULT_MODEL,
        "prompt": "Put the sneaker on a marble pedestal",
        "images": ["http://127.0.0.1:1/uploads/x/a.png"],
    }
    payload.update(changes)
    return payload


def client(sim: Simulator, **options: Any) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {sim.api_key}"}
    return httpx.AsyncClient(base_url=sim.base_url, headers=headers, timeout=10, **options)


def inner(raw: Any) -> Any:
    """The object inside whichever envelope the simulator used."""
    return raw["data"] if isinstance(raw, dict) and isinstance(raw.get("data"), dict) else raw


async def finished(http: httpx.AsyncClient, prediction_id: Any) -> dict[str, Any]:
    """Poll (raw JSON) until the prediction's latency has certainly passed."""
    await anyio.sleep(0.1)  # ~30x the scaled latency: the next answer is terminal
    response = await http.get(POLL.format(prediction_id))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = inner(response.json())
    return data


def test_validation_shares_no_code_with_the_client() -> None:
    """The simulator imports nothing of the client's but the contract's numbers."""
    package = Path(seedream_async.testing.__file__).parent
    outside: set[str] = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                # ``from .._constants import X`` in seedream_async.testing, by its full name
                base = "seedream_async.testing".rsplit(".", node.level - 1)[0]
                outside.add(f"{base}.{node.module}" if node.module else base)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "seedream_async"
            ):
                outside.add(node.module or "")
    assert outside <= {"seedream_async._base._constants"}, outside


@pytest.mark.parametrize("size", ["2560*1440", "4704*3520", "4096*4096", "8192*512"])
async def test_v45_sizes_are_accepted(size: str) -> None:
    """Sizes inside v4.5's pixel range and aspect ratio are billed, 4K shapes included."""
    async with serve(**FAST) as sim, client(sim) as http:
        response = await http.post(SUBMIT, json=body(size=size))
        assert response.status_code == 200, response.text
        assert sim.ledger.executions == 1


async def test_unknown_fields_and_the_input_form_are_accepted() -> None:
    """Fields the contract does not name are accepted and recorded; ``input`` is read."""
    async with serve(**FAST) as sim, client(sim) as http:
        extra = body(output_format="jpeg", watermark=False)
        assert (await http.post(SUBMIT, json=extra)).status_code == 200
        nested = {"model": DEFAULT_MODEL, "input": {**body(max_images=2), "steps": 30}}
        del nested["input"]["model"]
        assert (await http.post(SUBMIT, json=nested)).status_code == 200
        first, second = sim.ledger.submissions
        assert first.unknown_fields == ("output_format", "watermark")
        assert (second.unknown_fields, second.max_images) == (("steps",), 2)
        assert second.outputs in (1, 2)  # the model decides
        assert sim.ledger.images_generated == 1 + second.outputs


async def test_code_envelope() -> None:
    """``envelope="code"`` wraps every answer in {code: 200, message, data}."""
    async with serve(envelope="code", **FAST) as sim, client(sim) as http:
        upload = (await http.post(UPLOAD, files={"file": ("a.png", PNG)})).json()
        submitted = (await http.post(SUBMIT, json=body())).json()
        for raw in (upload, submitted):
            assert raw["code"] == 200
            assert raw["message"] == "success"
            assert isinstance(raw["data"], dict)
        polled = (await http.get(POLL.format(submitted["data"]["id"]))).json()
        assert polled["code"] == 200


@pytest.mark.parametrize(
    ("shapes", "max_images", "key", "expected"),
    [
        pytest.param(Shapes(), 2, "outputs", "list-of-str", id="default"),
        pytest.param(Shapes(output_key="output"), 2, "output", "list-of-str", id="output"),
        pytest.param(Shapes(output_form="string"), 1, "outputs", "str", id="string"),
        pytest.param(Shapes(output_form="string"), 2, "outputs", "list-of-str", id="string-2"),
        pytest.param(Shapes(output_items="object"), 2, "outputs", "list-of-obj", id="objects"),
        pytest.param(
            Shapes(output_key="output", output_form="string", output_items="object"),
            1,
            "output",
            "obj",
            id="one-object",
        ),
    ],
)
async def test_output_shapes(shapes: Shapes, max_images: int, key: str, expected: str) -> None:
    """Outputs come under the configured key, as a string or list, items strings or objects."""
    async with serve(shapes=shapes, **FAST) as sim, client(sim) as http:
        submitted = inner((await http.post(SUBMIT, json=body(max_images=max_images))).json())
        data = await finished(http, submitted["id"])
        assert data["status"] == "completed"
        other = "output" if key == "outputs" else "outputs"
        assert other not in data
        value = data[key]
        kinds = {
            "str": isinstance(value, str),
            "obj": isinstance(value, dict) and "url" in value,
            "list-of-str": isinstance(value, list) and all(isinstance(v, str) for v in value),
            "list-of-obj": isinstance(value, list) and all("url" in v for v in value),
        }
        assert kinds[expected], value
        items = value if "list" in expected else [value]
        urls = [v if isinstance(v, str) else v["url"] for v in items]
        assert len(urls) == max_images
        assert all(url.startswith(sim.storage_url) for url in urls)


async def test_base64_outputs_stay_bare_with_object_items() -> None:
    """Base64 outputs are bare strings even when URL items would be objects."""
    async with serve(shapes=Shapes(output_items="object"), **FAST) as sim, client(sim) as http:
        submitted = inner((await http.post(SUBMIT, json=body(enable_base64_output=True))).json())
        data = await finished(http, submitted["id"])
        (output,) = data["outputs"]
        assert isinstance(output, str)
        assert output.startswith("/9j/")  # a JPEG's first bytes, base64


async def test_numeric_ids() -> None:
    """``numeric_ids`` hands out ids as JSON numbers, and polling by that number works."""
    async with serve(shapes=Shapes(numeric_ids=True), **FAST) as sim, client(sim) as http:
        submitted = inner((await http.post(SUBMIT, json=body())).json())
        assert isinstance(submitted["id"], int)
        data = await finished(http, submitted["id"])
        assert data["id"] == submitted["id"]
        assert sim.ledger.submissions[0].prediction_id == str(submitted["id"])


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        ("iso", lambda value: value.endswith("Z")),
        ("missing", lambda value: value is None),
        ("empty", lambda value: value == ""),
        ("garbage", lambda value: value and not value[:1].isdigit()),
    ],
)
async def test_timestamp_shapes(mode: str, check: Any) -> None:
    """Timestamps come as ISO, missing, empty or unparseable."""
    shapes = Shapes(timestamps=mode)  # type: ignore[arg-type]
    async with serve(shapes=shapes, **FAST) as sim, client(sim) as http:
        submitted = inner((await http.post(SUBMIT, json=body())).json())
        assert check(submitted.get("created_at"))
        data = await finished(http, submitted["id"])
        assert check(data.get("created_at"))
        assert check(data.get("completed_at"))


@pytest.mark.parametrize(
    ("mode", "keys"),
    [
        ("file_name", {"download_url", "file_name", "content_type", "size"}),
        ("filename", {"download_url", "filename", "type", "size"}),
        ("url", {"url"}),
    ],
)
async def test_upload_shapes(mode: str, keys: set[str]) -> None:
    """Upload answers come in each first-party variant, with a working URL."""
    shapes = Shapes(upload=mode)  # type: ignore[arg-type]
    async with serve(shapes=shapes, **FAST) as sim, client(sim) as http:
        data = inner((await http.post(UPLOAD, files={"file": ("a.png", PNG)})).json())
        assert set(data) == keys
        url = data.get("download_url") or data["url"]
        async with httpx.AsyncClient() as plain:
            assert (await plain.get(url)).content == PNG


async def test_status_shapes() -> None:
    """Running statuses come in turn per poll; done and failed use the configured words."""
    shapes = Shapes(
        running=("starting", "queued", "processing", "running", "warming_up"),
        done="succeeded",
        failed="cancelled",
    )
    async with serve(shapes=shapes, time_scale=1.0, seed=3) as sim, client(sim) as http:
        submitted = inner((await http.post(SUBMIT, json=body())).json())
        seen = [submitted["status"]]
        for _ in range(5):
            seen.append(inner((await http.get(POLL.format(submitted["id"]))).json())["status"])
        assert seen == ["starting", "queued", "processing", "running", "warming_up", "starting"]
        sim.configure(time_scale=0.001, faults=Faults(prediction_failure=1.0))
        done = inner((await http.post(SUBMIT, json=body(prompt="other"))).json())
        assert (await finished(http, done["id"]))["status"] == "cancelled"


async def test_status_done_word() -> None:
    """A completed prediction reports the configured done status."""
    async with serve(shapes=Shapes(done="succeeded"), **FAST) as sim, client(sim) as http:
        submitted = inner((await http.post(SUBMIT, json=body())).json())
        assert (await finished(http, submitted["id"]))["status"] == "succeeded"


# -- hostile ------------------------------------------------------------------------------


async def test_error_envelope_on_submit_is_not_billed() -> None:
    """A hostile submit answers 200 {"code": 400, "data": null} and creates nothing."""
    hostile = Hostile(error_envelope=frozenset({"submit", "upload"}), error_code=400)
    async with serve(hostile=hostile, **FAST) as sim, client(sim) as http:
        response = await http.post(SUBMIT, json=body())
        assert response.status_code == 200
        raw = response.json()
        assert (raw["code"], raw["data"]) == (400, None)
        assert raw["message"]
        response = await http.post(UPLOAD, files={"file": ("a.png", PNG)})
        assert (response.status_code, response.json()["code"]) == (200, 400)
        assert sim.ledger.executions == 0
        assert sim.ledger.uploads == []
        assert sim.ledger.faults["hostile_error_envelope"] == 2


async def test_error_envelope_on_some_polls() -> None:
    """With ``rate`` < 1 some polls answer an error envelope and others the prediction."""
    hostile = Hostile(error_envelope=frozenset({"poll"}), error_code=500, rate=0.5)
    async with serve(hostile=hostile, seed=5, **FAST) as sim, client(sim) as http:
        submitted = inner((await http.post(SUBMIT, json=body())).json())
        codes = []
        for _ in range(20):
            raw = (await http.get(POLL.format(submitted["id"]))).json()
            codes.append(raw.get("code"))
        assert 500 in codes
        assert None in codes
        assert sim.ledger.executions == 1


async def test_echo_key_in_error_bodies() -> None:
    """``echo_key`` quotes the Authorization header in errors and failed predictions."""
    hostile = Hostile(echo_key=True)
    faults = Faults(server_error=1.0, server_error_codes=(500,), endpoints=frozenset({"upload"}))
    async with serve(hostile=hostile, faults=faults, **FAST) as sim, client(sim) as http:
        response = await http.post(SUBMIT, json=body(), headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401
        assert "Bearer wrong" in response.json()["msg"]
        response = await http.post(UPLOAD, files={"file": ("a.png", PNG)})
        assert response.status_code == 500
        assert f"Bearer {sim.api_key}" in response.json()["msg"]
        response = await http.post(SUBMIT, json=body(size="1*1"))
        assert f"Bearer {sim.api_key}" in response.json()["msg"]
        sim.configure(faults=Faults(prediction_failure=1.0))
        submitted = inner((await http.post(SUBMIT, json=body())).json())
        data = await finished(http, submitted["id"])
        assert data["status"] == "failed"
        assert f"Bearer {sim.api_key}" in data["error"]


async def test_trickled_body() -> None:
    """A trickled answer arrives in many small pieces, far slower than a normal one."""
    hostile = Hostile(trickle=frozenset({"submit"}), trickle_rate=20)
    async with serve(hostile=hostile, **FAST) as sim, client(sim) as http:
        received = b""
        with anyio.move_on_after(0.5):
            async with http.stream("POST", SUBMIT, json=body()) as response:
                assert response.status_code == 200
                async for chunk in response.aiter_raw():
                    received += chunk
        # 20 B/s for ~150 bytes takes ~7 s: half a second sees only the first pieces.
        assert 0 < len(received) < 40
        assert sim.ledger.executions == 1
        sim.configure(hostile=Hostile(trickle=frozenset({"poll"}), trickle_rate=1000))
        prediction_id = sim.ledger.submissions[0].prediction_id
        chunks = []
        async with http.stream("GET", POLL.format(prediction_id)) as response:
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
        assert len(chunks) > 3
        assert inner(json.loads(b"".join(chunks)))["id"] == prediction_id


async def test_oversized_answers() -> None:
    """Oversized answers are valid JSON (or a real image) padded to the configured size."""
    hostile = Hostile(oversized=frozenset({"poll", "output"}), oversized_bytes=300_000)
    async with serve(hostile=hostile, **FAST) as sim, client(sim) as http:
        submitted = inner((await http.post(SUBMIT, json=body())).json())
        await anyio.sleep(0.1)
        response = await http.get(POLL.format(submitted["id"]))
        assert len(response.content) >= 300_000
        data = inner(response.json())
        assert data["id"] == submitted["id"]
        async with httpx.AsyncClient() as plain:
            output = await plain.get(data["outputs"][0])
        assert len(output.content) >= 300_000
        assert output.content.startswith(b"\xff\xd8\xff")


async def test_redirects_go_to_the_recording_catcher() -> None:
    """A redirected submit is not billed; whoever follows it lands at the catcher, which
    records the body it received."""
    hostile = Hostile(redirect=frozenset({"submit", "output"}))
    async with serve(hostile=hostile, **FAST) as sim:
        async with client(sim) as http:
            response = await http.post(SUBMIT, json=body())
            assert response.status_code == 307
            location = response.headers["location"]
            assert location.startswith(sim.catcher_url)
            assert sim.catcher_url != sim.base_url
        async with client(sim, follow_redirects=True) as following:
            response = await following.post(SUBMIT, json=body())
            assert response.status_code == 404
        assert sim.ledger.executions == 0
        (record,) = sim.ledger.redirected
        assert (record.method, record.path) == ("POST", SUBMIT)
        assert record.body_bytes > 0


async def test_html_pages() -> None:
    """HTML answers come with status 200; an HTML submit bills nothing."""
    hostile = Hostile(html=frozenset({"submit", "upload_file"}))
    async with serve(hostile=hostile, **FAST) as sim, client(sim) as http:
        response = await http.post(SUBMIT, json=body())
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.text.startswith("<!doctype html>")
        assert sim.ledger.executions == 0
        upload = inner((await http.post(UPLOAD, files={"file": ("a.png", PNG)})).json())
        async with httpx.AsyncClient() as plain:
            page = await plain.get(upload["download_url"])
        assert page.status_code == 200
        assert page.text.startswith("<!doctype html>")


async def test_hostile_draws_are_seeded() -> None:
    """The same seed draws the same hostile pattern."""
    patterns = []
    hostile = Hostile(html=frozenset({"submit"}), rate=0.5)
    for _ in range(2):
        async with serve(hostile=hostile, seed=11, **FAST) as sim, client(sim) as http:
            statuses = []
            for _ in range(12):
                response = await http.post(SUBMIT, json=body())
                statuses.append(response.headers["content-type"].startswith("text/html"))
            patterns.append(statuses)
    assert patterns[0] == patterns[1]
    assert True in patterns[0]
    assert False in patterns[0]


@pytest.mark.parametrize(
    "changes",
    [
        {"error_envelope": frozenset({"output"})},
        {"trickle": frozenset({"nope"})},
        {"error_code": 200},
        {"rate": 2.0},
        {"trickle_rate": 0},
    ],
)
def test_invalid_hostile(changes: dict[str, Any]) -> None:
    """Hostile settings that cannot work are refused up front."""
    with pytest.raises(ValueError, match="Hostile"):
        Hostile(**changes)


@pytest.mark.parametrize("changes", [{"timestamps": "never"}, {"upload": "ftp"}, {"running": ()}])
def test_invalid_shapes(changes: dict[str, Any]) -> None:
    """Shapes that do not exist are refused up front."""
    with pytest.raises(ValueError, match="Shapes"):
        Shapes(**changes)
