"""The SQLite journal as a file: durable, shared safely, refusing what is not a journal.

What each call does to an item's state is in ``test_store.py``; the same contract runs
against every journal in ``test_journal_contract.py``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from seedream_async._base._exceptions import JournalError
from seedream_async._engine._journal import Journal, JournalEntry
from seedream_async._engine._journal_types import Claim, JournalState
from seedream_async._engine._owners import new_owner

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]

REQUEST = {"prompt": "on a pedestal", "images": ["https://example.com/a.png"], "max_images": 2}
ME = new_owner()


def claim(key: str, fingerprint: str = "fp") -> Claim:
    return Claim(key=key, fingerprint=fingerprint, name=key)


async def begin(journal: Journal, *keys: str, fingerprint: str = "fp") -> None:
    await journal.claim(ME, [claim(key, fingerprint) for key in keys], lease=60)


async def current(journal: Journal, key: str) -> JournalEntry:
    entry = await journal.get(key)
    assert entry is not None
    return entry


async def test_a_change_to_an_unknown_key_raises(tmp_path: Path) -> None:
    """A state change for a key never claimed is an error, not a silent no-op."""
    async with await Journal.open(tmp_path / "j.db") as journal:
        with pytest.raises(JournalError, match="'nope' is not in the journal"):
            await journal.reserve(ME, "nope", request=REQUEST, amount=0.04, budget=None)
        with pytest.raises(JournalError, match="not in the journal"):
            await journal.submitted(ME, "nope", prediction_id="pred", cost=0.04)


async def test_closed_journal_raises(tmp_path: Path) -> None:
    """Use after aclose() raises JournalError; closing twice is fine."""
    journal = await Journal.open(tmp_path / "j.db")
    await journal.aclose()
    await journal.aclose()
    with pytest.raises(JournalError, match="is closed"):
        await journal.get("a")


async def test_persists_across_reopen(tmp_path: Path) -> None:
    """Rows, their order, counts and the bill survive closing and reopening the file."""
    path = tmp_path / "j.db"
    async with await Journal.open(path, durable=True) as journal:
        await begin(journal, "c", "a", "b")
        await journal.reserve(ME, "a", request=REQUEST, amount=0.04, budget=None)
        await journal.submitted(ME, "a", prediction_id="pred_a", cost=0.04)
        await journal.not_submitted(ME, "b", error="x", error_type="BudgetExceeded")
    async with await Journal.open(path) as journal:
        page = await journal.page()
        assert [e.key for e in page.records] == ["c", "a", "b"]
        assert page.records[1].prediction_id == "pred_a"
        counts = await journal.counts()
        assert counts[JournalState.PENDING] == 1
        assert counts[JournalState.SUBMITTED] == 1
        assert counts[JournalState.NOT_SUBMITTED] == 1
        assert set(counts) == set(JournalState)
        assert (await journal.spend()).billed == pytest.approx(0.04)


async def test_intent_survives_kill_9(tmp_path: Path) -> None:
    """A process killed right after the intent leaves it readable; the next claimer finds
    the item ambiguous (its submit may have been billed), never plain pending."""
    path = tmp_path / "j.db"
    code = textwrap.dedent(
        f"""
        import os, signal, anyio
        from seedream_async._engine._journal import Journal
        from seedream_async._engine._owners import new_owner
        from seedream_async._engine._journal_types import Claim

        async def main():
            me = new_owner()
            journal = await Journal.open({str(path)!r})
            await journal.claim(me, [Claim(key="a", fingerprint="fp", name="a")], lease=600)
            await journal.reserve(me, "a", request={REQUEST!r}, amount=0.04, budget=None)
            await journal.claim(me, [Claim(key="b", fingerprint="fp", name="b")], lease=600)
            os.kill(os.getpid(), signal.SIGKILL) if hasattr(signal, "SIGKILL") else os._exit(1)

        anyio.run(main)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = await anyio.run_process([sys.executable, "-c", code], check=False, env=env)
    assert result.returncode in (-signal.SIGKILL, 1), result.stderr.decode()
    async with await Journal.open(path) as journal:
        entry = await current(journal, "a")
        assert (entry.state, entry.request) == (JournalState.INTENT, REQUEST)
        # The killed process's claims are taken over at once (its pid is gone).
        (outcome,) = await journal.claim(new_owner(), [claim("a")], lease=60)
        assert outcome.record is not None
        assert outcome.record.state is JournalState.AMBIGUOUS
        assert [e.key for e in (await journal.page()).records] == ["a", "b"]


