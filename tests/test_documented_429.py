"""Issue 18, item 7: Atlas Cloud's media endpoints send 429 without ``Retry-After`` (its
errors page, https://atlascloud.ai/docs/en/errors, "Rate limits"), and the simulator does
the same by default. The batch's adaptive concurrency limit must still react: the limit
drops, every item finishes, each is paid once. Over real HTTP, on asyncio and trio.
"""

from __future__ import annotations

import httpx
import pytest

from seedream_async import AsyncSeedream, BatchProgress, EditItem
from seedream_async.testing import Faults, make_png, serve
from tests._helpers import FAST_POLL, FAST_RETRY

pytestmark = pytest.mark.anyio

PROMPT = "Put it on a marble pedestal"


async def test_adaptive_limit_drops_on_429_without_retry_after() -> None:
    """With at most 2 predictions running server-side, 8 submitted at once get 429s that
    carry no Retry-After; BatchProgress.concurrency_limit falls below 8, and all 10 items
    succeed with exactly 10 billed predictions, one per key."""
    seen: list[httpx.Response] = []
    limits: list[int] = []

    async def record(response: httpx.Response) -> None:
        seen.append(response)

    def progress(p: BatchProgress) -> None:
        limits.append(p.concurrency_limit)

    # Predictions of ~170 ms (time_scale 0.02), so eight submitted together find two running.
    async with (
        serve(faults=Faults(max_in_flight=2), time_scale=0.02, seed=5) as sim,
        httpx.AsyncClient(event_hooks={"response": [record]}) as http,
        AsyncSeedream(
            sim.api_key, base_url=sim.base_url, http_client=http, retry=FAST_RETRY, poll=FAST_POLL
        ) as client,
    ):
        image = make_png(32, 32)
        items = [EditItem(key=f"k{n}", prompt=PROMPT, images=[image]) for n in range(10)]
        results = await client.edit_all(items, concurrency=8, on_progress=progress)
    refused = [r for r in seen if r.status_code == 429]
    assert refused, "the simulator's in-flight limit never refused a submit"
    assert not any("retry-after" in r.headers for r in refused)
    assert min(limit for limit in limits if limit) < 8
    assert all(result.ok for result in results)
    assert sorted(result.key for result in results) == sorted(item.key for item in items)
    assert sim.ledger.executions == 10
    assert len({s.prediction_id for s in sim.ledger.submissions}) == 10
