"""The journal's state rules, written once: what every backend asks before it writes.

:class:`~._store.JournalStore` describes the states and their arrows; this module decides
them, as pure functions over the values a backend has just read inside its transaction.
A backend (``_sqlite.py``, ``_pgjournal.py``) reads the row, asks a rule, and runs the SQL
the answer calls for; it never decides on its own whether a move is allowed, whether a
reservation fits the budget or what a claim gets. So two backends cannot drift apart, and
a new one is SQL plus the shared contract suite (``tests/test_journal_contract.py``).

- :data:`TRANSITIONS`: for every state change (:class:`Op`), the states it may start from,
  the state it ends in, and the states in which it changes nothing. Adding a transition is
  one entry here plus the UPDATE that writes its fields in each backend.
- :func:`start`: the fence (the caller must hold the claim; ``reserve`` needs a live lease)
  and the state check, in one call, giving the :class:`Move` to write.
- :func:`fits_budget`: the budget check, with one tolerance (:data:`EPSILON`).
- :func:`decide_claim`: what one claim gets, checks in one order: the output name first
  (a refusal that waiting cannot change), then a live holder (busy), then takeover.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .._base._exceptions import JournalError
from ._journal_types import (
    UNDELIVERED_STATES,
    Claim,
    ClaimStatus,
    JournalState,
    LostClaim,
    Spend,
)
from ._names import fold

__all__ = [
    "CLAIM_COLUMNS",
    "DRAINABLE_STATES",
    "EPSILON",
    "HELD_COLUMNS",
    "RESERVABLE_STATES",
    "RETAKEN_STATES",
    "SUPERSEDED_MID_SUBMIT",
    "TRANSITIONS",
    "ClaimPlan",
    "ClaimRow",
    "Held",
    "Move",
    "Op",
    "Transition",
    "decide_claim",
    "fits_budget",
    "late_id_blocked",
    "left_mid_submit",
    "needs_name_check",
    "not_in_journal",
    "retaken",
    "spend_of",
    "start",
    "start_delivery",
    "stopped_mid_submit",
]

EPSILON = 1e-9
"""Tolerance of the budget check: float sums of prices (10 x $0.036) must fit their budget."""

S = JournalState

RESERVABLE_STATES = frozenset({S.PENDING, S.NOT_SUBMITTED, S.API_FAILED, S.AMBIGUOUS})
"""States a new paid attempt may start from (the engine decides whether API_FAILED and
AMBIGUOUS may be tried again; the journal refuses only what can never be right)."""

DRAINABLE_STATES = frozenset({S.PENDING, S.INTENT, S.SUBMITTED, S.DONE})
"""States a worker still has something to do for: run, mark ambiguous (INTENT left by a
stopped run), or fetch by id and deliver."""

RETAKEN_STATES = frozenset({S.NOT_SUBMITTED})
"""States a fleet's drain takes again once: rows left in them *before* the drain started.
NOT_SUBMITTED means "nothing billed, do it next time" to ``run`` and ``work`` alike (a
database outage, a full disk, a budget, a stop); so does a billed item whose delivery
failed (SUBMITTED or DONE with an error noted): fetched again by id. A row that falls back
into one of them during the drain waits for the next one, so a drain always ends."""


def retaken(state: JournalState, noted: bool, updated_at: float, since: float | None) -> bool:
    """Whether a drain that started at ``since`` (store clock) takes this row again."""
    waiting = state in RETAKEN_STATES or (noted and state in UNDELIVERED_STATES)
    return waiting and since is not None and updated_at < since


class Op(StrEnum):
    """A state change a caller asks the journal for (one :class:`JournalStore` call)."""

    RESERVE = "reserve"
    SUBMITTED = "submitted"
    REFUND = "refund"
    AMBIGUOUS = "ambiguous"
    DONE = "done"
    API_FAILED = "api_failed"
    DELIVERED = "delivered"
    NOT_SUBMITTED = "not_submitted"
    NOTE_ERROR = "note_error"
    DELIVERY_RECORDED = "delivery_recorded"
    RECORD_ID = "record_id"
    SETTLE = "settle"


@dataclass(frozen=True, kw_only=True)
class Transition:
    """One arrow of the state machine.

    Args:
        sources: the states the change may start from.
        target: the state it ends in; None keeps the state (``note_error``).
        kept: states in which the call is accepted and changes nothing.
        live_lease: the caller's lease must not have run out (a paid attempt starts).
        fenced: the caller must hold the claim. Only writing down a billed id is not: an id
            must land whoever holds the item now (see :data:`LATE_ID_BLOCKED`).
        refusal: why a refused state cannot move, for the error message.
    """

    sources: frozenset[JournalState]
    target: JournalState | None
    kept: frozenset[JournalState] = frozenset()
    live_lease: bool = False
    fenced: bool = True
    refusal: str = ""


_ANSWERED_BY_WEBHOOK = frozenset({S.DONE, S.API_FAILED})
"""States a webhook may have put an attempt in before its submit's answer came back (or
was lost): the submit's own outcome then changes nothing."""

