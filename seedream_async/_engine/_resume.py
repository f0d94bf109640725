"""Resuming from the journal: an item's fingerprint, and what its journaled state says to do.

The rules (the invariant: a prediction the API has billed is paid for once, ever):

- ``DELIVERED`` with its files on disk and whole (or no ``out_dir``): answered from the
  journal, no request;
- ``DELIVERED`` with a file missing or broken, ``SUBMITTED`` or ``DONE``: fetched again by
  prediction id (fresh output URLs) and delivered; never submitted again;
- ``API_FAILED``: the API said the prediction failed; reported as failed unless the caller
  asks to pay for a new attempt (``retry_failed``);
- ``AMBIGUOUS``: the earlier submit may have been billed; reported as ambiguous unless the
  caller asks to pay again (``resubmit_ambiguous``);
- ``PENDING`` or ``NOT_SUBMITTED``: nothing was billed; run as new.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import Enum
from typing import Any

from .._base._constants import DEFAULT_MODEL
from .._base._exceptions import AmbiguousSubmission, PredictionFailed
from ._identity import DigestCache
from ._items import EditItem
from ._journal_types import ItemRecord, JournalState

__all__ = ["Resume", "ambiguous_before", "failed_before", "fingerprint", "resume_action"]


class Resume(Enum):
    """What to do with an item the journal already has a row for."""

    RUN = "run"
    """Nothing was billed (or the caller asked to pay again): run it as new."""
    ANSWER = "answer"
    """Delivered: answer from the journal (after checking its files)."""
    FETCH = "fetch"
    """Billed, not delivered (or its files are gone): fetch it by id, never submit it."""
    AMBIGUOUS = "ambiguous"
    """Its submit may have been billed: report it, do not send again."""
    FAILED = "failed"
    """The API reported it failed: report it, do not pay again."""


_DIGESTS = DigestCache()


async def fingerprint(
    item: EditItem, params: Mapping[str, Any], digests: DigestCache | None = None
) -> str:
    """A hash of what the item asks for: prompt, parameters and the *content* of each image
    (so touching, copying or moving an unchanged photo keeps the fingerprint).

    Args:
        item: the item.
        params: its request parameters besides prompt and images.
        digests: where image digests are memoised; a process-wide one when None.
    """
    digests = digests or _DIGESTS
    if params.get("model") == DEFAULT_MODEL:
        # The default model named explicitly (a manifest's new ``model`` column) asks for
        # the same thing as no model at all: not a changed job, not billed again.
        params = {name: value for name, value in params.items() if name != "model"}
    identities = [await digests.identity(image) for image in item.images]
    blob = json.dumps(
        {"prompt": item.prompt, "params": params, "images": identities},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def resume_action(record: ItemRecord, *, resubmit_ambiguous: bool, retry_failed: bool) -> Resume:
    """What the journaled ``record`` says to do (delivered files are checked by the caller)."""
    state = record.state
    if state is JournalState.DELIVERED:
        return Resume.ANSWER
    if state in (JournalState.SUBMITTED, JournalState.DONE) and record.prediction_id:
        return Resume.FETCH
    if state is JournalState.API_FAILED:
        return Resume.RUN if retry_failed else Resume.FAILED
    if state in (JournalState.AMBIGUOUS, JournalState.INTENT):
        return Resume.RUN if resubmit_ambiguous else Resume.AMBIGUOUS
    return Resume.RUN


def ambiguous_before(key: str) -> AmbiguousSubmission:
    """The error of an item whose submit in an earlier run may have been billed."""
    return AmbiguousSubmission(
        "an earlier run sent this item's submit but stopped before the answer "
        "came, so it may have been billed; not sent again (pass "
        "resubmit_ambiguous=True to pay for it again)",
        key=key,
    )


def failed_before(record: ItemRecord) -> PredictionFailed:
    """The error of an item whose prediction the API reported failed in an earlier run."""
    return PredictionFailed(
        record.prediction_id or "(unknown)",
        f"{record.error or 'no error message'} (in an earlier run; not paid for again: pass "
        "retry_failed=True to pay for a new attempt)",
    )
