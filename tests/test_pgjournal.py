"""What only the PostgreSQL journal does: its schema, manifest loading and batch claims."""

from __future__ import annotations

import anyio
import psycopg
import pytest

from seedream_async._base._exceptions import JournalError
from seedream_async._engine._journal_types import JournalState, LostClaim
from seedream_async._engine._pgjournal import (
    LoadRow,
    PostgresJournal,
    is_postgres_dsn,
    redact_dsn,
)
from seedream_async._engine._pgjournal_schema import SCHEMA_VERSION

pytestmark = pytest.mark.anyio

PRICE = 0.036
REQUEST = {"prompt": "p", "images": ["https://example.com/a.png"]}


def rows(count: int, *, fingerprint: str = "fp1", start: int = 0) -> list[LoadRow]:
    return [
        LoadRow(
            key=f"sku-{n:04d}",
            fingerprint=fingerprint,
            name=f"sku-{n:04d}",
            item={"key": f"sku-{n:04d}", "prompt": "p", "images": ["https://e/x.png"]},
        )
        for n in range(start, start + count)
    ]


async def test_schema_is_created_once_and_versioned(postgres_dsn: str) -> None:
    """Workers opening a new database at once create the tables once, with a version row."""
    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(_open_and_close, postgres_dsn)
    with psycopg.connect(postgres_dsn) as conn:
        version = conn.execute(
            "SELECT value FROM seedream_meta WHERE name = 'schema_version'"
        ).fetchall()
    assert version == [(str(SCHEMA_VERSION),)]


async def _open_and_close(dsn: str) -> None:
    async with await PostgresJournal.open(dsn):
        pass


async def test_a_journal_without_the_request_id_column_gets_it(postgres_dsn: str) -> None:
    """A journal made before the request_id and price_rule columns gains them on open."""
    await _open_and_close(postgres_dsn)
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("ALTER TABLE seedream_items DROP COLUMN request_id, DROP COLUMN price_rule")
    async with await PostgresJournal.open(postgres_dsn) as journal:
        assert await journal.get("missing") is None
        assert (await journal.page()).records == ()


