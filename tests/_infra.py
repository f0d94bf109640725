"""Helpers for the infrastructure-fault tests: a small tmpfs to fill, the CLI in its own
process, and the invariants every such test ends on.

The tmpfs needs ``mount`` (root, or a user namespace that allows it); where it is not
permitted the test skips with one line saying so.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from seedream_async import EditItem
from seedream_async.testing import Simulator

ROOT = Path(__file__).resolve().parents[1]
URL = "https://cdn.example.com/ref.png"
PRICE = 0.036


def catalog(count: int, prefix: str = "infra") -> list[EditItem]:
    """Items with distinct prompts, so the ledger tells their executions apart."""
    return [
        EditItem(key=f"{prefix}-{n:03d}", prompt=f"infra {prefix} {n}", images=[URL])
        for n in range(count)
    ]


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder`` (skips the test where mount is refused)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()[:120]}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def fill(folder: Path) -> Path:
    """Fill the file system holding ``folder``; return the filler (delete it to free)."""
    filler = folder / "filler"
    with filler.open("wb") as file:
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                file.write(chunk)
                file.flush()
    with contextlib.suppress(OSError), filler.open("ab") as file:  # the last bytes
        while True:
            file.write(b"\0" * 4096)
            file.flush()
    return filler


def cli_env(api_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLASCLOUD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "200"
    env["ATLASCLOUD_API_KEY"] = api_key
    return env


def manifest(folder: Path, items: Sequence[EditItem]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.jsonl"
    rows = [json.dumps({"key": i.key, "prompt": i.prompt, "images": [URL]}) for i in items]
    path.write_text("\n".join(rows) + "\n")
    return path


def run_command(sim: Simulator, path: Path, out: Path, journal: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "seedream_async", "run", str(path), "--out", str(out),
        "--journal", str(journal), "--base-url", sim.base_url, "--concurrency", "4",
        "--first-poll", "0.005", "--poll-interval", "0.005", "--journal-wait", "0.5", *extra,
    ]  # fmt: skip


@dataclass
class Tally:
    """The invariants after the final plain re-run, and the closing note's row."""

    fault: str
    items: int
    executions: int
    paid_twice: int
    stranded: int
    ambiguous: int
    saw: str

    def line(self) -> str:
        return (
            f"\nFIGURES {self.fault}: items={self.items} executions={self.executions} "
            f"paid_twice={self.paid_twice} stranded={self.stranded} "
            f"ambiguous={self.ambiguous} saw={self.saw!r}"
        )


def paid_twice(sim: Simulator) -> int:
    """Prompts billed more than once (every catalog prompt is distinct)."""
    prompts = Counter(record.prompt for record in sim.ledger.submissions)
    return sum(n - 1 for n in prompts.values() if n > 1)


def check_report(out: Path, items: Sequence[EditItem]) -> dict[str, int]:
    """report.jsonl: every key once; returns the count per status."""
    rows = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    keys = Counter(row["key"] for row in rows)
    assert set(keys) == {item.key for item in items}
    assert max(keys.values()) == 1, "every key once"
    return dict(Counter(row["status"] for row in rows))


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text, text[-3000:]


def output_of(done: subprocess.CompletedProcess[bytes] | Any) -> str:
    return bytes(done.stdout or b"").decode() + bytes(done.stderr or b"").decode()
