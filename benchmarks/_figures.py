"""The arithmetic: the ideal makespan, percentiles, the figures of one contender's run, and
the bound: the best detection lag any poll schedule reaches on the durations the simulator
drew (``seedream_async._policies._frontier``), at the contender's own poll count."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Any

from seedream_async._policies._durations import Durations
from seedream_async._policies._frontier import Frontier, fixed_interval, frontier

from ._workload import Spec, item_specs, max_images_of

__all__ = [
    "CURVE_POLLS",
    "drawn_counts",
    "drawn_frontier",
    "drawn_groups",
    "figures",
    "fixed_point",
    "ideal_makespan",
    "lag_figures",
    "percentile",
]


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


# The poll counts at which the curve is printed (issue 15's table, and 0.5 s polling's).
CURVE_POLLS = (1.6, 2.1, 2.7, 3.5, 4.8, 6.7, 10.4, 17.8)


def _groups(ledger: dict[str, Any], spec: Spec) -> dict[int, list[float]]:
    """The drawn durations (real seconds) per ``max_images``, matched by prompt."""
    by_prompt = {
        prompt: max_images_of(spec, index)
        for index, (_key, prompt, _images) in enumerate(item_specs(spec))
    }
    groups: dict[int, list[float]] = {}
    for record in ledger["submissions"]:
        groups.setdefault(by_prompt.get(record["prompt"], 1), []).append(record["latency"])
    return groups


def drawn_counts(ledger: dict[str, Any], spec: Spec) -> dict[int, int]:
    """How many predictions of each ``max_images`` this run billed."""
    return {m: len(v) for m, v in sorted(_groups(ledger, spec).items())}


def drawn_groups(ledger: dict[str, Any], spec: Spec) -> list[tuple[float, Durations]]:
    """``(count, durations)`` per ``max_images`` of the durations this run drew."""
    return [(len(v), Durations.empirical(v)) for _, v in sorted(_groups(ledger, spec).items())]


def drawn_frontier(ledger: dict[str, Any], spec: Spec) -> Frontier:
    """The best poll/lag trade-off for the durations this run drew, per ``max_images``
    (a poller that knows each item's ``max_images`` may schedule each group apart)."""
    return frontier(drawn_groups(ledger, spec))


def fixed_point(groups: list[tuple[float, Durations]], interval: float) -> tuple[float, float]:
    """(polls per prediction, lag share) of polling every ``interval`` seconds, all groups."""
    total = sum(weight for weight, _ in groups)
    solved = [(weight, fixed_interval(durations, interval)) for weight, durations in groups]
    polls = sum(weight * s.polls for weight, s in solved) / total
    lag = sum(weight * s.lag for weight, s in solved)
    mean = sum(weight * s.mean for weight, s in solved)
    return polls, lag / mean


def lag_figures(ledger: dict[str, Any], spec: Spec) -> dict[str, Any]:
    """Mean detection lag as a share of the mean duration, and the least lag any poll
    schedule could reach on these very durations with as many polls per prediction."""
    latencies = ledger["latencies"]
    lags = ledger["detection_lags"]
    polls = ledger["polls_per_prediction"]
    if not latencies:
        return {"lag_share": None, "best_lag_share": None}
    mean = sum(latencies) / len(latencies)
    curve = drawn_frontier(ledger, spec)
    return {
        "lag_share": (sum(lags) / len(lags)) / mean if lags else None,
        "best_lag_share": curve.best_lag_share(polls) if polls >= 1 else None,
        "mean_duration_s": mean,
    }


def wave_figures(ledger: dict[str, Any], concurrency: int) -> dict[str, Any]:
    """Polls per prediction by wave of submissions (``concurrency`` predictions a wave, in
    submission order), and how much waves 2 and 3 spend over the later ones while the
    first durations are learned: ``early_overspend`` = their polls/pred / later - 1. (Wave
    1 is polled on the prior; the first learned schedule is solved during it.)"""
    polls = ledger.get("polls", {})
    ids = [record["prediction_id"] for record in ledger.get("submissions", [])]
    counts = [polls.get(pid, 0) for pid in ids if pid]
    return {"polls_by_wave": [
        sum(counts[i : i + concurrency]) / len(counts[i : i + concurrency])
        for i in range(0, len(counts), concurrency)
    ], "early_overspend": early_overspend(counts, concurrency)}  # fmt: skip


def early_overspend(counts: Sequence[int], concurrency: int) -> float | None:
    """Polls/pred of waves 2-3 over that of waves 4 on, less 1 (None if too few waves)."""
    early = counts[concurrency : 3 * concurrency]
    later = counts[3 * concurrency :]
    if not early or not later or not sum(later):
        return None
    return (sum(early) / len(early)) / (sum(later) / len(later)) - 1.0
