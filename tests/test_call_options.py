"""Per-call options: ``with_options``, ``extra_headers``, ``edit_all(order="input")``, and
the raw answer behind a prediction (``last_response``)."""

from __future__ import annotations

import anyio
import pytest
from _helpers import FAST_POLL, simulated

from seedream_async import (
    ConfigurationError,
    EditRequest,
    InvalidInput,
    RetryPolicy,
    TransportError,
)
from seedream_async.testing import Faults, make_png

pytestmark = pytest.mark.anyio

URL = "https://x.test/a.png"


def sent(sim: object, endpoint: str, header: str) -> list[str]:
    """The values of ``header`` on the simulator's requests to ``endpoint``."""
    return [h[header] for e, h in sim.ledger.headers if e == endpoint and header in h]  # type: ignore[attr-defined]


async def test_with_options_headers_reach_the_simulator() -> None:
    """Headers given to ``with_options`` arrive on submit and polls; the original sends none."""
    async with simulated() as (sim, client):
        tagged = client.with_options(headers={"X-Tenant": "acme"})
        await tagged.edit("p", [URL])
        assert sent(sim, "submit", "x-tenant") == ["acme"]
        assert sent(sim, "poll", "x-tenant")
        assert set(sent(sim, "poll", "x-tenant")) == {"acme"}
        await client.edit("p2", [URL])
        assert len(sent(sim, "submit", "x-tenant")) == 1


async def test_with_options_shares_pool_and_counters() -> None:
    """The copy shares the HTTP client and the request counters; the original keeps its
    settings; closing the copy does not close the pool."""
    async with simulated() as (_sim, client):
        policy = RetryPolicy(max_attempts=2)
        copy = client.with_options(retry=policy, poll=FAST_POLL)
        assert copy._http is client._http
        assert copy.retry is policy
        assert client.retry is not policy
        await copy.aclose()
        await copy.edit("p", [URL])
        assert client.requests["submit"] == 1
        assert not client._http.is_closed


async def test_extra_headers_per_call() -> None:
    """``extra_headers`` on ``edit`` and on ``edit_batch`` reach uploads, submits and polls."""
    async with simulated() as (sim, client):
        await client.edit("p", [make_png(8, 8)], extra_headers={"X-Trace": "one"})
        assert sent(sim, "upload", "x-trace") == ["one"]
        assert sent(sim, "submit", "x-trace") == ["one"]
        items = [{"key": "a", "prompt": "p", "images": [URL]}]
        [result] = await client.edit_all(items, extra_headers={"X-Trace": "batch"})
        assert result.ok
        assert sent(sim, "submit", "x-trace") == ["one", "batch"]
        assert "batch" in sent(sim, "poll", "x-trace")


async def test_the_key_cannot_be_replaced_by_a_header() -> None:
    """``Authorization`` in per-call headers is refused, before anything is sent."""
    async with simulated() as (sim, client):
        with pytest.raises(ConfigurationError, match="authorization"):
            client.with_options(headers={"Authorization": "Bearer other"})
        assert sum(sim.ledger.requests.values()) == 0


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ({"X-Trace": "a\r\nX-Injected: yes"}, "'X-Trace'.*line break"),
        ({"X-Trace": "a\nb"}, "'X-Trace'.*line break"),
        ({"X-Trace": "a\x00b"}, "'X-Trace'.*NUL"),
        ({"X Trace": "a"}, "'X Trace' is not a valid HTTP header name"),
    ],
)
async def test_a_header_http_cannot_carry_is_refused_before_anything_is_sent(
    headers: dict[str, str], match: str
) -> None:
    """A CR, LF or NUL in a value (header injection) or a name that is not a token is
    refused up front, naming the header, for a submit and a poll alike: it is never an
    HTTP-level failure after the request may have left (a submit would read as
    ambiguous), nor h11's own exception."""
    async with simulated() as (sim, client):
        request = EditRequest(prompt="p", images=[URL])
        with pytest.raises(ConfigurationError, match=match):
            await client.submit(request, extra_headers=headers)
        with pytest.raises(ConfigurationError, match=match):
            await client.get_prediction("pred_1", extra_headers=headers)
        assert sum(sim.ledger.requests.values()) == 0


async def test_with_options_timeout_applies() -> None:
    """A short timeout on the copy ends a poll the simulator holds for 5 s; the original's
    timeout is untouched."""
    slow = Faults(slow=1.0, slow_seconds=5.0, endpoints=frozenset({"poll"}))
    async with simulated(faults=slow) as (_sim, client):
        hasty = client.with_options(timeout=0.05, retry=RetryPolicy(max_attempts=1))
        with anyio.fail_after(4), pytest.raises(TransportError, match="Timeout"):
            await hasty.get_prediction("pred_anything")
        assert client._endpoint.timeout is None


async def test_edit_all_in_input_order_from_an_async_generator() -> None:
    """``order="input"`` sorts by the items' order, even when they finish out of it."""
    keys = [f"k{i:02d}" for i in range(16)][::-1]

    async def items():  # type: ignore[no-untyped-def]
        for key in keys:
            yield {"key": key, "prompt": key, "images": [URL]}

    async with simulated(latency_sigma=1.0) as (_sim, client):
        results = await client.edit_all(items(), order="input", concurrency=8)
        assert [result.key for result in results] == keys
        with pytest.raises(InvalidInput, match="order"):
            await client.edit_all([], order="sorted")  # type: ignore[arg-type]


async def test_last_response_behind_a_prediction() -> None:
    """``last_response`` gives the status, headers and body of the latest answer about a
    prediction: the submit's, then each poll's."""
    async with simulated() as (_sim, client):
        from seedream_async._wire._requests import build_request

        prediction = await client.submit(build_request(prompt="p", images=[URL]))
        raw = client.last_response(prediction)
        assert raw is not None
        assert raw.operation == "submit"
        assert raw.status_code == 200
        assert raw.headers["content-type"].startswith("application/json")
        assert "processing" in raw.text
        done = await client.wait(prediction.id)
        raw = client.last_response(done.id)
        assert raw is not None
        assert raw.operation == "poll"
        assert raw.json()["data"]["status"] == "completed"
        assert client.with_options(timeout=1).last_response(done) is raw
        assert client.last_response("pred_unknown") is None


async def test_with_options_timeout_applies_to_downloads(tmp_path: object) -> None:
    """The copy's timeout also bounds a download the storage host holds for 5 s."""
    slow = Faults(slow=1.0, slow_seconds=5.0, endpoints=frozenset({"output"}))
    async with simulated(faults=slow) as (_sim, client):
        prediction = await client.edit("p", [URL])
        hasty = client.with_options(timeout=0.05, retry=RetryPolicy(max_attempts=1))
        with anyio.fail_after(4), pytest.raises(TransportError, match="Timeout"):
            await hasty.download(prediction.outputs[0], f"{tmp_path}/out")


async def test_last_response_never_holds_the_key() -> None:
    """A server echoing the key in a failed prediction's error: the kept body has it masked."""
    from seedream_async import PredictionFailed
    from seedream_async._wire._requests import build_request
    from seedream_async.testing import Hostile

    async with simulated(hostile=Hostile(echo_key=True), faults=Faults(prediction_failure=1.0)) as (
        sim,
        client,
    ):
        prediction = await client.submit(build_request(prompt="p", images=[URL]))
        with pytest.raises(PredictionFailed):
            await client.wait(prediction.id)
        raw = client.last_response(prediction)
        assert raw is not None
        assert "request sent Authorization" in raw.text  # the echo is there ...
        assert sim.api_key
        assert sim.api_key not in raw.text  # ... without the key
