from __future__ import annotations

import hashlib
import logging
import os
import random
import socket
import ssl
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from seedream_async import (
    AmbiguousSubmission,
    AsyncSeedream,
    AuthenticationError,
    ConfigurationError,
    DeadlineExceeded,
    InvalidImage,
    InvalidInput,
    OutputExpired,
    PollPolicy,
    PredictionFailed,
    RetryPolicy,
    SeedreamError,
    TransportError,
)
from seedream_async._base._constants import API_KEY_ENV, BASE_URL_ENV
from seedream_async._network._transport import Http11Transport
from seedream_async._wire._requests import build_request
from seedream_async.testing import Faults, Shapes, Simulator, make_png, serve

pytestmark = pytest.mark.anyio

KEY = "sk-SECRET-123456"
PNG = make_png(16, 16, seed=3)
PNG_SHA = hashlib.sha256(PNG).hexdigest()
FAST_RETRY = RetryPolicy(initial_delay=0.001, max_delay=0.005, max_attempts=6)
FAST_POLL = PollPolicy().scaled(0.001)
PROMPT = "Put the sneaker on a marble pedestal"

SSL_CONTEXT = ssl.create_default_context()

Hook = Callable[[httpx.Request], Awaitable[None]]


@asynccontextmanager
async def simulator(**config: Any) -> AsyncIterator[Simulator]:
    config.setdefault("time_scale", 0.001)
    config.setdefault("api_key", KEY)
    # JPEG outputs, as ModelArk returns (the simulator's documented knob).
    config.setdefault("shapes", Shapes(output_format="jpeg"))
    async with serve(seed=1, **config) as sim:
        yield sim


@asynccontextmanager
async def connected(
    sim: Simulator, *, hooks: list[Hook] | None = None, **options: Any
) -> AsyncIterator[AsyncSeedream]:
    """A client for ``sim`` over our own httpx client, which runs ``hooks`` per request.

    It runs on the transport the client makes for itself (``Http11Transport``), so these
    tests of drops, timeouts and error answers check its error mapping too. Sharing one
    SSL context saves the ~20 ms each new transport spends loading CA certificates.
    """
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("poll", FAST_POLL)
    options.setdefault("rng", random.Random(0))
    options.setdefault("api_key", KEY)
    async with (
        httpx.AsyncClient(
            transport=Http11Transport(max_connections=100, ssl_context=SSL_CONTEXT),
            event_hooks={"request": hooks or []},
        ) as http,
        AsyncSeedream(base_url=sim.base_url, http_client=http, **options) as client,
    ):
        yield client


def heal_after(sim: Simulator, path_part: str, faulty: int) -> Hook:
    """A request hook that turns the sim's faults off once ``faulty`` matching requests went."""
    seen = 0

    async def hook(request: httpx.Request) -> None:
        nonlocal seen
        if path_part in request.url.path:
            seen += 1
            if seen > faulty:
                sim.configure(faults=Faults())

    return hook


def png_file(tmp_path: Path, name: str = "shoe.png", data: bytes = PNG) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


