"""Webhook completion over real HTTP: the simulator signs and POSTs, our receiver verifies,
records and wakes the waiting ``edit``. Every simulator fault; forged, replayed and
wrong-key deliveries change nothing; an ambiguous submit is recovered without paying twice."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import anyio
import httpx
import pytest
from _helpers import FAST_POLL, FAST_RETRY

from seedream_async import (
    AsyncSeedream,
    Delivery,
    InvalidInput,
    MemorySink,
    PredictionFailed,
    RecorderSink,
    Webhooks,
)
from seedream_async.testing import Faults, Simulator, WebhookFaults, serve

pytestmark = pytest.mark.anyio

URL = "https://cdn.example.com/ref.png"
# The fallback poll starts at 4 x typical: far after a delivery (~10 ms here) on any machine.
QUIET = replace(FAST_POLL, typical=0.5)
# For faults that lose the delivery: the fallback must come soon.
SOON = replace(FAST_POLL, typical=0.02)
FAST_RETRIES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8)


class FlakySink(MemorySink):
    """Refuses the first ``failures`` records (the receiver's store is down)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def record(self, delivery: Delivery) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("disk unavailable")
        await super().record(delivery)


@asynccontextmanager
async def wired(
    *, poll: Any = QUIET, sink: MemorySink | None = None, **faults: Any
) -> AsyncIterator[tuple[Simulator, AsyncSeedream, MemorySink, str]]:
    """A simulator with webhook faults, a client, and the client's receiver listening."""
    webhook_faults = WebhookFaults(retry_delays=FAST_RETRIES, delay_seconds=0.05, **faults)
    async with (
        serve(time_scale=0.001, seed=3, webhooks=webhook_faults) as sim,
        AsyncSeedream(
            api_key=sim.api_key, base_url=sim.base_url, retry=FAST_RETRY, poll=poll
        ) as client,
    ):
        sink = sink or MemorySink()
        client.webhooks = Webhooks(client.webhooks.app.keys, sink=sink)
        async with client.webhooks.listen() as listening:
            yield sim, client, sink, listening.url


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds (the simulator's attempt log has no event to await)."""
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.005)


async def edit(client: AsyncSeedream, url: str, n: int = 0) -> Any:
    return await client.edit(f"p{n}", [URL], completion="webhook", webhook_url=url)


async def test_edit_completes_from_the_webhook_without_a_poll() -> None:
    """The delivery wakes ``edit``: done, paid once, zero polls, one delivery recorded."""
    async with wired() as (sim, client, sink, url):
        done = await edit(client, url)
    assert done.done
    assert done.outputs
    assert sim.ledger.executions == 1
    assert client.requests["poll"] == 0
    assert [d.prediction_id for d in sink.deliveries] == [done.id]
    assert sink.deliveries[0].target is not None
    assert sink.deliveries[0].target.attempt == 1


async def test_a_failed_prediction_is_delivered_as_a_failure() -> None:
    """An ERROR delivery ends ``edit`` with PredictionFailed, without polling."""
    failing = Faults(prediction_failure=1.0)
    async with (
        serve(time_scale=0.001, seed=3, faults=failing) as sim,
        AsyncSeedream(
            api_key=sim.api_key, base_url=sim.base_url, retry=FAST_RETRY, poll=QUIET
        ) as client,
        client.webhooks.listen() as listening,
    ):
        with pytest.raises(PredictionFailed):
            await edit(client, listening.url)
        assert client.requests["poll"] == 0


async def test_webhook_url_goes_with_webhook_completion() -> None:
    """One without the other is refused before anything is paid."""
    async with wired() as (sim, client, _, url):
        with pytest.raises(InvalidInput):
            await client.edit("p", [URL], completion="webhook")
        with pytest.raises(InvalidInput):
            await client.edit("p", [URL], webhook_url=url)
    assert sim.ledger.executions == 0


async def test_lost_delivery_costs_time_not_the_item() -> None:
    """A lost delivery: the late fallback poll finishes the item, paid once."""
    async with wired(poll=SOON, lost=1.0) as (sim, client, sink, url):
        done = await edit(client, url)
    assert done.done
    assert sim.ledger.executions == 1
    assert client.requests["poll"] >= 1
    assert sink.deliveries == []


async def test_duplicated_delivery_is_recorded_once() -> None:
    """The same delivery twice: both answered 2xx, recorded once."""
    async with wired(duplicated=1.0) as (sim, client, sink, url):
        done = await edit(client, url)
        await eventually(lambda: len(sim.webhooks.attempts) >= 2)
    assert [a.status for a in sim.webhooks.attempts] == [200, 200]
    assert len(sink.deliveries) == 1
    assert sink.deliveries[0].prediction_id == done.id


@pytest.mark.parametrize("fault", ["delayed", "reordered"])
async def test_delayed_and_reordered_deliveries_each_reach_their_item(fault: str) -> None:
    """Several edits at once, deliveries late or out of order: each item gets its own."""
    async with wired(**{fault: 1.0}) as (sim, client, sink, url):
        results: dict[int, Any] = {}

        async def one(n: int) -> None:
            results[n] = await edit(client, url, n)

        async with anyio.create_task_group() as group:
            for n in range(5):
                group.start_soon(one, n)
    assert sim.ledger.executions == 5
    assert len({r.id for r in results.values()}) == 5
    assert {d.prediction_id for d in sink.deliveries} == {r.id for r in results.values()}
    assert all(d.prediction_id == d.prediction.id for d in sink.deliveries)


@pytest.mark.parametrize(
    ("fault", "reason"), [("bad_signature", "bad_signature"), ("stale_timestamp", "stale")]
)
async def test_forged_or_stale_delivery_changes_nothing(fault: str, reason: str) -> None:
    """A bad signature or a stale timestamp is refused 4xx and not recorded; the sender does
    not retry a 4xx, so the fallback poll finishes the item."""
    async with wired(poll=SOON, **{fault: 1.0}) as (sim, client, sink, url):
        done = await edit(client, url)
        # The fallback poll may finish the item first: keep the receiver up until the
        # delivery has had its answer (else it meets a receiver shutting down).
        with anyio.fail_after(10):
            while not sim.webhooks.attempts:  # noqa: ASYNC110
                await anyio.sleep(0.005)
    assert done.done
    assert sim.ledger.executions == 1
    assert [(a.fault, a.status) for a in sim.webhooks.attempts] == [(fault, 401)]
    assert sink.deliveries == []
    assert client.webhooks.app.rejected == {reason: 1}


async def test_receiver_store_down_is_retried_until_recorded() -> None:
    """The sink refuses twice: 503, 503, then recorded; the item completes from it."""
    async with wired(sink=FlakySink(2)) as (sim, client, sink, url):
        done = await edit(client, url)
    assert [a.status for a in sim.webhooks.attempts] == [503, 503, 200]
    assert [d.prediction_id for d in sink.deliveries] == [done.id]
    assert client.requests["poll"] == 0


async def test_receiver_unreachable_then_up_gets_the_delivery() -> None:
    """Nothing listens at first: the sender retries until the receiver is up."""
    webhook_faults = WebhookFaults(retry_delays=FAST_RETRIES)
    async with (
        serve(time_scale=0.001, seed=3, webhooks=webhook_faults) as sim,
        AsyncSeedream(
            api_key=sim.api_key, base_url=sim.base_url, retry=FAST_RETRY, poll=QUIET
        ) as client,
    ):
        async with client.webhooks.listen() as listening:
            port = listening.port  # a port nobody listens on once this block exits
        waiting: dict[str, Any] = {}

        async def submit() -> None:
            waiting["done"] = await edit(client, f"http://127.0.0.1:{port}/")

        async with anyio.create_task_group() as group:
            group.start_soon(submit)
            await eventually(lambda: bool(sim.webhooks.attempts))
            async with client.webhooks.listen(port=port):
                await eventually(lambda: "done" in waiting)
    statuses = [a.status for a in sim.webhooks.attempts]
    assert statuses[0] is None
    assert statuses[-1] == 200
    assert sim.ledger.executions == 1


async def test_ambiguous_submit_is_recovered_from_its_webhook() -> None:
    """The submit's answer is dropped after billing: no id came back, but the delivery
    names the attempt, so ``edit`` returns the result, paid once, without a poll."""
    faults = Faults(drop=1.0, processed_on_error=1.0, endpoints=frozenset({"submit"}))
    async with wired() as (sim, client, sink, url):
        sim.configure(faults=faults)
        done = await edit(client, url)
    assert done.done
    assert done.outputs
    assert sim.ledger.executions == 1
    assert client.requests["poll"] == 0
    assert sink.deliveries[0].prediction_id == done.id


async def _post(url: str, headers: dict[str, str], body: bytes) -> int:
    async with httpx.AsyncClient(trust_env=False) as http:
        return (await http.post(url, content=body, headers=headers)).status_code


async def test_forged_replayed_and_wrong_key_posts_change_nothing() -> None:
    """Forged, replayed, wrong-key and wrong-attempt deliveries are refused 4xx; nothing
    is recorded."""
    async with wired() as (sim, client, sink, url):
        done = await edit(client, url)
        genuine = sink.deliveries[0]
        sent = {
            "content-type": "application/json",
            "x-atlascloud-webhook-id": "wh_forged",
            "x-atlascloud-webhook-event": "image.task.terminal",
            "x-atlascloud-webhook-key-id": "sim-ed25519-1",
        }
        keys = sim.webhooks._keyring()
        stamp = str(int(time.time()))
        body = json.loads(genuine.raw)
        body["payload"]["outputs"] = ["https://evil.example/x.png"]
        tampered = json.dumps(body).encode()
        target_url = url + "?sdt=not.a-token"
        forged = keys.sign(stamp.encode() + b"." + tampered, forged=True)
        replay_stamp = str(int(time.time()) - 3600)
        replayed = keys.sign(replay_stamp.encode() + b"." + genuine.raw)
        cases = [
            # Signed by the simulator's real key, but for an attempt we never made.
            (
                {**sent, "x-atlascloud-webhook-timestamp": stamp},
                keys.sign(stamp.encode() + b"." + tampered),
                tampered,
            ),
            ({**sent, "x-atlascloud-webhook-timestamp": stamp}, forged, tampered),
            ({**sent, "x-atlascloud-webhook-timestamp": replay_stamp}, replayed, genuine.raw),
            (
                {
                    **sent,
                    "x-atlascloud-webhook-timestamp": stamp,
                    "x-atlascloud-webhook-key-id": "k",
                },
                keys.sign(stamp.encode() + b"." + tampered),
                tampered,
            ),
        ]
        statuses = []
        for headers, signature, payload in cases:
            headers["x-atlascloud-webhook-signature-ed25519"] = signature
            statuses.append(await _post(target_url, headers, payload))
    assert statuses == [403, 401, 401, 401]
    assert sink.deliveries == [genuine]
    assert client.webhooks.app.rejected == {
        "bad_token": 1,
        "bad_signature": 1,
        "stale": 1,
        "unknown_key": 1,
    }
    assert done.outputs != ["https://evil.example/x.png"]


async def test_key_rotation_is_picked_up_from_the_key_set() -> None:
    """The simulator rotates to a new key id: the receiver re-fetches the JWKS once and
    verifies the new deliveries; a made-up key id right after does not re-fetch again."""
    async with wired() as (sim, client, sink, url):
        await edit(client, url, 0)
        sim.configure(webhooks=replace(sim.config.webhooks, key_id="sim-ed25519-2"))
        await edit(client, url, 1)
        assert client.requests["poll"] == 0
        stamp = str(int(time.time()))
        made_up = {
            "x-atlascloud-webhook-id": "wh_x",
            "x-atlascloud-webhook-timestamp": stamp,
            "x-atlascloud-webhook-key-id": "made-up",
            "x-atlascloud-webhook-signature-ed25519": "A" * 86,
        }
        assert await _post(url, made_up, b"{}") == 401
        jwks_requests = sim.ledger.requests["jwks"]
    assert [d.prediction.done for d in sink.deliveries] == [True, True]
    assert jwks_requests == 2


class FakeJournal:
    """Stands in for the journal's "delivery recorded" transition (issue 20, part 2)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], tuple[str, str, bool]] = {}

    async def record_delivery(
        self, *, key: str, attempt: int, prediction_id: str, webhook_id: str, prediction: Any
    ) -> None:
        self.rows.setdefault((key, attempt), (prediction_id, webhook_id, prediction.done))


async def test_a_recorder_sink_maps_each_delivery_to_its_attempt() -> None:
    """Through :class:`RecorderSink`, a delivery reaches the journal keyed by the attempt
    its token names, with the prediction id, even when the submit's answer was lost."""
    journal = FakeJournal()
    faults = Faults(drop=1.0, processed_on_error=1.0, endpoints=frozenset({"submit"}))
    async with wired() as (sim, client, _, _unused):
        client.webhooks = Webhooks(client.webhooks.app.keys, sink=RecorderSink(journal))
        async with client.webhooks.listen() as listening:
            sim.configure(faults=faults)
            done = await edit(client, listening.url)
    ((key, attempt),) = journal.rows
    assert key.startswith("edit-")
    assert attempt == 1
    assert journal.rows[key, attempt][0] == done.id
    assert journal.rows[key, attempt][2] is True
    assert sim.ledger.executions == 1
