"""Running a journal's transactions: one at a time per seat, in a worker thread, an outage
waited out.

:class:`TxRunner` is what every SQL journal stands on: a backend supplies one transaction on
its connection (:meth:`TxRunner._transact`) and says which of its driver's errors mean what
(:meth:`TxRunner._failure`); :meth:`TxRunner._tx` runs a journal call's statements through
it, not cancelled once started, and waits out a database that went away (capped exponential
backoff, for up to :attr:`TxRunner.outage_wait` seconds). The calls themselves are
``_sqljournal.py``'s.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Self, TypeVar

import anyio
import anyio.to_thread

from .._base._exceptions import JournalError, JournalUnavailable
from ._sqltx import JournalTx

__all__ = ["TxRunner"]

logger = logging.getLogger("seedream_async")

_T = TypeVar("_T")


class TxRunner(ABC):
    """A journal's transactions, run: a subclass supplies :meth:`_transact` (one
    transaction, its clock, its connection) and :meth:`_failure`.

    Attributes:
        outage_wait: seconds a call waits out :class:`JournalUnavailable` (a database
            restarting) before it raises it; 0 raises at once (a file journal: a full or
            read-only disk does not pass by itself).
    """

    outage_wait: float = 0.0
    _down_since: float | None = None  # when a call first found the journal unavailable

    _limiter: anyio.CapacityLimiter
    """How many calls may run at once (each in a worker thread)."""
    _beat_limiter: anyio.CapacityLimiter | None = None
    """A heartbeat's own seat, so renewing leases never queues behind ordinary calls."""

    @abstractmethod
    def _transact(self, fn: Callable[[JournalTx], _T], *, read_only: bool) -> _T:
        """Run ``fn`` in one transaction on the backend's connection (in a worker thread):
        committed when it returns, rolled back when it raises. ``read_only``: it only
        reads. Raises :class:`JournalError` when the journal is closed."""

    @abstractmethod
    def _failure(self, err: Exception) -> JournalError | None:
        """The :class:`JournalError` to raise for the driver's ``err`` (None: not the
        driver's; it propagates as it is). The message never carries a password."""

    async def _tx_once(
        self, fn: Callable[[JournalTx], _T], *, heartbeat: bool = False, read_only: bool = False
    ) -> _T:
        """Run ``fn`` in one transaction in a worker thread, not cancelled once started (a
        commit happens or not).

        Raises:
            JournalUnavailable: the disk or the server failed (``maybe_committed`` when it
                may have failed after the COMMIT went out).
        """
        limiter = (self._beat_limiter if heartbeat else None) or self._limiter
        try:
            return await anyio.to_thread.run_sync(
                lambda: self._transact(fn, read_only=read_only), limiter=limiter
            )
        except JournalError:
            raise
        except Exception as err:
            failure = self._failure(err)
            if failure is None:
                raise
            raise failure from err

    async def _tx(
        self, fn: Callable[[JournalTx], _T], *, heartbeat: bool = False, read_only: bool = False
    ) -> _T:
        """:meth:`_tx_once`, an outage waited out: a call that certainly did not commit is
        tried again with capped exponential backoff for up to :attr:`outage_wait` seconds
        (one line logged when the wait starts and one when it ends). A failure at the
        COMMIT is raised at once: the caller decides whether its write may be repeated."""
        started: float | None = None
        delay = 0.1
        while True:
            try:
                result = await self._tx_once(fn, heartbeat=heartbeat, read_only=read_only)
            except JournalUnavailable as err:
                now = anyio.current_time()
                started = now if started is None else started
                if err.maybe_committed or now - started + delay > self.outage_wait:
                    raise
                if self._down_since is None:  # said once for the journal, not per call
                    self._down_since = now
                    logger.warning("%s; waiting up to %gs for it", err, self.outage_wait)
                await anyio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if self._down_since is not None:
                down, self._down_since = anyio.current_time() - self._down_since, None
                logger.warning("the journal is back after %.1fs; carrying on", down)
            return result

    @abstractmethod
    async def aclose(self) -> None:
        """Close the journal. Safe to call twice."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
