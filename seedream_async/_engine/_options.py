"""How a batch runs: :class:`BatchOptions`, and the keyword arguments of ``edit_batch``."""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypedDict, cast

from .._base._exceptions import InvalidInput
from .._policies._polling import Completion, PollPolicy, as_completion
from ._items import EditItem, ProgressCallback
from ._owners import DEFAULT_LEASE
from ._store import JournalStore

__all__ = ["BatchOptions", "BatchOptionsDict", "Items", "WorkOptionsDict", "as_kwargs"]

Items = Iterable[EditItem | Mapping[str, Any]] | AsyncIterable[EditItem | Mapping[str, Any]]
"""What a batch takes: any iterable or async iterable of items (a generator is fine)."""


@dataclass(frozen=True, kw_only=True)
class BatchOptions:
    """How a batch runs. Every field is a keyword of ``edit_batch``.

    Args:
        concurrency: the most predictions in flight at once (a 429 lowers it for a while).
        upload_concurrency: the most uploads at once.
        download_concurrency: the most output downloads at once.
        rate: the most submits per second (GCRA), or None for no cap.
        poll_rate: the most status polls per second, or None for no cap. 50 serves about
            70 predictions in flight at ~8 s each at the default 6 polls apiece (35 at the
            fast preset's 12); raise it with ``concurrency`` or ``polls`` beyond that, or
            the cap, not the API, paces the batch.
        out_dir: where outputs are saved; None keeps only their URLs.
        journal: an SQLite file recording what was billed and delivered, to resume a stopped
            batch without paying twice and to let runs share the catalog, or an open
            journal (``await Journal.open(path, durable=True)`` survives power loss too;
            any :class:`JournalStore`); you close one you pass in. A
            ``postgresql://user@host/db`` DSN opens a PostgreSQL journal that runs and
            workers on many machines share (``pip install 'seedream-async[postgres]'``).
        budget: US dollars the catalog may spend: with a journal, over every run of that
            journal (what earlier runs billed counts); without, this run. Items past it are
            ``not_submitted``.
        run_budget: US dollars this run may spend at most, besides ``budget``.
        resubmit_ambiguous: pay again for items whose earlier submit may have been billed
            (each such item may then be paid for twice).
        retry_failed: pay for a new attempt of items the API reported failed in an earlier
            run (each a new paid attempt in the item's history).
        stop_grace: seconds a submit already on the wire when the batch is stopped (``break``,
            Ctrl-C, a cancelled scope) gets to return its prediction id, which is journaled.
        on_progress: called with the live counters after each change.
        poll: polling policy and per-prediction deadline; the client's when None.
        completion: ``"poll"`` (the default) or ``"sync"``: submit with
            ``enable_sync_mode`` and take each finished prediction from the submit's
            answer (no polls), falling back to polling when the answer is not final. A
            connection lost during that wait leaves the item ambiguous (billed, never
            sent again); or ``"webhook"``: each submit carries ``webhook_url`` with a
            token naming its attempt, the client's receiver (``client.webhooks``, mounted
            or listening) records each delivery in the journal and wakes the item; a
            late, sparing poll is the fallback. A submit whose answer is lost is
            recovered by its delivery, never paid twice. See ``docs/webhooks.md``.
        webhook_url: the public URL that reaches ``client.webhooks`` (webhook only).
        owner: this run's id on the journal, named by its claims and attempts; a fresh
            ``host:pid:random`` one when None. A fleet worker (:func:`drain`) passes its
            own, so the items it claimed from the journal are this run's.
        lease: seconds a claim on a journal item lasts without renewal (the run renews its
            claims every third of it while it lives): a stopped run's items wait this long
            before another run takes them over.
        journal_wait: seconds a billed id the journal refused (disk full or read-only, the
            file deleted, the database down) is retried before its item gives up for this
            run; meanwhile new submits wait. Ids still unwritten at the end go to a sidecar
            file next to the journal that the next run reads (see ``_unrecorded.py``).
    """

    concurrency: int = 64
    upload_concurrency: int = 16
    download_concurrency: int = 16
    rate: float | None = None
    poll_rate: float | None = 50.0
    out_dir: str | os.PathLike[str] | None = None
    budget: float | None = None
    run_budget: float | None = None
    resubmit_ambiguous: bool = False
    retry_failed: bool = False
    stop_grace: float = 30.0
    on_progress: ProgressCallback | None = None
    poll: PollPolicy | None = None
    completion: Completion | str = Completion.POLL
    webhook_url: str | None = None
    owner: str | None = None
    lease: float = DEFAULT_LEASE
    journal_wait: float = 30.0
    journal: str | os.PathLike[str] | JournalStore | None = None  # last, as in the dicts

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "completion", as_completion(self.completion))
        except ValueError as err:
            raise InvalidInput(str(err), field="completion") from None
        if (self.completion is Completion.WEBHOOK) != (self.webhook_url is not None):
            raise InvalidInput(
                'completion="webhook" and webhook_url=... go together: the public URL that '
                "reaches the client's receiver (client.webhooks)",
                field="webhook_url",
            )
        for name in ("concurrency", "upload_concurrency", "download_concurrency"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be at least 1", field=name)
        for name in ("rate", "poll_rate", "budget", "run_budget"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise InvalidInput(f"{name} must be a positive number or None", field=name)
        if not (self.stop_grace >= 0 and math.isfinite(self.stop_grace)):
            raise InvalidInput("stop_grace must be 0 or more seconds", field="stop_grace")
        if not (self.journal_wait >= 0 and math.isfinite(self.journal_wait)):
            raise InvalidInput("journal_wait must be 0 or more seconds", field="journal_wait")
        if not (self.lease > 0 and math.isfinite(self.lease)):
            raise InvalidInput("lease must be a positive number of seconds", field="lease")
        if self.owner is not None and not self.owner.strip():
            raise InvalidInput("owner must be a non-empty id, or None", field="owner")


def as_kwargs(options: BatchOptions) -> BatchOptionsDict:
    """``options`` as ``edit_batch`` keyword arguments (the fields, unchanged)."""
    return cast(BatchOptionsDict, {f.name: getattr(options, f.name) for f in fields(options)})


class WorkOptionsDict(TypedDict, total=False):
    """The keyword arguments of a fleet worker's :func:`~seedream_async.drain`: every field
    of :class:`BatchOptions` but ``journal`` (the worker's journal is its own argument)."""

    concurrency: int
    upload_concurrency: int
    download_concurrency: int
    rate: float | None
    poll_rate: float | None
    out_dir: str | os.PathLike[str] | None
    budget: float | None
    run_budget: float | None
    resubmit_ambiguous: bool
    retry_failed: bool
    stop_grace: float
    on_progress: ProgressCallback | None
    poll: PollPolicy | None
    completion: Completion | str
    webhook_url: str | None
    owner: str | None
    lease: float
    journal_wait: float


class BatchOptionsDict(WorkOptionsDict, total=False):
    """The keyword arguments of ``edit_batch``; see :class:`BatchOptions`.

    A TypedDict can't be derived from a dataclass for type checkers, so it repeats the
    fields; ``tests/test_layout.py`` checks that the two never drift apart.
    """

    journal: str | os.PathLike[str] | JournalStore | None
