"""CPU charged per event-loop wake-up on this machine, against the same loop kept busy.

    python -m benchmarks.wake_cost [--seconds 2] [--backend asyncio|trio]

A loop that sleeps ``d`` seconds between wake-ups does no work of its own, yet the kernel
charges the process CPU time for each sleep and wake (the context switch, the timer, and
on a virtual machine the vCPU's halt and resume). This prints, for several ``d``, the
wake-ups per second, the CPU time per wake-up and the share of a core, and as the
baseline the CPU of one loop iteration with no sleep (``sleep(0)``), in the same run.

Why it matters for the client's figures: a batch's CPU per prediction counts every wake
of its event loop (a poll's timer, each answer's arrival), so on a machine where a wake
costs 100+ microseconds, the number of wake-ups per prediction weighs as much as the
Python run per request. The poll scheduler therefore starts polls that fall due within a
few milliseconds of each other in one wake (their answers then arrive together too).
"""

from __future__ import annotations

import argparse
import resource
import time

import anyio

__all__ = ["main"]

_SLEEPS = (0.0005, 0.002, 0.01, 0.05)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _per_wake(seconds: float, sleep: float) -> tuple[float, float, float]:
    """(wake-ups per second, CPU seconds per wake-up, share of a core)."""
    wakes, start_cpu, start = 0, _cpu(), time.monotonic()
    while time.monotonic() - start < seconds:
        await anyio.sleep(sleep)
        wakes += 1
    elapsed, cpu = time.monotonic() - start, _cpu() - start_cpu
    return wakes / elapsed, cpu / wakes, cpu / elapsed


async def _busy_iteration(n: int = 20_000) -> float:
    """CPU seconds of one loop iteration that never sleeps (a checkpoint)."""
    start = _cpu()
    for _ in range(n):
        await anyio.sleep(0)
    return (_cpu() - start) / n


async def _run(seconds: float) -> None:
    busy = await _busy_iteration()
    print(f"loop iteration without sleeping: {1e6 * busy:.1f} us CPU")
    for sleep in _SLEEPS:
        rate, per_wake, share = await _per_wake(seconds, sleep)
        print(
            f"sleep {1000 * sleep:g} ms: {rate:6.0f} wake-ups/s | {1e6 * per_wake:6.1f} us CPU "
            f"per wake-up ({per_wake / busy:.0f}x an iteration) | {100 * share:.2f}% of a core"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wake_cost", description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="per sleep length")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    ns = parser.parse_args()
    anyio.run(_run, ns.seconds, backend=ns.backend)


if __name__ == "__main__":
    main()
