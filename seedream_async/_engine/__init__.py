"""The batch engine: items in, results out, written against :class:`EngineAPI` only.

Modules, in the order a batch's data flows through them: ``_items`` (what goes in and
comes out), ``_names`` (output file names), ``_store`` (the journal interface: what was
billed, what was delivered, claims), ``_sqlite`` and ``_journal`` (the SQLite journal),
``_identity`` (an image is its content), ``_deliver`` (saved and verified outputs),
``_uploads`` (each image once), ``_scheduler`` (one poller), ``_budget``, ``_tracking``
(live counters), ``_resume`` (what the journal says to do), ``_options``, ``_claims``
(this run's leases), ``_stop`` (a stop that keeps what it paid for), ``_submit``
(submits under the limits), ``_stages`` (the engine), ``_run`` (the iterable run).
"""

from __future__ import annotations

from ._api import EngineAPI, PollAPI, RefusedHook
from ._items import BatchProgress, BatchResult, EditItem, Job, ResultStatus, Stage, Timings
from ._journal import Journal, JournalEntry, JournalState, JournalStore
from ._options import BatchOptions, BatchOptionsDict, Items
from ._run import BatchRun

__all__ = [
    "BatchOptions",
    "BatchOptionsDict",
    "BatchProgress",
    "BatchResult",
    "BatchRun",
    "EditItem",
    "EngineAPI",
    "Items",
    "Job",
    "Journal",
    "JournalEntry",
    "JournalState",
    "JournalStore",
    "PollAPI",
    "RefusedHook",
    "ResultStatus",
    "Stage",
    "Timings",
]
