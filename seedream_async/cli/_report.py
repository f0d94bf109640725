"""The run's record: ``report.jsonl`` (one line per item) and the summary table."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import anyio
import anyio.to_thread
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._engine._items import BatchResult, ResultStatus
from .._engine._journal import Journal
from .._engine._store import ItemRecord, JournalState

__all__ = [
    "ReportWriter",
    "Tally",
    "print_failures",
    "record",
    "summary_table",
    "write_report",
]

# What a journal row says about an item this run has no result for.
_JOURNAL_STATUS = {
    JournalState.PENDING: ResultStatus.NOT_SUBMITTED,
    JournalState.NOT_SUBMITTED: ResultStatus.NOT_SUBMITTED,
    JournalState.INTENT: ResultStatus.AMBIGUOUS,
    JournalState.AMBIGUOUS: ResultStatus.AMBIGUOUS,
    JournalState.SUBMITTED: ResultStatus.FAILED,
    JournalState.DONE: ResultStatus.FAILED,
    JournalState.API_FAILED: ResultStatus.FAILED,
    JournalState.DELIVERED: ResultStatus.SUCCEEDED,
}

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


def journal_record(key: str, row: ItemRecord | None) -> dict[str, Any]:
    """A ``report.jsonl`` line from the journal, for an item this run has no result for."""
    error: str | None
    if row is None:
        status, error = ResultStatus.NOT_SUBMITTED, "not reached: the run stopped before it"
    else:
        status = _JOURNAL_STATUS[row.state]
        error = row.error
        if row.state in (JournalState.SUBMITTED, JournalState.DONE):
            error = (
                f"{error or 'not delivered yet'} (prediction {row.prediction_id} is paid for: a "
                "re-run fetches it by id)"
            )
    return {
        "key": key,
        "status": str(status),
        "prediction_id": row.prediction_id if row else None,
        "files": list(row.files) if row and row.state is JournalState.DELIVERED else [],
        "outputs": list(row.outputs) if row else [],
        "error": error,
        "error_type": row.error_type if row else None,
        "cost": 0.0,
        "predict_time": row.predict_time if row else None,
        "timings": None,
        "from_journal": True,
    }


async def write_report(
    path: Path, keys: Sequence[str], journal_path: Path, results: Mapping[str, dict[str, Any]]
) -> None:
    """Write ``report.jsonl`` whole, one line per key of the manifest, in manifest order:
    this run's result where it has one, else what the journal records. Written to a
    temporary file and renamed, so two runs sharing the folder never interleave it.

    Args:
        path: the report's path.
        keys: the manifest's keys, in order.
        journal_path: the journal.
        results: this run's lines (:func:`record`), by key.
    """
    missing = [key for key in keys if key not in results]
    rows: dict[str, ItemRecord] = {}
    if missing and await anyio.Path(journal_path).exists():
        async with await Journal.open(journal_path) as journal:
            rows = await journal.get_many(missing)

    def write() -> None:
        temp = path.with_name(f".{path.name}.{os.getpid()}.part")
        with temp.open("w", encoding="utf-8") as handle:
            for key in keys:
                line = results.get(key) or journal_record(key, rows.get(key))
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        os.replace(temp, path)

    await anyio.to_thread.run_sync(write)


class ReportWriter:
    """Writes ``report.jsonl`` line by line as results come, flushed, so it can be watched
    during the run; :func:`write_report` replaces it whole at the end.

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


def summary_table(
    tally: Tally, *, expected: int, elapsed: float, billed: float | None = None
) -> Table:
    """The end-of-run table: items by outcome, cost and time.

    Args:
        tally: the run's counts.
        expected: items in the manifest (more than counted if the run was stopped).
        elapsed: seconds the run took.
        billed: US dollars this run's submits were billed, predictions still in flight
            included (the results' costs when None).
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
    table.add_row("billed this run", f"${tally.cost if billed is None else billed:.3f}")
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
