"""``seedream-async status``: where a catalog stands, read from the journal without any
request (the journal is read by ``_journal_view.py``; ``run --dry-run`` is ``_plan.py``)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ._journal_view import AMBIGUOUS, API_FAILED, JournalView
from ._summary import cli_words

__all__ = [
    "print_status",
    "status_json",
]

_SHOWN_FAILURES = 20


def status_json(view: JournalView) -> dict[str, Any]:
    """``status --json``: counts, money and the keys that need a decision."""
    return {
        "journal": str(view.path),
        "items": len(view.rows),
        "counts": dict(sorted(view.counts().items())),
        "billed": round(view.billed, 6),
        "models": view.by_model(),
        "price_rules": view.price_rules(),
        "ambiguous": {k: r.error for k, r in view.rows.items() if r.state in AMBIGUOUS},
        "failed": {k: r.error for k, r in view.rows.items() if r.state in API_FAILED},
        "moderated": [k for k, r in view.rows.items() if r.moderated],
        "flagged": {k: r.flagged for k, r in view.rows.items() if r.flagged},
        "request_ids": {
            k: r.request_id
            for k, r in view.rows.items()
            if r.request_id and r.state in AMBIGUOUS | API_FAILED
        },
    }


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
        (AMBIGUOUS, "may have been billed without an answer; not sent again unless you "
         "re-run with --resubmit-ambiguous"),
        (API_FAILED, "failed"),
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
