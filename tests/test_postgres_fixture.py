"""The throwaway PostgreSQL server the journal's PostgreSQL tests run against."""

from __future__ import annotations

import psycopg


def test_each_test_gets_a_fresh_database(postgres_dsn: str) -> None:
    """The per-test database is empty and writable over TCP with trust authentication."""
    with psycopg.connect(postgres_dsn) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE leftover (x int)")


def test_databases_do_not_leak_between_tests(postgres_dsn: str) -> None:
    """A table made by another test is not visible here."""
    with psycopg.connect(postgres_dsn) as conn:
        found = conn.execute("SELECT to_regclass('public.leftover')").fetchone()
        assert found == (None,)
