"""``seedream-async status`` and ``run --dry-run``: where a catalog stands, and what a run
would do and cost, read from the journal and the manifest without any request.

Everything that knows the journal's shape sits in :func:`load_journal` and
:func:`fingerprint`; the rest works on :class:`JournalView`, so a change of journal touches
those two functions only.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console

from .._base._constants import DEFAULT_MODEL
from .._base._exceptions import PredictionFailed
from .._engine._items import EditItem
from .._engine._store import ItemRecord, JournalState
from .._wire._pricing import PriceModel
from ._cost import PaidItem, cost_lines, paid_item
from ._summary import cli_words

__all__ = [
    "Action",
    "JournalRow",
    "JournalView",
    "Plan",
    "fingerprint",
    "journal_exists",
    "load_journal",
    "plan_run",
    "print_plan",
    "print_status",
    "status_json",
]

MODERATED = "ContentModerationError"
"""The journal's error type of a prediction failed in content moderation."""

# Journal states by what a run does with them (names as the journal spells them).
_DELIVERED = frozenset({"succeeded", "delivered"})
_BILLED_UNDELIVERED = frozenset({"submitted", "done"})
_AMBIGUOUS = frozenset({"ambiguous", "intent"})
_API_FAILED = frozenset({"failed", "api_failed"})
# The journal before issue 11 runs a "failed" row again on every run, whatever the options.
_RERUN_FAILED = frozenset({"failed"})


@dataclass(frozen=True, kw_only=True)
class JournalRow:
    """One key's current row, as status and dry run need it.

    Args:
        key: the item's key.
        state: the journal's state name.
        fingerprint: the digest of the item's inputs when it was last begun.
        prediction_id: the latest attempt's id, if any.
        files: the delivered files.
        error: why the latest attempt did not deliver, if so.
        cost: US dollars billed for the key, every attempt.
        attempts: paid (or possibly paid) attempts of the key.
        model: the model of its latest request (None before any was sent).
        error_type: that error's class name (``ContentModerationError``: moderated).
        request_id: the latest submit's ``X-Request-ID``, for support.
        price_rule: the price rule the latest submit was billed by, in words.
        flagged: its outputs the API flagged NSFW.
    """

    key: str
    state: str
    fingerprint: str
    prediction_id: str | None = None
    files: tuple[str, ...] = ()
    error: str | None = None
    cost: float = 0.0
    attempts: int = 0
    model: str | None = None
    error_type: str | None = None
    request_id: str | None = None
    price_rule: str | None = None
    flagged: int = 0

    @property
    def moderated(self) -> bool:
        """The API failed it in content moderation (error code 1039)."""
        return self.state in _API_FAILED and self.error_type == MODERATED


@dataclass(frozen=True, kw_only=True)
class JournalView:
    """A journal read whole: its rows in first-seen order and the money billed.

    Args:
        path: the journal file.
        rows: the rows by key.
        billed: US dollars billed over every attempt of every key.
    """

    path: Path | str
    rows: dict[str, JournalRow] = field(default_factory=dict)
    billed: float = 0.0

    def counts(self) -> Counter[str]:
        """Rows per state name."""
        return Counter(row.state for row in self.rows.values())

    def by_model(self) -> dict[str, dict[str, Any]]:
        """Items and dollars billed per model (rows never sent count under "not sent")."""
        models: dict[str, dict[str, Any]] = {}
        for row in self.rows.values():
            entry = models.setdefault(row.model or "not sent", {"items": 0, "billed": 0.0})
            entry["items"] += 1
            entry["billed"] = round(entry["billed"] + row.cost, 6)
        return models

    def price_rules(self) -> list[str]:
        """The price rules the journal's submits were billed by, in first-seen order."""
        return list(dict.fromkeys(r.price_rule for r in self.rows.values() if r.price_rule))


def _error(record: ItemRecord) -> str | None:
    """The row's error as the run's report words it (a failed prediction names its id)."""
    if record.state is JournalState.API_FAILED and record.prediction_id and record.error:
        return str(PredictionFailed(record.prediction_id, record.error))
    return record.error


def _model(record: ItemRecord) -> str | None:
    if record.request is None:
        return None
    return str(record.request.get("model") or DEFAULT_MODEL)


