"""The live progress bar: items done of total, failed, running, dollars spent, ETA."""

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

from .._engine._items import BatchProgress, BatchResult

__all__ = ["ProgressDisplay"]


class _CountsColumn(ProgressColumn):
    """Reads the batch's live counters at render time, so updating them costs nothing."""

    def __init__(self, display: ProgressDisplay) -> None:
        super().__init__()
        self._display = display

    def render(self, task: Task) -> Text:
        live, done = self._display.live, self._display
        text = Text()
        text.append(f"✓ {done.succeeded}", style="green")
        text.append("  ")
        text.append(f"✗ {done.failed}", style="red" if done.failed else "dim")
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
        self.succeeded = 0
        self.failed = 0
        self._progress = Progress(
            TextColumn("[bold]editing"),
            BarColumn(),
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
        if result.ok:
            self.succeeded += 1
        else:
            self.failed += 1
        self._progress.advance(self._task)
