"""The live progress bar: items done of total; succeeded, failed, ambiguous, not submitted
(each its own count, shown once it is not zero), running; dollars spent; ETA."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from .._engine._items import BatchProgress, BatchResult, ResultStatus

__all__ = ["ProgressDisplay"]


class _CountsColumn(ProgressColumn):
    """Reads the batch's live counters at render time, so updating them costs nothing."""

    def __init__(self, display: ProgressDisplay) -> None:
        super().__init__()
        self._display = display

    def render(self, task: Task) -> Text:
        live, counts = self._display.live, self._display.counts
        text = Text()
        text.append(f"✓ {counts[ResultStatus.SUCCEEDED]}", style="green")
        failed = counts[ResultStatus.FAILED]
        text.append(f"  ✗ {failed} failed", style="red" if failed else "dim")
        # Shown only when they happen: each needs a different action from the user.
        if ambiguous := counts[ResultStatus.AMBIGUOUS]:
            text.append(f"  ? {ambiguous} ambiguous", style="yellow")
        if skipped := counts[ResultStatus.NOT_SUBMITTED]:
            text.append(f"  ⏸ {skipped} over budget", style="yellow")
        text.append("  ")
        running = live.running + live.uploading + live.downloading if live else 0
        text.append(f"▶ {running}", style="cyan")
        spent = live.spent if live else 0.0
        text.append(f"  ${spent:.3f}", style="bold")
        return text


class ProgressDisplay:
    """A rich progress bar fed by ``edit_batch``'s ``on_progress`` and by each result.

    Args:
        console: where to draw.
        total: items in the manifest, for the bar and the ETA.
    """

    def __init__(self, console: Console, total: int) -> None:
        self.live: BatchProgress | None = None
        self.counts = dict.fromkeys(ResultStatus, 0)
        self._progress = Progress(
            TextColumn("[bold]editing"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            _CountsColumn(self),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            refresh_per_second=4,
        )
        self._task: TaskID = self._progress.add_task("edit", total=total)

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def on_progress(self, progress: BatchProgress) -> None:
        """The ``on_progress`` callback: keep a reference, read it when drawing."""
        self.live = progress

    def add(self, result: BatchResult) -> None:
        """Count one finished item."""
        self.counts[result.status] += 1
        self._progress.advance(self._task)
