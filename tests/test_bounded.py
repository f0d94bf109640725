"""Bounded reads against the simulator's hostile server: a size cap and an overall deadline."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from seedream_async._base._constants import DEFAULT_MODEL
from seedream_async._base._exceptions import MalformedResponse
from seedream_async._network._bounded import bounded, read_capped, same_origin
from seedream_async.testing import Hostile, serve

pytestmark = pytest.mark.anyio

SUBMIT = "/api/v1/model/generateImage"
BODY: dict[str, Any] = {
    "model": DEFAULT_MODEL,
    "prompt": "p",
    "images": ["http://127.0.0.1:1/uploads/x/a.png"],
}


async def test_read_capped_refuses_an_oversized_body() -> None:
    """A body over the cap is refused by its Content-Length, before it is read."""
    hostile = Hostile(oversized=frozenset({"submit"}), oversized_bytes=2_000_000)
    async with serve(hostile=hostile, time_scale=0.001) as sim:
        headers = {"Authorization": f"Bearer {sim.api_key}"}
        async with httpx.AsyncClient(base_url=sim.base_url, headers=headers) as http:
            request = http.build_request("POST", SUBMIT, json=BODY)
            response = await http.send(request, stream=True)
            with pytest.raises(MalformedResponse, match="larger than the 1,048,576-byte cap"):
                await read_capped(response, limit=1024 * 1024, what="submit")
            assert response.is_closed
            response = await http.send(http.build_request("POST", SUBMIT, json=BODY), stream=True)
            body = await read_capped(response, limit=3_000_000, what="submit")
            assert len(body) >= 2_000_000


async def test_bounded_ends_a_trickled_answer() -> None:
    """A trickling server cannot hold a request past its overall deadline."""
    hostile = Hostile(trickle=frozenset({"submit"}), trickle_rate=10)
    async with serve(hostile=hostile, time_scale=0.001) as sim:
        headers = {"Authorization": f"Bearer {sim.api_key}"}
        async with httpx.AsyncClient(base_url=sim.base_url, headers=headers) as http:
            request = http.build_request("POST", SUBMIT, json=BODY)

            async def exchange() -> bytes:
                async with bounded(request, 0.3):
                    response = await http.send(request, stream=True)
                    return await read_capped(response, limit=1024 * 1024, what="submit")

            with pytest.raises(httpx.ReadTimeout, match="overall request deadline"):
                await exchange()
            # ~150 bytes at 10 B/s needs ~15 s: the deadline, not the body, ended it.
            assert sim.ledger.executions == 1
        with anyio.fail_after(5):
            async with bounded(request, None):
                pass


def test_same_origin() -> None:
    """Origins compare scheme, host and port, with default ports filled in."""
    url = httpx.URL
    assert same_origin(url("https://a.example/x"), url("https://a.example:443/y?z"))
    assert not same_origin(url("http://127.0.0.1:80/x"), url("http://127.0.0.1:81/x"))
    assert not same_origin(url("https://a.example/"), url("http://a.example/"))
    assert not same_origin(url("https://a.example/"), url("https://b.example/"))
