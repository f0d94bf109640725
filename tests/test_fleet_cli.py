"""``seedream-async load`` and ``status`` against a PostgreSQL journal, in-process."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_run_refuses_a_postgres_dsn_and_names_the_fleet_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """run with a DSN as its journal is a usage error pointing at load and work, not a file
    named after the DSN (nothing is created, nothing sent)."""
    path = manifest(tmp_path, 2)
    out = tmp_path / "out"
    code = main(["run", str(path), "--out", str(out), "--journal", "postgresql://db/catalog"])
    assert code == 2
    err = capsys.readouterr().err
    assert "seedream-async load" in err
    assert "seedream-async work" in err
    assert not out.exists()