async def test_a_newer_schema_is_refused(postgres_dsn: str) -> None:
    """A journal written by a newer seedream-async is not touched; the error says upgrade."""
    await _open_and_close(postgres_dsn)
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("UPDATE seedream_meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(JournalError, match=r"schema version 99.*upgrade seedream-async"):
        await PostgresJournal.open(postgres_dsn)


async def test_someone_elses_table_is_refused(postgres_dsn: str) -> None:
    """A database already holding a seedream_items table that is not ours is left alone."""
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("CREATE TABLE seedream_items (id int)")
    with pytest.raises(JournalError, match="belongs to something else"):
        await PostgresJournal.open(postgres_dsn)


async def test_an_unreachable_server_names_it_without_the_password(
    postgres_dsn: str,
) -> None:
    """The error names host and database, never the password in the DSN."""
    dead = postgres_dsn.replace("postgres@", "postgres:hunter2@").rsplit(":", 1)[0] + ":1/x"
    with pytest.raises(JournalError) as caught:
        await PostgresJournal.open(dead, connect_timeout=1.0)
    assert "hunter2" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)
    assert redact_dsn("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert is_postgres_dsn("postgres://h/db")
    assert not is_postgres_dsn("journal.sqlite")


async def test_loading_is_idempotent_and_detects_changed_rows(postgres_dsn: str) -> None:
    """Loading the same manifest again writes nothing; a changed fingerprint is a new job
    whose paid attempt stays in the history; a name another key holds is reported."""
    async with await PostgresJournal.open(postgres_dsn) as journal:
        first = await journal.load(rows(25), chunk=10)
        assert (first.added, first.unchanged, first.changed) == (25, 0, 0)
        before = {r.key: r.updated_at for r in (await journal.page(limit=100)).records}

        again = await journal.load(rows(25), chunk=10)
        assert (again.added, again.unchanged, again.changed) == (0, 25, 0)
        after = {r.key: r.updated_at for r in (await journal.page(limit=100)).records}
        assert after == before  # not even touched

        [got] = await journal.claim_next("w1", limit=1, lease=60)
        key = got.record.key
        assert await journal.reserve("w1", key, request=REQUEST, amount=PRICE, budget=None)
        await journal.submitted("w1", key, prediction_id="pred-1", cost=PRICE)

        clash = LoadRow(key="other", fingerprint="f", name="SKU-0003", item={"key": "other"})
        changed = [*rows(2, fingerprint="fp2"), clash]
        report = await journal.load(changed)
        assert (report.added, report.unchanged, report.changed) == (0, 0, 2)
        assert report.name_conflicts == (("other", "sku-0003"),)
        record = await journal.get(key)
        assert record is not None
        assert (record.state, record.fingerprint) == (JournalState.PENDING, "fp2")
        assert record.owner is None
        assert [a.prediction_id for a in await journal.history(key)] == ["pred-1"]
        assert (await journal.spend()).billed == pytest.approx(PRICE)


async def test_claim_next_hands_out_disjoint_batches(postgres_dsn: str) -> None:
    """Workers asking at once get disjoint batches (SKIP LOCKED) that cover every item."""
    async with await PostgresJournal.open(postgres_dsn) as journal:
        await journal.load(rows(300))
    got: dict[str, list[str]] = {}

    async def worker(name: str) -> None:
        async with await PostgresJournal.open(postgres_dsn, pool_size=2) as journal:
            while batch := await journal.claim_next(name, limit=16, lease=60):
                got.setdefault(name, []).extend(c.record.key for c in batch)
                for claimed in batch:
                    assert claimed.item["key"] == claimed.record.key
                    await journal.not_submitted(name, claimed.record.key, error="-", error_type="-")

    async with anyio.create_task_group() as group:
        for n in range(4):
            group.start_soon(worker, f"w{n}")
    everyone = sorted(key for keys in got.values() for key in keys)
    assert everyone == [r.key for r in rows(300)]


async def test_claim_next_takes_over_expired_leases_as_left(postgres_dsn: str) -> None:
    """A dead worker's items go to the next claimer: the billed one with its id."""
    async with await PostgresJournal.open(postgres_dsn) as journal:
        await journal.load(rows(3))
        batch = await journal.claim_next("dead", limit=3, lease=60)
        first, second = batch[0].record.key, batch[1].record.key
        assert await journal.reserve("dead", first, request=REQUEST, amount=PRICE, budget=None)
        await journal.submitted("dead", first, prediction_id="pred-1", cost=PRICE)
        assert await journal.reserve("dead", second, request=REQUEST, amount=PRICE, budget=None)
        assert await journal.claim_next("live", limit=3, lease=60) == []  # still held

        await journal.heartbeat("dead", lease=0.0)  # the worker stops renewing: expired
        status = await journal.fleet()
        assert (status.stale, status.owners) == (3, {})

        taken = await journal.claim_next("live", limit=10, lease=60)
        assert [c.taken_over_from for c in taken] == ["dead"] * 3
        states = {c.record.key: (c.record.state, c.record.prediction_id) for c in taken}
        assert states[first] == (JournalState.SUBMITTED, "pred-1")
        # Caught between submit and answer: maybe billed, so ambiguous, never sent again.
        assert states[second] == (JournalState.AMBIGUOUS, None)
        spend = await journal.spend()
        assert (spend.billed, spend.reserved) == (pytest.approx(2 * PRICE), 0)
        status = await journal.fleet()
        assert (status.stale, status.owners) == (0, {"live": 2})


async def test_reserve_needs_a_live_lease(postgres_dsn: str) -> None:
    """Across machines, a worker that stalled past its lease may not start a submit, even
    before anyone took the item over (stricter than the SQLite journal needs to be)."""
    async with await PostgresJournal.open(postgres_dsn) as journal:
        await journal.load(rows(1))
        [claimed] = await journal.claim_next("w", limit=1, lease=0.0)
        key = claimed.record.key
        with pytest.raises(LostClaim):
            await journal.reserve("w", key, request=REQUEST, amount=PRICE, budget=None)
        assert await journal.heartbeat("w", lease=60) == 1
        assert await journal.reserve("w", key, request=REQUEST, amount=PRICE, budget=None)
