"""OpenTelemetry for seedream-async (``pip install 'seedream-async[otel]'``)::

    from seedream_async.otel import OpenTelemetryObserver

    async with AsyncSeedream(observers=[OpenTelemetryObserver()]) as client:
        ...

A span per batch item, with an event per stage (upload, submit, each poll, download,
each journal write) and the item's key, prediction id, request id, cost and attempts;
metrics for items in flight, polls, 429s, retries, refusals, spend and stage latencies.
It uses the global tracer and meter providers unless given others.
"""

from __future__ import annotations

from ._observer import OpenTelemetryObserver

__all__ = ["OpenTelemetryObserver"]
