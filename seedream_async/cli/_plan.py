"""``run --dry-run``: what a run would do with each item, and what it would cost, decided
from the journal and the manifest without any request."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import anyio
from rich.console import Console

from .._engine._items import EditItem
from .._wire._pricing import PriceModel
from ._cost import PaidItem, cost_lines, paid_item
from ._journal_view import (
    AMBIGUOUS,
    API_FAILED,
    BILLED_UNDELIVERED,
    DELIVERED,
    RERUN_FAILED,
    JournalRow,
    JournalView,
    fingerprint,
)

__all__ = ["Action", "Plan", "plan_run", "print_plan", "retry_cost_note"]


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
    if row.state in DELIVERED:
        files_there = [await anyio.Path(file).exists() for file in row.files]
        if all(files_there) or row.prediction_id is None:
            return Action.JOURNAL
        return Action.REFETCH
    if row.state in BILLED_UNDELIVERED and row.prediction_id:
        return Action.REFETCH
    if row.state in AMBIGUOUS:
        return Action.RESUBMIT if resubmit_ambiguous else Action.LEFT_AMBIGUOUS
    if row.state in API_FAILED:
        return Action.RETRY if retry_failed or row.state in RERUN_FAILED else Action.LEFT_FAILED
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
