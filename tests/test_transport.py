"""The client's own transport: httpx's, split into small pools, against the simulator."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import httpx
import pytest
from _helpers import simulated

from seedream_async import EditRequest
from seedream_async._network._pools import ShardedTransport
from seedream_async.testing import make_png, serve

pytestmark = pytest.mark.anyio


async def test_more_requests_than_one_pool_holds_all_arrive_and_free_their_slots() -> None:
    """Pools fill first-fit (two open responses in the first pool, the third in the
    second); 40 requests at once over 3 pools of 2 all get their answers; every slot is
    free once bodies are closed (read to the end, or closed unread)."""
    async with serve(time_scale=0.001, seed=3) as sim:
        transport = ShardedTransport(max_connections=6, per_pool=2)
        path = "/api/v1/model/prediction/nope"
        headers = {"Authorization": f"Bearer {sim.api_key}"}
        async with httpx.AsyncClient(transport=transport, base_url=sim.base_url) as http:
            async with AsyncExitStack() as held:
                for expected in ([1, 0, 0], [2, 0, 0], [2, 1, 0]):
                    await held.enter_async_context(http.stream("GET", path, headers=headers))
                    assert transport._busy == expected
            assert transport._busy == [0, 0, 0]

            async def one(n: int) -> None:
                if n % 2:
                    response = await http.get(path, headers=headers)
                    assert response.status_code in (400, 404)
                else:
                    async with http.stream("GET", path, headers=headers) as response:
                        assert response.status_code in (400, 404)

            async with anyio.create_task_group() as group:
                for n in range(40):
                    group.start_soon(one, n)
            assert transport._busy == [0, 0, 0]
        assert len(transport._pools) == 3


async def test_the_client_runs_a_batch_through_its_own_pools() -> None:
    """A client made without an http_client sends uploads, submits and polls through a
    ShardedTransport, and leaves no slot counted busy."""
    async with simulated() as (sim, client):
        assert isinstance(client._http._transport, ShardedTransport)
        uploaded = await client.upload(make_png(8, 8))
        prediction = await client.submit(EditRequest(prompt="x", images=[uploaded.download_url]))
        done = await client.wait(prediction.id)
        assert done.done
        assert sum(client._http._transport._busy) == 0
    assert sim.ledger.executions == 1


def test_the_pools_split_max_connections() -> None:
    """ceil(max_connections / per_pool) pools, never more connections than asked for."""
    assert len(ShardedTransport(max_connections=128)._pools) == 64
    assert len(ShardedTransport(max_connections=3, per_pool=8)._pools) == 1
    with pytest.raises(ValueError, match="positive"):
        ShardedTransport(max_connections=0)
