"""``run --dry-run``: what a run would submit, answer from the journal, fetch again or
bill again, with the cost (and, with ``--balance``, the account's balance); nothing is sent."""

from __future__ import annotations

from rich.console import Console

from ._journal_view import journal_exists, load_journal
from ._options import EXIT_OK
from ._plan import plan_run, print_plan
from ._run_options import RunOptions
from ._selection import selected_items

__all__ = ["dry_run"]


async def dry_run(options: RunOptions, console: Console) -> int:
    """Print the plan of ``options``'s run (read from its journal, if any) and return 0."""
    journal = options.journal_path
    view = await load_journal(journal) if journal_exists(journal) else None
    where = f"the journal {options.journal_shown}" if view is not None else "no journal yet"
    console.print(f"Dry run of {options.manifest} against {where}; nothing is sent.")
    price = options.price
    plan = await plan_run(
        selected_items(options),
        view,
        retry_failed=options.batch.retry_failed,
        resubmit_ambiguous=options.batch.resubmit_ambiguous,
        reroll=options.reroll,
        # --price-per-image prices every model; without it, each model's own rule.
        price_for=None if price is None else lambda _model: price,
    )
    billed = view.billed if view is not None else 0.0
    print_plan(console, plan, budget=options.batch.budget, billed=billed, price=options.price)
    if not options.balance:
        return EXIT_OK
    from ._balance import balance_note

    console.print(
        await balance_note(
            paid=plan.paid,
            cost=plan.cost,
            api_key=options.api_key,
            base_url=options.base_url,
            api_key_env=options.api_key_env,
        )
    )
    return EXIT_OK
