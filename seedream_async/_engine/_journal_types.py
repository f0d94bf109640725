"""The journal's vocabulary: an item's states, its rows and attempts, a claim and its answer,
money over the journal, a page of rows, and the refusal of a fenced change.

Plain values, shared by the interface (:class:`~._store.JournalStore`, whose docstring draws
the states and their arrows), the state rules (``_rules.py``) and every backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .._base._exceptions import JournalError

__all__ = [
    "BILLED_STATES",
    "UNDELIVERED_STATES",
    "Attempt",
    "Claim",
    "ClaimOutcome",
    "ClaimStatus",
    "ItemRecord",
    "JournalState",
    "LostClaim",
    "Page",
    "Spend",
]


class JournalState(StrEnum):
    """Where an item stands in the journal; see the module docstring for the arrows."""

    PENDING = "pending"
    """Known; nothing sent, nothing billed."""
    INTENT = "intent"
    """Budget reserved; the submit is about to go (or is) on the wire. No id yet."""
    SUBMITTED = "submitted"
    """The API gave a prediction id: billed. Not known to be done."""
    DONE = "done"
    """The API reported it completed (outputs listed); not yet delivered to disk."""
    DELIVERED = "delivered"
    """Outputs saved and verified (or recorded, without an output folder). Final."""
    API_FAILED = "api_failed"
    """The API reported the prediction failed. Billed. Resubmitted only with ``retry_failed``."""
    AMBIGUOUS = "ambiguous"
    """A submit may have been billed but no id came back. Resubmitted only with
    ``resubmit_ambiguous``."""
    NOT_SUBMITTED = "not_submitted"
    """Nothing billed: the budget, a stop, a fatal account error or a rejected request."""


BILLED_STATES = frozenset(
    {
        JournalState.SUBMITTED,
        JournalState.DONE,
        JournalState.DELIVERED,
        JournalState.API_FAILED,
        JournalState.AMBIGUOUS,
    }
)
"""States whose latest attempt was (or, for AMBIGUOUS, may have been) billed."""

UNDELIVERED_STATES = frozenset({JournalState.SUBMITTED, JournalState.DONE})
"""Billed and not delivered: a resume fetches these by prediction id, never resubmits."""


class LostClaim(JournalError):
    """A state change was refused: the item's claim is no longer the caller's (its lease ran
    out and another run took the item over). The caller must drop the item, not retry.

    ``expired``: the caller still holds the claim but its lease ran out (a paid attempt
    needs a live one): no one has taken the item over yet, so renewing the lease
    (``heartbeat``) and asking again is safe.
    """

    def __init__(self, key: str, owner: str, holder: str | None, *, expired: bool = False) -> None:
        super().__init__(
            f"item {key!r}: this run ({owner}) no longer holds its claim (now held by "
            f"{holder or 'nobody'}); another run carries it on, nothing is paid twice"
            if not expired
            else f"item {key!r}: this run's ({owner}) lease on it ran out before its submit"
        )
        self.key = key
        self.owner = owner
        self.holder = holder
        self.expired = expired


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One paid (or possibly paid) attempt of an item: a submit and what became of it.

    Args:
        number: 1 for the first attempt of this key, then 2, 3 ... (across fingerprints).
        fingerprint: the item's content fingerprint at that attempt.
        owner: the run that made it.
        state: the state the attempt reached (INTENT while on the wire).
        prediction_id: the id, once the API gave one.
        cost: US dollars billed (0 while only reserved or when refunded).
        error: why it did not deliver, if it did not.
        started_at: store-clock seconds since the epoch of the reserve.
        ended_at: store-clock seconds since the epoch of its last change.
    """

    number: int
    fingerprint: str
    owner: str
    state: JournalState
    prediction_id: str | None = None
    cost: float = 0.0
    error: str | None = None
    started_at: float = 0.0
    ended_at: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ItemRecord:
    """An item's current row.

    Args:
        key: the item's key.
        seq: position of the key's first appearance in the journal (report order, paging).
        fingerprint: a digest of the item's prompt, parameters and image *contents*.
        name: the output file stem reserved for the key (unique, case-insensitively).
        state: where it stands.
        request: the JSON payload of the latest attempt (no headers, never the key).
        prediction_id: the latest attempt's prediction id, once known.
        outputs: output URLs (or base64) the API last listed.
        files: the delivered files.
        error: why the latest attempt did not deliver (yet), if so.
        error_type: that error's class name.
        cost: US dollars billed for this key over all its attempts.
        predict_time: the model's reported seconds.
        attempts: how many attempts (paid or possibly paid) the key has had.
        owner: the run holding its claim, or None.
        lease_expires: store-clock time its claim runs out, or None.
        updated_at: store-clock time of its last change.
        request_id: the latest submit's ``X-Request-ID`` (what support asks for, to say
            whether an ambiguous item was billed), if the API sent one.
        price_rule: the price rule the latest submit was billed by, in words.
        flagged: outputs the API flagged NSFW (``has_nsfw_contents``) when delivered.
    """

    key: str
    seq: int
    fingerprint: str
    name: str
    state: JournalState
    request: Mapping[str, Any] | None = None
    prediction_id: str | None = None
    outputs: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    error: str | None = None
    error_type: str | None = None
    cost: float = 0.0
    predict_time: float | None = None
    attempts: int = 0
    owner: str | None = None
    lease_expires: float | None = None
    updated_at: float = 0.0
    request_id: str | None = None
    price_rule: str | None = None
    flagged: int = 0

    @property
    def billed(self) -> bool:
        """The latest attempt was (or may have been) billed."""
        return self.state in BILLED_STATES

    @property
    def undelivered(self) -> bool:
        """Billed and not delivered: fetch by id, never resubmit."""
        return self.state in UNDELIVERED_STATES


