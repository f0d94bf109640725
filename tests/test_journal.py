from __future__ import annotations

import os
import signal
import sqlite3
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from seedream_async._engine._journal import Journal, JournalEntry, JournalState
from seedream_async._exceptions import JournalError

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]

REQUEST = {"prompt": "on a pedestal", "images": ["https://example.com/a.png"], "max_images": 2}


async def current(journal: Journal, key: str) -> JournalEntry:
    entry = await journal.get(key)
    assert entry is not None
    return entry


async def test_lifecycle_through_every_state(tmp_path: Path) -> None:
    """An entry goes PENDING -> INTENT -> SUBMITTED -> SUCCEEDED with each field recorded."""
    async with await Journal.open(tmp_path / "j.db") as journal:
        assert await journal.get("a") is None
        entry = await journal.begin("a", "fp1")
        assert entry.state is JournalState.PENDING
        assert entry.request is None
        assert entry.updated_at > 0

        await journal.record_intent("a", REQUEST)
        entry = await current(journal, "a")
        assert (entry.state, entry.request, entry.prediction_id) == (
            JournalState.INTENT,
            REQUEST,
            None,
        )

        await journal.record_submitted("a", "pred_1", 0.04)
        entry = await current(journal, "a")
        assert (entry.state, entry.prediction_id, entry.cost) == (
            JournalState.SUBMITTED,
            "pred_1",
            0.04,
        )

        await journal.record_result(
            "a",
            JournalState.SUCCEEDED,
            outputs=["https://o/1.png", "https://o/2.png"],
            files=["out/a_1.png", "out/a_2.png"],
            predict_time=8.3,
        )
        entry = await current(journal, "a")
        assert entry.state is JournalState.SUCCEEDED
        assert entry.outputs == ("https://o/1.png", "https://o/2.png")
        assert entry.files == ("out/a_1.png", "out/a_2.png")
        assert (entry.predict_time, entry.cost, entry.request) == (8.3, 0.04, REQUEST)
        # begin() with the same fingerprint resumes, it does not reset.
        assert await journal.begin("a", "fp1") == entry


@pytest.mark.parametrize(
    "state",
    [JournalState.FAILED, JournalState.AMBIGUOUS, JournalState.NOT_SUBMITTED],
    ids=["failed", "ambiguous", "not_submitted"],
)
async def test_other_result_states(tmp_path: Path, state: JournalState) -> None:
    """Failure-like results keep the error and its type; a new intent clears them."""
    async with await Journal.open(tmp_path / "j.db") as journal:
        await journal.begin("a", "fp")
        await journal.record_intent("a", REQUEST)
        await journal.record_result("a", state, error="boom", error_type="PredictionFailed")
        entry = await current(journal, "a")
        assert (entry.state, entry.error, entry.error_type) == (state, "boom", "PredictionFailed")
        await journal.record_intent("a", REQUEST)
        entry = await current(journal, "a")
        assert (entry.state, entry.error, entry.error_type) == (JournalState.INTENT, None, None)


async def test_record_result_rejects_non_result_state(tmp_path: Path) -> None:
    """record_result only takes a state an item can end in."""
    async with await Journal.open(tmp_path / "j.db") as journal:
        await journal.begin("a", "fp")
        with pytest.raises(ValueError, match="not a result state"):
            await journal.record_result("a", JournalState.SUBMITTED)


async def test_record_unknown_key_raises(tmp_path: Path) -> None:
    """Recording for a key never begun is an error, not a silent no-op."""
    async with await Journal.open(tmp_path / "j.db") as journal:
        with pytest.raises(JournalError, match="'nope' is not in the journal"):
            await journal.record_intent("nope", REQUEST)
        with pytest.raises(JournalError, match="not in the journal"):
            await journal.record_submitted("nope", "pred", 0.04)
        with pytest.raises(JournalError, match="not in the journal"):
            await journal.record_result("nope", JournalState.FAILED)


async def test_closed_journal_raises(tmp_path: Path) -> None:
    """Use after aclose() raises JournalError; closing twice is fine."""
    journal = await Journal.open(tmp_path / "j.db")
    await journal.aclose()
    await journal.aclose()
    with pytest.raises(JournalError, match="is closed"):
        await journal.get("a")


