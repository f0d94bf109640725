"""The batch engine: items in, results out, written against :class:`EngineAPI` only.

Modules, in the order a batch's data flows through them:

- what goes in and out: ``_items``, ``_options`` (``BatchOptions``), ``_names`` (output
  file names), ``_identity`` (an image is its content);
- the journal: ``_store`` (the interface), ``_journal_types`` (the values it speaks in:
  states, rows, attempts, claims, money), ``_rules`` (its state rules, once),
  ``_sqljournal`` (every call as SQL, once), ``_sqlrunner`` (its transactions run, an
  outage waited out), ``_sqlite`` and ``_pgjournal`` (the two backends: connecting and
  schema only, each beside its ``_schema``; PostgreSQL's pool in ``_pgjournal_pool``),
  ``_fleet_types`` (what a fleet's calls take and give), ``_journal``
  (``open_journal``), ``_owners`` (run ids);
- a run's parts: ``_upload_cache`` (each image once), ``_scheduler`` (one poller),
  ``_budget``, ``_tracking`` (live counters), ``_resume`` (what the journal says to do),
  ``_claims`` (this run's leases), ``_stop`` (a stop that keeps what it paid for),
  ``_unrecorded`` (billed ids the journal refused: kept, retried, saved to a sidecar),
  ``_submit`` (submits under the limits), ``_delivery`` (saved and verified outputs);
- the whole: ``_item_stages`` (each item through the stages), ``_pipeline``
  (``Engine``: the batch, its parts wired and its items fed through), ``_batch_run``
  (``BatchRun``, the run you iterate), ``_worker`` (a fleet's worker: ``drain``).
"""

from __future__ import annotations

from ._api import EngineAPI, PollAPI, RefusedHook
from ._batch_run import BatchRun
from ._items import BatchProgress, BatchResult, EditItem, Job, ResultStatus, Stage, Timings
from ._journal import Journal, JournalEntry, open_journal
from ._journal_types import (
    Attempt,
    Claim,
    ClaimOutcome,
    ClaimStatus,
    ItemRecord,
    JournalState,
    LostClaim,
    Page,
    Spend,
)
from ._options import BatchOptions, BatchOptionsDict, Items, WorkOptionsDict
from ._pgjournal import ClaimedItem, FleetStatus, LoadReport, LoadRow, PostgresJournal
from ._sqlite import SQLiteJournal
from ._store import JournalStore
from ._worker import BatchClient, WorkTally, drain, load_items

__all__ = [
    "Attempt",
    "BatchClient",
    "BatchOptions",
    "BatchOptionsDict",
    "BatchProgress",
    "BatchResult",
    "BatchRun",
    "Claim",
    "ClaimOutcome",
    "ClaimStatus",
    "ClaimedItem",
    "EditItem",
    "EngineAPI",
    "FleetStatus",
    "ItemRecord",
    "Items",
    "Job",
    "Journal",
    "JournalEntry",
    "JournalState",
    "JournalStore",
    "LoadReport",
    "LoadRow",
    "LostClaim",
    "Page",
    "PollAPI",
    "PostgresJournal",
    "RefusedHook",
    "ResultStatus",
    "SQLiteJournal",
    "Spend",
    "Stage",
    "Timings",
    "WorkOptionsDict",
    "WorkTally",
    "drain",
    "load_items",
    "open_journal",
]
