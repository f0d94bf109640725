"""The journal the engine opens from a path: SQLite (``_sqlite.py``), implementing the
:class:`~._store.JournalStore` interface (``_store.py``) that any journal implements."""

from __future__ import annotations

from ._sqlite import SQLiteJournal
from ._store import ItemRecord, JournalState, JournalStore

__all__ = ["Journal", "JournalEntry", "JournalState", "JournalStore", "SqliteJournal"]

Journal = SqliteJournal = SQLiteJournal
"""The bundled journal: one SQLite file (``await Journal.open(path, durable=False)``)."""

JournalEntry = ItemRecord
"""One item's row in the journal (the name earlier versions used)."""