async def test_persists_across_reopen(tmp_path: Path) -> None:
    """Entries, order and counts survive closing and reopening the file."""
    path = tmp_path / "j.db"
    async with await Journal.open(path, durable=True) as journal:
        for key in ("c", "a", "b"):
            await journal.begin(key, f"fp-{key}")
        await journal.record_intent("a", REQUEST)
        await journal.record_submitted("a", "pred_a", 0.04)
        await journal.record_result("b", JournalState.FAILED, error="x", error_type="ServerError")
    async with await Journal.open(path) as journal:
        entries = await journal.entries()
        assert [e.key for e in entries] == ["c", "a", "b"]
        assert entries[1].prediction_id == "pred_a"
        counts = await journal.counts()
        assert counts[JournalState.PENDING] == 1
        assert counts[JournalState.SUBMITTED] == 1
        assert counts[JournalState.FAILED] == 1
        assert counts[JournalState.SUCCEEDED] == 0
        assert set(counts) == set(JournalState)


async def test_fingerprint_change_moves_entry_to_history(tmp_path: Path) -> None:
    """A changed fingerprint archives the old entry and starts a fresh PENDING one."""
    async with await Journal.open(tmp_path / "j.db") as journal:
        await journal.begin("a", "v1")
        await journal.record_intent("a", REQUEST)
        await journal.record_submitted("a", "pred_1", 0.04)
        await journal.record_result("a", JournalState.SUCCEEDED, outputs=["https://o/1.png"])
        await journal.begin("b", "v1")

        fresh = await journal.begin("a", "v2")
        assert (fresh.fingerprint, fresh.state, fresh.prediction_id) == ("v2", "pending", None)
        assert (fresh.request, fresh.outputs, fresh.cost) == (None, (), 0.0)
        await journal.begin("a", "v3")

        old = await journal.history("a")
        assert [(e.fingerprint, e.state) for e in old] == [
            ("v1", JournalState.SUCCEEDED),
            ("v2", JournalState.PENDING),
        ]
        assert old[0].outputs == ("https://o/1.png",)
        assert old[0].prediction_id == "pred_1"
        assert await journal.history("b") == []
        assert [e.key for e in await journal.entries()] == ["a", "b"]


async def test_intent_survives_kill_9(tmp_path: Path) -> None:
    """A process killed right after record_intent leaves the intent readable on reopen."""
    path = tmp_path / "j.db"
    code = textwrap.dedent(
        f"""
        import os, signal, anyio
        from seedream_async._engine._journal import Journal

        async def main():
            journal = await Journal.open({str(path)!r})
            await journal.begin("a", "fp")
            await journal.record_intent("a", {REQUEST!r})
            await journal.begin("b", "fp")
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
        assert [e.key for e in await journal.entries()] == ["a", "b"]


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
        for i in range(200):
            await journal.begin(f"key-{i}", "x" * 200)
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
        pytest.param("entries", "CREATE TABLE entries (id INTEGER)", id="same-table-name"),
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


async def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    """A journal written by a newer seedream-async asks for an upgrade."""
    path = tmp_path / "j.db"
    async with await Journal.open(path) as journal:
        await journal.begin("a", "fp")
    _sqlite(path, "PRAGMA user_version = 99")
    with pytest.raises(JournalError, match="schema version 99") as info:
        await Journal.open(path)
    assert "upgrade" in str(info.value)


async def test_concurrent_records_are_serialized(tmp_path: Path) -> None:
    """Many tasks writing at once all land, each item in its final state."""
    async with await Journal.open(tmp_path / "j.db") as journal:

        async def run(i: int) -> None:
            key = f"k{i}"
            await journal.begin(key, "fp")
            await journal.record_intent(key, {**REQUEST, "seed": i})
            await journal.record_submitted(key, f"pred_{i}", 0.04)
            await journal.record_result(key, JournalState.SUCCEEDED, outputs=[f"https://o/{i}"])

        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(run, i)

        entries = await journal.entries()
        assert len(entries) == 100
        for entry in entries:
            i = int(entry.key[1:])
            assert entry.prediction_id == f"pred_{i}"
            assert entry.request == {**REQUEST, "seed": i}
            assert entry.outputs == (f"https://o/{i}",)
        assert (await journal.counts())[JournalState.SUCCEEDED] == 100


async def test_event_loop_keeps_running_while_a_write_waits(tmp_path: Path) -> None:
    """A write stuck behind another process's lock does not stop other tasks from running."""
    path = tmp_path / "j.db"
    async with await Journal.open(path) as journal:
        await journal.begin("a", "fp")
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
            await journal.record_intent("a", REQUEST)
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
