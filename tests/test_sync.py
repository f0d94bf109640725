"""Sync-mode completion: the submit's answer is the finished prediction (no polls); a
non-final answer falls back to polling; a connection lost during the wait is ambiguous."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest
from _helpers import FAST_POLL, FAST_RETRY, simulated

from seedream_async import (
    AsyncSeedream,
    BatchOptions,
    Completion,
    EditItem,
    InvalidInput,
    ResultStatus,
)
from seedream_async.testing import Faults, serve

pytestmark = pytest.mark.anyio

URL = "https://cdn.example.com/ref.png"


def items(count: int) -> list[EditItem]:
    return [EditItem(key=f"k{n}", prompt=f"p{n}", images=[URL]) for n in range(count)]


class _IgnoresSyncMode(httpx.AsyncHTTPTransport):
    """An API that ignores ``enable_sync_mode``: the flag is dropped on the way in."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/generateImage"):
            body = json.loads(await request.aread())
            assert body.pop("enable_sync_mode") is True  # the client did ask
            request = httpx.Request(
                request.method,
                request.url,
                headers={k: v for k, v in request.headers.items() if k != "content-length"},
                json=body,
            )
        return await super().handle_async_request(request)


async def test_sync_batch_takes_answers_without_polling() -> None:
    """With ``completion="sync"`` every item succeeds with zero polls, paid once each."""
    async with simulated() as (sim, client):
        results = await client.edit_all(items(12), concurrency=4, completion="sync")
    assert [r.status for r in results] == [ResultStatus.SUCCEEDED] * 12
    assert all(r.outputs for r in results)
    assert sim.ledger.total_polls == 0
    assert sim.ledger.executions == 12


async def test_sync_answer_that_is_not_final_falls_back_to_polling() -> None:
    """If the API ignores the flag and answers "processing", the item is polled to the end."""
    async with simulated() as (sim, _):
        http = httpx.AsyncClient(transport=_IgnoresSyncMode(), timeout=10)
        async with (
            http,
            AsyncSeedream(
                sim.api_key, base_url=sim.base_url, http_client=http, poll=FAST_POLL,
                retry=FAST_RETRY,
            ) as client,
        ):  # fmt: skip
            results = await client.edit_all(items(6), concurrency=3, completion="sync")
    assert [r.status for r in results] == [ResultStatus.SUCCEEDED] * 6
    assert sim.ledger.total_polls >= 6
    assert sim.ledger.executions == 6


async def test_a_connection_lost_during_the_wait_is_ambiguous_never_resubmitted() -> None:
    """A sync submit dropped mid-wait was billed: the item is ambiguous and not sent again."""
    faults = Faults(drop=1.0, processed_on_error=1.0, endpoints=frozenset({"submit"}))
    async with simulated(faults=faults) as (sim, client):
        results = await client.edit_all(items(4), concurrency=2, completion="sync")
    assert [r.status for r in results] == [ResultStatus.AMBIGUOUS] * 4
    assert sim.ledger.executions == 4
    assert sim.ledger.duplicate_submissions == 0


async def test_sync_wait_outlasts_the_client_read_timeout() -> None:
    """A sync submit may wait longer than the client's read timeout (up to the poll
    deadline): its answer is not cut off as a timeout."""
    async with serve(time_scale=0.02) as sim:  # ~170 ms predictions
        async with AsyncSeedream(
            sim.api_key, base_url=sim.base_url, timeout=0.05,
            poll=replace(FAST_POLL, deadline=30.0), retry=FAST_RETRY,
        ) as client:  # fmt: skip
            done = await client.edit("p", [URL], completion=Completion.SYNC)
        assert done.done
        assert sim.ledger.total_polls == 0


async def test_single_edit_in_sync_mode() -> None:
    """``edit(completion="sync")`` returns the finished prediction without a poll."""
    async with simulated() as (sim, client):
        done = await client.edit("p", [URL], completion="sync", max_images=2)
    assert done.done
    assert len(done.outputs) == sim.ledger.submissions[0].outputs  # the model decides: 1..2
    assert sim.ledger.total_polls == 0


def test_unknown_completion_is_refused() -> None:
    """A completion other than poll or sync is refused up front, naming the choices."""
    with pytest.raises(InvalidInput, match="'poll', 'sync'"):
        BatchOptions(completion="push")
    assert BatchOptions(completion="sync").completion is Completion.SYNC
