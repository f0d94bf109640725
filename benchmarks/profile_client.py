"""Profile one contender under cProfile, the simulator in its own (unprofiled) process.

    python -m benchmarks.profile_client --contender seedream-async --n 400 --concurrency 64 \\
        --time-scale 0.25 --top 5

Starts ``python -m seedream_async.testing`` exactly as the harness does, runs the
contender under cProfile (``benchmarks/_cpu_profile.py``), then prints the ``--top``
functions by own time (tottime) with their call counts, the run's CPU per prediction and
the load average. ``--sort cumulative`` ranks by inclusive time instead. ``--clock cpu``
(the default) times functions by the process's CPU time, so waiting (``epoll``, a busy
machine's run queue) is not counted; ``--clock wall`` is plain ``python -m cProfile``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

from ._harness import CONTENDERS, ROOT
from ._sim import SimProcess
from ._workload import Spec, prepare_images

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_client", description=__doc__
    )
    parser.add_argument("--contender", default="seedream-async", choices=sorted(CONTENDERS))
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--time-scale", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--sort", default="tottime", choices=("tottime", "cumulative"))
    parser.add_argument("--clock", default="cpu", choices=("cpu", "wall"))
    parser.add_argument("--output", type=Path, default=None, help="keep the .prof file here")
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    contender = CONTENDERS[ns.contender]
    with tempfile.TemporaryDirectory(prefix="seedream-profile-") as tmp:
        folder = Path(tmp)
        spec = Spec(n=ns.n, image_dir=str(folder / "images"))
        prepare_images(spec)
        prof = ns.output or folder / "client.prof"
        load = os.getloadavg()
        with SimProcess(seed=ns.seed, time_scale=ns.time_scale, log=folder / "sim.log") as sim:
            profiler = (
                ["-m", "benchmarks._cpu_profile", str(prof)]
                if ns.clock == "cpu"
                else ["-m", "cProfile", "-o", str(prof), "-m"]
            )
            argv_ = [
                sys.executable, *profiler, f"benchmarks.contenders.{contender.module}",
                "--base-url", sim.base_url, "--key", sim.key,
                "--spec", json.dumps(spec.to_json()), "--time-scale", repr(ns.time_scale),
                "--concurrency", str(ns.concurrency), *contender.args,
            ]  # fmt: skip
            proc = subprocess.run(argv_, cwd=ROOT, capture_output=True, text=True, check=False)
            requests = sim.ledger().get("requests")
        line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH-RESULT ")), None)
        if line is None:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        result = json.loads(line.removeprefix("BENCH-RESULT "))
        print(
            f"{ns.contender}: N={ns.n} concurrency={ns.concurrency} time_scale={ns.time_scale}"
            f" clock={ns.clock}"
            f" | {requests} HTTP requests | CPU {1000 * result['cpu_s'] / ns.n:.2f} ms/pred"
            f" (profiled) | makespan {result['makespan_s']:.1f} s"
            f" | load {load[0]:.2f} -> {os.getloadavg()[0]:.2f}"
        )
        text = io.StringIO()
        stats = pstats.Stats(str(prof), stream=text)
        stats.sort_stats(ns.sort).print_stats(ns.top)
        print(text.getvalue().split("ncalls", 1)[-1].join(("ncalls", "")).rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
