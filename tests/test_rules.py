"""The journal's state rules (``_engine/_rules.py``), tested without a database: every
backend asks these, so what they decide is what every journal does."""

from __future__ import annotations

import pytest

from seedream_async._base._exceptions import JournalError
from seedream_async._engine._journal_types import Claim, ClaimStatus, JournalState, LostClaim
from seedream_async._engine._rules import (
    EPSILON,
    TRANSITIONS,
    ClaimRow,
    Held,
    Op,
    decide_claim,
    fits_budget,
    retaken,
    start,
)

S = JournalState
NOW = 1000.0


def held(state: JournalState, *, holder: str | None = "me", expires: float = NOW + 60) -> Held:
    return Held(
        key="k", state=state, holder=holder, lease_expires=expires, reserved=0.036,
        attempts=1, fingerprint="fp",
    )  # fmt: skip


def row(state: JournalState = S.PENDING, *, holder: str | None = None, expires: float = 0.0,
        fingerprint: str = "fp", name: str = "k") -> ClaimRow:  # fmt: skip
    return ClaimRow(
        fingerprint=fingerprint, name=name, state=state, holder=holder, lease_expires=expires
    )


WANTED = Claim(key="k", fingerprint="fp", name="k")


# Not fenced by design: a late billed id (any run may write it down) and a verified
# webhook's delivery (any worker's receiver records it); each has its own tests.
UNFENCED = {Op.RECORD_ID, Op.DELIVERY_RECORDED}


@pytest.mark.parametrize("op", [op for op in Op if op not in UNFENCED], ids=str)
def test_every_change_is_fenced_by_the_owner(op: Op) -> None:
    """No change is allowed to a run that does not hold the item, from any state."""
    for state in JournalState:
        with pytest.raises(LostClaim):
            start(op, "k", "me", held(state, holder="other"), now=NOW)


def test_a_late_id_lands_whoever_holds_the_item_but_never_over_a_live_submit() -> None:
    """Writing down a billed id is not fenced (a paused run's id must land after another
    run took the item over), except over another live run's submit on the wire; an item
    that has an id already keeps it."""
    for state in (S.PENDING, S.NOT_SUBMITTED, S.AMBIGUOUS):
        move = start(Op.RECORD_ID, "k", "me", held(state, holder="other"), now=NOW)
        assert move is not None
        assert move.target is S.SUBMITTED
    with pytest.raises(LostClaim):
        start(Op.RECORD_ID, "k", "me", held(S.INTENT, holder="other"), now=NOW)
    expired = held(S.INTENT, holder="other", expires=NOW - 1)
    move = start(Op.RECORD_ID, "k", "me", expired, now=NOW)
    assert move is not None
    assert move.settles
    for state in (S.SUBMITTED, S.DONE, S.DELIVERED, S.API_FAILED):
        assert start(Op.RECORD_ID, "k", "me", held(state, holder="other"), now=NOW) is None


@pytest.mark.parametrize("state", [S.SUBMITTED, S.DONE, S.DELIVERED, S.INTENT], ids=str)
def test_reserve_never_starts_a_second_paid_attempt_on_a_prediction(state: JournalState) -> None:
    """A new submit of an item with a prediction (or one on the wire) is refused."""
    with pytest.raises(JournalError, match=r"twice|on the wire"):
        start(Op.RESERVE, "k", "me", held(state), now=NOW)


def test_reserve_needs_a_live_lease() -> None:
    """A run that stalled past its lease may not start a paid attempt."""
    with pytest.raises(LostClaim):
        start(Op.RESERVE, "k", "me", held(S.PENDING, expires=NOW), now=NOW)
    move = start(Op.RESERVE, "k", "me", held(S.PENDING), now=NOW)
    assert move is not None
    assert (move.source, move.target, move.settles) == (S.PENDING, S.INTENT, False)