async def load_journal(path: Path | str) -> JournalView:
    """Read the journal at ``path`` (which must exist) without changing it.

    Args:
        path: the SQLite journal, or a PostgreSQL journal's DSN.
    """
    from .._engine._journal import open_journal

    rows: dict[str, JournalRow] = {}
    async with await open_journal(path, create=False) as journal:
        after = 0
        while True:
            page = await journal.page(after=after)
            for record in page.records:
                history = await journal.history(record.key) if record.attempts else []
                paid = [
                    old
                    for old in history
                    if old.prediction_id is not None or old.state.value in _AMBIGUOUS
                ]
                rows[record.key] = JournalRow(
                    key=record.key,
                    state=record.state.value,
                    fingerprint=record.fingerprint,
                    prediction_id=record.prediction_id,
                    files=record.files,
                    error=_error(record),
                    cost=sum(old.cost for old in history),
                    attempts=len(paid),
                    model=_model(record),
                    error_type=record.error_type,
                    request_id=record.request_id,
                    price_rule=record.price_rule,
                    flagged=record.flagged,
                )
            if page.next_after is None:
                break
            after = page.next_after
        billed = (await journal.spend()).billed
    return JournalView(path=path, rows=rows, billed=billed)


async def fingerprint(item: EditItem) -> str:
    """The digest the engine files ``item`` under: a changed one means a new paid job."""
    from .._engine._resume import fingerprint as engine_fingerprint

    return await engine_fingerprint(item, item.request_params())


class Action(StrEnum):
    """What a run would do with one item."""

    SUBMIT = "submit"
    """New, or never billed (pending, stopped by a budget): a paid submit."""
    CHANGED = "changed"
    """Its inputs changed since it was billed: a new paid job (the old one kept in history)."""
    RETRY = "retry"
    """The API reported it failed and --retry-failed was given: a new paid attempt."""
    RESUBMIT = "resubmit"
    """Ambiguous and --resubmit-ambiguous was given: paid again, knowingly."""
    REROLL = "reroll"
    """Named by --reroll: a deliberate new paid attempt with a new seed."""
    JOURNAL = "journal"
    """Delivered, files on disk: answered from the journal, free."""
    REFETCH = "refetch"
    """Billed, not delivered: fetched again by prediction id, free."""
    LEFT_AMBIGUOUS = "left_ambiguous"
    """May have been billed without an answer: reported, not sent."""
    LEFT_FAILED = "left_failed"
    """The API reported it failed: reported, not sent (see --retry-failed)."""

    @property
    def paid(self) -> bool:
        """The action submits, and so is billed."""
        return self in _PAID


_PAID = frozenset({Action.SUBMIT, Action.CHANGED, Action.RETRY, Action.RESUBMIT, Action.REROLL})


@dataclass
class Plan:
    """What a run would do: the keys per action, in manifest order, and what each paid
    submit may cost."""

    keys: dict[Action, list[str]] = field(default_factory=lambda: {a: [] for a in Action})
    costs: list[PaidItem] = field(default_factory=list)
    moderated: list[str] = field(default_factory=list)
    """Keys the run would submit again that failed content moderation last time."""

    @property
    def paid(self) -> int:
        """Submits the run would pay for."""
        return sum(len(keys) for action, keys in self.keys.items() if action.paid)

    @property
    def cost(self) -> float:
        """The most the paid submits can cost."""
        return round(sum(paid.cost for paid in self.costs), 6)

    def fits(self, money: float) -> int:
        """How many paid submits, in order, ``money`` covers."""
        count = 0
        for paid in self.costs:
            money -= paid.cost
            if money < -1e-9:
                break
            count += 1
        return count


