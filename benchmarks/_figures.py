"""The arithmetic: the ideal makespan, percentiles, and the figures of one contender's run."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Any

__all__ = ["figures", "ideal_makespan", "percentile"]


def ideal_makespan(durations: Sequence[float], slots: int) -> float:
    """Greedy list scheduling (Graham, 1966) with zero overhead: each job, in order, starts
    on the earliest-free of ``slots`` slots; the makespan is when the last slot frees."""
    if not durations:
        return 0.0
    free = [0.0] * min(slots, len(durations))
    for duration in durations:
        heapq.heappush(free, heapq.heappop(free) + duration)
    return max(free)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def figures(
    result: dict[str, Any], ledger: dict[str, Any], *, n_target: int, concurrency: int
) -> dict[str, Any]:
    """One row: what the contender measured plus what the simulator saw.

    ``scale`` extrapolates the run's makespan and request count linearly to ``n_target``
    items when the contender ran fewer (the sequential loop); per-prediction figures are
    not extrapolated.
    """
    n_run = int(result["n"])
    scale = n_target / n_run if n_run else 1.0
    requests = {k: v for k, v in ledger["requests"].items() if k != "ledger"}
    total_requests = sum(requests.values())
    uploads = ledger["uploads"]
    distinct = len({upload["sha256"] for upload in uploads})
    lags = ledger["detection_lags"]
    executions = int(ledger["executions"])
    p50, p99 = percentile(lags, 0.50), percentile(lags, 0.99)
    return {
        "n_run": n_run,
        "extrapolated": n_run != n_target,
        "makespan_s": result["makespan_s"] * scale,
        "makespan_run_s": result["makespan_s"],
        "ideal_run_s": ideal_makespan(ledger["latencies"], concurrency),
        "latencies": ledger["latencies"],
        "polls_per_prediction": ledger["polls_per_prediction"],
        "http_requests": round(total_requests * scale),
        "http_requests_run": total_requests,
        "requests_by_endpoint": requests,
        "rate_limited_429": ledger["faults"].get("rps_limit", 0) + ledger["faults"].get("429", 0),
        "uploads": len(uploads),
        "distinct_images_uploaded": distinct,
        "uploads_per_distinct_image": len(uploads) / distinct if distinct else None,
        "executions": executions,
        "duplicate_submissions": ledger["duplicate_submissions"],
        "cpu_s": result["cpu_s"],
        "cpu_ms_per_prediction": 1000 * result["cpu_s"] / n_run if n_run else None,
        "peak_rss_mb": result["maxrss_kb"] / 1024,
        "detection_lag_p50_ms": None if p50 is None else 1000 * p50,
        "detection_lag_p99_ms": None if p99 is None else 1000 * p99,
        "succeeded": result["succeeded"],
        "failed": result["failed"],
        "errors": result.get("errors", {}),
    }
