"""``seedream-async load`` and ``status`` against a PostgreSQL journal, in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from seedream_async.cli import main


def manifest(folder: Path, count: int, prompt: str = "edit") -> Path:
    path = folder / "catalog.jsonl"
    rows = [
        {"key": f"sku-{n}", "prompt": f"{prompt} {n}", "images": [f"https://e.com/{n}.png"]}
        for n in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_load_is_idempotent_and_status_reads_the_journal(
    postgres_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """load adds the rows once; status shows them pending, with no worker and no money."""
    path = manifest(tmp_path, 5)
    assert main(["load", str(path), "--journal", postgres_dsn]) == 0
    assert "5 added, 0 changed (new jobs), 0 unchanged" in capsys.readouterr().out
    assert main(["load", str(path), "--journal", postgres_dsn]) == 0
    assert "0 added, 0 changed (new jobs), 5 unchanged" in capsys.readouterr().out
    assert main(["load", str(manifest(tmp_path, 5, "other")), "--journal", postgres_dsn]) == 0
    assert "0 added, 5 changed (new jobs), 0 unchanged" in capsys.readouterr().out

    assert main(["status", "--journal", postgres_dsn, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["counts"]["pending"] == 5
    assert (status["billed"], status["workers"], status["unclaimed"]) == (0, {}, 5)


def test_a_journal_must_be_a_postgres_dsn(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """work without a journal, or with a file path, is a usage error saying what to pass."""
    monkeypatch.delenv("SEEDREAM_JOURNAL", raising=False)
    monkeypatch.setenv("ATLASCLOUD_API_KEY", "k")
    assert main(["work"]) == 2
    assert "--journal postgresql://" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["work", "--journal", "journal.sqlite"])
    assert exited.value.code == 2
    assert "PostgreSQL DSN" in capsys.readouterr().err


def test_run_shares_a_postgres_journal_and_resumes_from_it(
    postgres_dsn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """run with a DSN as its journal runs on that journal (no file named after the DSN):
    a second run of the same manifest is answered from it, nothing paid twice."""
    path = manifest(tmp_path, 3)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "seedream_async.testing", "--port", "0"]
    command += ["--time-scale", "0.001", "--output-size", "8x8"]
    simulator = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        assert simulator.stdout is not None
        words = simulator.stdout.readline().decode().split()
        monkeypatch.setenv("ATLASCLOUD_API_KEY", words[7])
        run = ["run", str(path), "--out", str(out), "--journal", postgres_dsn]
        run += ["--base-url", words[3], "--first-poll", "0.01", "--poll-interval", "0.01"]
        assert main(run) == 0
        assert main(run) == 0
        with httpx.Client() as http:
            ledger = http.get(
                f"{words[3]}/_sim/ledger", headers={"Authorization": f"Bearer {words[7]}"}
            ).json()
    finally:
        simulator.kill()
        simulator.wait()
        assert simulator.stdout is not None
        simulator.stdout.close()
    assert ledger["executions"] == 3
    capsys.readouterr()
    assert main(["status", "--journal", postgres_dsn, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["delivered"] == 3
    assert len((out / "report.jsonl").read_text().splitlines()) == 3
    assert not any("postgres" in p.name for p in out.iterdir())


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "in-task-groups"])
def test_a_journal_failing_mid_run_is_one_sentence(
    wrapped: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fleet command whose journal fails mid-run (a paused worker whose session the server
    ended: the error comes out of the batch's task groups, wrapped) says so in one sentence
    with the journal's exit code, never a traceback. Unrelated errors still propagate."""
    import argparse

    from seedream_async import JournalUnavailable
    from seedream_async.cli._fleet import run_on_journal
    from seedream_async.cli._options import EXIT_JOURNAL

    dsn = "postgresql://worker@db.example/catalog"
    failure = JournalUnavailable(dsn, "the database cannot be reached (server closed)", "retry")

    async def handler(*_: object) -> int:
        if wrapped:
            raise BaseExceptionGroup("batch", [ExceptionGroup("feed", [failure])])
        raise failure

    assert run_on_journal(argparse.Namespace(journal=dsn), handler) == EXIT_JOURNAL
    said = capsys.readouterr()
    assert "Traceback" not in said.out + said.err
    assert "the database cannot be reached" in said.err

    async def broken(*_: object) -> int:
        raise ExceptionGroup("batch", [failure, ValueError("a bug")])

    with pytest.raises(ExceptionGroup):
        run_on_journal(argparse.Namespace(journal=dsn), broken)