async def _decide(
    item: EditItem,
    row: JournalRow | None,
    *,
    retry_failed: bool,
    resubmit_ambiguous: bool,
    reroll: Collection[str],
) -> Action:
    if item.key in reroll:
        return Action.REROLL
    if row is None:
        return Action.SUBMIT
    billed = row.state not in ("pending", "not_submitted")
    if row.fingerprint != await fingerprint(item):
        return Action.CHANGED if billed else Action.SUBMIT
    if row.state in _DELIVERED:
        files_there = [await anyio.Path(file).exists() for file in row.files]
        if all(files_there) or row.prediction_id is None:
            return Action.JOURNAL
        return Action.REFETCH
    if row.state in _BILLED_UNDELIVERED and row.prediction_id:
        return Action.REFETCH
    if row.state in _AMBIGUOUS:
        return Action.RESUBMIT if resubmit_ambiguous else Action.LEFT_AMBIGUOUS
    if row.state in _API_FAILED:
        return Action.RETRY if retry_failed or row.state in _RERUN_FAILED else Action.LEFT_FAILED
    return Action.SUBMIT


async def plan_run(
    items: Iterable[EditItem],
    view: JournalView | None,
    *,
    retry_failed: bool = False,
    resubmit_ambiguous: bool = False,
    reroll: Collection[str] = (),
    price_for: Callable[[str], PriceModel] | None = None,
) -> Plan:
    """Decide, for each item, what a run with these options would do; nothing is sent.

    Args:
        items: the manifest's items (after --only).
        view: the journal, or None when there is none yet.
        retry_failed: --retry-failed.
        resubmit_ambiguous: --resubmit-ambiguous.
        reroll: the keys named by --reroll.
        price_for: the price of a model's prediction; each model's own rule when None.
    """
    plan = Plan()
    rows: Mapping[str, JournalRow] = view.rows if view is not None else {}
    for item in items:
        action = await _decide(
            item,
            rows.get(item.key),
            retry_failed=retry_failed,
            resubmit_ambiguous=resubmit_ambiguous,
            reroll=reroll,
        )
        plan.keys[action].append(item.key)
        if action.paid:
            plan.costs.append(paid_item(item, price_for))
        row = rows.get(item.key)
        if action is Action.RETRY and row is not None and row.moderated:
            plan.moderated.append(item.key)
    return plan


def journal_exists(path: Path | str) -> bool:
    """True when ``path`` is a journal file worth reading (not missing, not empty), or a
    PostgreSQL journal's DSN (a server journal always exists: its tables are made on use)."""
    if isinstance(path, str) and path.startswith(("postgresql://", "postgres://")):
        return True
    try:
        return os.stat(path).st_size > 0
    except OSError:
        return False


def status_json(view: JournalView) -> dict[str, Any]:
    """``status --json``: counts, money and the keys that need a decision."""
    return {
        "journal": str(view.path),
        "items": len(view.rows),
        "counts": dict(sorted(view.counts().items())),
        "billed": round(view.billed, 6),
        "models": view.by_model(),
        "price_rules": view.price_rules(),
        "ambiguous": {k: r.error for k, r in view.rows.items() if r.state in _AMBIGUOUS},
        "failed": {k: r.error for k, r in view.rows.items() if r.state in _API_FAILED},
        "moderated": [k for k, r in view.rows.items() if r.moderated],
        "flagged": {k: r.flagged for k, r in view.rows.items() if r.flagged},
        "request_ids": {
            k: r.request_id
            for k, r in view.rows.items()
            if r.request_id and r.state in _AMBIGUOUS | _API_FAILED
        },
    }


_ACTION_WORDS = {
    Action.SUBMIT: "submit (new or never billed)",
    Action.CHANGED: "submit again: inputs changed since billed",
    Action.RETRY: "submit again: the API reported it failed",
    Action.RESUBMIT: "submit again: ambiguous (--resubmit-ambiguous)",
    Action.REROLL: "re-roll with a new seed (--reroll)",
    Action.JOURNAL: "answered from the journal",
    Action.REFETCH: "fetched again by prediction id",
    Action.LEFT_AMBIGUOUS: "left ambiguous (see --resubmit-ambiguous)",
    Action.LEFT_FAILED: "left failed (see --retry-failed)",
}
_SHOWN_KEYS = 10
_SHOWN_FAILURES = 20


