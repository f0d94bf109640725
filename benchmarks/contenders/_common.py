"""What every contender shares: its arguments, its meter and its one line of output."""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .._workload import Spec, from_json

__all__ = ["Meter", "Tally", "parse_args", "report", "spec_of"]


def parse_args(
    description: str, extra: argparse.ArgumentParser | None = None
) -> argparse.Namespace:
    """The common flags: where the simulator is, the workload, and the time scale."""
    parser = extra or argparse.ArgumentParser(description=description)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--spec", required=True, help="the workload, as JSON (see Spec)")
    parser.add_argument("--time-scale", type=float, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    return parser.parse_args()


def spec_of(ns: argparse.Namespace) -> Spec:
    return from_json(json.loads(ns.spec))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """Wall clock and this process's CPU time between :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self.makespan = 0.0
        self.cpu = 0.0
        self.baseline_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def start(self) -> None:
        self.baseline_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self._wall, self._cpu = time.perf_counter(), _cpu()

    def stop(self) -> None:
        self.makespan = time.perf_counter() - self._wall
        self.cpu = _cpu() - self._cpu


@dataclass
class Tally:
    """Items that ended well or badly, with the kinds of error seen."""

    succeeded: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def fail(self, error: BaseException | str) -> None:
        self.failed += 1
        self.errors[error if isinstance(error, str) else type(error).__name__] += 1


def report(meter: Meter, tally: Tally, *, n: int, **extra: Any) -> None:
    """Print the one line the harness parses."""
    payload = {
        "n": n,
        "makespan_s": meter.makespan,
        "cpu_s": meter.cpu,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "baseline_rss_kb": meter.baseline_rss_kb,
        "succeeded": tally.succeeded,
        "failed": tally.failed,
        "errors": dict(tally.errors),
        **extra,
    }
    print("BENCH-RESULT " + json.dumps(payload), flush=True)
