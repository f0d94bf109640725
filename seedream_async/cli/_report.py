"""The run's record: ``report.jsonl`` (one line per item) and the summary table."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._engine._items import BatchResult, ResultStatus

__all__ = ["ReportWriter", "Tally", "print_failures", "record", "summary_table"]

# Failed items shown under the summary; the rest are in report.jsonl.
_SHOWN_FAILURES = 10


def record(result: BatchResult) -> dict[str, Any]:
    """One ``report.jsonl`` line: what became of an item, JSON-ready.

    Args:
        result: the item's result.
    """
    return {
        "key": result.key,
        "status": str(result.status),
        "prediction_id": result.prediction_id,
        "files": [str(path) for path in result.files],
        "outputs": list(result.outputs),
        "error": result.error_message,
        "error_type": type(result.error).__name__ if result.error is not None else None,
        "cost": result.cost,
        "predict_time": result.predict_time,
        "timings": asdict(result.timings),
        "from_journal": result.from_journal,
    }


class ReportWriter:
    """Writes ``report.jsonl`` line by line, flushed, so an interrupted run keeps its lines.

    Each run writes the file afresh; results answered from the journal are written too,
    so the report of a resumed run covers every item.

    Args:
        path: the report's path.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def __enter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("w", encoding="utf-8")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def write(self, result: BatchResult) -> None:
        """Append one item's line."""
        assert self._handle is not None, "use ReportWriter as a context manager"
        self._handle.write(json.dumps(record(result), ensure_ascii=False) + "\n")
        self._handle.flush()


@dataclass
class Tally:
    """Counts of a run's results, for the summary and the exit code."""

    counts: dict[ResultStatus, int] = field(default_factory=lambda: dict.fromkeys(ResultStatus, 0))
    from_journal: int = 0
    cost: float = 0.0
    failures: list[BatchResult] = field(default_factory=list)

    def add(self, result: BatchResult) -> None:
        """Count one result."""
        self.counts[result.status] += 1
        self.cost += result.cost
        self.from_journal += result.from_journal
        if not result.ok and len(self.failures) < _SHOWN_FAILURES:
            self.failures.append(result)

    @property
    def total(self) -> int:
        """Results counted."""
        return sum(self.counts.values())

    @property
    def all_ok(self) -> bool:
        """True when every counted item succeeded."""
        return self.counts[ResultStatus.SUCCEEDED] == self.total


def summary_table(tally: Tally, *, expected: int, elapsed: float) -> Table:
    """The end-of-run table: items by outcome, cost and time.

    Args:
        tally: the run's counts.
        expected: items in the manifest (more than counted if the run was stopped).
        elapsed: seconds the run took.
    """
    table = Table(title="seedream-async run", show_header=True, header_style="bold")
    table.add_column("outcome")
    table.add_column("items", justify="right")
    styles = {
        ResultStatus.SUCCEEDED: "green",
        ResultStatus.FAILED: "red",
        ResultStatus.AMBIGUOUS: "yellow",
        ResultStatus.NOT_SUBMITTED: "yellow",
    }
    for status, style in styles.items():
        if tally.counts[status] or status is ResultStatus.SUCCEEDED:
            table.add_row(
                f"[{style}]{status.value.replace('_', ' ')}[/]", str(tally.counts[status])
            )
    if tally.from_journal:
        table.add_row("  of which from the journal", str(tally.from_journal))
    if expected > tally.total:
        table.add_row("[yellow]not reached[/]", str(expected - tally.total))
    table.add_row("total", str(expected), end_section=True)
    table.add_row("cost this run", f"${tally.cost:.3f}")
    table.add_row("time", f"{elapsed:.1f}s")
    return table


def print_failures(console: Console, tally: Tally) -> None:
    """Print the first failed items with their errors."""
    for result in tally.failures:
        message = escape(f"{result.key} ({result.status.value}): {result.error_message}")
        console.print(f"[red]✗[/] {message}")
    hidden = tally.total - tally.counts[ResultStatus.SUCCEEDED] - len(tally.failures)
    if hidden > 0:
        console.print(f"  ... and {hidden} more; see report.jsonl")
