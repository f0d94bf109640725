"""The batch engine: items in, results out, written against :class:`EngineAPI` only.

Modules, in the order a batch's data flows through them: ``_items`` (what goes in and
comes out), ``_names`` (output file names), ``_store`` (the journal interface: what was
billed, what was delivered, claims), ``_rules`` (the journal's state rules, once),
``_sqljournal`` (every journal call as SQL, once), ``_sqlite`` and ``_pgjournal`` (the two
backends: connecting and schema only), ``_journal`` (``open_journal``: one factory),
``_identity`` (an image is its content), ``_deliver`` (saved and verified outputs),
``_uploads`` (each image once), ``_scheduler`` (one poller), ``_budget``, ``_tracking``
(live counters), ``_resume`` (what the journal says to do), ``_options``, ``_claims``
(this run's leases), ``_stop`` (a stop that keeps what it paid for), ``_submit``
(submits under the limits), ``_stages`` (the engine), ``_run`` (the iterable run).
"""

from __future__ import annotations

from ._api import EngineAPI, PollAPI, RefusedHook
from ._items import BatchProgress, BatchResult, EditItem, ResultStatus, Stage, Timings
from ._journal import Journal, JournalEntry, open_journal
from ._options import BatchOptions, BatchOptionsDict, Items
from ._run import BatchRun
from ._store import JournalState, JournalStore

__all__ = [
    "BatchOptions",
    "BatchOptionsDict",
    "BatchProgress",
    "BatchResult",
    "BatchRun",
    "EditItem",
    "EngineAPI",
    "Items",
    "Journal",
    "JournalEntry",
    "JournalState",
    "JournalStore",
    "PollAPI",
    "RefusedHook",
    "ResultStatus",
    "Stage",
    "Timings",
    "open_journal",
]
