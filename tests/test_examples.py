"""The scripts in ``examples/`` compile, import, and work against the simulator."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest

from seedream_async import AsyncSeedream
from seedream_async._policies._polling import PollPolicy
from seedream_async.testing import make_png, serve

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import an example, its client polling on the simulator's fast clock."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    fast = PollPolicy(first_poll=0.01, interval=0.01, typical=0.01)
    monkeypatch.setattr(module, "AsyncSeedream", partial(AsyncSeedream, poll=fast))
    return module


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda path: path.name)
def test_examples_compile(path: Path) -> None:
    """Every example is valid Python."""
    compile(path.read_text(), str(path), "exec")


async def test_edit_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """edit_folder.py edits each photo of a folder, with the logo as a second reference."""
    module = load("edit_folder", monkeypatch)
    photos = tmp_path / "photos"
    photos.mkdir()
    for number in range(3):
        (photos / f"shoe{number}.png").write_bytes(make_png(16, 16, seed=number))
    (photos / "notes.txt").write_text("not a photo")
    logo = tmp_path / "logo.png"
    logo.write_bytes(make_png(8, 8, seed=9))
    async with serve(time_scale=0.001) as sim:
        monkeypatch.setenv("ATLASCLOUD_API_KEY", sim.api_key or "")
        monkeypatch.setenv("ATLASCLOUD_BASE_URL", sim.base_url)
        failed = await module.edit_folder(photos, tmp_path / "out", "On marble", logo=logo)
        assert failed == 0
        assert sim.ledger.executions == 3
    assert sorted(path.stem for path in (tmp_path / "out").glob("*.jpg")) == [
        "shoe0",
        "shoe1",
        "shoe2",
    ]


async def test_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """fastapi_service.py: /edit answers with outputs; a /jobs job is done by the worker;
    FastAPI refuses bad bodies (a server path, no prompt) and unknown jobs."""
    module = load("fastapi_service", monkeypatch)
    body = {"prompt": "On marble", "images": ["https://example.com/shoe.png"]}
    async with serve(time_scale=0.001) as sim:
        monkeypatch.setenv("ATLASCLOUD_API_KEY", sim.api_key or "")
        monkeypatch.setenv("ATLASCLOUD_BASE_URL", sim.base_url)
        app = module.app
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
                edited = await http.post("/edit", json=body)
                assert edited.status_code == 200, edited.text
                assert edited.json()["outputs"]
                bad = await http.post("/edit", json={**body, "images": ["/etc/passwd"]})
                assert bad.status_code == 422
                assert bad.json()["detail"][0]["loc"][:2] == ["body", "images"]
                no_prompt = await http.post("/jobs", json={"images": body["images"]})
                assert no_prompt.status_code == 422
                assert (await http.get("/jobs/nope")).status_code == 404
                assert "/edit" in (await http.get("/openapi.json")).json()["paths"]
                queued = await http.post("/jobs", json=body)
                assert queued.status_code == 202
                job = f"/jobs/{queued.json()['id']}"
                with anyio.fail_after(10):
                    # The worker runs in the app's lifespan: poll it as a web client would.
                    while (await http.get(job)).json()["status"] in ("queued", "running"):  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                assert (await http.get(job)).json()["status"] == "succeeded"
        assert sim.ledger.executions == 2


def sse_events(body: str) -> list[dict[str, Any]]:
    """The ``data`` of each ``progress`` event in a server-sent-events body."""
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        assert lines["event"] == "progress"
        events.append(json.loads(lines["data"]))
    return events


async def test_service_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """fastapi_service.py: ``/progress`` is the batch's live BatchProgress as JSON and
    ``/progress/stream`` as server-sent events, one per change."""
    module = load("fastapi_service", monkeypatch)
    body = {"prompt": "On marble", "images": ["https://example.com/shoe.png"]}
    async with serve(time_scale=0.001) as sim:
        monkeypatch.setenv("ATLASCLOUD_API_KEY", sim.api_key or "")
        monkeypatch.setenv("ATLASCLOUD_BASE_URL", sim.base_url)
        app = module.app
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
                streamed: list[httpx.Response] = []

                async def watch() -> None:
                    url = "/progress/stream?interval=0.001&max_events=3"
                    streamed.append(await http.get(url))

                async with anyio.create_task_group() as group:
                    group.start_soon(watch)
                    for _ in range(2):
                        assert (await http.post("/jobs", json=body)).status_code == 202
                with anyio.fail_after(10):
                    # Polled as a web client would.
                    while (await http.get("/progress")).json()["finished"] < 2:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                now = (await http.get("/progress")).json()
                assert now["succeeded"] == now["executions"] == 2
                assert now["in_progress"] == 0
                assert now["spent"] == pytest.approx(sim.ledger.cost)
                [stream] = streamed
                assert stream.headers["content-type"].startswith("text/event-stream")
                events = sse_events(stream.text)
                assert len(events) == 3
                assert all(a != b for a, b in itertools.pairwise(events))  # one per change
                last = sse_events((await http.get("/progress/stream?max_events=1")).text)
                assert last == [now]


async def test_service_with_webhook_completion(monkeypatch: pytest.MonkeyPatch) -> None:
    """fastapi_service.py with SEEDREAM_WEBHOOK_URL: the simulator's signed delivery reaches
    the mounted receiver over a real socket and is recorded; the edit is paid once."""
    from seedream_async._webhook._listen import serve_webhooks

    module = load("fastapi_service", monkeypatch)
    body = {"prompt": "On marble", "images": ["https://example.com/shoe.png"]}
    async with serve(time_scale=0.001) as sim:
        monkeypatch.setenv("ATLASCLOUD_API_KEY", sim.api_key or "")
        monkeypatch.setenv("ATLASCLOUD_BASE_URL", sim.base_url)
        app = module.app
        async with app.router.lifespan_context(app), serve_webhooks(app) as listening:
            monkeypatch.setattr(module, "WEBHOOK_URL", f"{listening.url}atlas/webhooks/")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
                edited = await http.post("/edit", json=body)
            assert edited.status_code == 200, edited.text
            with anyio.fail_after(10):
                while not sim.webhooks.attempts:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
            assert [a.status for a in sim.webhooks.attempts] == [200]
            sink = app.state.client.webhooks.sink
            assert [d.prediction_id for d in sink.deliveries] == [edited.json()["id"]]
        assert sim.ledger.executions == 1