TRANSITIONS: Mapping[Op, Transition] = {
    Op.RESERVE: Transition(
        sources=RESERVABLE_STATES,
        target=S.INTENT,
        live_lease=True,
        refusal="a new submit would pay for it twice; fetch it by its prediction id instead",
    ),
    Op.SUBMITTED: Transition(
        sources=frozenset({S.INTENT}), target=S.SUBMITTED, kept=_ANSWERED_BY_WEBHOOK
    ),
    Op.REFUND: Transition(
        sources=frozenset({S.INTENT}), target=S.PENDING, kept=_ANSWERED_BY_WEBHOOK
    ),
    Op.AMBIGUOUS: Transition(
        sources=frozenset({S.INTENT}), target=S.AMBIGUOUS, kept=_ANSWERED_BY_WEBHOOK
    ),
    Op.DONE: Transition(sources=frozenset({S.SUBMITTED, S.DONE}), target=S.DONE),
    Op.API_FAILED: Transition(
        sources=frozenset({S.SUBMITTED, S.DONE}),
        target=S.API_FAILED,
        kept=frozenset({S.API_FAILED}),  # a webhook recorded the failure first
    ),
    Op.DELIVERED: Transition(
        sources=frozenset({S.SUBMITTED, S.DONE, S.DELIVERED}), target=S.DELIVERED
    ),
    Op.NOT_SUBMITTED: Transition(
        sources=frozenset({S.PENDING, S.INTENT, S.NOT_SUBMITTED}),
        target=S.NOT_SUBMITTED,
        # A retry of a paid item that was not sent leaves the paid state as it was.
        kept=frozenset({S.API_FAILED, S.AMBIGUOUS}),
        refusal="it was (or may have been) billed, so it cannot be recorded as not submitted",
    ),
    Op.NOTE_ERROR: Transition(sources=frozenset(JournalState), target=None),
    # A verified webhook names its attempt: on the wire, or left ambiguous (the submit's
    # answer lost), it becomes billed with the delivered id and its terminal result (DONE,
    # or API_FAILED for a failed prediction). Every other state is kept: a duplicate, or a
    # row a poll already finished. Not fenced by owner: any worker's receiver records it.
    Op.DELIVERY_RECORDED: Transition(
        sources=frozenset({S.INTENT, S.AMBIGUOUS, S.SUBMITTED}),
        target=S.DONE,
        kept=frozenset(JournalState) - {S.INTENT, S.AMBIGUOUS, S.SUBMITTED},
        fenced=False,
    ),
    # A billed id the journal could not take when it came (disk full, database down, the
    # claim lost while paused), written down later from memory or from the sidecar file.
    # From INTENT it settles the reservation; from AMBIGUOUS (a claimer gave up on the
    # submit) or PENDING / NOT_SUBMITTED (a journal recreated after it was deleted) it
    # turns the item into a billed one that the next run fetches by id, never resubmits.
    Op.RECORD_ID: Transition(
        sources=frozenset({S.PENDING, S.NOT_SUBMITTED, S.INTENT, S.AMBIGUOUS}),
        target=S.SUBMITTED,
        kept=frozenset({S.SUBMITTED, S.DONE, S.DELIVERED, S.API_FAILED}),
        fenced=False,
    ),
    # A per-image bill known once the prediction answered: the attempt's cost is set to it.
    Op.SETTLE: Transition(sources=frozenset({S.SUBMITTED, S.DONE}), target=None),
}
"""Every state change, once. ``_store.py``'s module docstring draws them."""

HELD_COLUMNS = "key, state, owner, lease_expires, reserved, attempts, fingerprint"
"""The columns of an item's row that :class:`Held` is read from, in its order."""


