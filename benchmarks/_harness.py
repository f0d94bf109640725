"""The orchestrator: a fresh simulator process and a fresh contender process per run.

For each workload and contender it starts ``python -m seedream_async.testing`` with the
same seed and time scale (so every contender meets the same drawn latencies, in
submission order), runs the contender as ``python -m benchmarks.contenders.<name>``,
reads the contender's own line (makespan, CPU, peak RSS) and the simulator's ledger
(requests, polls, uploads, latencies, detection lags), and stops the simulator.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._figures import (
    CURVE_POLLS,
    drawn_counts,
    drawn_frontier,
    drawn_groups,
    figures,
    fixed_point,
    lag_figures,
    wave_figures,
)
from ._sim import SimProcess
from ._workload import Spec, prepare_images

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = (
    "targets (reported, not asserted): makespan <= 1.05x ideal | <= 1.5 polls/prediction"
    " | <= 1 ms client CPU/prediction | flat memory in N"
)


@dataclass(frozen=True)
class Contender:
    module: str
    args: tuple[str, ...] = ()
    sequential: bool = False
    sim_args: tuple[str, ...] = ()


CONTENDERS = {
    "naive": Contender("naive_requests", sequential=True),
    "gather-0.1": Contender("gather_httpx", ("--interval", "0.1")),
    "gather-0.5": Contender("gather_httpx", ("--interval", "0.5")),
    "gather-1": Contender("gather_httpx", ("--interval", "1.0")),
    "gather-2": Contender("gather_httpx", ("--interval", "2.0")),
    "seedream-async": Contender("seedream_default"),
    "seedream-thrifty": Contender("seedream_default", ("--preset", "thrifty")),
    "seedream-fast": Contender("seedream_default", ("--preset", "fast", "--poll-rate-scale", "3")),
    "seedream-sync": Contender("seedream_default", ("--completion", "sync")),
    "seedream-webhook": Contender("seedream_default", ("--completion", "webhook")),
    "seedream-sync-drops": Contender(
        "seedream_default",
        ("--completion", "sync"),
        sim_args=("--drop", "0.01", "--fault-endpoints", "submit", "--processed-on-error", "1"),
    ),
}
DEFAULT_CONTENDERS = (
    "gather-2", "seedream-thrifty", "gather-1", "seedream-async", "gather-0.5", "seedream-fast",
    "seedream-sync", "seedream-sync-drops",
)  # fmt: skip
# Each preset and the fixed poller it should beat on both axes.
PAIRS = {
    "seedream-thrifty": "gather-2",
    "seedream-async": "gather-1",
    "seedream-fast": "gather-0.5",
}
# The fixed pollers, by interval in API seconds: the curve prints their theoretical points.
FIXED = {"gather-0.5": 0.5, "gather-1": 1.0, "gather-2": 2.0}
# CPU per prediction is reported as a ratio to this contender's.
CPU_BASELINE = "gather-1"
WORKLOADS = ("default", "mixed", "shared", "ratelimit")
# The ``mixed`` workload's max_images cycle: durations x1, x1.5 and x2 in the simulator.
MIXED_MAX_IMAGES = (1, 2, 3)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark seedream-async against what users write, on the simulator.",
    )
    parser.add_argument("--n", type=int, default=None, help="items per workload (2000)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--time-scale", type=float, default=0.25,
        help="simulator latency factor; client poll intervals are scaled by it too (0.25: "
        "slow enough that neither the client nor the simulator is CPU-bound on 2 cores)",
    )  # fmt: skip
    parser.add_argument(
        "--check-scale", type=float, default=0.5,
        help="rerun --check-contenders at this time scale to show the figures do not move "
        "with it (so the headline scale is not CPU-bound); 0 skips",
    )  # fmt: skip
    parser.add_argument("--check-contenders", default="gather-0.5,seedream-async")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--naive-n", type=int, default=None, help="items the sequential loop runs (20)"
    )
    parser.add_argument("--rps", type=float, default=400.0, help="ratelimit workload: req/s")
    parser.add_argument("--shared-fraction", type=float, default=0.3)
    parser.add_argument("--shared-images", type=int, default=8)
    parser.add_argument("--workloads", default="default", help=f"of {','.join(WORKLOADS)}")
    parser.add_argument(
        "--contenders", default=",".join(DEFAULT_CONTENDERS), help=f"of {','.join(CONTENDERS)}"
    )
    parser.add_argument(
        "--memory-n", default=None,
        help="seedream-async manifest sizes for the memory figure (10000,100000; '' skips)",
    )  # fmt: skip
    parser.add_argument("--memory-time-scale", type=float, default=0.0001)
    parser.add_argument(
        "--upload-repeats", type=int, default=None, help="5; 0 skips the upload figure"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="per contender run")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument(
        "--quick", action="store_true",
        help="smoke run: 200 items, 5 naive, memory at 1,000 vs 10,000, 2 upload repeats",
    )  # fmt: skip
    return parser


def batch_args(
    sim: SimProcess, spec: Spec, *, time_scale: float, concurrency: int, extra: Sequence[str] = ()
) -> list[str]:
    """A batch contender's command line: the simulator, the workload, the scale."""
    return [
        "--base-url", sim.base_url, "--key", sim.key,
        "--spec", json.dumps(spec.to_json()),
        "--time-scale", repr(time_scale),
        "--concurrency", str(concurrency), *extra,
    ]  # fmt: skip


