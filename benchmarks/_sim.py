"""The simulator in its own process: start it, read its one line, fetch its ledger, stop it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

__all__ = ["SimProcess"]

_LINE = re.compile(r"listening on (\S+) storage (\S+) key (\S+)")


class SimProcess:
    """``python -m seedream_async.testing`` as a context manager.

    Args:
        seed: the simulator's seed (the same seed draws the same latencies in order).
        time_scale: its latency factor.
        extra: more command-line flags (``["--rps", "400"]``).
        log: where its stderr goes.
    """

    def __init__(
        self, *, seed: int, time_scale: float, extra: list[str] | None = None, log: Path
    ) -> None:
        self.argv = [
            sys.executable, "-m", "seedream_async.testing", "--port", "0",
            "--seed", str(seed), "--time-scale", repr(time_scale), *(extra or []),
        ]  # fmt: skip
        self._log_path = log
        self._proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.storage_url = ""
        self.key = ""

    def __enter__(self) -> Self:
        self._log = self._log_path.open("a")
        self._proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        match = _LINE.search(line)
        if match is None:
            self._stop()
            raise RuntimeError(f"simulator did not start: {line!r} (see {self._log_path})")
        self.base_url, self.storage_url, self.key = match.groups()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()

    def cpu_seconds(self) -> float | None:
        """The simulator process's user+system CPU so far (Linux ``/proc``; else None)."""
        if self._proc is None:
            return None
        try:
            with open(f"/proc/{self._proc.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        # Fields 14 and 15 of proc(5) (utime, stime), counted after the ")" of the name.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def ledger(self) -> dict[str, Any]:
        """The ledger snapshot (``GET /_sim/ledger``)."""
        response = httpx.get(
            f"{self.base_url}/_sim/ledger",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=120.0,
        )
        response.raise_for_status()
        return dict(response.json())