async def byte_stream(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        await anyio.lowlevel.checkpoint()
        yield data[start : start + size]


async def submit_one(client: AsyncSeedream, url: str, prompt: str = PROMPT) -> str:
    prediction = await client.submit(build_request(prompt=prompt, images=[url], max_images=2))
    return prediction.id


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def assert_no_key(err: BaseException) -> None:
    text = "".join(traceback.format_exception(err))
    for shown in (str(err), repr(err), text):
        assert KEY not in shown


# -- configuration ----------------------------------------------------------------------


def test_missing_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a key anywhere the client refuses to start and names the variable to set."""
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(ConfigurationError, match=API_KEY_ENV):
        AsyncSeedream()
    with pytest.raises(ConfigurationError, match=API_KEY_ENV):
        AsyncSeedream("   ")


def test_bad_base_url_is_a_configuration_error() -> None:
    """A base URL that is not http(s) is refused up front."""
    with pytest.raises(ConfigurationError, match="base_url"):
        AsyncSeedream(KEY, base_url="ftp://example.com")


async def test_key_and_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """ATLASCLOUD_API_KEY and ATLASCLOUD_BASE_URL are read when nothing is passed."""
    async with simulator() as sim:
        monkeypatch.setenv(API_KEY_ENV, KEY)
        monkeypatch.setenv(BASE_URL_ENV, sim.base_url)
        async with AsyncSeedream(retry=FAST_RETRY) as client:
            media = await client.upload(PNG)
        assert media.size == len(PNG)
        assert sim.ledger.uploads[0].sha256 == PNG_SHA


async def test_wrong_key_is_authentication_error() -> None:
    """A key the API refuses raises AuthenticationError with status 401, not retried."""
    async with simulator() as sim, connected(sim, api_key="sk-wrong") as client:
        with pytest.raises(AuthenticationError) as info:
            await client.upload(PNG)
    assert info.value.status_code == 401
    assert "Missing or invalid API key" in str(info.value)
    assert sim.ledger.requests["upload"] == 1


# -- upload -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["path", "str-path", "bytes", "stream"])
async def test_upload_sources(kind: str, tmp_path: Path) -> None:
    """A path, bytes or an async byte stream upload intact, with a sniffed type and name."""
    path = png_file(tmp_path, "photo.png")
    source: Any = {
        "path": path,
        "str-path": str(path),
        "bytes": PNG,
        "stream": byte_stream(PNG),
    }[kind]
    async with simulator() as sim, connected(sim) as client:
        media = await client.upload(source)
    assert media.content_type == "image/png"
    assert media.size == len(PNG)
    assert media.file_name == ("photo.png" if "path" in kind else "image.png")
    assert media.download_url.startswith(sim.storage_url)
    assert [u.sha256 for u in sim.ledger.uploads] == [PNG_SHA]


async def test_upload_file_larger_than_a_chunk_arrives_intact(tmp_path: Path) -> None:
    """A file of several chunks streams up byte for byte."""
    data = PNG + os.urandom(700_000)
    path = png_file(tmp_path, "big.png", data)
    async with simulator() as sim, connected(sim) as client:
        media = await client.upload(path)
    assert media.size == len(data)
    assert sim.ledger.uploads[0].sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("case", "match"),
    [
        pytest.param("text-named-png", "not an image", id="text-named-png"),
        pytest.param("gif", "not an image", id="pdf-named-png"),
        pytest.param("empty-file", "empty", id="empty-file"),
        pytest.param("missing-file", "does not exist", id="missing-file"),
        pytest.param("directory", "not a regular file", id="directory"),
        pytest.param("over-size-file", "upload limit", id="over-size-file"),
        pytest.param("empty-bytes", "empty", id="empty-bytes"),
        pytest.param("text-bytes", "not an image", id="text-bytes"),
        pytest.param("empty-stream", "empty", id="empty-stream"),
        pytest.param("text-stream", "not an image", id="text-stream"),
    ],
)
async def test_upload_rejects_bad_images_before_any_request(
    case: str, match: str, tmp_path: Path
) -> None:
    """Bad images raise InvalidImage from the client, before a single request is sent."""
    sources: dict[str, Any] = {
        "text-named-png": png_file(tmp_path, "notes.png", b"hello, this is text\n" * 5),
        "gif": png_file(tmp_path, "anim.png", b"%PDF-1.7\n" + bytes(40)),
        "empty-file": png_file(tmp_path, "empty.png", b""),
        "missing-file": tmp_path / "missing.png",
        "directory": tmp_path,
        "over-size-file": png_file(tmp_path, "big.png"),
        "empty-bytes": b"",
        "text-bytes": b"hello, this is text",
        "empty-stream": byte_stream(b""),
        "text-stream": byte_stream(b"hello, this is text"),
    }
    limit = len(PNG) - 1 if case == "over-size-file" else 10_000
    async with simulator() as sim, connected(sim, max_upload_bytes=limit) as client:
        with pytest.raises(InvalidImage, match=match) as info:
            await client.upload(sources[case])
    assert info.value.field == "images"
    assert sum(sim.ledger.requests.values()) == 0
    assert client.requests["upload"] == 0


async def test_over_size_stream_is_refused_while_streaming() -> None:
    """An async stream over the limit (size unknown up front) raises InvalidImage, not stored."""
    async with simulator() as sim, connected(sim, max_upload_bytes=len(PNG) + 100) as client:
        with pytest.raises(InvalidImage, match="upload limit"):
            await client.upload(byte_stream(PNG + bytes(1_000), size=64))
    assert sim.ledger.uploads == []


# -- submit, poll, wait -----------------------------------------------------------------


async def test_submit_get_prediction_and_wait() -> None:
    """submit returns a running prediction, get_prediction reads it, wait returns it done."""
    async with simulator() as sim, connected(sim) as client:
        media = await client.upload(PNG)
        prediction = await client.submit(
            build_request(prompt=PROMPT, images=[media.download_url], max_images=2)
        )
        assert not prediction.terminal
        again = await client.get_prediction(prediction.id)
        assert again.id == prediction.id
        done = await client.wait(prediction.id)
    assert done.done
    assert 1 <= len(done.outputs) <= 2  # the model decides how many
    assert sim.ledger.executions == 1
    assert sim.ledger.polls[prediction.id] >= 2


@pytest.mark.parametrize("bad", ["", "a/b"])
async def test_get_prediction_rejects_bad_ids(bad: str) -> None:
    """A prediction id that would change the URL path is refused before sending."""
    async with simulator() as sim, connected(sim) as client:
        with pytest.raises(InvalidInput):
            await client.get_prediction(bad)
    assert sum(sim.ledger.requests.values()) == 0


async def test_wait_raises_prediction_failed() -> None:
    """A failed prediction raises PredictionFailed with its id and the server's message."""
    faults = Faults(prediction_failure=1.0, failure_message="the model melted")
    async with simulator(faults=faults) as sim, connected(sim) as client:
        url = (await client.upload(PNG)).download_url
        prediction_id = await submit_one(client, url)
        with pytest.raises(PredictionFailed) as info:
            await client.wait(prediction_id)
    assert info.value.prediction_id == prediction_id
    assert info.value.error == "the model melted"
    assert prediction_id in str(info.value)
    assert "the model melted" in str(info.value)


async def test_wait_deadline() -> None:
    """A prediction still running at the deadline raises DeadlineExceeded after some polls."""
    async with simulator(time_scale=1.0) as sim, connected(sim) as client:
        url = (await client.upload(PNG)).download_url
        prediction_id = await submit_one(client, url)
        start = anyio.current_time()
        with pytest.raises(DeadlineExceeded) as info:
            await client.wait(prediction_id, deadline=0.05)
        elapsed = anyio.current_time() - start
    assert info.value.prediction_id == prediction_id
    assert info.value.deadline == 0.05
    assert 0.05 <= elapsed < 1.0
    assert sim.ledger.polls[prediction_id] >= 2


# -- edit -------------------------------------------------------------------------------


async def test_edit_with_path_and_url(tmp_path: Path) -> None:
    """edit uploads the local image, keeps the URL, submits once and returns the outputs."""
    path = png_file(tmp_path, data=make_png(16, 16, seed=9))
    async with simulator() as sim, connected(sim) as client:
        url = (await client.upload(PNG)).download_url
        done = await client.edit(PROMPT, [path, url], max_images=2)
    assert done.done
    assert 1 <= len(done.outputs) <= 2  # the model decides how many
    assert sim.ledger.executions == 1
    assert len(sim.ledger.uploads) == 2


@pytest.mark.parametrize(
    ("images", "params", "field"),
    [
        pytest.param(11, {}, "images", id="eleven-images"),
        pytest.param(1, {"size": "500*500"}, "size", id="small-size"),
        pytest.param(1, {"prompt": ""}, "prompt", id="empty-prompt"),
        pytest.param(1, {"prompt": "   "}, "prompt", id="blank-prompt"),
        pytest.param(5, {"max_images": 11}, "request", id="too-many-in-total"),
        pytest.param(1, {"max_images": 0}, "max_images", id="zero-outputs"),
        pytest.param(1, {"colour": "red"}, "colour", id="unknown-param"),
    ],
)
async def test_edit_rejects_bad_params_before_any_request(
    images: int, params: dict[str, Any], field: str, tmp_path: Path
) -> None:
    """Invalid edits raise InvalidInput naming the field before anything is uploaded or paid."""
    path = png_file(tmp_path)
    params = dict(params)
    prompt = params.pop("prompt", PROMPT)
    async with simulator() as sim, connected(sim) as client:
        with pytest.raises(InvalidInput) as info:
            await client.edit(prompt, [path] * images, **params)
    assert info.value.field is not None
    assert info.value.field.startswith(field)
    assert sum(sim.ledger.requests.values()) == 0
    assert sum(client.requests.values()) == 0


# -- outputs ----------------------------------------------------------------------------


async def test_download_is_atomic_adds_suffix_and_sends_no_key(tmp_path: Path) -> None:
    """download writes the JPEG (what ModelArk returns) under the suffix its bytes call
    for, leaves no temp file, sends no key."""
    async with (
        simulator(shapes=Shapes(output_count="max", output_format="jpeg")) as sim,
        connected(sim) as client,
    ):
        done = await client.edit(PROMPT, [PNG], max_images=2)
        out = tmp_path / "out"
        saved = [
            await client.download(url, out / f"result-{i}") for i, url in enumerate(done.outputs)
        ]
    assert [p.name for p in saved] == ["result-0.jpg", "result-1.jpg"]
    assert all(p.read_bytes().startswith(b"\xff\xd8\xff") for p in saved)
    assert names(out) == ["result-0.jpg", "result-1.jpg"]
    assert sim.ledger.auth_on_storage == 0
    assert sim.ledger.requests["output"] == 2


async def test_download_keeps_a_given_image_suffix(tmp_path: Path) -> None:
    """A destination that already ends in an image suffix is used as given."""
    async with simulator() as sim, connected(sim) as client:
        done = await client.edit(PROMPT, [PNG])
        saved = await client.save_output(done.outputs[0], tmp_path / "x.png")
    assert saved == tmp_path / "x.png"
    assert names(tmp_path) == ["x.png"]
    assert sim.ledger.auth_on_storage == 0


async def test_expired_output(tmp_path: Path) -> None:
    """An output URL past its expiry raises OutputExpired and leaves nothing behind."""
    async with simulator(faults=Faults(output_ttl=0.001)) as sim, connected(sim) as client:
        done = await client.edit(PROMPT, [PNG])
        await anyio.sleep(0.01)
        with pytest.raises(OutputExpired):
            await client.download(done.outputs[0], tmp_path / "late")
    assert names(tmp_path) == []
    assert sim.ledger.faults["expired_output"] == 1


async def test_base64_outputs_via_save_output(tmp_path: Path) -> None:
    """Base64 outputs are decoded by save_output into files with the suffix their bytes
    call for (PNG here, by the simulator's knob)."""
    shapes = Shapes(output_count="max", output_format="png")
    async with simulator(shapes=shapes) as sim, connected(sim) as client:
        done = await client.edit(PROMPT, [PNG], max_images=2, enable_base64_output=True)
        assert not any(output.startswith("http") for output in done.outputs)
        saved = [
            await client.save_output(o, tmp_path / f"b{i}") for i, o in enumerate(done.outputs)
        ]
    assert [p.name for p in saved] == ["b0.png", "b1.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in saved)
    assert names(tmp_path) == ["b0.png", "b1.png"]
    assert sim.ledger.requests["output"] == 0


async def test_bad_base64_output(tmp_path: Path) -> None:
    """An output that is neither a URL nor base64 raises InvalidInput and writes nothing."""
    async with simulator() as sim, connected(sim) as client:
        with pytest.raises(InvalidInput):
            await client.save_output("not base64 at all!", tmp_path / "x")
    assert names(tmp_path) == []
    assert sum(sim.ledger.requests.values()) == 0


@pytest.mark.parametrize("envelope", ["data", "flat", "mixed"])
async def test_envelopes(envelope: str, tmp_path: Path) -> None:
    """Both documented response shapes (and a mix of them) are read everywhere."""
    shapes = Shapes(output_count="max", output_format="jpeg")
    async with simulator(envelope=envelope, shapes=shapes) as sim, connected(sim) as client:
        media = await client.upload(PNG)
        assert media.download_url.startswith(sim.storage_url)
        done = await client.edit(PROMPT, [media.download_url, PNG], max_images=2)
        saved = await client.download(done.outputs[0], tmp_path / "out")
    assert done.done
    assert len(done.outputs) == 2
    assert saved.suffix == ".jpg"


# -- retries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "seconds"),
    [pytest.param("seconds", 0.03, id="seconds"), pytest.param("ms", 0.03, id="ms")],
)
async def test_rate_limited_poll_recovers_after_retry_after(fmt: str, seconds: float) -> None:
    """A 429 on a poll waits the server's Retry-After (seconds or ms), then succeeds."""
    faults = Faults(
        rate_limit=1.0,
        send_retry_after=True,
        retry_after=seconds,
        retry_after_format=fmt,
        endpoints=frozenset({"poll"}),
    )
    async with (
        simulator(faults=faults) as sim,
        connected(sim, hooks=[heal_after(sim, "/prediction/", 1)]) as client,
    ):
        url = (await client.upload(PNG)).download_url
        prediction_id = await submit_one(client, url)
        start = anyio.current_time()
        prediction = await client.get_prediction(prediction_id)
        elapsed = anyio.current_time() - start
    assert prediction.id == prediction_id
    assert sim.ledger.faults["429"] == 1
    assert client.requests["poll"] == 2
    assert elapsed >= seconds * 0.9


async def test_rate_limited_upload_recovers_after_http_date() -> None:
    """A 429 whose Retry-After is an HTTP date is waited out (about a second), then retried."""
    faults = Faults(
        rate_limit=1.0,
        send_retry_after=True,
        retry_after=0.001,
        retry_after_format="http-date",
        endpoints=frozenset({"upload"}),
    )
    async with (
        simulator(faults=faults) as sim,
        connected(sim, hooks=[heal_after(sim, "uploadMedia", 1)]) as client,
    ):
        start = anyio.current_time()
        media = await client.upload(PNG)
        elapsed = anyio.current_time() - start
    assert media.size == len(PNG)
    assert sim.ledger.faults["429"] == 1
    assert client.requests["upload"] == 2
    assert 0.2 <= elapsed <= 3.0


async def test_retry_after_over_cap_raises() -> None:
    """A 429 asking for longer than max_retry_after is raised at once instead of slept."""
    faults = Faults(
        rate_limit=1.0, send_retry_after=True, retry_after=30.0, endpoints=frozenset({"upload"})
    )
    retry = RetryPolicy(initial_delay=0.001, max_retry_after=1.0)
    async with simulator(faults=faults) as sim, connected(sim, retry=retry) as client:
        with anyio.fail_after(5), pytest.raises(SeedreamError) as info:
            await client.upload(PNG)
    assert getattr(info.value, "status_code", None) == 429
    assert getattr(info.value, "retry_after", None) == pytest.approx(30.0)
    assert sim.ledger.requests["upload"] == 1


@pytest.mark.parametrize("code", [500, 502, 503, 504])
@pytest.mark.parametrize("endpoint", ["upload", "poll"])
async def test_server_errors_recover(endpoint: str, code: int) -> None:
    """5xx answers to uploads and polls are retried until the server recovers."""
    faults = Faults(server_error=1.0, server_error_codes=(code,), endpoints=frozenset({endpoint}))
    part = "uploadMedia" if endpoint == "upload" else "/prediction/"
    async with simulator() as sim, connected(sim, hooks=[heal_after(sim, part, 2)]) as client:
        sim.configure(faults=faults)
        done = await client.edit(PROMPT, [PNG])
    assert done.done
    assert sim.ledger.faults[str(code)] == 2
    assert sim.ledger.executions == 1


@pytest.mark.parametrize("endpoint", ["upload", "poll", "output"])
async def test_dropped_connections_recover(endpoint: str, tmp_path: Path) -> None:
    """Connections dropped without an answer on uploads, polls and downloads are retried."""
    faults = Faults(drop=1.0, endpoints=frozenset({endpoint}))
    part = {"upload": "uploadMedia", "poll": "/prediction/", "output": "/outputs/"}[endpoint]
    async with simulator() as sim, connected(sim, hooks=[heal_after(sim, part, 2)]) as client:
        sim.configure(faults=faults)
        done = await client.edit(PROMPT, [PNG])
        saved = await client.download(done.outputs[0], tmp_path / "out")
    assert saved.read_bytes().startswith(b"\xff\xd8\xff")
    assert sim.ledger.faults["drop"] == 2
    assert sim.ledger.executions == 1
    assert names(tmp_path) == [saved.name]


async def test_download_server_errors_recover(tmp_path: Path) -> None:
    """A 5xx from the storage host is retried by download."""
    faults = Faults(server_error=1.0, server_error_codes=(502,), endpoints=frozenset({"output"}))
    async with (
        simulator() as sim,
        connected(sim, hooks=[heal_after(sim, "/outputs/", 2)]) as client,
    ):
        done = await client.edit(PROMPT, [PNG])
        sim.configure(faults=faults)
        saved = await client.download(done.outputs[0], tmp_path / "out.png")
    assert saved.read_bytes().startswith(b"\xff\xd8\xff")
    assert sim.ledger.faults["502"] == 2


async def test_persistent_poll_errors_give_up() -> None:
    """A poll failing on every attempt raises the last error after max_attempts tries."""
    faults = Faults(server_error=1.0, server_error_codes=(500,), endpoints=frozenset({"poll"}))
    async with simulator() as sim, connected(sim) as client:
        url = (await client.upload(PNG)).download_url
        prediction_id = await submit_one(client, url)
        sim.configure(faults=faults)
        with pytest.raises(SeedreamError) as info:
            await client.get_prediction(prediction_id)
    assert getattr(info.value, "status_code", None) == 500
    assert client.requests["poll"] == FAST_RETRY.max_attempts


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param({"server_error": 1.0, "server_error_codes": (500,)}, id="500"),
        pytest.param({"server_error": 1.0, "server_error_codes": (502,)}, id="502"),
        pytest.param({"server_error": 1.0, "server_error_codes": (504,)}, id="504"),
        pytest.param({"drop": 1.0}, id="drop"),
    ],
)
async def test_ambiguous_submit_is_never_resent(faults: dict[str, Any]) -> None:
    """A submit that may have been billed raises AmbiguousSubmission and is billed once."""
    injected = Faults(endpoints=frozenset({"submit"}), processed_on_error=1.0, **faults)
    async with simulator() as sim, connected(sim) as client:
        url = (await client.upload(PNG)).download_url
        sim.configure(faults=injected)
        with pytest.raises(AmbiguousSubmission) as info:
            await submit_one(client, url)
    assert info.value.__cause__ is not None
    assert sim.ledger.executions == 1
    assert sim.ledger.submissions[0].processed_before_error
    assert sim.ledger.requests["submit"] == 1
    assert client.requests["submit"] == 1