@dataclass(frozen=True, kw_only=True)
class Held:
    """What a state change needs to know of the item's row (read in its transaction)."""

    key: str
    state: JournalState
    holder: str | None
    lease_expires: float | None
    reserved: float
    attempts: int
    fingerprint: str

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Held:
        """From a row selected as :data:`HELD_COLUMNS`."""
        key, state, holder, expires, reserved, attempts, fingerprint = row[:7]
        return cls(
            key=key,
            state=JournalState(state),
            holder=holder,
            lease_expires=expires,
            reserved=float(reserved),
            attempts=int(attempts),
            fingerprint=fingerprint,
        )


@dataclass(frozen=True, kw_only=True)
class Move:
    """A state change :func:`start` allowed: from ``source`` to ``target`` (None: kept).

    ``settles`` says the item held a reservation (it was in INTENT): the backend drops it
    from the journal's total, adds what was billed, and closes the open attempt.
    """

    source: JournalState
    target: JournalState | None

    @property
    def settles(self) -> bool:
        return self.source is S.INTENT


def not_in_journal(key: str) -> JournalError:
    """The error for a change to a key the journal does not have."""
    return JournalError(f"item {key!r} is not in the journal; claim it first")


def start(op: Op, key: str, owner: str, held: Held | None, *, now: float) -> Move | None:
    """Check that ``owner`` may make change ``op`` to ``key`` as it stands (``held``).

    Returns the :class:`Move` to write, or None when the call is accepted but changes
    nothing (see :attr:`Transition.kept`).

    Raises:
        LostClaim: ``owner`` does not hold the item's claim (or, for a paid attempt, its
            lease has run out: another run may be about to take the item over).
        JournalError: the item is not in the journal, or its state does not allow ``op``.
    """
    if held is None:
        raise not_in_journal(key)
    rule = TRANSITIONS[op]
    if held.holder != owner and (rule.fenced or late_id_blocked(held, owner, now=now)):
        raise LostClaim(key, owner, held.holder)
    if rule.live_lease and (held.lease_expires is None or held.lease_expires <= now):
        raise LostClaim(key, owner, held.holder, expired=True)
    if held.state in rule.kept:
        return None
    if held.state not in rule.sources:
        raise JournalError(_refusal(op, key, held.state, rule))
    return Move(source=held.state, target=rule.target)


def start_delivery(
    key: str, attempt: int, held: Held | None, *, failed: bool, refused_since: bool = False
) -> Move | None:
    """Whether a verified webhook for ``key``'s attempt number ``attempt`` moves its row
    (:data:`Op.DELIVERY_RECORDED`), and to which state; None: it changes nothing (an older
    attempt's delivery, a duplicate, a row already terminal, or a key this journal does
    not have: a retry could not change that, so the delivery is acknowledged).

    ``refused_since``: the row has later attempts, and every attempt from ``attempt`` up
    to the latest was refused (429/503, refunded): the same request, token included, was
    sent again, so the delivery is the latest attempt's.
    """
    rule = TRANSITIONS[Op.DELIVERY_RECORDED]
    current = held is not None and (held.attempts == attempt or refused_since)
    if held is None or not current or held.state in rule.kept:
        return None
    return Move(source=held.state, target=S.API_FAILED if failed else rule.target)


def late_id_blocked(held: Held, owner: str, *, now: float) -> bool:
    """Whether a late id (:attr:`Op.RECORD_ID`) must wait: another live run holds the item
    in INTENT, its own new submit on the wire (``resubmit_ambiguous``); writing our id
    there would settle that run's reservation with our prediction."""
    other_live = (
        held.holder is not None
        and held.holder != owner
        and (held.lease_expires is not None and held.lease_expires > now)
    )
    return held.state is S.INTENT and other_live


def _refusal(op: Op, key: str, state: JournalState, rule: Transition) -> str:
    if op is Op.RESERVE and state is S.INTENT:
        return f"item {key!r} has a submit on the wire already"
    if op is Op.RESERVE and state in UNDELIVERED_STATES | {S.DELIVERED}:
        return f"item {key!r} is {state.value}: it already has a prediction; {rule.refusal}"
    reason = rule.refusal or f"it cannot be moved to {rule.target}"
    return f"item {key!r} is {state.value}: {reason} ({op.value})"


def fits_budget(billed: float, reserved: float, amount: float, budget: float | None) -> bool:
    """Whether a reservation of ``amount`` fits ``budget`` (None: no cap), given what the
    whole journal has billed and holds reserved right now."""
    return budget is None or billed + reserved + amount <= budget + EPSILON


def spend_of(billed: float, reserved: float, in_flight: int) -> Spend:
    """The journal's :class:`Spend` from its totals (float noise rounded away)."""
    return Spend(
        billed=round(float(billed), 9),
        reserved=round(max(float(reserved), 0.0), 9),
        in_flight=int(in_flight),
    )


