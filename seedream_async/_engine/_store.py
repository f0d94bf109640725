"""The journal as the record of what was billed: the interface every journal implements.

The batch engine talks to its journal only through :class:`JournalStore`. Two journals
are bundled, SQLite (one file) and PostgreSQL (a server shared by a fleet), opened by
``open_journal`` (``_journal.py``). Their state rules are written once (``_rules.py``: which
change may start from which state, the budget check, what a claim gets) and so are their
statements (``_sqljournal.py``); each backend only connects and keeps its schema. Every call
is one small transaction, so two runs (two processes, or two machines on a server journal)
can share a journal and split its items between them.

The invariant it exists for: **a prediction the API has billed is paid for once, ever.**
Once an item has a prediction id, everything that can still go wrong with it (download,
disk, expired URL, storage outage, deadline, auth, a stop) is recovered by fetching that
prediction again by id, never by a new submit.

An item's states (one row per key; every arrow is one call)::

    PENDING ──reserve──► INTENT ──submitted──► SUBMITTED ──done──► DONE ──delivered──► DELIVERED
       ▲                   │  │                    │                │
       │                   │  └─ambiguous─► AMBIGUOUS (may be billed; no id)
       └───────refund──────┘                       └─api_failed─► API_FAILED (billed, failed)
    (not_submitted: PENDING/INTENT ──► NOT_SUBMITTED, nothing billed: budget, a stop, a rejection)
    (record_id: PENDING/NOT_SUBMITTED/INTENT/AMBIGUOUS ──► SUBMITTED, a billed id the journal
     could not take when it came, written late; the one change not fenced by the claim)

- Billed states: SUBMITTED, DONE, DELIVERED, API_FAILED, and AMBIGUOUS (counted as billed, to
  be safe). An item in SUBMITTED or DONE is *billed but undelivered*: a resume fetches it by
  its ``prediction_id`` (fresh output URLs) and downloads again; :meth:`JournalStore.note_error`
  keeps the id and records why the last try did not deliver.
- Only API_FAILED may be submitted again, and only when the caller asks (``retry_failed``);
  AMBIGUOUS only with ``resubmit_ambiguous``. Either way :meth:`JournalStore.reserve` opens a
  new :class:`Attempt`: every paid attempt stays in the item's history.
- PENDING and NOT_SUBMITTED cost nothing and run normally.

Claims (leases). Before touching an item a run claims it (:meth:`JournalStore.claim`, many
keys per call). A claim names its owner (a run id) and expires ``lease`` seconds later unless
the owner's heartbeat (:meth:`JournalStore.heartbeat`) renews it. An item claimed by a live
run is :attr:`ClaimStatus.BUSY` for everyone else; a killed run's claims expire and the next
claimer takes them over, getting the row as it was left (so an item with an id is polled).
Every state change names its owner and is *fenced*: it raises :class:`LostClaim` when the
claim is no longer the caller's, so a run that stalled past its lease cannot overwrite the
run that took over. Lease times are measured on the store's own clock (the database server's
for a server journal): callers pass durations, never timestamps.

Output names. A claim carries the item's output file stem; the store refuses
(:attr:`ClaimStatus.NAME_TAKEN`) a stem that another key already holds, compared
case-insensitively (``str.casefold``), so no two keys can ever write the same file on any
file system. The refusal happens before anything is paid.

Budget. :meth:`JournalStore.reserve` checks the budget over the whole journal, in the same
transaction that records the intent: what every attempt of every item has been billed, plus
what other runs hold reserved right now, plus this submit, must fit. A submit that is
certainly not billed (refused with 429/503, rejected with 4xx) is refunded.

The report is written from :meth:`JournalStore.page`, never from a run's own stream of
results, so concurrent runs cannot interleave it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

# The values the interface speaks in live in their own module.
from ._journal_types import (
    Attempt,
    Claim,
    ClaimOutcome,
    ItemRecord,
    JournalState,
    Page,
    Spend,
)

if TYPE_CHECKING:
    from .._wire._parsing import Prediction

__all__ = ["JournalStore"]


class JournalStore(Protocol):
    """The calls the batch engine makes on a journal. Each is one short transaction.

    Every state change takes the caller's ``owner`` (its run id) and raises
    :class:`LostClaim` if the item's claim is not the caller's any more. Changes to a key the
    journal does not have raise :class:`~seedream_async.JournalError`.
    """

    # -- claims ------------------------------------------------------------------------

    async def claim(
        self, owner: str, claims: Sequence[Claim], *, lease: float
    ) -> list[ClaimOutcome]:
        """Claim items for ``owner`` for ``lease`` seconds, in one transaction.

        Creates missing rows (PENDING), starts a new job on a changed fingerprint (the old
        row goes to the history), takes over claims whose lease ran out, and refuses an
        output name another key holds. Outcomes are in the order of ``claims``.
        """
        ...

    async def heartbeat(self, owner: str, *, lease: float) -> int:
        """Renew every claim ``owner`` holds to ``lease`` seconds from now; return how many."""
        ...

    async def release(self, owner: str, keys: Sequence[str]) -> None:
        """Give up ``owner``'s claims on ``keys`` (those it does not hold are left alone)."""
        ...

    # -- one attempt: reserve, then exactly one of submitted / refund / ambiguous ------

    async def reserve(
        self,
        owner: str,
        key: str,
        *,
        request: Mapping[str, Any],
        amount: float,
        budget: float | None,
    ) -> bool:
        """Record the intent to submit ``request`` and reserve ``amount`` dollars for it.

        In one transaction: check that the journal's committed spend (billed plus every
        run's reservations) plus ``amount`` fits ``budget`` (None: no cap), then move the
        item to INTENT and open a new :class:`Attempt`. Returns False, changing nothing,
        when the budget does not allow it. Called *before* the POST leaves.

        Raises:
            JournalError: the item is SUBMITTED, DONE or DELIVERED: it has a prediction
                already, and a new submit would pay for it twice. (The engine decides
                whether an API_FAILED or AMBIGUOUS item may be tried again; the store
                refuses only what can never be right.)
        """
        ...

    async def submitted(
        self,
        owner: str,
        key: str,
        *,
        prediction_id: str,
        cost: float,
        request_id: str | None = None,
        price_rule: str | None = None,
    ) -> None:
        """INTENT -> SUBMITTED: the API took the request as ``prediction_id``, billed ``cost``
        (by ``price_rule``); ``request_id`` is the answer's ``X-Request-ID``.

        Called the moment the id is known (under a shield, so a stop cannot lose it).
        """
        ...

    async def refund(self, owner: str, key: str, *, error: str | None = None) -> None:
        """INTENT -> PENDING: the submit certainly did not reach billing (429, 503, refused
        connection); the reservation is dropped and the attempt closed at no cost."""
        ...

    async def ambiguous(
        self,
        owner: str,
        key: str,
        *,
        cost: float,
        error: str,
        request_id: str | None = None,
        price_rule: str | None = None,
    ) -> None:
        """INTENT -> AMBIGUOUS: the submit may have been billed, but no id came back.
        ``cost`` is counted as billed, to be safe; ``request_id`` is the ``X-Request-ID`` of
        an answer without an id (a 504), for support."""
        ...

    async def record_id(self, owner: str, key: str, *, prediction_id: str, cost: float) -> bool:
        """Write down a billed id the journal could not take when it came (the disk was
        full, the database down, or the caller's claim lost while it was paused): the item
        becomes SUBMITTED with it, whoever holds it, so the next run fetches it by id.
        Idempotent. True when the row now carries ``prediction_id``.

        Raises:
            LostClaim: another live run has a new submit of the item on the wire.
        """
        ...

    # -- after the id ------------------------------------------------------------------

    async def done(
        self,
        owner: str,
        key: str,
        *,
        outputs: Sequence[str],
        predict_time: float | None,
    ) -> None:
        """SUBMITTED (or DONE, fetched again for fresh URLs) -> DONE: the API reported the
        prediction completed with ``outputs``."""
        ...

    async def api_failed(
        self, owner: str, key: str, *, error: str, error_type: str = "PredictionFailed"
    ) -> None:
        """SUBMITTED/DONE -> API_FAILED: the API reported the prediction failed
        (``error_type``: ``ContentModerationError`` for a moderation refusal)."""
        ...

    async def settle(self, owner: str, key: str, *, cost: float) -> None:
        """SUBMITTED/DONE, state kept: the latest attempt's bill is now known to be ``cost``
        (a per-image price: the images the prediction returned; a failed one: nothing).
        The attempt, the item and the journal's billed total follow; the same ``cost``
        twice changes nothing. Called before ``done``/``delivered``/``api_failed``."""
        ...

    async def delivered(
        self,
        owner: str,
        key: str,
        *,
        files: Sequence[str],
        outputs: Sequence[str],
        flagged: int = 0,
    ) -> None:
        """SUBMITTED/DONE -> DELIVERED: ``files`` are on disk and verified (none without an
        out dir); the claim is released with it. ``flagged``: outputs the API flagged."""
        ...

    async def note_error(self, owner: str, key: str, *, error: str, error_type: str) -> None:
        """Keep the state (and the prediction id), record why it did not deliver this time
        (download failed, disk full, deadline, auth, a stop)."""
        ...

    async def not_submitted(self, owner: str, key: str, *, error: str, error_type: str) -> None:
        """PENDING/INTENT -> NOT_SUBMITTED: nothing billed (budget, a stop, a rejected
        request, a fatal account error); any reservation is dropped."""
        ...

    async def record_delivery(
        self,
        *,
        key: str,
        attempt: int,
        prediction_id: str,
        webhook_id: str,
        prediction: Prediction,
    ) -> None:
        """A verified webhook delivery for ``key``'s attempt number ``attempt``: an attempt
        in INTENT (on the wire) or AMBIGUOUS (its answer lost) or SUBMITTED becomes billed
        with ``prediction_id`` and its terminal result (DONE with the outputs, or
        API_FAILED), so an ambiguous attempt is recovered without paying again. An INTENT
        attempt's reservation is billed. Anything else changes nothing: a duplicate
        ``webhook_id``, an older attempt, a row already terminal. Not fenced by owner: any
        run's receiver records any run's item. Durable when it returns (the receiver
        answers 2xx only then)."""
        ...

    # -- reading -----------------------------------------------------------------------

    async def get(self, key: str) -> ItemRecord | None:
        """The current row of ``key``, or None."""
        ...

    async def get_many(self, keys: Sequence[str]) -> dict[str, ItemRecord]:
        """The current rows of ``keys`` that exist, by key (one query)."""
        ...

    async def history(self, key: str) -> list[Attempt]:
        """Every attempt of ``key``, oldest first (superseded fingerprints included)."""
        ...

    async def spend(self) -> Spend:
        """Money over the whole journal: billed, reserved now, predictions in flight."""
        ...

    async def counts(self) -> dict[JournalState, int]:
        """Current rows per state, every state present (zeros included)."""
        ...

    async def page(self, *, after: int = 0, limit: int = 1000) -> Page:
        """Rows with ``seq > after`` in ``seq`` order, at most ``limit``; for the report."""
        ...

    async def aclose(self) -> None:
        """Close the journal (the engine closes only a journal it opened)."""
        ...
