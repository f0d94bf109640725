"""``python -m benchmarks._cpu_profile OUT MODULE ARGS...``: run MODULE as ``__main__`` under
cProfile with a CPU-time clock (``time.process_time``), not the wall clock, so time spent
waiting (the event loop's ``epoll``, a loaded machine's run queue) is not counted as work."""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    out, module, *rest = sys.argv[1:]
    sys.argv = [module, *rest]
    profile = cProfile.Profile(time.process_time)
    try:
        profile.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    finally:
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