# -- claims ------------------------------------------------------------------------------


def left_mid_submit(state: JournalState, holder: str | None, owner: str) -> bool:
    """Whether a row someone else left (a stopped run, or a release) is caught between its
    reserve and its answer: its submit may have been billed, so it becomes AMBIGUOUS,
    counted as billed, and is never sent again on its own."""
    return state is S.INTENT and holder != owner


def stopped_mid_submit(holder: str | None) -> str:
    """The error recorded on an item :func:`left_mid_submit` made ambiguous."""
    return (
        f"the run {holder or '(released)'} stopped between this item's submit and its "
        "answer; it may have been billed, so it is not sent again (resubmit_ambiguous pays "
        "for it again)"
    )


SUPERSEDED_MID_SUBMIT = "superseded by a changed item while its submit was out"


CLAIM_COLUMNS = "fingerprint, name, state, owner, lease_expires"
"""The columns of an item's row that :class:`ClaimRow` is read from, in its order."""


@dataclass(frozen=True, kw_only=True)
class ClaimRow:
    """What a claim needs to know of the item's current row."""

    fingerprint: str
    name: str
    state: JournalState
    holder: str | None
    lease_expires: float | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ClaimRow:
        """From a row selected as :data:`CLAIM_COLUMNS`."""
        fingerprint, name, state, holder, expires = row[:5]
        return cls(
            fingerprint=fingerprint,
            name=name,
            state=JournalState(state),
            holder=holder,
            lease_expires=expires,
        )


def needs_name_check(current: ClaimRow | None, wanted: Claim) -> bool:
    """Whether the backend must look up who holds ``wanted.name`` before :func:`decide_claim`:
    for a new row, or a row whose output name changes (compared folded, as files are)."""
    return current is None or fold(current.name) != fold(wanted.name)


@dataclass(frozen=True, kw_only=True)
class ClaimPlan:
    """What :func:`decide_claim` decided; the backend runs the SQL for each part, in order.

    Args:
        status: the answer. For BUSY and NAME_TAKEN nothing is written.
        conflict: NAME_TAKEN: the other key holding the name.
        retry_after: BUSY: seconds until the holder's lease runs out.
        insert: CLAIMED: the key is new; insert it as PENDING.
        ambiguous: CLAIMED: first mark the row AMBIGUOUS with this error (it was caught
            mid-submit).
        new_job: CLAIMED: the fingerprint changed: reset the row to PENDING (its paid
            attempts stay in the history).
        taken_over_from: CLAIMED: the previous holder whose claim this one replaces.
    """

    status: ClaimStatus
    conflict: str | None = None
    retry_after: float | None = None
    insert: bool = False
    ambiguous: str | None = None
    new_job: bool = False
    taken_over_from: str | None = None


def decide_claim(
    current: ClaimRow | None,
    wanted: Claim,
    owner: str,
    *,
    now: float,
    name_holder: str | None,
    holder_gone: bool = False,
) -> ClaimPlan:
    """What a claim of ``wanted`` by ``owner`` gets, in this order:

    1. NAME_TAKEN when another key holds the output name (``name_holder``, looked up when
       :func:`needs_name_check` says so): final, and nothing is paid.
    2. A new key is inserted, claimed.
    3. BUSY while another holder's lease runs (``holder_gone``: that holder's process is
       known to be gone, so its lease is not waited for).
    4. Otherwise CLAIMED: a row left mid-submit becomes ambiguous, a changed fingerprint
       starts a new job, and the claim is taken over from the previous holder, if any.
    """
    if name_holder is not None:
        return ClaimPlan(status=ClaimStatus.NAME_TAKEN, conflict=name_holder)
    if current is None:
        return ClaimPlan(status=ClaimStatus.CLAIMED, insert=True)
    holder, expires = current.holder, current.lease_expires
    other = holder is not None and holder != owner
    if other and expires is not None and expires > now and not holder_gone:
        return ClaimPlan(status=ClaimStatus.BUSY, retry_after=expires - now)
    new_job = current.fingerprint != wanted.fingerprint
    ambiguous: str | None = None
    if left_mid_submit(current.state, holder, owner):
        ambiguous = stopped_mid_submit(holder)
    elif new_job and current.state is S.INTENT:
        ambiguous = SUPERSEDED_MID_SUBMIT
    return ClaimPlan(
        status=ClaimStatus.CLAIMED,
        ambiguous=ambiguous,
        new_job=new_job,
        taken_over_from=holder if other else None,
    )
