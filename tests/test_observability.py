"""Observability: the plain callbacks, and OpenTelemetry spans and metrics read from the
SDK's in-memory exporters, against the simulator (with faults)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _helpers import simulated

from seedream_async import PRICE_PER_EXECUTION, BatchResult
from seedream_async.testing import Faults

pytestmark = pytest.mark.anyio

URL = "https://x.test/a.png"


def items(count: int, prefix: str = "k") -> list[dict[str, Any]]:
    return [{"key": f"{prefix}{i}", "prompt": f"p{i}", "images": [URL]} for i in range(count)]


async def test_on_result_and_on_retry() -> None:
    """``on_result`` sees every result once; ``on_retry`` sees every retried 5xx poll."""
    results: list[BatchResult] = []
    retries: list[tuple[str, int, float, BaseException]] = []
    faults = Faults(server_error=0.3, endpoints=frozenset({"poll"}))
    options = {"on_result": results.append, "on_retry": lambda *a: retries.append(a)}
    async with simulated(faults=faults, client_options=options) as (sim, client):
        done = await client.edit_all(items(6), order="input")
    assert sorted(r.key for r in results) == sorted(r.key for r in done)
    assert all(r.ok for r in done)
    errors = sum(n for kind, n in sim.ledger.faults.items() if kind.startswith("5"))
    assert errors > 0
    assert len(retries) == errors
    assert all(what.startswith("poll of ") and attempt >= 1 for what, attempt, _, _ in retries)


async def test_on_refused_sees_each_refused_submit() -> None:
    """``on_refused`` is called once per 429 on a batch's submits (not billed, requeued)."""
    refused: list[float] = []
    faults = Faults(rate_limit=0.4, retry_after=0.001, endpoints=frozenset({"submit"}))
    options = {"on_refused": lambda err, wait: refused.append(wait)}
    async with simulated(faults=faults, client_options=options) as (sim, client):
        done = await client.edit_all(items(8))
    assert all(r.ok for r in done)
    assert sim.ledger.faults["429"] > 0
    assert len(refused) == sim.ledger.faults["429"]


async def test_an_observer_that_raises_is_ignored() -> None:
    """A callback that raises never sinks the batch."""

    def broken(result: BatchResult) -> None:
        raise RuntimeError("observer bug")

    async with simulated(client_options={"on_result": broken}) as (_sim, client):
        assert all(r.ok for r in await client.edit_all(items(2)))


@pytest.fixture
def otel() -> Any:
    sdk = pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from seedream_async.otel import OpenTelemetryObserver

    del sdk
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    observer = OpenTelemetryObserver(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    return observer, spans, reader


def metric_values(reader: Any) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = list(metric.data.data_points)
    return found


def total(points: list[Any]) -> float:
    return sum(point.value for point in points)


async def test_a_span_per_item_with_stage_events(otel: Any, tmp_path: Path) -> None:
    """Each item has one span with its key, prediction id, cost and attempts, and events for
    upload, submit, each poll, download and the journal; metrics add up to the ledger."""
    observer, spans, reader = otel
    async with simulated(client_options={"observers": [observer]}) as (sim, client):
        done = await client.edit_all(
            items(4), journal=tmp_path / "j.sqlite", out_dir=tmp_path / "out"
        )
        request_ids = {r.key: client.last_response(r.prediction_id).request_id for r in done}
    assert all(r.ok for r in done)
    finished = [s for s in spans.get_finished_spans() if s.name == "seedream.item"]
    assert sorted(s.attributes["seedream.key"] for s in finished) == ["k0", "k1", "k2", "k3"]
    by_id = {r.prediction_id: r for r in done}
    for span in finished:
        attrs = span.attributes
        result = by_id[attrs["seedream.prediction_id"]]
        assert attrs["seedream.key"] == result.key
        assert attrs["seedream.cost"] == pytest.approx(PRICE_PER_EXECUTION)
        assert attrs["seedream.attempts"] == 1 + attrs["seedream.polls"]
        assert attrs["seedream.polls"] == sim.ledger.polls[result.prediction_id]
        assert attrs.get("seedream.request_id") == request_ids[result.key]
        events = [e.name for e in span.events]
        for stage in ("uploading", "waiting", "running", "submitted", "poll", "downloading"):
            assert stage in events, (stage, events)
        assert "journal.submitted" in events
        assert "journal.delivered" in events
        assert events.index("submitted") < events.index("poll") < events.index("downloading")
    metrics = metric_values(reader)
    assert total(metrics["seedream.items.in_flight"]) == 0
    assert total(metrics["seedream.polls"]) == sim.ledger.total_polls
    assert total(metrics["seedream.spend"]) == pytest.approx(sim.ledger.cost)
    stages = {p.attributes["stage"] for p in metrics["seedream.stage.duration"]}
    assert {"running", "download", "total"} <= stages
    operations = {p.attributes["operation"] for p in metrics["seedream.request.duration"]}
    assert {"submit", "poll", "download"} <= operations
    assert "seedream.rate_limited" not in metrics or total(metrics["seedream.rate_limited"]) == 0


async def test_429s_and_failed_items(otel: Any) -> None:
    """Every 429 the simulator sent is counted; a failed prediction's span has status ERROR."""
    from opentelemetry.trace import StatusCode

    observer, spans, reader = otel
    faults = Faults(rate_limit=0.3, retry_after=0.001, prediction_failure=0.5)
    async with simulated(faults=faults, seed=11, client_options={"observers": [observer]}) as (
        sim,
        client,
    ):
        done = await client.edit_all(items(8))
    metrics = metric_values(reader)
    assert sim.ledger.faults["429"] > 0
    assert total(metrics["seedream.rate_limited"]) == sim.ledger.faults["429"]
    failed = {r.key for r in done if not r.ok}
    assert failed
    for span in spans.get_finished_spans():
        errored = span.status.status_code is StatusCode.ERROR
        assert errored == (span.attributes["seedream.key"] in failed)