@pytest.mark.parametrize("code", [429, 503])
async def test_submit_not_taken_is_retried_once_billed(code: int) -> None:
    """429 and 503 on a submit mean "not taken": it is resent and billed exactly once."""
    if code == 429:
        faults = Faults(
            rate_limit=1.0,
            send_retry_after=True,
            retry_after=0.001,
            endpoints=frozenset({"submit"}),
        )
    else:
        faults = Faults(
            server_error=1.0,
            server_error_codes=(503,),
            endpoints=frozenset({"submit"}),
            processed_on_error=1.0,
        )
    async with (
        simulator() as sim,
        connected(sim, hooks=[heal_after(sim, "generateImage", 2)]) as client,
    ):
        url = (await client.upload(PNG)).download_url
        sim.configure(faults=faults)
        prediction_id = await submit_one(client, url)
    assert sim.ledger.requests["submit"] == 3
    assert sim.ledger.executions == 1
    assert sim.ledger.duplicate_submissions == 0
    assert sim.ledger.submissions[0].prediction_id == prediction_id


async def test_submit_soak_never_pays_twice() -> None:
    """100 concurrent submits under mixed faults: no body is ever billed twice."""
    faults = Faults(
        rate_limit=0.15,
        send_retry_after=True,
        retry_after=0.001,
        server_error=0.25,
        drop=0.05,
        endpoints=frozenset({"submit"}),
        processed_on_error=0.5,
    )
    outcomes: dict[str, int] = {"ok": 0, "ambiguous": 0, "gave_up": 0}
    async with simulator() as sim, connected(sim) as client:
        url = (await client.upload(PNG)).download_url
        sim.configure(faults=faults)

        async def one(index: int) -> None:
            try:
                await submit_one(client, url, prompt=f"{PROMPT} #{index}")
            except AmbiguousSubmission:
                outcomes["ambiguous"] += 1
            except (AuthenticationError, TransportError) as err:
                raise AssertionError(f"unexpected {err!r}") from err
            except SeedreamError:
                outcomes["gave_up"] += 1
            else:
                outcomes["ok"] += 1

        async with anyio.create_task_group() as group:
            for index in range(100):
                group.start_soon(one, index)
    ledger = sim.ledger
    assert sum(outcomes.values()) == 100
    assert outcomes["ok"] > 50
    assert outcomes["ambiguous"] > 0
    assert ledger.duplicate_submissions == 0
    billed_ambiguous = sum(r.processed_before_error for r in ledger.submissions)
    assert ledger.executions == outcomes["ok"] + billed_ambiguous
    assert billed_ambiguous <= outcomes["ambiguous"]
    assert ledger.faults["429"] + ledger.faults["503"] > 0


