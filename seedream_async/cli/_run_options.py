"""What ``seedream-async run`` was asked to do (:class:`RunOptions`), and where a run's
files go: the journal, ``report.jsonl``, the review sheet, the re-roll pins."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .._base._constants import API_KEY_ENV
from .._engine import BatchOptions
from .._engine._pgjournal import redact_dsn
from .._wire._pricing import PriceModel
from ._reroll import pins_path
from ._review import REVIEW_NAME

__all__ = ["JOURNAL_NAME", "REPORT_NAME", "RunOptions"]

JOURNAL_NAME = ".seedream-journal.sqlite"
REPORT_NAME = "report.jsonl"


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """What ``seedream-async run`` was asked to do.

    Args:
        manifest: the CSV or JSONL manifest.
        out: the folder for outputs, the report and (by default) the journal.
        api_key: the API key.
        base_url: the API's origin; the client's default when None.
        journal: the journal file, or a ``postgresql://`` DSN (kept as a string);
            ``<out>/.seedream-journal.sqlite`` when None.
        price: how predictions are billed (``--price-per-image``); the client's default
            (per execution) when None.
        batch: the batch's options (concurrency, rate, budget, polling, ...), made from the
            command line once; the run adds its output folder, journal and progress bar.
        size: the ``size`` of rows that do not set one.
        max_images: the ``max_images`` of rows that do not set one.
        model: the ``model`` of rows that do not set one.
        resumable: re-running the same command resumes (False for the demo, whose
            simulator forgets its predictions when it stops).
        dry_run: print what would be submitted, answered from the journal, fetched again
            or billed again, with the cost, and send nothing.
        balance: with ``dry_run``, also read the account's balance (one GET) and show it.
        only: run only these keys (every other row is left alone); None runs them all.
        seed_from_key: give each row without a seed one derived from its key, so the
            catalog's results can be made again.
        reroll: keys to pay for again on purpose, each with a new seed; the earlier
            attempt stays in the journal's history and its files move to ``<out>/rerolled/``.
        api_key_env: the environment variable the key came from, for messages.
        webhook_listen: serve the webhook receiver here while the batch runs.
        json_summary: print the summary as one JSON object on stdout instead of a table
            (the bar and the notes go to the ``console`` given, stderr for ``--json``).
    """

    manifest: Path
    out: Path
    api_key: str
    base_url: str | None = None
    journal: Path | str | None = None
    batch: BatchOptions = field(default_factory=BatchOptions)
    price: PriceModel | None = None
    size: str | None = None
    max_images: int | None = None
    model: str | None = None
    json_summary: bool = False
    resumable: bool = True
    dry_run: bool = False
    balance: bool = False
    only: frozenset[str] | None = None
    seed_from_key: bool = False
    reroll: frozenset[str] = frozenset()
    api_key_env: str = API_KEY_ENV
    webhook_listen: tuple[str, int] | None = None

    @property
    def named(self) -> frozenset[str]:
        """Keys the user named (--only, --reroll): each must be in the manifest."""
        return (self.only or frozenset()) | self.reroll

    @property
    def journal_path(self) -> Path | str:
        """The journal in use: a file, or a PostgreSQL DSN."""
        return self.journal or self.out / JOURNAL_NAME

    @property
    def journal_shown(self) -> str:
        """The journal as messages name it: a DSN without its password."""
        journal = self.journal_path
        return redact_dsn(journal) if isinstance(journal, str) else str(journal)

    @property
    def pins_path(self) -> Path:
        """Where re-rolled seeds are pinned: beside a journal file, in ``out`` for a DSN."""
        journal = self.journal_path
        return pins_path(self.out / JOURNAL_NAME if isinstance(journal, str) else journal)

    @property
    def report_path(self) -> Path:
        """Where ``report.jsonl`` goes."""
        return self.out / REPORT_NAME

    @property
    def review_path(self) -> Path:
        """Where the review sheet goes."""
        return self.out / REVIEW_NAME