def test_not_submitted_keeps_a_paid_state_and_refuses_a_billed_one() -> None:
    """A retry that was not sent leaves API_FAILED/AMBIGUOUS as they were; a billed,
    undelivered item can never be recorded as not submitted."""
    for state in (S.API_FAILED, S.AMBIGUOUS):
        assert start(Op.NOT_SUBMITTED, "k", "me", held(state), now=NOW) is None
    with pytest.raises(JournalError, match="billed"):
        start(Op.NOT_SUBMITTED, "k", "me", held(S.SUBMITTED), now=NOW)
    move = start(Op.NOT_SUBMITTED, "k", "me", held(S.INTENT), now=NOW)
    assert move is not None
    assert move.settles


def test_every_state_change_is_in_the_table() -> None:
    """Each call the journal offers has exactly one rule."""
    assert set(TRANSITIONS) == set(Op)


def test_the_budget_fits_float_sums_of_prices() -> None:
    """Ten submits at $0.036 fit a budget of 10 x $0.036; one more does not."""
    billed = sum([0.036] * 9)
    assert fits_budget(billed, 0.0, 0.036, 10 * 0.036)
    assert not fits_budget(billed + 0.036, 0.0, 0.036, 10 * 0.036)
    assert not fits_budget(0.0, 1.0, 2 * EPSILON, 1.0)
    assert fits_budget(1e9, 1e9, 1.0, None)


def test_a_taken_name_is_refused_before_a_busy_holder_is_waited_for() -> None:
    """One order: the name first (final, unpaid), then busy."""
    live = row(holder="other", expires=NOW + 30)
    plan = decide_claim(live, WANTED, "me", now=NOW, name_holder="K2")
    assert (plan.status, plan.conflict) == (ClaimStatus.NAME_TAKEN, "K2")
    plan = decide_claim(live, WANTED, "me", now=NOW, name_holder=None)
    assert (plan.status, plan.retry_after) == (ClaimStatus.BUSY, 30)
    gone = decide_claim(live, WANTED, "me", now=NOW, name_holder=None, holder_gone=True)
    assert (gone.status, gone.taken_over_from) == (ClaimStatus.CLAIMED, "other")


def test_a_row_left_mid_submit_becomes_ambiguous_when_claimed() -> None:
    """A takeover of an INTENT row (or a released one) marks it ambiguous, never resends."""
    for holder in ("other", None):
        plan = decide_claim(row(S.INTENT, holder=holder), WANTED, "me", now=NOW, name_holder=None)
        assert plan.status is ClaimStatus.CLAIMED
        assert plan.ambiguous is not None
    own = decide_claim(row(S.INTENT, holder="me"), WANTED, "me", now=NOW, name_holder=None)
    assert own.ambiguous is None


def test_a_changed_fingerprint_is_a_new_job() -> None:
    """A new fingerprint resets the row; one caught on the wire is ambiguous first."""
    changed = Claim(key="k", fingerprint="fp2", name="k")
    plan = decide_claim(row(S.DELIVERED), changed, "me", now=NOW, name_holder=None)
    assert (plan.new_job, plan.ambiguous) == (True, None)
    plan = decide_claim(row(S.INTENT, holder="me"), changed, "me", now=NOW, name_holder=None)
    assert plan.new_job
    assert plan.ambiguous is not None
    assert decide_claim(None, WANTED, "me", now=NOW, name_holder=None).insert


def test_a_drain_takes_again_what_was_left_before_it_started() -> None:
    """NOT_SUBMITTED rows and billed rows whose delivery failed (noted) are taken again by
    a drain that started after they were left so, never by the drain that left them."""
    assert retaken(S.NOT_SUBMITTED, False, updated_at=10.0, since=20.0)
    assert retaken(S.SUBMITTED, True, updated_at=10.0, since=20.0)
    assert retaken(S.DONE, True, updated_at=10.0, since=20.0)
    assert not retaken(S.NOT_SUBMITTED, False, updated_at=30.0, since=20.0)
    assert not retaken(S.SUBMITTED, False, updated_at=10.0, since=20.0)  # drainable anyway
    assert not retaken(S.AMBIGUOUS, False, updated_at=10.0, since=20.0)
    assert not retaken(S.NOT_SUBMITTED, False, updated_at=10.0, since=None)
