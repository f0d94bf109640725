"""Resuming from the journal of an earlier run: an item's fingerprint, what its journaled
state says to do with it, and how its result is written back.

The rules (the invariant: a billed prediction is paid for once, ever):

- ``SUCCEEDED`` with its files on disk (or no ``out_dir``): answered from the journal;
- ``SUCCEEDED`` or ``SUBMITTED`` with a prediction id: polled (or fetched again for fresh
  output URLs), never submitted again;
- ``INTENT`` or ``AMBIGUOUS``: the earlier submit may have been billed; reported as
  ambiguous unless the caller opts in to paying again;
- anything else: run as new.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import anyio

from .._exceptions import AmbiguousSubmission, InvalidInput
from ._items import BatchResult, EditItem
from ._journal import Journal, JournalEntry, JournalState
from ._uploads import image_identity

__all__ = ["Resume", "ambiguous_before", "fingerprint", "record_result", "resume_action"]


class Resume(Enum):
    """What to do with an item the journal already has a row for."""

    RUN = "run"
    """Run it as new."""
    ANSWER = "answer"
    """It succeeded and its files are there: answer from the journal."""
    POLL = "poll"
    """It was paid for: poll its prediction again, never submit it."""
    AMBIGUOUS = "ambiguous"
    """Its submit may have been billed: report it, do not send again."""


async def fingerprint(item: EditItem, params: Mapping[str, Any]) -> str:
    """A hash of what the item asks for; a changed fingerprint makes it a new job."""
    identities = [await image_identity(image) for image in item.images]
    blob = json.dumps(
        {"prompt": item.prompt, "params": params, "images": identities},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


async def resume_action(entry: JournalEntry, *, saving: bool, resubmit_ambiguous: bool) -> Resume:
    """What the journaled ``entry`` says to do (``saving``: the batch has an ``out_dir``)."""
    if entry.state is JournalState.SUCCEEDED:
        files = [Path(file) for file in entry.files]
        present = [await anyio.Path(file).exists() for file in files]
        if all(present) and (files or not saving):
            return Resume.ANSWER
    if entry.state in (JournalState.SUCCEEDED, JournalState.SUBMITTED) and entry.prediction_id:
        return Resume.POLL
    ambiguous = entry.state in (JournalState.INTENT, JournalState.AMBIGUOUS)
    if ambiguous and not resubmit_ambiguous:
        return Resume.AMBIGUOUS
    return Resume.RUN


def ambiguous_before(key: str) -> AmbiguousSubmission:
    """The error of an item whose submit in an earlier run may have been billed."""
    return AmbiguousSubmission(
        "an earlier run sent this item's submit but stopped before the answer "
        "came, so it may have been billed; not sent again (pass "
        "resubmit_ambiguous=True to pay for it again)",
        key=key,
    )


async def record_result(journal: Journal, result: BatchResult) -> None:
    """Write how an item ended to its journal row (if it has one of its own)."""
    if result.from_journal:
        return
    if isinstance(result.error, InvalidInput) and result.error.field == "key":
        return  # a bad or duplicate key must not touch the good item's row
    if await journal.get(result.key) is None:
        return  # failed before it was journaled (bad parameters): nothing to record
    await journal.record_result(
        result.key,
        JournalState(result.status.value),
        outputs=result.outputs,
        files=[str(file) for file in result.files],
        error=result.error_message,
        error_type=type(result.error).__name__ if result.error else None,
        predict_time=result.predict_time,
    )
