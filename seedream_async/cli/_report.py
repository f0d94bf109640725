"""The run's record: ``report.jsonl``, one line per item (the terminal summary is
``_summary.py``).

A line holds what became of the item (status, prediction id, files, cost, error) and what was
asked (prompt, images, params, seed), so a run can be reviewed from the report alone. When
the run ends, :func:`complete_from_journal` adds what only the journal knows: the uploaded
URL of each local image and the item's earlier paid attempts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import anyio
import anyio.to_thread

from .._base._constants import DEFAULT_MODEL
from .._base._exceptions import PredictionFailed
from .._engine._items import BatchResult, EditItem, ResultStatus
from .._engine._journal import open_journal
from .._engine._journal_types import Attempt, ItemRecord, JournalState
from ._options import is_dsn
from ._reroll import REROLLED_DIR

__all__ = [
    "ReportWriter",
    "complete_from_journal",
    "journal_record",
    "record",
    "write_report",
]

# What a journal row says about an item this run has no result for.
_JOURNAL_STATUS = {
    JournalState.PENDING: ResultStatus.NOT_SUBMITTED,
    JournalState.NOT_SUBMITTED: ResultStatus.NOT_SUBMITTED,
    JournalState.INTENT: ResultStatus.AMBIGUOUS,
    JournalState.AMBIGUOUS: ResultStatus.AMBIGUOUS,
    JournalState.SUBMITTED: ResultStatus.FAILED,
    JournalState.DONE: ResultStatus.FAILED,
    JournalState.API_FAILED: ResultStatus.FAILED,
    JournalState.DELIVERED: ResultStatus.SUCCEEDED,
}


def _image(image: object) -> dict[str, str | None]:
    if isinstance(image, str):
        if image.startswith(("https://", "http://")):
            return {"path": None, "url": image}
        return {"path": str(Path(image).absolute()), "url": None}
    return {"path": None, "url": None}  # bytes: nothing to link to


def record(result: BatchResult, item: EditItem | None = None) -> dict[str, Any]:
    """One ``report.jsonl`` line: what was asked and what became of it, JSON-ready.

    Args:
        result: the item's result.
        item: the item as the manifest gave it; its prompt, images, params and seed.
    """
    params = item.request_params() if item is not None else {}
    seed = params.pop("seed", None)
    model = params.pop("model", None) or DEFAULT_MODEL
    attempt = {
        "prediction_id": result.prediction_id,
        "status": str(result.status),
        "cost": result.cost,
        "files": [str(path.absolute()) for path in result.files],
    }
    return {
        "key": result.key,
        "status": str(result.status),
        "model": model,
        "prompt": item.prompt if item is not None else None,
        "images": [_image(image) for image in item.images] if item is not None else [],
        "params": params,
        "seed": seed,
        "prediction_id": result.prediction_id,
        "files": [str(path.absolute()) for path in result.files],
        "outputs": list(result.outputs),
        "error": result.error_message,
        "error_type": type(result.error).__name__ if result.error is not None else None,
        "request_id": result.request_id,
        "nsfw": list(result.nsfw),
        "flagged": sum(result.nsfw),
        "cost": result.cost,
        "predict_time": result.predict_time,
        "timings": asdict(result.timings),
        "from_journal": result.from_journal,
        "attempts": [attempt] if result.prediction_id is not None else [],
    }


def journal_record(
    key: str, row: ItemRecord | None, item: EditItem | None = None
) -> dict[str, Any]:
    """A ``report.jsonl`` line from the journal, for an item this run has no result for.

    Args:
        key: the item's key.
        row: its journal row, if it has one.
        item: the item as the manifest gave it, when this run read it (else what was asked
            comes from the journal's request).
    """
    status, error = _journal_status(row)
    prompt, images, params = _asked(row, item)
    seed = params.pop("seed", None)
    model = params.pop("model", None) or DEFAULT_MODEL
    files = list(row.files) if row and row.state is JournalState.DELIVERED else []
    attempt = {
        "prediction_id": row.prediction_id if row else None,
        "status": str(status),
        "cost": row.cost if row else 0.0,
        "files": files,
    }
    return {
        "key": key,
        "status": str(status),
        "model": model,
        "prompt": prompt,
        "images": images,
        "params": params,
        "seed": seed,
        "prediction_id": row.prediction_id if row else None,
        "files": files,
        "outputs": list(row.outputs) if row else [],
        "error": error,
        "error_type": row.error_type if row else None,
        "request_id": row.request_id if row else None,
        "nsfw": [],
        "flagged": row.flagged if row else 0,
        "cost": 0.0,
        "predict_time": row.predict_time if row else None,
        "timings": None,
        "from_journal": True,
        "attempts": [attempt] if attempt["prediction_id"] is not None else [],
    }


def _journal_status(row: ItemRecord | None) -> tuple[ResultStatus, str | None]:
    """An item's status and error as the journal tells them, worded as this run's lines."""
    if row is None:
        return ResultStatus.NOT_SUBMITTED, "not reached: the run stopped before it"
    error = row.error
    if row.state is JournalState.API_FAILED and row.prediction_id and error:
        error = str(PredictionFailed(row.prediction_id, error))  # as this run's lines say
    if row.state in (JournalState.SUBMITTED, JournalState.DONE):
        error = (
            f"{error or 'not delivered yet'} (prediction {row.prediction_id} is paid for: a "
            "re-run fetches it by id)"
        )
    return _JOURNAL_STATUS[row.state], error


def _asked(
    row: ItemRecord | None, item: EditItem | None
) -> tuple[str | None, list[Any], dict[str, Any]]:
    """What was asked (prompt, images, other parameters): from the manifest's item when
    this run read it, else from the request the journal kept."""
    if item is not None:
        return item.prompt, [_image(image) for image in item.images], item.request_params()
    request = dict(row.request or {}) if row is not None else {}
    prompt = request.pop("prompt", None)
    sent = request.pop("images", None)
    images = [_image(url) for url in sent] if isinstance(sent, list) else []
    for name in ("enable_base64_output", "enable_sync_mode"):
        request.pop(name, None)
    return prompt, images, request


async def write_report(
    path: Path,
    keys: Sequence[str],
    journal_path: Path | str,
    results: Mapping[str, dict[str, Any]],
    items: Mapping[str, EditItem] | None = None,
) -> None:
    """Write ``report.jsonl`` whole, one line per key of the manifest, in manifest order:
    this run's result where it has one, else what the journal records; each line completed
    from the journal (uploaded URLs, earlier paid attempts). Written to a temporary file and
    renamed, so two runs sharing the folder never interleave it.

    Args:
        path: the report's path.
        keys: the manifest's keys, in order.
        journal_path: the journal (a file, or a PostgreSQL DSN).
        results: this run's lines (:func:`record`), by key.
        items: the items this run read from the manifest, by key (what was asked).
    """
    items = items or {}
    rows: dict[str, ItemRecord] = {}
    histories: dict[str, list[Attempt]] = {}
    if is_dsn(journal_path) or await anyio.Path(journal_path).exists():
        async with await open_journal(journal_path, create=False) as journal:
            rows = await journal.get_many(list(keys))
            for key, row in rows.items():
                if row.attempts > 1:  # earlier attempts to list besides the latest
                    histories[key] = await journal.history(key)
    lines = []
    for key in keys:
        found = rows.get(key)
        line = dict(results.get(key) or journal_record(key, found, items.get(key)))
        if found is not None:
            _with_journal(line, found, histories.get(key, []))
        lines.append(line)

    def write() -> None:
        temp = path.with_name(f".{path.name}.{os.getpid()}.part")
        with temp.open("w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        os.replace(temp, path)

    await anyio.to_thread.run_sync(write)


class ReportWriter:
    """Writes ``report.jsonl`` line by line as results come, flushed, so it can be watched
    during the run; :func:`write_report` replaces it whole at the end.

    Each run writes the file afresh; results answered from the journal are written too,
    so the report of a resumed run covers every item.

    Args:
        path: the report's path.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def __enter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("w", encoding="utf-8")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def write(self, result: BatchResult, item: EditItem | None = None) -> None:
        """Append one item's line."""
        assert self._handle is not None, "use ReportWriter as a context manager"
        self._handle.write(json.dumps(record(result, item), ensure_ascii=False) + "\n")
        self._handle.flush()


def _with_journal(line: dict[str, Any], row: ItemRecord, history: Sequence[Attempt]) -> None:
    request = row.request or {}
    sent = request.get("images")
    images = line.get("images") or []
    if isinstance(sent, list) and len(sent) == len(images):
        for image, url in zip(images, sent, strict=True):
            if (
                image.get("url") is None
                and isinstance(url, str)
                and url.startswith(("https://", "http://"))
            ):
                image["url"] = url  # the uploaded copy of a local file
    if line.get("seed") is None and isinstance(request.get("seed"), int):
        line["seed"] = request["seed"]
    # The history holds the latest attempt too: the line lists that one already.
    latest = line.get("prediction_id") or row.prediction_id
    earlier = [
        {
            "prediction_id": old.prediction_id,
            "status": str(old.state),
            "cost": old.cost,
            "files": _kept(row.files, number),
        }
        for number, old in enumerate(
            (
                old
                for old in history
                if old.prediction_id is not None and old.prediction_id != latest
            ),
            start=1,
        )
    ]
    line["attempts"] = earlier + list(line.get("attempts") or [])


def _kept(files: Sequence[str], attempt: int) -> list[str]:
    """Where an earlier attempt's files are now: moved aside by ``run --reroll`` (see
    cli/_reroll.py), else nowhere (a later attempt wrote over them)."""
    kept = []
    for name in files:
        path = Path(name)
        moved = path.parent / REROLLED_DIR / f"{path.stem}.attempt{attempt}{path.suffix}"
        if moved.is_file():
            kept.append(str(moved))
    return kept


async def complete_from_journal(report: Path, journal: Path) -> None:
    """Add to each line of an existing report what the journal knows: uploaded URLs and
    earlier attempts (``run`` does this itself through :func:`write_report`).

    The file is rewritten whole (through a temporary file), still one line per key. A line
    cut short by a crash is dropped. Nothing happens when either file is missing.

    Args:
        report: the ``report.jsonl`` to complete.
        journal: the run's journal.
    """
    report_file, journal_file = anyio.Path(report), anyio.Path(journal)
    if not await report_file.exists() or not await journal_file.exists():
        return
    lines: dict[str, dict[str, Any]] = {}
    for text in (await report_file.read_text(encoding="utf-8")).splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        # Earlier attempts are added again from the journal below: keep only the latest.
        latest = line.get("prediction_id")
        attempts = line.get("attempts") or []
        line["attempts"] = [a for a in attempts if a.get("prediction_id") == latest]
        lines[line["key"]] = line
    await write_report(report, list(lines), journal, lines)
