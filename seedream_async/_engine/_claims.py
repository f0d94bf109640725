"""This run's claims on journal items: claim (or wait for another run), keep alive, release,
and the state changes after the claim, all fenced by the run's owner id.

Two runs of one catalog on one journal split it: an item one run holds is ``busy`` for
the other, which comes back to it at the end (by then it is usually delivered, and is
answered from the journal). A run that dies stops renewing its leases; its items are taken
over when they expire, or at once when its process is gone (same machine).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from pathlib import Path

import anyio

from .._base._exceptions import InvalidInput, JournalError, JournalUnavailable, SeedreamError
from .._wire._parsing import Prediction
from ._journal_types import Claim, ClaimStatus, ItemRecord, JournalState, LostClaim
from ._owners import DEFAULT_LEASE
from ._store import JournalStore

__all__ = ["DEFAULT_LEASE", "Busy", "Claims", "name_taken"]

logger = logging.getLogger("seedream_async")


class Busy(Exception):
    """Another live run holds the item: come back to it later."""


def name_taken(key: str, other: str) -> InvalidInput:
    """The error of a key whose output name another key holds (compared case-folded)."""
    return InvalidInput(
        f"its output files would be the same as key {other!r}'s on a case-insensitive file "
        "system (macOS, Windows); refused before anything was paid: rename one of the keys",
        field="key",
        key=key,
    )


class Claims:
    """The claims of one run (``owner``) on ``journal``.

    Args:
        journal: the journal.
        owner: this run's id.
        lease: seconds a claim lasts without renewal.
    """

    def __init__(self, journal: JournalStore, owner: str, *, lease: float = DEFAULT_LEASE):
        self.journal = journal
        self.owner = owner
        self.lease = lease
        self._held: set[str] = set()
        self._down_logged = False
        self.lost = 0  # claims found lost (LostClaim) when writing

    def holds(self, key: str) -> bool:
        """True while this run holds ``key``."""
        return key in self._held

    async def claim(self, key: str, fingerprint: str, name: str, *, wait: bool) -> ItemRecord:
        """Claim ``key`` and return its row.

        Raises:
            Busy: another live run holds it and ``wait`` is False.
            InvalidInput: another key holds its output name.
        """
        delay = 0.05
        while True:
            (outcome,) = await self.journal.claim(
                self.owner, [Claim(key=key, fingerprint=fingerprint, name=name)], lease=self.lease
            )
            if outcome.status is ClaimStatus.CLAIMED:
                assert outcome.record is not None
                self._held.add(key)
                if outcome.taken_over_from is not None:
                    logger.info(
                        "item %r taken over from a stopped run (%s)", key, outcome.taken_over_from
                    )
                return outcome.record
            if outcome.status is ClaimStatus.NAME_TAKEN:
                raise name_taken(key, outcome.conflict or "?")
            if not wait:
                raise Busy(key)
            await anyio.sleep(min(delay, outcome.retry_after or delay))
            delay = min(delay * 2, 1.0)

    async def heartbeat(self) -> None:
        """Renew this run's claims every third of the lease, for as long as it runs."""
        while True:
            await anyio.sleep(self.lease / 3)
            try:
                await self.journal.heartbeat(self.owner, lease=self.lease)
            except JournalUnavailable as err:
                if not self._down_logged:
                    self._down_logged = True
                    logger.warning("could not renew this run's claims: %s", err)
            except JournalError as err:
                logger.warning("could not renew this run's claims: %s", err)

    async def release(self, key: str) -> None:
        """Give up the claim on ``key`` (if held)."""
        if key in self._held:
            self._held.discard(key)
            await self._quietly(self.journal.release(self.owner, [key]))

    async def release_all(self) -> None:
        """Give up every claim still held (a stop), so another run can take them at once."""
        keys, self._held = list(self._held), set()
        if keys:
            with anyio.CancelScope(shield=True):
                await self._quietly(self.journal.release(self.owner, keys))

    async def done(self, key: str, prediction: Prediction) -> None:
        """The API reported the prediction completed."""
        await self.journal.done(
            self.owner, key, outputs=prediction.outputs, predict_time=prediction.predict_time
        )

    async def settle(self, key: str, cost: float) -> None:
        """The prediction's bill is known (per-image pricing): the journal follows it."""
        with anyio.CancelScope(shield=True):
            await self.journal.settle(self.owner, key, cost=cost)

    async def api_failed(self, key: str, error: str, error_type: str = "PredictionFailed") -> None:
        """The API reported the prediction failed (``error_type``: the error's class)."""
        await self.journal.api_failed(self.owner, key, error=error, error_type=error_type)

    async def delivered(
        self, key: str, files: Sequence[Path], outputs: Sequence[str], flagged: int = 0
    ) -> None:
        """Every output is on disk and verified (the journal releases the claim);
        ``flagged``: how many the API flagged NSFW."""
        names = [str(file) for file in files]
        try:
            await self.journal.delivered(
                self.owner, key, files=names, outputs=outputs, flagged=flagged
            )
        except JournalUnavailable as err:
            if not err.maybe_committed:
                raise
            # Cut off at the COMMIT: delivered already, or say it again.
            record = await self.journal.get(key)
            if record is None or record.state is not JournalState.DELIVERED:
                await self.journal.delivered(
                    self.owner, key, files=names, outputs=outputs, flagged=flagged
                )
        self._held.discard(key)

    async def record_failure(self, key: str, err: SeedreamError, *, paid: bool) -> None:
        """Record why ``key`` did not deliver: with its id kept when ``paid``."""
        error, kind = str(err), type(err).__name__
        if paid:
            await self._quietly(
                self.journal.note_error(self.owner, key, error=error, error_type=kind)
            )
        else:
            await self._quietly(
                self.journal.not_submitted(self.owner, key, error=error, error_type=kind)
            )

    async def _quietly(self, call: Awaitable[None]) -> None:
        try:
            await call
        except JournalUnavailable as err:  # said once: every item would say it again
            if not self._down_logged:
                self._down_logged = True
                logger.warning("%s (further journal errors of this run are not shown)", err)
        except LostClaim as err:  # said once: a paused run loses them all at once
            self.lost += 1
            if self.lost == 1:
                logger.warning(
                    "this run (%s) lost its claim on %r and any others it held past their "
                    "lease (paused, or cut off from the journal?): other runs carry them on, "
                    "and nothing is sent for them here",
                    err.owner, err.key,
                )  # fmt: skip
        except JournalError as err:
            logger.warning("journal: %s", err)