# -- redaction --------------------------------------------------------------------------


def test_repr_hides_key() -> None:
    """repr and str of the client never show the key."""
    client = AsyncSeedream(KEY, base_url="http://127.0.0.1:1")
    assert KEY not in repr(client)
    assert KEY not in str(client)
    assert KEY not in repr(vars(client))


async def test_auth_error_hides_key() -> None:
    """An authentication error and its traceback never show the key that was refused."""
    async with simulator(api_key="sim-other") as sim, connected(sim) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.upload(PNG)
    assert_no_key(info.value)


async def test_transport_error_hides_key() -> None:
    """A refused connection, retried then raised, shows neither key nor query string."""
    async with AsyncSeedream(
        KEY, base_url=f"http://127.0.0.1:{free_port()}", retry=FAST_RETRY
    ) as client:
        with pytest.raises(TransportError) as info:
            await client.get_prediction("pred_1")
    # Nothing ever reached the API: the client gives up after unreachable_after attempts.
    assert client.requests["poll"] == FAST_RETRY.unreachable_after
    assert isinstance(info.value.__cause__, httpx.TransportError)
    assert_no_key(info.value)


async def test_ambiguous_submit_hides_key() -> None:
    """An ambiguous submission's message and traceback never show the key."""
    faults = Faults(drop=1.0, endpoints=frozenset({"submit"}), processed_on_error=1.0)
    async with simulator() as sim, connected(sim) as client:
        url = (await client.upload(PNG)).download_url
        sim.configure(faults=faults)
        with pytest.raises(AmbiguousSubmission) as info:
            await submit_one(client, url)
    assert_no_key(info.value)