@dataclass(frozen=True, kw_only=True)
class Claim:
    """What a run asks to claim: an item's key, content fingerprint and output stem.

    A fingerprint that differs from the stored one makes the item a new job: the old row
    (with its paid attempts) stays in the history and the row starts again at PENDING.
    """

    key: str
    fingerprint: str
    name: str


class ClaimStatus(StrEnum):
    """The answer to one :class:`Claim`."""

    CLAIMED = "claimed"
    """The caller holds the item now (new, unclaimed, its own, or taken over after expiry)."""
    BUSY = "busy"
    """Another live run holds it; ask again later (``retry_after`` seconds is a hint)."""
    NAME_TAKEN = "name_taken"
    """Another key already has this output name (case-insensitively); refused, unpaid."""


@dataclass(frozen=True, kw_only=True)
class ClaimOutcome:
    """The answer to one claim.

    Args:
        status: claimed, busy or name taken.
        record: the row after the claim (CLAIMED), or as another run holds it (BUSY).
        taken_over_from: the expired owner the caller took the item over from, if any.
        conflict: the other key holding the name (NAME_TAKEN).
        retry_after: for BUSY, seconds until the holder's lease would run out.
    """

    status: ClaimStatus
    record: ItemRecord | None = None
    taken_over_from: str | None = None
    conflict: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True, kw_only=True)
class Spend:
    """Money over the whole journal, in US dollars.

    Args:
        billed: billed by every attempt ever made (ambiguous ones included).
        reserved: held by submits on the wire right now (any run).
        in_flight: how many billed predictions are not yet done or failed at the API.
    """

    billed: float = 0.0
    reserved: float = 0.0
    in_flight: int = 0

    @property
    def committed(self) -> float:
        """What the budget is checked against: billed plus reserved."""
        return self.billed + self.reserved


@dataclass(frozen=True, kw_only=True)
class Page:
    """One page of :meth:`JournalStore.page`: rows in ``seq`` order, and where to go on."""

    records: Sequence[ItemRecord] = field(default_factory=tuple)
    next_after: int | None = None
