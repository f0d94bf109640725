"""Opening a journal: one factory, :func:`open_journal`, for every place that opens one.

A journal target is a path (an SQLite file, ``_sqlite.py``) or a PostgreSQL DSN
(``postgresql://`` or ``postgres://``, ``_pgjournal.py``); both implement
:class:`~._store.JournalStore` over the same statements (``_sqljournal.py``) and rules
(``_rules.py``). A new backend is one more branch here.
"""

from __future__ import annotations

import os

import anyio

from ._journal_types import ItemRecord
from ._pgjournal import PostgresJournal, is_postgres_dsn
from ._sqlite import SQLiteJournal
from ._sqljournal import SQLJournal

__all__ = ["Journal", "JournalEntry", "JournalTarget", "SQLJournal", "open_journal"]

JournalTarget = str | os.PathLike[str]
"""Where a journal is: a file path (SQLite) or a ``postgresql://`` DSN."""

Journal = SQLiteJournal
"""The bundled file journal (``await Journal.open(path, durable=False)``); earlier versions'
name for :class:`SQLiteJournal`, kept."""

JournalEntry = ItemRecord
"""One item's row in the journal (the name earlier versions used for ``ItemRecord``)."""


async def open_journal(
    target: JournalTarget,
    *,
    durable: bool = False,
    create: bool = True,
    pool_size: int = 4,
    connect_timeout: float = 10.0,
    outage_wait: float = 120.0,
) -> SQLJournal:
    """Open the journal at ``target``: ``async with await open_journal(target) as journal``.

    Args:
        target: a path (an SQLite file, created with its tables if missing) or a
            ``postgresql://user[:password]@host[:port]/dbname`` DSN (the tables are
            created on first use; needs the ``postgres`` extra).
        durable: SQLite: fsync every commit, so entries survive power loss too. Slower.
        create: SQLite: create the file's missing parent folders (False: the caller only
            reads a journal that exists).
        pool_size: PostgreSQL: the most journal calls at once.
        connect_timeout: PostgreSQL: seconds to wait for the first connection.
        outage_wait: PostgreSQL: seconds each call waits out a server that went away (a
            restart, an outage) before it raises
            :class:`~seedream_async.JournalUnavailable`.

    Raises:
        JournalError: the journal cannot be opened (see :meth:`SQLiteJournal.open` and
            :meth:`PostgresJournal.open`); the message never carries a password.
            :class:`~seedream_async.JournalUnavailable` when the cause is the machinery
            (a full or read-only disk, a server down, a wrong DSN).
    """
    if is_postgres_dsn(target):
        return await PostgresJournal.open(
            target,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            outage_wait=outage_wait,
        )
    path = anyio.Path(target)
    if create:
        await path.parent.mkdir(parents=True, exist_ok=True)
    return await SQLiteJournal.open(str(path), durable=durable)
