"""What a fleet's journal calls take and give: a manifest row to load, what a load did, an
item handed to a worker, and who holds what.

Plain values. The calls are :class:`~._pgjournal.PostgresJournal`'s (``load``,
``claim_next``, ``fleet``); a worker's loop (``_worker.py``) speaks in them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._journal_types import ItemRecord

__all__ = ["ClaimedItem", "FleetStatus", "LoadReport", "LoadRow"]


@dataclass(frozen=True, kw_only=True)
class LoadRow:
    """One manifest row to load: what :class:`Claim` carries, plus the item itself.

    Args:
        key: the item's key.
        fingerprint: a digest of its prompt, parameters and image contents.
        name: its output file stem.
        item: the item as JSON (``key``, ``prompt``, ``images``, params) for the workers.
    """

    key: str
    fingerprint: str
    name: str
    item: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class LoadReport:
    """What :meth:`PostgresJournal.load` did.

    Args:
        added: new keys.
        unchanged: keys already there with the same fingerprint (nothing written).
        changed: keys whose fingerprint changed: a new job, the old attempts kept.
        name_conflicts: (key, the other key holding its output name), not loaded.
    """

    added: int = 0
    unchanged: int = 0
    changed: int = 0
    name_conflicts: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class ClaimedItem:
    """A row handed to a worker by :meth:`PostgresJournal.claim_next`.

    Args:
        record: the row as claimed (its state says what is left to do).
        item: the item as loaded (JSON), to rebuild the request from.
        taken_over_from: the worker whose lease ran out, if this is a takeover.
    """

    record: ItemRecord
    item: Mapping[str, Any]
    taken_over_from: str | None = None


@dataclass(frozen=True, kw_only=True)
class FleetStatus:
    """Who holds what, on the server's clock.

    Args:
        owners: per live owner (lease not expired), how many unfinished items it holds.
        stale: unfinished items whose owner's lease ran out (a dead worker's, until taken
            over).
        unclaimed: unfinished items nobody holds (those below excepted).
        noted: billed items whose delivery failed, waiting for a ``retry_noted`` pass.
    """

    owners: Mapping[str, int]
    stale: int
    unclaimed: int
    noted: int = 0
