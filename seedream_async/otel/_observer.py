"""The OpenTelemetry observer: spans and metrics from the library's :class:`Observer` calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, Status, StatusCode

from .._base._observe import Observer
from .._base._version import __version__

__all__ = ["OpenTelemetryObserver"]

_SCOPE = "seedream_async"
# BatchResult.timings fields reported as the stage-latency histogram's ``stage``.
_STAGES = ("upload", "queued", "running", "download", "total")


@dataclass
class _Item:
    span: Span
    prediction_id: str | None = None
    request_id: str | None = None
    answers: int = 0
    polls: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class OpenTelemetryObserver(Observer):
    """Spans and metrics for every batch item and request; pass it in ``observers=``.

    Span ``seedream.item`` per item, events named after the stages (``uploading``,
    ``waiting``, ``running``, ``submitted``, ``poll``, ``downloading``, ``journal.<write>``),
    attributes ``seedream.key``, ``seedream.prediction_id``, ``seedream.request_id`` (of
    the last answer about its prediction), ``seedream.cost`` (USD), ``seedream.attempts``
    (API answers about its prediction: the submit's and each poll's), ``seedream.polls``,
    ``seedream.status``. A span whose item did not succeed has status ERROR.

    Metrics: ``seedream.items.in_flight`` (up-down counter), ``seedream.requests``
    (counter by ``operation`` and ``http.response.status_code``), ``seedream.polls``,
    ``seedream.rate_limited`` (429 answers), ``seedream.retries``, ``seedream.refused``,
    ``seedream.spend`` (USD), ``seedream.request.duration`` (s, by ``operation``),
    ``seedream.stage.duration`` (s, by ``stage``: upload, queued, running, download, total)
    and ``seedream.journal.duration`` (s, by ``operation``).

    Args:
        tracer_provider: where spans go; the global one when None.
        meter_provider: where metrics go; the global one when None.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
        self._in_flight = meter.create_up_down_counter(
            "seedream.items.in_flight", unit="{item}", description="Batch items started, not ended"
        )
        self._requests = meter.create_counter("seedream.requests", unit="{request}")
        self._polls = meter.create_counter("seedream.polls", unit="{request}")
        self._limited = meter.create_counter(
            "seedream.rate_limited", unit="{response}", description="HTTP 429 answers"
        )
        self._retries = meter.create_counter("seedream.retries", unit="{retry}")
        self._refused = meter.create_counter("seedream.refused", unit="{submit}")
        self._spend = meter.create_counter("seedream.spend", unit="USD")
        self._request_time = meter.create_histogram("seedream.request.duration", unit="s")
        self._stage_time = meter.create_histogram("seedream.stage.duration", unit="s")
        self._journal_time = meter.create_histogram("seedream.journal.duration", unit="s")
        self._items: dict[str, _Item] = {}
        self._by_prediction: dict[str, _Item] = {}
        # Submit answers come before the engine names their item: held until it does.
        self._submitted: dict[str, str | None] = {}

    def item_started(self, key: str) -> None:
        span = self._tracer.start_span("seedream.item", attributes={"seedream.key": key})
        self._items[key] = _Item(span)
        self._in_flight.add(1)

    def item_stage(self, key: str, stage: str, prediction_id: str | None) -> None:
        item = self._items.get(key)
        if item is None:
            return
        attributes = {}
        if prediction_id is not None:
            attributes["seedream.prediction_id"] = prediction_id
            item.prediction_id = prediction_id
            self._by_prediction[prediction_id] = item
            if prediction_id in self._submitted:
                item.answers += 1
                item.request_id = self._submitted.pop(prediction_id) or item.request_id
        item.span.add_event(stage, attributes)

    def answered(
        self, operation: str, prediction_id: str, status: str, request_id: str | None
    ) -> None:
        item = self._by_prediction.get(prediction_id)
        if item is None:
            if operation == "submit" and len(self._submitted) < 10_000:
                self._submitted[prediction_id] = request_id
            return
        item.answers += 1
        item.request_id = request_id or item.request_id
        if operation == "poll":
            item.polls += 1
            event = {"seedream.status": str(status)}
            if request_id:
                event["seedream.request_id"] = request_id
            item.span.add_event("poll", event)

    def journal(self, operation: str, key: str | None, seconds: float) -> None:
        self._journal_time.record(seconds, {"operation": operation})
        item = self._items.get(key) if key is not None else None
        if item is not None:
            item.span.add_event(f"journal.{operation}")

    def item_ended(self, result: Any) -> None:
        self._in_flight.add(-1)
        self._spend.add(float(result.cost))
        for stage in _STAGES:
            seconds = getattr(result.timings, stage, None)
            if seconds is not None:
                self._stage_time.record(seconds, {"stage": stage})
        item = self._items.pop(result.key, None)
        if item is None:
            return
        if item.prediction_id is not None:
            self._by_prediction.pop(item.prediction_id, None)
        span = item.span
        prediction_id = result.prediction_id or item.prediction_id
        if prediction_id:
            span.set_attribute("seedream.prediction_id", prediction_id)
        if item.request_id:
            span.set_attribute("seedream.request_id", item.request_id)
        span.set_attribute("seedream.status", str(result.status))
        span.set_attribute("seedream.cost", float(result.cost))
        span.set_attribute("seedream.attempts", item.answers)
        span.set_attribute("seedream.polls", item.polls)
        if not result.ok:
            span.set_status(Status(StatusCode.ERROR, result.error_message or str(result.status)))
        span.end()

    def attempt(
        self, operation: str, seconds: float, status: int | None, error: BaseException | None
    ) -> None:
        attributes: dict[str, Any] = {"operation": operation}
        if status is not None:
            attributes["http.response.status_code"] = status
        elif error is not None:
            attributes["error.type"] = type(error).__name__
        self._requests.add(1, attributes)
        self._request_time.record(seconds, {"operation": operation})
        if operation == "poll":
            self._polls.add(1)
        if status == 429:
            self._limited.add(1, {"operation": operation})

    def retry(self, what: str, attempt: int, delay: float, error: BaseException) -> None:
        self._retries.add(1, {"error.type": type(error).__name__})

    def refused(self, error: BaseException, wait: float) -> None:
        self._refused.add(1)
