"""A running batch, iterated for results: the engine in a task, results through a stream."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._base._exceptions import JournalUnavailable
from ._api import EngineAPI
from ._items import BatchProgress, BatchResult
from ._options import BatchOptions, Items
from ._pipeline import Engine
from ._unrecorded import Unwritten

__all__ = ["BatchRun"]


class _Runner:
    """The part of a run its background task holds: never the :class:`BatchRun` itself,
    so dropping the run (``break`` out of ``async for``) lets it be collected and stop."""

    def __init__(self, engine: Engine, items: Items) -> None:
        self.engine = engine
        self.items = items
        self.scope = anyio.CancelScope()
        self.error: Exception | None = None
        self.done = anyio.Event()

    async def main(
        self, send: MemoryObjectSendStream[BatchResult], *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        with self.scope, send:
            task_status.started()
            try:
                await self.engine.run(self.items, send)
            except Exception as err:  # surfaced to whoever iterates (cancellation is not one)
                self.error = err
            finally:
                self.done.set()


class BatchRun:
    """A running batch: iterate it for results in completion order.

    ``async for result in client.edit_batch(...)`` runs it in the client's own task group
    (the client must be open: ``async with AsyncSeedream() as client``). For strictly
    structured concurrency, enter it instead: ``async with client.edit_batch(...) as run:
    async for result in run: ...``. Leaving early (``break``, an exception, a cancelled
    scope) cancels the rest of the batch: nothing more is submitted, and submits already on
    the wire get ``stop_grace`` seconds to return their ids, journaled for the next run.

    Made by ``client.edit_batch``, which hands the engine itself (as :class:`EngineAPI`)
    and a way to find its own task group (``background``: None while it is not open).

    Attributes:
        progress: the live counters.
    """

    def __init__(
        self,
        client: EngineAPI,
        items: Items,
        options: BatchOptions,
        *,
        background: Callable[[], anyio.abc.TaskGroup | None],
    ) -> None:
        self.progress = BatchProgress()
        self._background = background
        self._runner = _Runner(Engine(client, options, self.progress), items)
        self._buffer = options.concurrency
        self._receive: MemoryObjectReceiveStream[BatchResult] | None = None
        self._own_group: anyio.abc.TaskGroup | None = None
        self._started = False

    async def _start(self, group: anyio.abc.TaskGroup) -> None:
        if self._started:
            raise RuntimeError("a BatchRun can be iterated only once")
        self._started = True
        send, self._receive = anyio.create_memory_object_stream[BatchResult](self._buffer)
        await group.start(self._runner.main, send)

    async def __aenter__(self) -> Self:
        self._own_group = anyio.create_task_group()
        await self._own_group.__aenter__()
        await self._start(self._own_group)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._own_group is not None
        self._own_group.cancel_scope.cancel()
        if self._receive is not None:
            self._receive.close()
        # The body's own exception is not handed to the group: it propagates as itself,
        # not wrapped in an ExceptionGroup.
        await self._own_group.__aexit__(None, None, None)
        return None

    @property
    def unrecorded(self) -> Unwritten | None:
        """Billed ids the journal never took (its disk full, its database down ...), and
        the sidecar file they were written to for the next run; None when there are none.
        Set once the run has ended."""
        keeper = self._runner.engine.unrecorded
        return keeper.unwritten if keeper is not None else None

    @property
    def journal_failure(self) -> JournalUnavailable | None:
        """The first failure of the journal's disk or database this run met (items it
        stopped are NOT_SUBMITTED or kept their id: a re-run picks them up), or None."""
        keeper = self._runner.engine.unrecorded
        error = keeper.error if keeper is not None else None
        return error if isinstance(error, JournalUnavailable) else None

    def cancel(self, *, wait_for_submits: bool = True) -> None:
        """Stop the batch: nothing new is submitted.

        Args:
            wait_for_submits: give submits already on the wire ``stop_grace`` seconds to
                return their prediction ids (journaled, so a re-run fetches them instead
                of paying again); False gives them no time (they may end ambiguous).
        """
        if not wait_for_submits:
            self._runner.engine.stop.hurry()
        self._runner.scope.cancel()

    def __aiter__(self) -> BatchRun:
        return self

    async def __anext__(self) -> BatchResult:
        if not self._started:
            group = self._background()
            if group is None:
                raise RuntimeError(
                    "open the client first (async with AsyncSeedream() as client), or enter "
                    "the batch (async with client.edit_batch(...) as run)"
                )
            await self._start(group)
        assert self._receive is not None
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._receive.close()
            if self._runner.error is not None:
                error, self._runner.error = self._runner.error, None
                raise error from None
            raise StopAsyncIteration from None
        except BaseException:
            self.cancel()  # the caller was cancelled or failed: stop the batch with it
            self._receive.close()
            raise

    def __del__(self) -> None:
        # ``break`` out of ``async for`` drops the run (the background task holds only the
        # runner): stop paying for items no one will read.
        if self._started and not self._runner.done.is_set():
            self.cancel()
        if self._receive is not None:
            self._receive.close()
