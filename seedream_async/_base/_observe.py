"""Observability through one small interface: :class:`Observer`.

A few points in the library call it, and nothing else: the retry driver (each attempt,
each retry, each refusal), the client (each answer about a prediction), the batch engine
(an item starts, changes stage, ends) and the journal (each write about an item). Plain
callbacks (``on_result``, ``on_retry``, ``on_refused``) and OpenTelemetry
(``seedream_async.otel``) are both observers; write your own by overriding the methods you
need. Observers run inline on the event loop: keep them quick, and never raise (an
exception an observer raises is logged and dropped).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["Callbacks", "Observer", "Observers", "observed_journal"]

logger = logging.getLogger("seedream_async")

_T = TypeVar("_T")

# The journal's writes about one item; each is ``method(owner, key, ...)``.
_JOURNAL_WRITES = frozenset(
    {"reserve", "submitted", "refund", "ambiguous", "done", "api_failed", "delivered"}
    | {"note_error", "not_submitted"}
)


class Observer:
    """What the library tells observers. Every method does nothing here: override some.

    ``key`` is a batch item's key; ``result`` a :class:`~seedream_async.BatchResult`;
    ``operation`` one of ``upload``, ``submit``, ``poll``, ``download``.
    """

    def item_started(self, key: str) -> None:
        """A batch item was read and begins its way through the stages."""

    def item_stage(self, key: str, stage: str, prediction_id: str | None) -> None:
        """The item entered ``stage``: ``uploading``, ``waiting`` (for a slot, the rate or
        the budget), ``running`` (its submit is on the wire, or it resumed a prediction:
        then its id is given), ``submitted`` (the API took it: ``prediction_id``) or
        ``downloading``."""

    def item_ended(self, result: Any) -> None:
        """The item ended with ``result`` (a :class:`~seedream_async.BatchResult`)."""

    def attempt(
        self, operation: str, seconds: float, status: int | None, error: BaseException | None
    ) -> None:
        """One HTTP attempt ended: its duration, its status (None without an answer), and
        the error it raised (None on success)."""

    def retry(self, what: str, attempt: int, delay: float, error: BaseException) -> None:
        """A failed request (``what``) is retried after ``delay`` seconds; ``attempt`` is
        the number of the attempt that failed (1 for the first)."""

    def refused(self, error: BaseException, wait: float) -> None:
        """The API refused a submit (429 or 503, not billed); it is queued again and sent
        after ``wait`` seconds or when the pause ends."""

    def answered(
        self, operation: str, prediction_id: str, status: str, request_id: str | None
    ) -> None:
        """The API answered a submit or a poll about ``prediction_id`` (its status then,
        and the answer's ``X-Request-ID``)."""

    def journal(self, operation: str, key: str | None, seconds: float) -> None:
        """The journal recorded ``operation`` (``submitted``, ``delivered`` ...) for ``key``."""


class Observers(Observer):
    """Several observers as one; an observer that raises is logged and skipped."""

    def __init__(self, observers: Sequence[Observer] = ()) -> None:
        self.observers = list(observers)

    def __bool__(self) -> bool:
        return bool(self.observers)

    def _each(self, name: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, name)(*args)
            except Exception:
                logger.exception("observer %r failed in %s; ignored", observer, name)

    def item_started(self, key: str) -> None:
        self._each("item_started", key)

    def item_stage(self, key: str, stage: str, prediction_id: str | None) -> None:
        self._each("item_stage", key, stage, prediction_id)

    def item_ended(self, result: Any) -> None:
        self._each("item_ended", result)

    def attempt(
        self, operation: str, seconds: float, status: int | None, error: BaseException | None
    ) -> None:
        self._each("attempt", operation, seconds, status, error)

    def retry(self, what: str, attempt: int, delay: float, error: BaseException) -> None:
        self._each("retry", what, attempt, delay, error)

    def refused(self, error: BaseException, wait: float) -> None:
        self._each("refused", error, wait)

    def answered(
        self, operation: str, prediction_id: str, status: str, request_id: str | None
    ) -> None:
        self._each("answered", operation, prediction_id, status, request_id)

    def journal(self, operation: str, key: str | None, seconds: float) -> None:
        self._each("journal", operation, key, seconds)


class Callbacks(Observer):
    """The plain callbacks, for users without OpenTelemetry.

    Args:
        on_result: called with each batch result as it is made.
        on_retry: called with ``(what, attempt, delay, error)`` before a retry's wait.
        on_refused: called with ``(error, wait)`` when the API refused a submit (429/503).
    """

    def __init__(
        self,
        *,
        on_result: Callable[[Any], object] | None = None,
        on_retry: Callable[[str, int, float, BaseException], object] | None = None,
        on_refused: Callable[[BaseException, float], object] | None = None,
    ) -> None:
        self._on_result = on_result
        self._on_retry = on_retry
        self._on_refused = on_refused

    def __bool__(self) -> bool:
        return any((self._on_result, self._on_retry, self._on_refused))

    def item_ended(self, result: Any) -> None:
        if self._on_result is not None:
            self._on_result(result)

    def retry(self, what: str, attempt: int, delay: float, error: BaseException) -> None:
        if self._on_retry is not None:
            self._on_retry(what, attempt, delay, error)

    def refused(self, error: BaseException, wait: float) -> None:
        if self._on_refused is not None:
            self._on_refused(error, wait)


class _ObservedJournal:
    """A journal whose writes about items are reported (timed) to an observer."""

    def __init__(self, journal: Any, observer: Observer) -> None:
        self._journal = journal
        self._observer = observer

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._journal, name)
        if name not in _JOURNAL_WRITES:
            return value

        @functools.wraps(value)
        async def write(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await value(*args, **kwargs)
            finally:
                key = kwargs.get("key", args[1] if len(args) > 1 else None)
                seconds = time.perf_counter() - started
                self._observer.journal(name, key if isinstance(key, str) else None, seconds)

        return write


def observed_journal(journal: _T, observer: Observer) -> _T:
    """``journal``, reporting its writes to ``observer`` (itself when no one observes)."""
    if journal is None or not observer:
        return journal
    proxy: Any = _ObservedJournal(journal, observer)
    return proxy  # type: ignore[no-any-return]
