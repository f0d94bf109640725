"""What a run came to (:class:`Outcome`) and how it is told: the summary (a table, or JSON
on stdout), where the files are, a stop by signal and how to resume, and a journal that
failed mid-run."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape

from .._base._exceptions import JournalError, JournalUnavailable
from .._engine._unrecorded import Unwritten
from .._wire._pricing import PriceModel
from ._run_options import RunOptions
from ._stop import Stop, resume_command
from ._summary import Tally, print_failures, print_next_steps, summary_json, summary_table

__all__ = ["Outcome", "journal_broke", "print_outcome", "print_stopped"]


@dataclass
class Outcome:
    """What a run came to: its tally, what it billed, how long it took, what stopped it."""

    tally: Tally
    stop: Stop
    billed: float = 0.0
    elapsed: float = 0.0
    failure: JournalError | None = None  # the journal could not be opened: nothing sent
    sidecar: Unwritten | None = None  # billed ids the journal refused, saved beside it
    broken: JournalUnavailable | None = None  # the journal failed mid-run


def journal_broke(outcome: Outcome, errors: Console) -> bool:
    """Say, in one line, that the journal failed mid-run and what the user does now."""
    if outcome.sidecar is not None:
        errors.print(
            f"error: {escape(str(outcome.sidecar.reason))}. The billed ids it could not take "
            f"are in {outcome.sidecar.path}; re-run the same command once it is fixed: they "
            "are fetched by id, not paid again."
        )
        return True
    if outcome.broken is not None:
        errors.print(
            f"error: {escape(str(outcome.broken))}. Items it stopped were not submitted, or "
            "keep their prediction id: re-running the same command picks them all up."
        )
        return True
    return False


def print_outcome(
    options: RunOptions, outcome: Outcome, *, expected: int, console: Console
) -> None:
    tally, billed, elapsed = outcome.tally, outcome.billed, outcome.elapsed
    rule = (options.price or PriceModel()).describe()
    if not options.json_summary:
        console.print(
            summary_table(tally, expected=expected, elapsed=elapsed, billed=billed, price_rule=rule)
        )
    print_failures(console, tally)
    budget = options.batch.budget
    print_next_steps(console, tally, budget=budget, api_key_env=options.api_key_env, billed=billed)
    console.print(f"Outputs: {options.out}")
    console.print(f"Report:  {options.report_path}")
    console.print(f"Review:  {options.review_path}")
    if options.json_summary:
        summary = summary_json(
            tally, expected=expected, elapsed=elapsed, billed=billed, price_rule=rule
        )
        paths = {"out": options.out, "report": options.report_path, "review": options.review_path}
        summary.update({name: str(path) for name, path in paths.items()})
        sys.stdout.write(json.dumps(summary) + "\n")


def print_stopped(options: RunOptions, stop: Stop, errors: Console) -> None:
    assert stop.signal is not None
    where = options.journal_shown
    if options.resumable:
        errors.print(
            f"Stopped by {stop.signal.name}: nothing new was submitted, and every prediction "
            f"already paid for is in the journal {where}; re-run the same command to "
            "resume (what was paid for is fetched by id, not paid again):\n  "
            f"{resume_command(drop='--reroll' if options.reroll else None)}"
        )
    else:
        errors.print(
            f"Stopped by {stop.signal.name}. The demo's simulator stopped with it, so "
            "running the demo again starts over. A real catalog (seedream-async run) "
            "resumes from its journal."
        )
