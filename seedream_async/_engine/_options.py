"""How a batch runs: :class:`BatchOptions`, and the keyword arguments of ``edit_batch``."""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from .._exceptions import InvalidInput
from .._polling import Completion, PollPolicy, as_completion
from ._items import EditItem, ProgressCallback
from ._journal import Journal

__all__ = ["BatchOptions", "BatchOptionsDict", "Items"]

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
        journal: an SQLite file recording every item, to resume a crashed batch, or an open
            :class:`Journal` (``await Journal.open(path, durable=True)`` survives power
            loss too, not only a crash of the process); you close one you pass in.
        budget: US dollars this run may spend; items past it are ``not_submitted``.
        resubmit_ambiguous: pay again for items whose earlier submit may have been billed.
        on_progress: called with the live counters after each change.
        poll: polling policy and per-prediction deadline; the client's when None.
        completion: ``"poll"`` (the default) or ``"sync"``: submit with
            ``enable_sync_mode`` and take each finished prediction from the submit's
            answer (no polls), falling back to polling when the answer is not final. A
            connection lost during that wait leaves the item ambiguous (billed, never
            sent again); see :class:`Completion`.
    """

    concurrency: int = 64
    upload_concurrency: int = 16
    download_concurrency: int = 16
    rate: float | None = None
    poll_rate: float | None = 50.0
    out_dir: str | os.PathLike[str] | None = None
    journal: str | os.PathLike[str] | Journal | None = None
    budget: float | None = None
    resubmit_ambiguous: bool = False
    on_progress: ProgressCallback | None = None
    poll: PollPolicy | None = None
    completion: Completion | str = Completion.POLL

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "completion", as_completion(self.completion))
        except ValueError as err:
            raise InvalidInput(str(err), field="completion") from None
        for name in ("concurrency", "upload_concurrency", "download_concurrency"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be at least 1", field=name)
        for name in ("rate", "poll_rate", "budget"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise InvalidInput(f"{name} must be a positive number or None", field=name)


class BatchOptionsDict(TypedDict, total=False):
    """The keyword arguments of ``edit_batch``; see :class:`BatchOptions`.

    A TypedDict can't be derived from a dataclass for type checkers, so it repeats the
    fields; ``tests/test_engine_layout.py`` checks that the two never drift apart.
    """

    concurrency: int
    upload_concurrency: int
    download_concurrency: int
    rate: float | None
    poll_rate: float | None
    out_dir: str | os.PathLike[str] | None
    journal: str | os.PathLike[str] | Journal | None
    budget: float | None
    resubmit_ambiguous: bool
    on_progress: ProgressCallback | None
    poll: PollPolicy | None
    completion: Completion | str
