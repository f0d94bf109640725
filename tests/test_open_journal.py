"""One factory opens every journal (``open_journal``), and a run's claims are made under the
owner and lease its options name."""

from __future__ import annotations

from pathlib import Path

import pytest

from seedream_async import (
    BatchOptions,
    InvalidInput,
    JournalError,
    PostgresJournal,
    SQLiteJournal,
    open_journal,
)

pytestmark = pytest.mark.anyio


async def test_a_path_opens_an_sqlite_journal_and_makes_its_folder(tmp_path: Path) -> None:
    """A path is an SQLite file, its missing folders made; with create=False a missing
    journal is an error, not an empty new one."""
    path = tmp_path / "a" / "b" / "journal.sqlite"
    async with await open_journal(path) as journal:
        assert isinstance(journal, SQLiteJournal)
    assert path.is_file()
    with pytest.raises(JournalError):
        await open_journal(tmp_path / "missing" / "j.sqlite", create=False)


async def test_a_dsn_opens_a_postgres_journal(postgres_dsn: str) -> None:
    """A postgresql:// DSN is the server journal, whose repr hides any password."""
    async with await open_journal(postgres_dsn) as journal:
        assert isinstance(journal, PostgresJournal)
        assert sum((await journal.counts()).values()) == 0


@pytest.mark.parametrize(
    ("field", "value"), [("lease", 0.0), ("lease", float("inf")), ("owner", " ")], ids=str
)
def test_owner_and_lease_are_checked_batch_options(field: str, value: object) -> None:
    """A lease must be a positive number of seconds and an owner a non-empty id."""
    with pytest.raises(InvalidInput, match=field):
        BatchOptions(**{field: value})  # type: ignore[arg-type]
