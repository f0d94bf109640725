"""The blocking client, :class:`Seedream`: :class:`AsyncSeedream` run on an event loop of
its own, in a thread, through anyio's blocking portal.

Not a second implementation: every call is the async client's, sent to its loop with
``BlockingPortal.call``. So it works wherever a thread can block: a plain script, a
Django view, a Celery task, a thread pool, and a worker thread of a running event loop
(``anyio.to_thread.run_sync``, ``loop.run_in_executor``): its loop is its own, never the
caller's.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, Unpack

from anyio.from_thread import BlockingPortal, start_blocking_portal

from .._engine import BatchOptionsDict, BatchProgress, BatchResult, BatchRun, Items
from .._network._upload import ImageSource
from .._policies._polling import Completion, PollPolicy
from .._wire._balance import Balance
from .._wire._parsing import ImageRef, Prediction, UploadedMedia
from .._wire._pricing import PriceModel
from .._wire._raw import RawResponse
from ._async import AsyncSeedream

__all__ = ["BlockingBatch", "Seedream"]

T = TypeVar("T")


class BlockingBatch:
    """A running batch, iterated with a plain ``for``; what :meth:`Seedream.edit_batch` returns.

    Leaving early (``break``, an exception) stops the batch as the async run does, once
    the run is closed: use it as a context manager, or call :meth:`close`::

        with client.edit_batch(items, out_dir="edited") as run:
            for result in run:
                print(result.key, result.status)

    Attributes:
        progress: the live counters (read from any thread; they are plain integers).
    """

    def __init__(self, portal: BlockingPortal, run: BatchRun) -> None:
        self._portal = portal
        self._run = run
        self._entered: AbstractContextManager[BatchRun] | None = None
        self._closed = False
        self.progress: BatchProgress = run.progress

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> BatchResult:
        if self._closed:
            raise StopIteration
        if self._entered is None:
            self._entered = self._portal.wrap_async_context_manager(self._run)
            self._entered.__enter__()
        try:
            return self._portal.call(self._run.__anext__)
        except StopAsyncIteration:
            self.close()
            raise StopIteration from None
        except BaseException:
            self.close()
            raise

    def cancel(self, *, wait_for_submits: bool = True) -> None:
        """Stop the batch: nothing new is submitted (see :meth:`BatchRun.cancel`)."""
        self._portal.call(functools.partial(self._run.cancel, wait_for_submits=wait_for_submits))

    def close(self) -> None:
        """Stop the batch if it still runs, and wait until it has stopped."""
        if self._closed:
            return
        self._closed = True
        entered, self._entered = self._entered, None
        if entered is not None:
            entered.__exit__(None, None, None)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # ``break`` out of a plain ``for`` drops the run: stop paying for items no one reads.
        if self._closed or self._entered is None:
            return
        try:
            self.close()
        except Exception:  # on the portal's own thread, or its loop already gone
            with contextlib.suppress(Exception):
                self._run.cancel()


class Seedream:
    """A blocking client for Seedream v4.5 Edit Sequential: the same methods and options as
    :class:`AsyncSeedream`, for scripts, web views and task queues::

        with Seedream() as client:
            prediction = client.edit("Put it on marble", ["shoe.png"])
            for result in client.edit_batch(items, out_dir="edited"):
                print(result.key, result.status)

    It runs an :class:`AsyncSeedream` on an event loop in a thread of its own (anyio's
    blocking portal), so it is safe to call from any thread, several at once, and from a
    worker thread of a running event loop. In async code use :class:`AsyncSeedream`:
    calling this from an event loop's own thread blocks that loop.

    Close it (``with``, or :meth:`close`) to stop its thread and its connections.

    Args:
        api_key: the API key; ``ATLASCLOUD_API_KEY`` from the environment when None.
        backend: the event loop it runs on, ``"asyncio"`` or ``"trio"``.
        **options: every other keyword of :class:`AsyncSeedream` (``base_url``,
            ``timeout``, ``retry``, ``poll``, ``price`` ...).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        backend: Literal["asyncio", "trio"] = "asyncio",
        **options: Any,
    ) -> None:
        self._stack = ExitStack()
        self._portal = self._stack.enter_context(start_blocking_portal(backend))
        try:
            client = self._portal.call(functools.partial(AsyncSeedream, api_key, **options))
            entered = self._portal.wrap_async_context_manager(client)
            self._client = self._stack.enter_context(entered)
        except BaseException:
            self._stack.close()
            raise
        self._owner = True

    @classmethod
    def _sharing(cls, portal: BlockingPortal, client: AsyncSeedream) -> Seedream:
        copy = cls.__new__(cls)
        copy._stack = ExitStack()
        copy._portal = portal
        copy._client = client
        copy._owner = False
        return copy

    def __repr__(self) -> str:
        return f"Seedream(base_url={str(self._client.base_url)!r}, api_key='**********')"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the event loop's thread (copies made by
        :meth:`with_options` share them: close the client they came from)."""
        if self._owner:
            self._stack.close()

    @property
    def async_client(self) -> AsyncSeedream:
        """The :class:`AsyncSeedream` doing the work (its settings: ``retry``, ``poll`` ...)."""
        return self._client

    def price_for(self, model: str) -> PriceModel:
        """How a prediction of ``model`` is billed; see :meth:`AsyncSeedream.price_for`."""
        return self._client.price_for(model)

    def _call(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return self._portal.call(functools.partial(func, *args, **kwargs))

    def with_options(self, **options: Any) -> Seedream:
        """A copy with other per-call settings, sharing this client's connections and
        thread; see :meth:`AsyncSeedream.with_options`."""
        return Seedream._sharing(self._portal, self._client.with_options(**options))

    def upload(
        self, source: ImageSource, *, file_name: str | None = None, **kwargs: Any
    ) -> UploadedMedia:
        """Upload one reference image; see :meth:`AsyncSeedream.upload`."""
        result: UploadedMedia = self._call(
            self._client.upload, source, file_name=file_name, **kwargs
        )
        return result

    def edit(
        self,
        prompt: str,
        images: Sequence[ImageRef],
        *,
        completion: Completion | str = Completion.POLL,
        **params: Any,
    ) -> Prediction:
        """Upload, submit one edit, wait for it; see :meth:`AsyncSeedream.edit`."""
        result: Prediction = self._call(
            self._client.edit, prompt, images, completion=completion, **params
        )
        return result

    def wait(
        self,
        prediction_id: str,
        *,
        poll: PollPolicy | None = None,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> Prediction:
        """Poll one prediction until it is done; see :meth:`AsyncSeedream.wait`."""
        result: Prediction = self._call(
            self._client.wait, prediction_id, poll=poll, deadline=deadline, **kwargs
        )
        return result

    def get_prediction(self, prediction_id: str, **kwargs: Any) -> Prediction:
        """Fetch a prediction's current state; see :meth:`AsyncSeedream.get_prediction`."""
        result: Prediction = self._call(self._client.get_prediction, prediction_id, **kwargs)
        return result

    def balance(self) -> Balance:
        """The account's balance; see :meth:`AsyncSeedream.balance`."""
        result: Balance = self._call(self._client.balance)
        return result

    def last_response(self, prediction: Prediction | str) -> RawResponse | None:
        """The last API answer about a prediction; see :meth:`AsyncSeedream.last_response`."""
        return self._client.last_response(prediction)

    def download(self, url: str, dest: str | os.PathLike[str]) -> Path:
        """Stream one output to ``dest``; see :meth:`AsyncSeedream.download`."""
        result: Path = self._call(self._client.download, url, dest)
        return result

    def edit_batch(
        self, items: Items, *, extra_headers: dict[str, str] | None = None, **options: Any
    ) -> BlockingBatch:
        """Edit a whole catalog; iterate the run for results as they finish.

        The options are checked here, before anything runs; see
        :meth:`AsyncSeedream.edit_batch`. Items are read lazily, on the client's thread.
        """
        run: BatchRun = self._call(
            self._client.edit_batch, items, extra_headers=extra_headers, **options
        )
        return BlockingBatch(self._portal, run)

    def edit_all(
        self,
        items: Items,
        *,
        order: Literal["completion", "input"] = "completion",
        extra_headers: dict[str, str] | None = None,
        **options: Unpack[BatchOptionsDict],
    ) -> list[BatchResult]:
        """Run a batch to the end and return every result; see :meth:`AsyncSeedream.edit_all`."""
        results: list[BatchResult] = self._call(
            self._client.edit_all, items, order=order, extra_headers=extra_headers, **options
        )
        return results