async def test_logs_hide_key(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """Nothing logged at DEBUG, by us or httpx/httpcore, contains the key, retries included."""
    caplog.set_level(logging.DEBUG)
    faults = Faults(
        server_error=1.0, server_error_codes=(503,), endpoints=frozenset({"upload", "poll"})
    )
    async with (
        simulator(faults=faults) as sim,
        connected(sim, hooks=[heal_after(sim, "", 4)]) as client,
    ):
        done = await client.edit(PROMPT, [PNG])
        await client.download(done.outputs[0], tmp_path / "out")
    assert any(r.name == "seedream_async" and "retrying" in r.message for r in caplog.records)
    assert any(r.name.startswith("httpx") for r in caplog.records)
    assert KEY not in caplog.text


# -- ownership of the HTTP client -------------------------------------------------------


async def test_passed_in_http_client_stays_open() -> None:
    """A caller's httpx client is left open and usable after the AsyncSeedream exits."""
    async with simulator() as sim, httpx.AsyncClient() as http:
        async with AsyncSeedream(KEY, base_url=sim.base_url, http_client=http) as client:
            media = await client.upload(PNG)
        assert not http.is_closed
        response = await http.get(media.download_url)
        assert response.content == PNG


async def test_own_http_client_is_closed() -> None:
    """The httpx client the AsyncSeedream made is closed when it exits."""
    async with simulator() as sim:
        async with AsyncSeedream(KEY, base_url=sim.base_url) as client:
            await client.upload(PNG)
            assert not client._http.is_closed
        assert client._http.is_closed
        with pytest.raises(RuntimeError):
            await client.upload(PNG)


@pytest.mark.parametrize("fmt", ["seconds", "ms"])
async def test_download_rate_limited_recovers(fmt: str, tmp_path: Path) -> None:
    """A 429 from the storage host is retried by download, as for any idempotent request."""
    faults = Faults(
        rate_limit=1.0,
        send_retry_after=True,
        retry_after=0.01,
        retry_after_format=fmt,
        endpoints=frozenset({"output"}),
    )
    async with (
        simulator() as sim,
        connected(sim, hooks=[heal_after(sim, "/outputs/", 1)]) as client,
    ):
        done = await client.edit(PROMPT, [PNG])
        sim.configure(faults=faults)
        start = anyio.current_time()
        saved = await client.download(done.outputs[0], tmp_path / "out")
        elapsed = anyio.current_time() - start
    assert saved.read_bytes().startswith(b"\xff\xd8\xff")
    assert sim.ledger.faults["429"] == 1
    assert elapsed >= 0.009
