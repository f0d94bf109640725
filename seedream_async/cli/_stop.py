"""Ctrl-C and SIGTERM stop a run the same way: nothing new is submitted, submits already
on the wire get a bounded time to return their ids (journaled), then the run prints its
summary and the command that resumes it. Exit 130 for SIGINT, 143 for SIGTERM (128 + the
signal's number, as shells report it)."""

from __future__ import annotations

import shlex
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.abc

__all__ = ["Stop", "resume_command", "stop_on_signals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Stop:
    """What stopped the run, if anything.

    Attributes:
        signal: the first signal received, or None.
        hurried: a second signal came: in-flight submits were given no more time.
    """

    signal: signal.Signals | None = None
    hurried: bool = False

    @property
    def exit_code(self) -> int | None:
        """128 + the signal's number, or None when no signal stopped the run."""
        return None if self.signal is None else 128 + int(self.signal)


@asynccontextmanager
async def stop_on_signals(
    scope: anyio.CancelScope, *, hurry: Callable[[], None]
) -> AsyncIterator[Stop]:
    """While inside, the first SIGINT or SIGTERM cancels ``scope`` (the batch), a second one
    calls ``hurry`` (give in-flight submits no more time)."""
    stop = Stop()

    async def listen(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        with anyio.open_signal_receiver(*_SIGNALS) as signals:
            task_status.started()
            async for received in signals:
                if stop.signal is None:
                    stop.signal = signal.Signals(received)
                    scope.cancel()
                else:
                    stop.hurried = True
                    hurry()

    async with anyio.create_task_group() as group:
        await group.start(listen)
        try:
            yield stop
        finally:
            group.cancel_scope.cancel()


def resume_command(*, drop: str | None = None) -> str:
    """The command line that resumes this run: the same command again.

    Args:
        drop: an option (taking one or more values) to leave out, with its values: e.g.
            ``--reroll``, whose new seeds are pinned already, so repeating it would pay
            for the same items once more.
    """
    args: list[str] = []
    dropping = False
    for arg in sys.argv[1:]:
        if drop is not None and (arg == drop or arg.startswith(f"{drop}=")):
            dropping = arg == drop
            continue
        if dropping and not arg.startswith("-"):
            continue
        dropping = False
        args.append(arg)
    return shlex.join(["seedream-async", *args])
