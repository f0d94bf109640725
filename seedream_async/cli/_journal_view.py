"""The journal as ``status`` and ``run --dry-run`` read it: one row per key, and the money.

Everything that knows the journal's shape sits in :func:`load_journal` and
:func:`fingerprint`; the rest works on :class:`JournalView`, so a change of journal touches
those two functions only.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._base._constants import DEFAULT_MODEL
from .._base._exceptions import PredictionFailed
from .._engine._items import EditItem
from .._engine._journal_types import ItemRecord, JournalState

__all__ = [
    "AMBIGUOUS",
    "API_FAILED",
    "BILLED_UNDELIVERED",
    "DELIVERED",
    "MODERATED",
    "RERUN_FAILED",
    "JournalRow",
    "JournalView",
    "fingerprint",
    "journal_exists",
    "load_journal",
]

MODERATED = "ContentModerationError"
"""The journal's error type of a prediction failed in content moderation."""

# Journal states by what a run does with them (names as the journal spells them).
DELIVERED = frozenset({"succeeded", "delivered"})
BILLED_UNDELIVERED = frozenset({"submitted", "done"})
AMBIGUOUS = frozenset({"ambiguous", "intent"})
API_FAILED = frozenset({"failed", "api_failed"})
# The journal before issue 11 runs a "failed" row again on every run, whatever the options.
RERUN_FAILED = frozenset({"failed"})


@dataclass(frozen=True, kw_only=True)
class JournalRow:
    """One key's current row, as status and dry run need it.

    Args:
        key: the item's key.
        state: the journal's state name.
        fingerprint: the digest of the item's inputs when it was last begun.
        prediction_id: the latest attempt's id, if any.
        files: the delivered files.
        error: why the latest attempt did not deliver, if so.
        cost: US dollars billed for the key, every attempt.
        attempts: paid (or possibly paid) attempts of the key.
        model: the model of its latest request (None before any was sent).
        error_type: that error's class name (``ContentModerationError``: moderated).
        request_id: the latest submit's ``X-Request-ID``, for support.
        price_rule: the price rule the latest submit was billed by, in words.
        flagged: its outputs the API flagged NSFW.
    """

    key: str
    state: str
    fingerprint: str
    prediction_id: str | None = None
    files: tuple[str, ...] = ()
    error: str | None = None
    cost: float = 0.0
    attempts: int = 0
    model: str | None = None
    error_type: str | None = None
    request_id: str | None = None
    price_rule: str | None = None
    flagged: int = 0

    @property
    def moderated(self) -> bool:
        """The API failed it in content moderation (error code 1039)."""
        return self.state in API_FAILED and self.error_type == MODERATED


@dataclass(frozen=True, kw_only=True)
class JournalView:
    """A journal read whole: its rows in first-seen order and the money billed.

    Args:
        path: the journal file.
        rows: the rows by key.
        billed: US dollars billed over every attempt of every key.
    """

    path: Path | str
    rows: dict[str, JournalRow] = field(default_factory=dict)
    billed: float = 0.0

    def counts(self) -> Counter[str]:
        """Rows per state name."""
        return Counter(row.state for row in self.rows.values())

    def by_model(self) -> dict[str, dict[str, Any]]:
        """Items and dollars billed per model (rows never sent count under "not sent")."""
        models: dict[str, dict[str, Any]] = {}
        for row in self.rows.values():
            entry = models.setdefault(row.model or "not sent", {"items": 0, "billed": 0.0})
            entry["items"] += 1
            entry["billed"] = round(entry["billed"] + row.cost, 6)
        return models

    def price_rules(self) -> list[str]:
        """The price rules the journal's submits were billed by, in first-seen order."""
        return list(dict.fromkeys(r.price_rule for r in self.rows.values() if r.price_rule))


def _error(record: ItemRecord) -> str | None:
    """The row's error as the run's report words it (a failed prediction names its id)."""
    if record.state is JournalState.API_FAILED and record.prediction_id and record.error:
        return str(PredictionFailed(record.prediction_id, record.error))
    return record.error


def _model(record: ItemRecord) -> str | None:
    if record.request is None:
        return None
    return str(record.request.get("model") or DEFAULT_MODEL)


async def load_journal(path: Path | str) -> JournalView:
    """Read the journal at ``path`` (which must exist) without changing it.

    Args:
        path: the SQLite journal, or a PostgreSQL journal's DSN.
    """
    from .._engine._journal import open_journal

    rows: dict[str, JournalRow] = {}
    async with await open_journal(path, create=False) as journal:
        after = 0
        while True:
            page = await journal.page(after=after)
            for record in page.records:
                history = await journal.history(record.key) if record.attempts else []
                paid = [
                    old
                    for old in history
                    if old.prediction_id is not None or old.state.value in AMBIGUOUS
                ]
                rows[record.key] = JournalRow(
                    key=record.key,
                    state=record.state.value,
                    fingerprint=record.fingerprint,
                    prediction_id=record.prediction_id,
                    files=record.files,
                    error=_error(record),
                    cost=sum(old.cost for old in history),
                    attempts=len(paid),
                    model=_model(record),
                    error_type=record.error_type,
                    request_id=record.request_id,
                    price_rule=record.price_rule,
                    flagged=record.flagged,
                )
            if page.next_after is None:
                break
            after = page.next_after
        billed = (await journal.spend()).billed
    return JournalView(path=path, rows=rows, billed=billed)


async def fingerprint(item: EditItem) -> str:
    """The digest the engine files ``item`` under: a changed one means a new paid job."""
    from .._engine._resume import fingerprint as engine_fingerprint

    return await engine_fingerprint(item, item.request_params())


def journal_exists(path: Path | str) -> bool:
    """True when ``path`` is a journal file worth reading (not missing, not empty), or a
    PostgreSQL journal's DSN (a server journal always exists: its tables are made on use)."""
    if isinstance(path, str) and path.startswith(("postgresql://", "postgres://")):
        return True
    try:
        return os.stat(path).st_size > 0
    except OSError:
        return False