def _keys_text(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN_KEYS])
    return shown + (f", ... and {len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else "")


def retry_cost_note(moderated: int, price: PriceModel) -> str:
    """What re-running ``moderated`` items that failed content moderation costs."""
    cost = moderated * price.per_execution
    note = (
        f"{moderated} item(s) failed content moderation; re-running them costs ${cost:.3f} "
        "and will likely fail again (change their prompt or images, or leave them out)"
    )
    if price.per_image:
        note += "; billed per generated image, a failed one costs nothing"
    return note


def print_plan(
    console: Console,
    plan: Plan,
    *,
    budget: float | None,
    billed: float = 0.0,
    price: PriceModel | None = None,
) -> None:
    """Print a dry run: items per action (paid ones with their keys), the price rule and
    the cost.

    Args:
        console: where to print.
        plan: the plan.
        budget: the run's --budget, if any: the catalog's, every run of the journal counted.
        billed: US dollars the journal has billed already (they count against ``budget``).
        price: how submits are billed (``--price-per-image``); the default rule when None.
    """
    price = price or PriceModel()
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="dry run: nothing sent", header_style="bold")
    table.add_column("what the run would do")
    table.add_column("items", justify="right")
    table.add_column("cost")
    for action, keys in plan.keys.items():
        if keys:
            table.add_row(_ACTION_WORDS[action], str(len(keys)), "paid" if action.paid else "free")
    console.print(table)
    for action, keys in plan.keys.items():
        if keys and action.paid:
            console.print(f"{_ACTION_WORDS[action]}: {escape(_keys_text(keys))}")
    for line in cost_lines(plan.costs):
        console.print(escape(line))
    console.print(f"Price rule: {price.describe()}")
    if plan.moderated:
        console.print(f"[yellow]{retry_cost_note(len(plan.moderated), price)}[/]")
    if budget is not None:
        fits = plan.fits(budget - billed)
        if fits < plan.paid:
            spent = f" (less ${billed:.3f} already billed)" if billed else ""
            console.print(
                f"[yellow]--budget {budget:g}{spent} covers {fits} of them[/]; the other "
                f"{plan.paid - fits} would be left not submitted"
            )


def print_status(console: Console, view: JournalView) -> None:
    """Print where a catalog stands: counts by state, money, keys that need a decision.

    Args:
        console: where to print.
        view: the journal.
    """
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"journal {escape(str(view.path))}", header_style="bold")
    table.add_column("state")
    table.add_column("items", justify="right")
    for state, count in sorted(view.counts().items()):
        table.add_row(state.replace("_", " "), str(count))
    table.add_row("total", str(len(view.rows)), end_section=True)
    table.add_row("billed, every run", f"${view.billed:.3f}")
    flagged = [row for row in view.rows.values() if row.flagged]
    if flagged:
        outputs = sum(row.flagged for row in flagged)
        table.add_row("flagged NSFW by the API", f"{len(flagged)} ({outputs} outputs)")
    for rule in view.price_rules():
        table.add_row("price rule", rule)
    console.print(table)
    models = view.by_model()
    if len(models) > 1:  # a catalog that mixes models: each one's share
        per_model = Table(title="by model", header_style="bold")
        per_model.add_column("model")
        per_model.add_column("items", justify="right")
        per_model.add_column("billed", justify="right")
        for model, entry in sorted(models.items()):
            per_model.add_row(escape(model), str(entry["items"]), f"${entry['billed']:.3f}")
        console.print(per_model)
    groups = (
        (_AMBIGUOUS, "may have been billed without an answer; not sent again unless you "
         "re-run with --resubmit-ambiguous"),
        (_API_FAILED, "failed"),
    )  # fmt: skip
    for states, words in groups:
        rows = [row for row in view.rows.values() if row.state in states]
        if not rows:
            continue
        console.print(f"[yellow]{len(rows)} item(s) {words}:[/]")
        for row in rows[:_SHOWN_FAILURES]:
            reason = row.error or "no reason recorded"
            if row.request_id and row.request_id not in reason:
                reason += f" (request id {row.request_id})"
            console.print(f"  {escape(row.key)}: {escape(cli_words(reason))}")
        if len(rows) > _SHOWN_FAILURES:
            console.print(f"  ... and {len(rows) - _SHOWN_FAILURES} more (status --json lists all)")
    moderated = sum(row.moderated for row in view.rows.values())
    if moderated:
        console.print(
            f"[yellow]{moderated} of the failed item(s) failed content moderation[/]: "
            "--retry-failed pays for them again, and they will likely fail again"
        )
