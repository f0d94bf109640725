"""Connecting the PostgreSQL journal to its server: the pool, its sessions, and a lost or
refused connection in words a user can act on (the DSN named, its password never).

Kept apart from the journal's calls (``_pgjournal.py``) and its tables
(``_pgjournal_schema.py``, which creates or checks them when the pool opens).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._base._exceptions import JournalError, JournalUnavailable
from ._pgjournal_schema import ensure_schema, redact_dsn

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

__all__ = ["CHECKOUT", "connect_pool", "down", "reason"]


_IDLE_IN_TRANSACTION_MS = 5000
"""A worker paused (SIGSTOP, a VM frozen) inside one of its sub-millisecond transactions
would hold its row locks, the budget row's included, and stall the whole fleet until it
woke: the server ends such a session after 5 s instead (its transaction rolls back, the
worker's next call reconnects)."""


def connect_pool(dsn: str, pool_size: int, connect_timeout: float) -> Any:
    """The journal's connection pool, open, with its tables created or checked (runs in a
    worker thread)."""
    try:
        import psycopg  # fail here, with the fix, when it is missing
        from psycopg_pool import ConnectionPool
    except ImportError as err:
        raise JournalError(
            "a postgresql:// journal needs psycopg and psycopg-pool: "
            "pip install 'seedream-async[postgres]'"
        ) from err
    pool: ConnectionPool[Any] = ConnectionPool(
        dsn,
        min_size=1,
        max_size=pool_size + 1,
        kwargs={"autocommit": True},
        open=False,
        # A server restart leaves idle connections dead: checked before each use, and
        # replaced, so a restart costs a reconnect rather than a failed call.
        check=ConnectionPool.check_connection,
        configure=_configure,
        name="seedream-journal",
    )
    try:
        # One plain connection first: a wrong DSN or a server that is down says why at
        # once ("connection refused"), not "pool incomplete" 10 s later.
        psycopg.connect(dsn, connect_timeout=max(1, int(connect_timeout))).close()
        pool.open(wait=True, timeout=connect_timeout)
        with pool.connection() as conn, conn.transaction():
            ensure_schema(conn, redact_dsn(dsn))
    except BaseException:
        pool.close()
        raise
    return pool


def _configure(conn: Any) -> None:
    conn.execute(f"SET idle_in_transaction_session_timeout = {_IDLE_IN_TRANSACTION_MS}")


CHECKOUT = 5.0
"""Seconds one journal call waits for a connection; :meth:`~._sqlrunner.TxRunner._tx` tries again
(a server restarting) until the journal's ``outage_wait`` has passed."""


def down(dsn: str, err: BaseException, *, maybe_committed: bool = False) -> JournalUnavailable:
    """A connection failure as :class:`JournalUnavailable`, naming the DSN (no password)."""
    return JournalUnavailable(
        dsn,
        f"the database cannot be reached ({reason(err)})",
        "check that the server is up and the DSN (host, port, database, user) is right",
        maybe_committed=maybe_committed,
    )


def reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:300]
