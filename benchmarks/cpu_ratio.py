"""Client CPU per prediction against gather-1's, measured in alternating pairs.

    python -m benchmarks.cpu_ratio [--pairs 8] [--n 640] [--concurrency 64]
        [--time-scale 0.25] [--contenders seedream-async,seedream-webhook] [--output FILE]

The main harness runs each contender once, one after the other, so the machine's speed
drifting between two runs moves their ratio: on this shared VM gather-1 alone has cost
15.2 to 25.4 ms a prediction from one run to the next, and a single run's ratio has moved
by up to +-0.08 around its median. Here each pair runs gather-1 and every contender back
to back (the order flipped every other pair, so a steady drift weighs on both sides
alike), each in its own process against a fresh simulator in another, on the default
workload. It prints every pair's ratios, then each contender's median ratio, its range
and the median of its CPU per prediction. Nothing is asserted; the figure is CPU time,
not wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._harness import CONTENDERS, CPU_BASELINE, _run_contender, batch_args
from ._sim import SimProcess
from ._workload import Spec, prepare_images


def _one(name: str, spec: Spec, ns: argparse.Namespace, logs: Path) -> float:
    """CPU ms per prediction of one run of contender ``name``."""
    contender = CONTENDERS[name]
    with SimProcess(
        seed=ns.seed, time_scale=ns.time_scale, extra=list(contender.sim_args),
        log=logs / "sim.log",
    ) as sim:  # fmt: skip
        result = _run_contender(
            contender.module,
            batch_args(
                sim, spec, time_scale=ns.time_scale, concurrency=ns.concurrency,
                extra=contender.args,
            ),
            timeout=ns.timeout,
            log=logs / f"{name}.log",
        )  # fmt: skip
    if result["failed"]:
        raise RuntimeError(f"{name}: {result['failed']} items failed (see {logs})")
    return 1000 * float(result["cpu_s"]) / spec.n


def _pairs(ns: argparse.Namespace, names: list[str], folder: Path) -> list[dict[str, float]]:
    spec = Spec(n=ns.n, image_dir=str(folder / "images"))
    prepare_images(spec)
    runs: list[dict[str, float]] = []
    for index in range(ns.pairs):
        order = [CPU_BASELINE, *names]
        if index % 2:
            order.reverse()
        cpu = {name: _one(name, spec, ns, folder) for name in order}
        runs.append(cpu)
        ratios = "  ".join(f"{n} {cpu[n] / cpu[CPU_BASELINE]:.3f}" for n in names)
        print(
            f"pair {index + 1}: {CPU_BASELINE} {cpu[CPU_BASELINE]:.2f} ms/pred  {ratios}"
            f"  (load {os.getloadavg()[0]:.2f})",
            flush=True,
        )
    return runs


def _summary(runs: list[dict[str, float]], names: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in [CPU_BASELINE, *names]:
        ratios = [run[name] / run[CPU_BASELINE] for run in runs]
        summary[name] = {
            "cpu_ms_per_prediction": [run[name] for run in runs],
            "median_cpu_ms_per_prediction": statistics.median(run[name] for run in runs),
            "ratios": ratios,
            "median_ratio": statistics.median(ratios),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--n", type=int, default=640)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--time-scale", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--contenders", default="seedream-async")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--output", type=Path)
    ns = parser.parse_args()
    names = [n for n in ns.contenders.split(",") if n and n != CPU_BASELINE]
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        sys.exit(f"unknown contenders: {', '.join(unknown)} (known: {', '.join(CONTENDERS)})")
    print(f"load before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        runs = _pairs(ns, names, Path(tmp))
    summary = _summary(runs, names)
    for name in names:
        figures = summary[name]
        print(
            f"{name}: median {figures['median_ratio']:.3f}x {CPU_BASELINE}'s CPU "
            f"(range {min(figures['ratios']):.3f}-{max(figures['ratios']):.3f}, "
            f"{len(runs)} pairs); median {figures['median_cpu_ms_per_prediction']:.2f} "
            f"ms/pred against {summary[CPU_BASELINE]['median_cpu_ms_per_prediction']:.2f}"
        )
    print(f"load after: {os.getloadavg()}")
    if ns.output is not None:
        payload = {"args": {k: str(v) for k, v in vars(ns).items()}, "runs": runs} | summary
        ns.output.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {ns.output}")


if __name__ == "__main__":
    main()
