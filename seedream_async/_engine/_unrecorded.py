"""Billed ids the journal could not take: kept in memory, written down later, never lost.

A submit's answer carries the prediction id that a resume needs to fetch the item instead
of paying for it again. When the journal refuses that id (its disk is full or read-only,
its file was deleted, its database is down, or this run's claim ran out while it was
paused), :class:`Unrecorded` keeps it:

1. in memory, and new submits wait (:meth:`Unrecorded.clear`): a journal that cannot
   record an id must not be handed more of them;
2. retried in the background (:meth:`~._store.JournalStore.record_id`, idempotent), with
   capped exponential backoff; an item waits ``wait`` seconds for its id to land before
   it ends, failed with the id kept;
3. written at the end of the run to a *sidecar* file next to the journal (for a server
   journal, in the output folder), with one line saying where. The next run reads it
   first and writes each id into the journal, so those items are fetched by id, never
   submitted again; an id whose key is not in the journal yet (a deleted journal started
   afresh) is written right after the item is claimed.

Where the sidecar cannot be written (the same full disk), it goes to the temporary folder,
which the next run reads too; where even that fails, the ids are in the log line itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from .._base._exceptions import JournalError, JournalUnavailable
from ._journal_types import LostClaim
from ._store import JournalStore

__all__ = ["SIDECAR_SUFFIX", "IdNote", "Unrecorded", "Unwritten", "sidecar_for"]

logger = logging.getLogger("seedream_async")

SIDECAR_SUFFIX = ".unrecorded.jsonl"
_SERVER_SIDECAR = ".seedream-journal" + SIDECAR_SUFFIX


@dataclass(frozen=True, kw_only=True)
class IdNote:
    """One billed id waiting to be written into the journal."""

    key: str
    prediction_id: str
    cost: float
    owner: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Unwritten:
    """A run's billed ids the journal never took: where they are, and why.

    Args:
        path: the sidecar file holding them (None: it could not be written either; the
            ids are in the log).
        count: how many.
        reason: the journal's refusal.
    """

    path: Path | None
    count: int
    reason: str


def sidecar_for(journal: object, out_dir: Path | None) -> Path:
    """Where the ids a run could not journal are written: ``<journal file>.unrecorded.jsonl``
    for a file journal; ``<out_dir>/.seedream-journal.unrecorded.jsonl`` (or the current
    folder's) for a server journal."""
    if isinstance(journal, str | os.PathLike) and "://" not in os.fspath(journal):
        path = Path(journal)
        return path.with_name(path.name + SIDECAR_SUFFIX)
    file = getattr(journal, "path", None)
    if isinstance(file, Path):
        return file.with_name(file.name + SIDECAR_SUFFIX)
    return (out_dir or Path.cwd()) / _SERVER_SIDECAR


def _fallback(primary: Path) -> Path:
    digest = hashlib.sha256(str(primary.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"seedream-unrecorded-{digest}.jsonl"


class Unrecorded:
    """This run's billed ids that the journal has not taken yet.

    Args:
        journal: the journal.
        owner: this run's id.
        sidecar: the file the ids go to if the run ends before they are written.
        wait: seconds an item (and a new submit) waits for the journal to take the ids
            before it gives up on it for this run.
    """

    def __init__(self, journal: JournalStore, owner: str, sidecar: Path, *, wait: float) -> None:
        self.journal = journal
        self.owner = owner
        self.sidecar = sidecar
        self.wait = wait
        self.pending: dict[str, IdNote] = {}
        self.loaded: dict[str, IdNote] = {}  # from an earlier run's sidecar, not written yet
        self.taken_in: set[str] = set()  # of those, written into the journal by this run
        self.touched = False  # read a sidecar at the start
        self.given_up = False
        self.unwritten: Unwritten | None = None
        self.error: JournalError | None = None  # the first refusal (not a lost claim)
        self.lost = 0  # billed ids whose claim was lost before they could be written
        self._changed = anyio.Event()

    # -- this run ---------------------------------------------------------------------------

    def keep(self, key: str, prediction_id: str, cost: float, err: JournalError) -> None:
        """Keep ``key``'s billed id, which the journal refused with ``err``."""
        self.pending[key] = IdNote(
            key=key, prediction_id=prediction_id, cost=cost, owner=self.owner, reason=str(err)
        )
        if isinstance(err, LostClaim):
            self.lost += 1
            logger.log(
                logging.WARNING if self.lost == 1 else logging.INFO,
                "item %r: this run lost its claim while its submit was out (paused past its "
                "lease?); its billed id %s is written down for whoever carries the item on",
                key, prediction_id,
            )  # fmt: skip
        elif self.error is None:
            self.error = err
            logger.error(
                "%s. Billed ids are kept in memory and new submits wait until it takes them",
                err,
            )
        self._poke()

    def noticed(self, err: BaseException) -> None:
        """Note a journal failure met elsewhere (a delivery's write, a claim): a deleted
        journal file must be rescued at the end even when no id was pending."""
        if isinstance(err, JournalUnavailable) and self.error is None:
            self.error = err

    def holds(self, key: str) -> bool:
        """Whether ``key``'s id is still waiting to be written."""
        return key in self.pending

    async def settled(self, key: str) -> bool:
        """Wait (up to ``wait`` seconds) until ``key``'s id is in the journal."""
        with anyio.move_on_after(self.wait):
            while key in self.pending:
                await self._next_change()
        if key in self.pending:
            self.given_up = True
        return key not in self.pending

    async def clear(self) -> bool:
        """Wait (up to ``wait`` seconds, none once given up) until no id is waiting: a new
        submit goes out only to a journal that takes ids. False: still waiting."""
        if self.pending and not self.given_up:
            with anyio.move_on_after(self.wait):
                while self.pending:
                    await self._next_change()
            self.given_up = bool(self.pending)
        return not self.pending

    def refusal(self) -> JournalUnavailable:
        """The error of an item not submitted because the journal did not take the ids."""
        err = self.error
        resource = err.resource if isinstance(err, JournalUnavailable) else str(self.sidecar)
        reason = err.reason if isinstance(err, JournalUnavailable) else str(err)
        return JournalUnavailable(
            resource,
            reason,
            "not submitted, so nothing more is paid for while billed ids wait to be written; "
            "fix it and re-run the same command",
        )

    def refusal_of(self, key: str) -> JournalUnavailable:
        """The error of a billed item whose id the journal has not taken in time."""
        note = self.pending[key]
        err = self.error
        resource = err.resource if isinstance(err, JournalUnavailable) else "the journal"
        reason = err.reason if isinstance(err, JournalUnavailable) else note.reason
        return JournalUnavailable(
            resource,
            reason,
            f"prediction {note.prediction_id} is paid for and its id kept for the next run "
            "(fetched by id, not paid again)",
        )

    async def retry(self) -> None:
        """Write the waiting ids into the journal, with capped exponential backoff, for as
        long as the run lives (run it in the run's task group)."""
        delay = 0.2
        while True:
            if not self.pending:
                await self._next_change()
                delay = 0.2
                continue
            await self._write(self.pending, self.owner)
            if self.pending:
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _write(self, notes: dict[str, IdNote], owner: str) -> None:
        for key, note in list(notes.items()):
            try:
                with anyio.CancelScope(shield=True):
                    await self.journal.record_id(
                        owner, key, prediction_id=note.prediction_id, cost=note.cost
                    )
            except JournalError as err:
                logger.debug("id %s of %r not written yet: %s", note.prediction_id, key, err)
                continue
            del notes[key]
            if notes is self.loaded or key in self.loaded:
                self.taken_in.add(key)
            self._poke()

    # -- across runs: the sidecar -------------------------------------------------------------

    async def load(self) -> None:
        """Read the sidecar(s) an earlier run left and write their ids into the journal;
        ids of keys the journal does not have yet wait for :meth:`after_claim`."""
        notes: dict[str, IdNote] = {}
        for path in (self.sidecar, _fallback(self.sidecar)):
            notes.update(await anyio.to_thread.run_sync(_read, path))
        if not notes:
            return
        self.loaded = notes
        self.touched = True
        found = len(notes)
        await self._write(self.loaded, self.owner)
        written = found - len(self.loaded)
        logger.warning(
            "wrote %d billed id(s) from %s into the journal (fetched by id, not paid again)%s",
            written, self.sidecar,
            f"; {len(self.loaded)} wait for their items" if self.loaded else "",
        )  # fmt: skip
        await self._save()

    async def after_claim(self, key: str) -> None:
        """Write an id from the sidecar whose item is claimed now (its row exists)."""
        if key in self.loaded:
            await self._write({key: self.loaded[key]}, self.owner)
            try:
                record = await self.journal.get(key)
            except JournalError:
                return
            if record is not None and record.prediction_id == self.loaded[key].prediction_id:
                del self.loaded[key]
                self.taken_in.add(key)

    async def finish(self) -> Path | None:
        """At the end of the run: one last try, then the ids still waiting go to the
        sidecar (with one line saying where); return that file, or None. When the journal's
        file was deleted, every billed id it still holds (read through the open connection)
        goes there too: a fresh journal would not know them."""
        if self.pending:
            await self._write(self.pending, self.owner)
        if isinstance(self.error, JournalUnavailable) and self.error.gone:
            await self._rescue()
        return await self._save()

    async def _rescue(self) -> None:
        after: int | None = 0
        try:
            while after is not None:
                page = await self.journal.page(after=after)
                for record in page.records:
                    if record.prediction_id and record.key not in self.pending:
                        self.pending[record.key] = IdNote(
                            key=record.key, prediction_id=record.prediction_id,
                            cost=record.cost, owner=self.owner, reason=str(self.error),
                        )  # fmt: skip
                after = page.next_after
        except JournalError as err:
            logger.error("could not read the deleted journal's ids back: %s", err)  # noqa: TRY400

    async def _save(self) -> Path | None:
        if not self.touched and not self.pending:
            return None  # never read one, nothing to add: leave another run's file alone
        primary = self.sidecar
        # What is there now (another run may have added ids since this one read it), less
        # what this run wrote into the journal, plus what it still holds.
        left: dict[str, IdNote] = {}
        for path in (primary, _fallback(primary)):
            left.update(await anyio.to_thread.run_sync(_read, path))
        for key in self.taken_in:
            left.pop(key, None)
        left.update({**self.loaded, **self.pending})
        with anyio.CancelScope(shield=True):
            for path in (primary, _fallback(primary)):
                try:
                    await anyio.to_thread.run_sync(_write_file, path, left)
                except OSError:
                    continue
                other = _fallback(primary) if path == primary else primary
                await anyio.to_thread.run_sync(_remove, other)
                break
            else:
                ids = ", ".join(f"{n.key}={n.prediction_id}" for n in left.values())
                logger.error(
                    "%d billed id(s) could not be written to the journal nor to %s or %s: "
                    "keep this line; each is paid for, fetch it by id: %s",
                    len(left), primary, _fallback(primary), ids,
                )  # fmt: skip
                self.unwritten = Unwritten(path=None, count=len(left), reason=self._reason())
                return None
        if not left:
            return None
        if not self.pending:
            logger.info("%d billed id(s) of an earlier run wait in %s", len(left), path)
            return path
        self.unwritten = Unwritten(path=path, count=len(left), reason=self._reason())
        logger.error(
            "%d billed id(s) could not be written to the journal; they are in %s, which "
            "the next run of this journal reads first (fetched by id, not paid again)",
            len(left), path,
        )  # fmt: skip
        return path

    def _reason(self) -> str:
        if self.error is not None:
            return str(self.error)
        notes = list(self.pending.values())
        return notes[0].reason if notes else "the journal did not take them"

    def _poke(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _next_change(self) -> None:
        await self._changed.wait()


def _read(path: Path) -> dict[str, IdNote]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as err:
        logger.error("cannot read the unrecorded ids in %s: %s", path, err)  # noqa: TRY400
        return {}
    notes: dict[str, IdNote] = {}
    for line in text.splitlines():
        try:
            row = json.loads(line)
            note = IdNote(
                key=str(row["key"]),
                prediction_id=str(row["prediction_id"]),
                cost=float(row["cost"]),
                owner=str(row.get("owner", "")),
                reason=str(row.get("reason", "")),
            )
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line of a killed run
        notes[note.key] = note
    return notes


def _write_file(path: Path, notes: Mapping[str, IdNote]) -> None:
    if not notes:
        _remove(path)
        return
    text = "".join(json.dumps(asdict(note), sort_keys=True) + "\n" for note in notes.values())
    temporary = path.with_name(path.name + ".tmp")
    try:
        with temporary.open("w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)
    except OSError:
        _remove(temporary)
        raise


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