def _run_contender(module: str, args: list[str], *, timeout: float, log: Path) -> dict[str, Any]:
    argv = [sys.executable, "-m", f"benchmarks.contenders.{module}", *args]
    with log.open("a") as stderr:
        proc = subprocess.run(
            argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            return dict(json.loads(line.removeprefix("BENCH-RESULT ")))
    raise RuntimeError(f"{module} exited {proc.returncode} without a result (see {log})")


def _status(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fmt(value: Any, spec: str = ".2f") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return format(value, spec)


def _pct(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(100 * value, spec)


def _table(rows: list[dict[str, Any]], ns: argparse.Namespace, time_scale: float) -> str:
    header = (
        "workload", "contender", "N run", "makespan s", "x ideal", "polls/pred", "lag %",
        "bound %", "gap pp", "early +%", "HTTP reqs", "429s", "uploads/img", "CPU ms/pred",
        "CPU/gather",
        "peak RSS MB", "lag p50 ms", "lag p99 ms", "ok/failed/ambig",
    )  # fmt: skip
    lines = [header]
    for row in rows:
        if "error" in row:
            lines.append((row["workload"], row["contender"], "error: " + row["error"][:60]))
            continue
        star = "*" if row["extrapolated"] else ""
        gap = None
        if row["lag_share"] is not None and row["best_lag_share"] is not None:
            gap = row["lag_share"] - row["best_lag_share"]
        lines.append(
            (
                row["workload"],
                row["contender"],
                str(row["n_run"]),
                _fmt(row["makespan_s"], ".1f") + star,
                _fmt(row["x_ideal"]) + star,
                _fmt(row["polls_per_prediction"]),
                _pct(row["lag_share"]),
                _pct(row["best_lag_share"]),
                _pct(gap),
                _pct(row.get("early_overspend")),
                str(row["http_requests"]) + star,
                str(row["rate_limited_429"]),
                _fmt(row["uploads_per_distinct_image"]),
                _fmt(row["cpu_ms_per_prediction"]),
                _fmt(row.get("cpu_vs_baseline")),
                _fmt(row["peak_rss_mb"], ".0f"),
                _fmt(row["detection_lag_p50_ms"], ".0f"),
                _fmt(row["detection_lag_p99_ms"], ".0f"),
                f"{row['succeeded']}/{row['failed']}/{row['ambiguous']}",
            )
        )
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(len(header))]
    text = [
        f"N={ns.n} concurrency={ns.concurrency} time_scale={time_scale:g} seed={ns.seed} "
        f"(median prediction {8.3 * time_scale * 1000:.0f} ms real)",
        TARGETS,
    ]
    for index, line in enumerate(lines):
        text.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if index == 0:
            text.append("  ".join("-" * width for width in widths))
    text.append(
        "lag %: mean detection lag / mean prediction duration (ledger). bound %: the least "
        "mean lag any poll schedule reaches with that many polls per prediction on the "
        "durations this run drew, per max_images (DP, seedream_async._policies._frontier); "
        "gap pp = lag - bound. early +%: polls/pred of submission waves 2-3 (concurrency "
        "each, while the first durations are learned) over waves 4 on, less 1. "
        "CPU/gather: CPU per prediction / gather-1's. "
        "* extrapolated linearly from N run to N (sequential loop). Lags are real ms."
    )
    return "\n".join(text)


def _curve_text(curves: dict[str, dict[str, Any]]) -> str:
    text = []
    for workload, curve in curves.items():
        text.append(
            f"\nthe bound, {workload} workload: best mean lag (% of the mean duration) at each "
            f"poll count, from the {curve['n']} durations drawn (groups by max_images: "
            f"{curve['groups']})"
        )
        text.append("  polls/pred  " + "  ".join(f"{p:>5g}" for p in CURVE_POLLS))
        text.append("  best lag %  " + "  ".join(f"{_pct(v):>5}" for v in curve["best_lag_share"]))
        for name, (polls, lag) in curve["fixed"].items():
            text.append(
                f"  every {name} (theory on these draws): {_pct(lag)}% lag at {polls:.1f} polls"
            )
    return "\n".join(text)


def _pairs_text(rows: list[dict[str, Any]]) -> str:
    """Each preset against the fixed poller it should beat, on makespan and on polls."""
    by_key = {(r["workload"], r["contender"]): r for r in rows if "error" not in r}
    text = []
    for (workload, name), row in by_key.items():
        other = by_key.get((workload, PAIRS.get(name, "")))
        if other is None:
            continue
        if not text:
            text.append("\neach preset against its fixed poller (x ideal | polls/pred | lag %):")
        wins = (
            row["x_ideal"] < other["x_ideal"]
            and row["polls_per_prediction"] < other["polls_per_prediction"]
        )
        text.append(
            f"  {workload}: {name} {row['x_ideal']:.3f} | {row['polls_per_prediction']:.2f} | "
            f"{_pct(row['lag_share'])}  vs  {other['contender']} {other['x_ideal']:.3f} | "
            f"{other['polls_per_prediction']:.2f} | {_pct(other['lag_share'])}  -> "
            + ("beats it on both" if wins else "does NOT beat it on both")
        )
    return "\n".join(text)


def _sim_flags(ns: argparse.Namespace, workload: str, contender: Contender) -> list[str]:
    flags = ["--rps", repr(ns.rps)] if workload == "ratelimit" else []
    return [*flags, *contender.sim_args]


def _workload_runs(
    ns: argparse.Namespace,
    names: list[str],
    contenders: list[str],
    folder: Path,
    logs: Path,
    *,
    time_scale: float,
    curves: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for workload in names:
        fraction = ns.shared_fraction if workload == "shared" else 0.0
        max_images = MIXED_MAX_IMAGES if workload == "mixed" else (1,)
        image_dir = folder / f"images-{workload}"
        prepare_images(
            Spec(n=max(ns.n, ns.naive_n), image_dir=str(image_dir), shared_fraction=fraction,
                 shared_count=ns.shared_images)
        )  # fmt: skip
        workload_rows = []
        for name in contenders:
            contender = CONTENDERS[name]
            n_run = min(ns.naive_n, ns.n) if contender.sequential else ns.n
            spec = Spec(
                n=n_run, image_dir=str(image_dir), shared_fraction=fraction,
                shared_count=ns.shared_images, max_images=max_images,
            )  # fmt: skip
            _status(f"[{workload} ts={time_scale:g}] {name}: {n_run} items ...")
            row: dict[str, Any] = {"workload": workload, "contender": name}
            row["load_before"] = os.getloadavg()
            try:
                with SimProcess(
                    seed=ns.seed, time_scale=time_scale,
                    extra=_sim_flags(ns, workload, contender), log=logs / "sim.log",
                ) as sim:  # fmt: skip
                    sim_cpu = sim.cpu_seconds()
                    result = _run_contender(
                        contender.module,
                        batch_args(
                            sim, spec, time_scale=time_scale, concurrency=ns.concurrency,
                            extra=contender.args,
                        ),
                        timeout=ns.timeout,
                        log=logs / f"{name}.log",
                    )  # fmt: skip
                    after = sim.cpu_seconds()
                    ledger = sim.ledger()
                row |= figures(result, ledger, n_target=ns.n, concurrency=ns.concurrency)
                row |= lag_figures(ledger, spec)
                row |= wave_figures(ledger, ns.concurrency)
                row["ambiguous"] = int(result.get("statuses", {}).get("ambiguous", 0))
                row["client_busy"] = result["cpu_s"] / result["makespan_s"]
                row["sim_busy"] = (
                    None if sim_cpu is None or after is None
                    else (after - sim_cpu) / result["makespan_s"]
                )  # fmt: skip
                row["contender_extra"] = {
                    k: v
                    for k, v in result.items()
                    if k in ("client_requests", "interval_s", "statuses", "poll_rate")
                }
                if curves is not None and workload not in curves and not row["extrapolated"]:
                    curves[workload] = _curve(ledger, spec, time_scale)
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as err:
                row["error"] = str(err)
            row["load_after"] = os.getloadavg()
            _status(
                f"[{workload} ts={time_scale:g}] {name}: done "
                f"{_fmt(row.get('makespan_run_s'), '.1f')} s, load {row['load_after'][0]:.2f}"
            )
            workload_rows.append(row)
        full = [r for r in workload_rows if "error" not in r and not r["extrapolated"]]
        ideal = full[0]["ideal_run_s"] if full else None
        baseline = next((r for r in full if r["contender"] == CPU_BASELINE), None)
        for row in workload_rows:
            if "error" in row:
                continue
            own = None if row["extrapolated"] else row["ideal_run_s"]
            row["ideal_s"] = own if own is not None else ideal
            row["x_ideal"] = row["makespan_s"] / row["ideal_s"] if row["ideal_s"] else None
            if baseline is not None:
                row["cpu_vs_baseline"] = (
                    row["cpu_ms_per_prediction"] / baseline["cpu_ms_per_prediction"]
                )
            row.pop("latencies")
        rows.extend(workload_rows)
    return rows


def _curve(ledger: dict[str, Any], spec: Spec, time_scale: float) -> dict[str, Any]:
    """The bound for the durations one run drew: the frontier at the curve's poll counts
    and each fixed poller's theoretical point (its interval scaled like the contender's)."""
    curve = drawn_frontier(ledger, spec)
    groups = drawn_groups(ledger, spec)
    return {
        "n": len(ledger["latencies"]),
        "groups": {str(m): count for m, count in drawn_counts(ledger, spec).items()},
        "polls": list(CURVE_POLLS),
        "best_lag_share": [curve.best_lag_share(p) for p in CURVE_POLLS],
        "frontier": [[s.polls, s.lag_share] for s in curve.schedules],
        "fixed": {
            f"{interval:g} s": fixed_point(groups, interval * time_scale)
            for interval in FIXED.values()
        },
    }


def _check_text(
    rows: list[dict[str, Any]], checks: list[dict[str, Any]], ns: argparse.Namespace
) -> str:
    """Headline scale vs the check scale, contender by contender."""
    if not checks:
        return ""
    text = [
        f"\ntime scale check: the same runs at time_scale={ns.time_scale:g} and "
        f"{ns.check_scale:g} (twice as slow); if the first were CPU-bound, x ideal and lag "
        "would grow there. busy = CPU seconds / makespan of the process (1.0 = one core).",
        "  workload   contender          x ideal       polls/pred    lag %         client busy"
        "   sim busy",
    ]
    by_key = {(r["workload"], r["contender"]): r for r in rows if "error" not in r}
    for check in checks:
        if "error" in check:
            continue
        head = by_key.get((check["workload"], check["contender"]))
        if head is None:
            continue
        pairs = [
            (_fmt(head["x_ideal"]), _fmt(check["x_ideal"])),
            (_fmt(head["polls_per_prediction"]), _fmt(check["polls_per_prediction"])),
            (_pct(head["lag_share"]), _pct(check["lag_share"])),
            (_fmt(head["client_busy"]), _fmt(check["client_busy"])),
            (_fmt(head.get("sim_busy")), _fmt(check.get("sim_busy"))),
        ]
        cells = "".join(f"{a + ' / ' + b:<14}" for a, b in pairs)
        text.append(f"  {check['workload']:<10} {check['contender']:<18} {cells}".rstrip())
    return "\n".join(text)


def _memory_runs(ns: argparse.Namespace, sizes: list[int], folder: Path, logs: Path) -> list[Any]:
    runs = []
    image_dir = folder / "images-memory"
    for n in sizes:
        spec = Spec(n=n, image_dir=str(image_dir), shared_fraction=1.0, shared_count=8)
        prepare_images(Spec(n=8, image_dir=str(image_dir), shared_fraction=1.0, shared_count=8))
        _status(f"[memory] seedream-async: {n} items from a generator ...")
        try:
            with SimProcess(
                seed=ns.seed, time_scale=ns.memory_time_scale, log=logs / "sim.log"
            ) as sim:
                result = _run_contender(
                    "seedream_default",
                    batch_args(
                        sim, spec, time_scale=ns.memory_time_scale, concurrency=ns.concurrency
                    ),
                    timeout=ns.timeout,
                    log=logs / "memory.log",
                )  # fmt: skip
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as err:
            runs.append({"n": n, "error": str(err)})
            continue
        runs.append(
            {
                "n": n,
                "peak_rss_mb": result["maxrss_kb"] / 1024,
                "rss_before_batch_mb": result["baseline_rss_kb"] / 1024,
                "growth_mb": (result["maxrss_kb"] - result["baseline_rss_kb"]) / 1024,
                "makespan_s": result["makespan_s"],
                "cpu_ms_per_prediction": 1000 * result["cpu_s"] / n,
                "succeeded": result["succeeded"],
                "failed": result["failed"],
                "errors": result["errors"],
            }
        )
    return runs


def _upload_run(ns: argparse.Namespace, logs: Path) -> dict[str, Any]:
    _status("[upload] 8 MB upload throughput ...")
    try:
        with SimProcess(seed=ns.seed, time_scale=ns.time_scale, log=logs / "sim.log") as sim:
            result = _run_contender(
                "upload_throughput",
                ["--base-url", sim.base_url, "--key", sim.key, "--repeats", str(ns.upload_repeats)],
                timeout=ns.timeout,
                log=logs / "upload.log",
            )
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as err:
        return {"error": str(err)}
    summary = result["summary"]
    library = summary["library"]["median_mb_s"]
    return {
        "size_bytes": result["size_bytes"],
        "summary": summary,
        "library_vs_httpx": library / summary["httpx"]["median_mb_s"],
        "library_vs_socket": library / summary["socket"]["median_mb_s"],
    }


def _extras_text(memory: list[Any], upload: dict[str, Any] | None, ns: argparse.Namespace) -> str:
    text = []
    if memory:
        text.append(
            f"\nseedream-async memory, generator manifest, 8 shared images, "
            f"time_scale={ns.memory_time_scale:g}:"
        )
        for run in memory:
            if "error" in run:
                text.append(f"  N={run['n']:>7}: error: {run['error'][:80]}")
                continue
            text.append(
                f"  N={run['n']:>7}: peak RSS {run['peak_rss_mb']:.1f} MB "
                f"(before the batch {run['rss_before_batch_mb']:.1f} MB, growth "
                f"{run['growth_mb']:.1f} MB), {run['makespan_s']:.1f} s, "
                f"CPU {run['cpu_ms_per_prediction']:.2f} ms/pred, "
                f"{run['succeeded']} ok / {run['failed']} failed"
            )
        good = [run for run in memory if "error" not in run]
        if len(good) >= 2:
            small, large = good[0], good[-1]
            text.append(
                f"  peak RSS ratio N={large['n']} / N={small['n']}: "
                f"{large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x "
                f"(growth over the batch: {small['growth_mb']:.1f} -> {large['growth_mb']:.1f} MB)"
            )
    if upload:
        if "error" in upload:
            text.append(f"\nupload throughput: error: {upload['error'][:80]}")
        else:
            summary = upload["summary"]
            text.append(
                f"\nupload of one {upload['size_bytes'] / 1e6:.0f} MB file (median of "
                f"{ns.upload_repeats}): client.upload {summary['library']['median_mb_s']:.0f} "
                f"MB/s, httpx in-memory POST {summary['httpx']['median_mb_s']:.0f} MB/s, raw "
                f"loopback socket {summary['socket']['median_mb_s']:.0f} MB/s; "
                f"library/httpx = {upload['library_vs_httpx']:.2f}, "
                f"library/socket = {upload['library_vs_socket']:.3f}"
            )
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    # Flags given explicitly win over the preset.
    preset = (200, 5, "1000,10000", 2) if ns.quick else (2000, 20, "10000,100000", 5)
    for name, value in zip(("n", "naive_n", "memory_n", "upload_repeats"), preset, strict=True):
        if getattr(ns, name) is None:
            setattr(ns, name, value)
    names = [name for name in ns.workloads.split(",") if name]
    contenders = [name for name in ns.contenders.split(",") if name]
    check = [name for name in ns.check_contenders.split(",") if name] if ns.check_scale else []
    unknown = (set(names) - set(WORKLOADS)) | (set(contenders + check) - set(CONTENDERS))
    if unknown:
        _parser().error(f"unknown workloads or contenders: {sorted(unknown)}")
    sizes = [int(size) for size in ns.memory_n.split(",") if size]
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.time()
    curves: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="seedream-bench-") as tmp:
        folder = Path(tmp)
        rows = _workload_runs(
            ns, names, contenders, folder, logs, time_scale=ns.time_scale, curves=curves
        )
        _write(ns, started, rows, curves, [], [], None)  # partial, in case the rest is cut short
        _status(_table(rows, ns, ns.time_scale) + _pairs_text(rows) + _curve_text(curves))
        checks = (
            _workload_runs(ns, names, check, folder, logs, time_scale=ns.check_scale)
            if check
            else []
        )
        memory = _memory_runs(ns, sizes, folder, logs)
    upload = _upload_run(ns, logs) if ns.upload_repeats > 0 else None
    print(
        _table(rows, ns, ns.time_scale)
        + _pairs_text(rows)
        + _curve_text(curves)
        + _check_text(rows, checks, ns)
        + _extras_text(memory, upload, ns)
    )
    _write(ns, started, rows, curves, checks, memory, upload)
    print(f"\nwrote {ns.output}", file=sys.stderr)
    return 0


def _write(
    ns: argparse.Namespace,
    started: float,
    rows: list[dict[str, Any]],
    curves: dict[str, dict[str, Any]],
    checks: list[dict[str, Any]],
    memory: list[Any],
    upload: dict[str, Any] | None,
) -> None:
    ns.output.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(ns).items()},
        "scaling": {
            "simulator": f"--time-scale {ns.time_scale:g} (prediction latency)",
            "gather": "poll interval x time_scale",
            "naive": "poll sleep (1 s) x time_scale",
            "seedream-async": (
                "PollPolicy preset .scaled(time_scale) (typical, max_interval...) except "
                "deadline (900 s, unscaled); poll_rate = 50 / time_scale (x3 for the fast preset)"
            ),
        },
        "targets": TARGETS,
        "started": started,
        "elapsed_s": time.time() - started,
        "load_average_end": os.getloadavg(),
        "rows": rows,
        "bound": curves,
        "time_scale_check": checks,
        "memory": memory,
        "upload": upload,
    }
    ns.output.write_text(json.dumps(payload, indent=2))
