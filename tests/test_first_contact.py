"""Issue 18: what Atlas Cloud's published docs say, modelled by the simulator and honoured by
the client. Each test talks to the simulator over real sockets, on asyncio and trio.

Sources (see docs/fidelity.md): Atlas Cloud's errors, predictions and data-retention pages,
its first-party clients, and ByteDance ModelArk's Seedream 4.5 pages.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from seedream_async import (
    AmbiguousSubmission,
    AsyncSeedream,
    AuthenticationError,
    BadRequestError,
    ContentModerationError,
    DeadlineExceeded,
    EditItem,
    PollPolicy,
    PredictionFailed,
    RegionBlocked,
    ResultStatus,
    RetryPolicy,
)
from seedream_async.testing import Faults, Hostile, Shapes, Simulator, make_png, serve

pytestmark = pytest.mark.anyio

KEY = "sk-first-contact-123"
PNG = make_png(16, 16, seed=5)
PROMPT = "Put the sneaker on a marble pedestal"
FAST_RETRY = RetryPolicy(initial_delay=0.001, max_delay=0.005, max_attempts=6)
FAST_POLL = PollPolicy().scaled(0.001)


@asynccontextmanager
async def simulator(**config: Any) -> AsyncIterator[Simulator]:
    config.setdefault("time_scale", 0.001)
    # The documented outputs: the model decides how many, JPEG (ModelArk).
    config.setdefault("shapes", Shapes(output_count="model", output_format="jpeg"))
    async with serve(seed=3, api_key=KEY, **config) as sim:
        yield sim


@asynccontextmanager
async def connected(
    sim: Simulator,
    *,
    base_url: str | None = None,
    seen: list[httpx.Request] | None = None,
    **options: Any,
) -> AsyncIterator[AsyncSeedream]:
    """A client for ``sim``; every request it sends is appended to ``seen``."""

    async def record(request: httpx.Request) -> None:
        if seen is not None:
            seen.append(request)

    options.setdefault("retry", FAST_RETRY)
    options.setdefault("poll", FAST_POLL)
    options.setdefault("rng", random.Random(0))
    async with (
        httpx.AsyncClient(event_hooks={"request": [record]}) as http,
        AsyncSeedream(KEY, base_url=base_url or sim.base_url, http_client=http, **options) as c,
    ):
        yield c


# -- 1. base URL -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/", "/api/v1", "/api/v1/"])
async def test_documented_base_url_forms_work(suffix: str) -> None:
    """The origin, the docs' ``.../api/v1`` and either with a trailing slash all call
    ``/api/v1/model/...`` once, not ``/api/v1/api/v1/...``."""
    seen: list[httpx.Request] = []
    async with simulator() as sim, connected(sim, base_url=sim.base_url + suffix, seen=seen) as c:
        done = await c.edit(PROMPT, [PNG])
    assert done.done
    assert sim.ledger.executions == 1
    api_paths = {r.url.path for r in seen if r.url.port == httpx.URL(sim.base_url).port}
    assert all(path.startswith("/api/v1/model/") for path in api_paths)
    assert not any("/api/v1/api/v1" in path for path in api_paths)


async def test_first_401_names_the_url_called() -> None:
    """A wrong path answers 401 (Atlas authenticates before routing): the first such error
    names the URL that was called, and carries the request id."""
    async with simulator() as sim, connected(sim, base_url=sim.base_url + "/v2") as c:
        with pytest.raises(AuthenticationError) as info:
            await c.edit(PROMPT, [PNG])
    message = str(info.value)
    assert f"{sim.base_url}/v2/api/v1/model/uploadMedia" in message
    assert "--base-url" in message
    assert info.value.request_id is not None
    assert info.value.request_id in message
    assert sim.ledger.executions == 0


# -- 2. request body -----------------------------------------------------------------------


def _submitted_bodies(seen: list[httpx.Request]) -> list[dict[str, Any]]:
    return [json.loads(r.content) for r in seen if r.url.path.endswith("/generateImage")]


async def test_default_body_holds_only_the_documented_fields() -> None:
    """A default submit sends what Atlas's own v4.5 node sends, nothing more; seed and
    sync mode appear only when asked for."""
    seen: list[httpx.Request] = []
    async with simulator() as sim, connected(sim, seen=seen) as c:
        await c.edit(PROMPT, [PNG])
        await c.edit(PROMPT, [PNG], seed=7, completion="sync")
    plain, asked = _submitted_bodies(seen)
    assert set(plain) == {
        "model", "images", "prompt", "size", "max_images", "enable_base64_output",
    }  # fmt: skip
    assert asked["seed"] == 7
    assert asked["enable_sync_mode"] is True
    assert sim.ledger.executions == 2


# -- 5. errors -----------------------------------------------------------------------------


async def test_request_ids_on_errors_and_predictions() -> None:
    """Every answer carries X-Request-ID: it is on each APIStatusError and each prediction."""
    async with simulator() as sim, connected(sim) as c:
        done = await c.edit(PROMPT, [PNG])
        sim.configure(api_key="another-key")
        with pytest.raises(AuthenticationError) as info:
            await c.get_prediction(done.id)
    assert done.request_id is not None
    assert info.value.request_id is not None
    assert info.value.request_id != done.request_id


async def test_content_moderation_has_its_own_error() -> None:
    """A failed prediction with error_code 1039 raises ContentModerationError."""
    faults = Faults(prediction_failure=1.0, failure_code=1039)
    async with simulator(faults=faults) as sim, connected(sim) as c:
        with pytest.raises(ContentModerationError) as info:
            await c.edit(PROMPT, [PNG])
    assert isinstance(info.value, PredictionFailed)
    assert info.value.error_code == 1039
    assert sim.ledger.executions == 1


async def test_content_moderation_in_a_batch_result() -> None:
    """In a batch the moderated item fails with ContentModerationError and its request id."""
    faults = Faults(prediction_failure=1.0, failure_code=1039)
    async with simulator(faults=faults) as sim, connected(sim) as c:
        (result,) = await c.edit_all([EditItem(key="a", prompt=PROMPT, images=[PNG])])
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, ContentModerationError)
    assert result.request_id is not None
    assert sim.ledger.executions == 1


async def test_451_stops_new_submits_like_403() -> None:
    """451 (blocked in this region) is RegionBlocked, and a batch stops submitting."""
    hostile = Hostile(error_envelope=frozenset({"submit"}), error_code=451)
    async with simulator(hostile=hostile) as sim, connected(sim) as c:
        with pytest.raises(RegionBlocked):
            await c.edit(PROMPT, [PNG])
        items = [EditItem(key=f"k{i}", prompt=PROMPT, images=[PNG]) for i in range(4)]
        results = await c.edit_all(items, concurrency=1)
    assert not any(r.ok for r in results)
    assert isinstance(results[0].error, RegionBlocked)
    # The first refusal stops the batch: the others are never sent.
    assert sim.ledger.requests["submit"] == 2
    assert sim.ledger.executions == 0


async def test_413_says_what_to_do() -> None:
    """413 (a body over 50 MB) is a BadRequestError that says to send URLs instead."""
    hostile = Hostile(error_envelope=frozenset({"submit"}), error_code=413)
    async with simulator(hostile=hostile) as sim, connected(sim) as c:
        with pytest.raises(BadRequestError) as info:
            await c.edit(PROMPT, [PNG])
    assert info.value.status_code == 413
    assert "50 MB" in str(info.value)
    assert sim.ledger.executions == 0


# -- 6. new predictions not found yet ------------------------------------------------------


async def test_wait_and_edit_tolerate_a_new_prediction_not_found() -> None:
    """A just-created prediction that answers 404 for a moment is waited for, once paid."""
    async with simulator(faults=Faults(fresh_not_found=0.05)) as sim, connected(sim) as c:
        done = await c.edit(PROMPT, [PNG])
        submitted = await c.submit(_request())
        with pytest.raises(BadRequestError) as info:
            await c.wait(submitted.id, not_found_grace=0.0)
    assert done.done
    assert info.value.status_code == 404
    assert sim.ledger.faults["fresh_not_found"] >= 2
    assert sim.ledger.executions == 2


def _request() -> Any:
    from seedream_async import EditRequest

    return EditRequest(prompt=PROMPT, images=["http://127.0.0.1:1/uploads/x/a.png"])


# -- 7. 429 without Retry-After ------------------------------------------------------------


async def test_429_without_retry_after_still_finishes_every_item() -> None:
    """The simulator's 429s carry no Retry-After by default (media endpoints send none);
    the adaptive limit still gets every item through, each paid once."""
    seen: list[httpx.Response] = []

    async def record(response: httpx.Response) -> None:
        seen.append(response)

    # Predictions of ~170 ms, so six submitted at once find two running.
    async with (
        simulator(faults=Faults(max_in_flight=2), time_scale=0.02) as sim,
        httpx.AsyncClient(event_hooks={"response": [record]}) as http,
        AsyncSeedream(
            KEY, base_url=sim.base_url, http_client=http, retry=FAST_RETRY, poll=FAST_POLL
        ) as c,
    ):
        items = [EditItem(key=f"k{i}", prompt=PROMPT, images=[PNG]) for i in range(6)]
        results = await c.edit_all(items, concurrency=6)
    limited = [r for r in seen if r.status_code == 429]
    assert limited
    assert not any("retry-after" in r.headers for r in limited)
    assert all(r.ok for r in results)
    assert sim.ledger.executions == 6
    assert len({s.prediction_id for s in sim.ledger.submissions}) == 6


# -- 8. retention: 404 from storage ----------------------------------------------------------


async def test_expired_output_404_is_fetched_again_by_id(tmp_path: Path) -> None:
    """Expired media answers 404 (the data-retention page): the batch asks for the
    prediction again (fresh URLs) and downloads once more; nothing is re-paid."""
    seen: list[httpx.Request] = []
    async with simulator(faults=Faults(output_ttl=0.0)) as sim:

        async def heal(request: httpx.Request) -> None:
            if "/outputs/" in request.url.path:
                sim.configure(faults=Faults())  # URLs handed out from now on stay valid

        async with (
            httpx.AsyncClient(event_hooks={"request": [heal]}) as http,
            AsyncSeedream(
                KEY, base_url=sim.base_url, http_client=http, retry=FAST_RETRY, poll=FAST_POLL
            ) as c,
        ):
            (result,) = await c.edit_all(
                [EditItem(key="a", prompt=PROMPT, images=[PNG])], out_dir=tmp_path
            )
    assert result.ok, result.error
    assert sim.ledger.faults["expired_output"] == 1
    assert sim.ledger.executions == 1
    assert [f.name for f in result.files] == ["a.jpg"]
    del seen


# -- 9. sync mode --------------------------------------------------------------------------


async def test_sync_504_with_an_id_falls_back_to_polling() -> None:
    """A sync-mode submit past the server's maximum wait answers 504 naming the prediction,
    which goes on: the client polls it, paid once."""
    async with simulator(faults=Faults(sync_max_wait=0.0)) as sim, connected(sim) as c:
        done = await c.edit(PROMPT, [PNG], completion="sync")
    assert done.done
    assert sim.ledger.faults["sync_timeout"] == 1
    assert sim.ledger.executions == 1


async def test_sync_504_without_an_id_is_ambiguous() -> None:
    """Without an id the 504 leaves the item ambiguous: it may be billed, not re-sent."""
    faults = Faults(sync_max_wait=0.0, sync_timeout_id=False)
    async with simulator(faults=faults) as sim, connected(sim) as c:
        with pytest.raises(AmbiguousSubmission):
            await c.edit(PROMPT, [PNG], completion="sync")
    assert sim.ledger.executions == 1
    assert sim.ledger.requests["submit"] == 1


# -- 11. a prediction's deadline bounds its polls -------------------------------------------


async def test_deadline_bounds_a_trickling_poll() -> None:
    """Against polls trickled at 2 bytes a second, a prediction with a short deadline ends
    at it with DeadlineExceeded, in wait() and in a batch, not after the trickle."""
    hostile = Hostile(trickle=frozenset({"poll"}), trickle_rate=2.0)
    poll = PollPolicy(deadline=0.3).scaled(0.001)
    async with simulator(hostile=hostile) as sim, connected(sim, poll=poll) as c:
        submitted = await c.submit(_request())
        with pytest.raises(DeadlineExceeded):
            await c.wait(submitted.id, deadline=0.3)
        (result,) = await c.edit_all(
            [EditItem(key="a", prompt=PROMPT, images=["http://127.0.0.1:1/uploads/x/a.png"])],
            poll=PollPolicy(deadline=0.3),
        )
    assert isinstance(result.error, DeadlineExceeded)
    assert sim.ledger.executions == 2


# -- compressed answers --------------------------------------------------------------------


@pytest.mark.parametrize("own_http", [True, False], ids=["own-http", "given-http"])
async def test_gzip_compressed_answers_are_read_once(own_http: bool) -> None:
    """A CDN in front of the API gzips its JSON: every answer is read (decoded once, not
    twice), on the client's own HTTP path and through an HTTP client the user gives."""
    shapes = Shapes(output_count="max", compression="gzip")
    async with simulator(shapes=shapes) as sim:
        if own_http:
            client_cm = AsyncSeedream(KEY, base_url=sim.base_url, retry=FAST_RETRY, poll=FAST_POLL)
        else:
            client_cm = connected(sim)
        async with client_cm as client:
            uploaded = await client.upload(PNG)
            results = [
                result
                async for result in client.edit_batch(
                    [EditItem(key="k", prompt=PROMPT, images=[uploaded.download_url])]
                )
            ]
            answer = client.last_response(results[0].prediction_id or "")
    assert [r.status for r in results] == [ResultStatus.SUCCEEDED]
    assert results[0].outputs
    assert sim.ledger.executions == 1
    assert sim.ledger.total_polls >= 1
    # The kept answer is the decoded JSON, and says nothing of the encoding it came in.
    assert answer is not None
    body = answer.json()
    assert body.get("data", body)["status"] == "completed"
    assert "content-encoding" not in answer.headers


async def test_simulator_compresses_only_what_the_client_accepts() -> None:
    path, auth = "/api/v1/model/prediction/nope", {"Authorization": f"Bearer {KEY}"}
    async with (
        simulator(shapes=Shapes(compression="gzip")) as sim,
        httpx.AsyncClient(base_url=sim.base_url) as http,
    ):
        plain = await http.get(path, headers={**auth, "Accept-Encoding": "identity"})
        zipped = await http.get(path, headers={**auth, "Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.json() == plain.json() | {"request_id": zipped.json()["request_id"]}