def _sqlite(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


async def test_random_bytes_and_text_are_not_journals(tmp_path: Path) -> None:
    """Random bytes and a text file are refused with a message naming the path."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(8192))
    text = tmp_path / "notes.txt"
    text.write_text("key,prompt\nsku1,hello\n")
    for path in (junk, text):
        with pytest.raises(JournalError, match="is not an SQLite database") as info:
            await Journal.open(path)
        assert str(path) in str(info.value)


async def test_corrupt_database_is_refused(tmp_path: Path) -> None:
    """A journal whose pages were overwritten is refused, pointing at PRAGMA quick_check."""
    path = tmp_path / "j.db"
    async with await Journal.open(path) as journal:
        await journal.claim(ME, [claim(f"key-{i}", "x" * 200) for i in range(200)], lease=60)
    data = bytearray(path.read_bytes())
    assert len(data) > 3 * 4096
    data[100:] = os.urandom(len(data) - 100)  # keep the 100-byte header, ruin every page
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError, match="quick_check") as info:
        await Journal.open(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("table", "statement"),
    [
        pytest.param("users", "CREATE TABLE users (id INTEGER PRIMARY KEY)", id="other-tables"),
        pytest.param("items", "CREATE TABLE items (id INTEGER)", id="same-table-name"),
    ],
)
async def test_other_applications_database_is_refused(
    tmp_path: Path, table: str, statement: str
) -> None:
    """An SQLite file with someone else's tables is refused and left untouched."""
    path = tmp_path / "app.db"
    _sqlite(path, statement)
    with pytest.raises(JournalError, match="another application") as info:
        await Journal.open(path)
    assert str(path) in str(info.value)
    assert table in str(info.value)
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    finally:
        conn.close()
    assert tables == [table]


async def test_a_journal_without_the_request_id_column_gets_it(tmp_path: Path) -> None:
    """A version 2 file made before the request_id and price_rule columns opens, gains
    them (empty for old rows) and keeps its rows."""
    path = tmp_path / "j.db"
    async with await Journal.open(path) as journal:
        await begin(journal, "a")
        await journal.reserve(ME, "a", request=REQUEST, amount=0.036, budget=None)
        await journal.submitted(ME, "a", prediction_id="p-a", cost=0.036)
    drop = "ALTER TABLE items DROP COLUMN"
    _sqlite(path, f"{drop} request_id", f"{drop} price_rule")
    async with await Journal.open(path) as journal:
        record = await journal.get("a")
        assert record is not None
        assert (record.prediction_id, record.request_id, record.cost) == ("p-a", None, 0.036)
        await begin(journal, "b")
        await journal.reserve(ME, "b", request=REQUEST, amount=0.036, budget=None)
        await journal.submitted(ME, "b", prediction_id="p-b", cost=0.036, request_id="req-b")
        record = await journal.get("b")
        assert record is not None
        assert record.request_id == "req-b"


async def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    """A journal written by a newer seedream-async asks for an upgrade."""
    path = tmp_path / "j.db"
    async with await Journal.open(path) as journal:
        await begin(journal, "a")
    _sqlite(path, "PRAGMA user_version = 99")
    with pytest.raises(JournalError, match="schema version 99") as info:
        await Journal.open(path)
    assert "upgrade" in str(info.value)


async def test_concurrent_records_are_serialized(tmp_path: Path) -> None:
    """Many tasks writing at once all land, each item in its final state."""
    async with await Journal.open(tmp_path / "j.db") as journal:

        async def run(i: int) -> None:
            key = f"k{i}"
            await begin(journal, key)
            await journal.reserve(ME, key, request={**REQUEST, "seed": i}, amount=0.04, budget=None)
            await journal.submitted(ME, key, prediction_id=f"pred_{i}", cost=0.04)
            await journal.delivered(ME, key, files=[], outputs=[f"https://o/{i}"])

        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(run, i)

        entries = (await journal.page()).records
        assert len(entries) == 100
        for entry in entries:
            i = int(entry.key[1:])
            assert entry.prediction_id == f"pred_{i}"
            assert entry.request == {**REQUEST, "seed": i}
            assert entry.outputs == (f"https://o/{i}",)
        assert (await journal.counts())[JournalState.DELIVERED] == 100
        assert (await journal.spend()).billed == pytest.approx(4.0)


async def test_event_loop_keeps_running_while_a_write_waits(tmp_path: Path) -> None:
    """A write stuck behind another process's lock does not stop other tasks from running."""
    path = tmp_path / "j.db"
    async with await Journal.open(path) as journal:
        await begin(journal, "a")
        ticks = 0
        written = anyio.Event()
        ticked = anyio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not written.is_set():
                ticks += 1
                if ticks == 20:
                    ticked.set()
                await anyio.sleep(0.001)

        async def write() -> None:
            await journal.reserve(ME, "a", request=REQUEST, amount=0.04, budget=None)
            written.set()

        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # hold the write lock, as another writer would
            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                tg.start_soon(write)
                with anyio.fail_after(5):
                    await ticked.wait()
                assert not written.is_set()  # the write is still waiting on the lock...
                other.execute("COMMIT")  # ...and the loop ran the ticker meanwhile
                with anyio.fail_after(5):
                    await written.wait()
        finally:
            other.close()
        entry = await current(journal, "a")
        assert entry.state is JournalState.INTENT
