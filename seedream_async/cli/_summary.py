"""The end of a run on the terminal: the counts, the summary table, the failures and what
to do next (the per-item record is ``report.jsonl``, written by ``_report.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._base._constants import API_KEY_ENV, PRICE_PER_EXECUTION
from .._base._exceptions import APIUnreachable, AuthenticationError, BudgetExceeded
from .._engine._items import BatchResult, ResultStatus

__all__ = [
    "Tally",
    "cli_words",
    "estimate",
    "print_failures",
    "print_next_steps",
    "summary_json",
    "summary_table",
]

# Failed items shown under the summary; the rest are in report.jsonl.
_SHOWN_FAILURES = 10


@dataclass
class Tally:
    """Counts of a run's results, for the summary and the exit code."""

    counts: dict[ResultStatus, int] = field(default_factory=lambda: dict.fromkeys(ResultStatus, 0))
    from_journal: int = 0
    cost: float = 0.0
    failures: list[BatchResult] = field(default_factory=list)
    refused_key: int = 0
    refused_status: int | None = None
    unreachable: int = 0
    unreachable_message: str = ""
    over_budget: int = 0
    flagged: int = 0  # outputs the API flagged (has_nsfw_contents)

    def add(self, result: BatchResult) -> None:
        """Count one result."""
        self.counts[result.status] += 1
        self.flagged += sum(result.nsfw)
        self.cost += result.cost
        self.from_journal += result.from_journal
        self.over_budget += isinstance(result.error, BudgetExceeded)
        if isinstance(result.error, APIUnreachable):
            self.unreachable += 1
            self.unreachable_message = str(result.error)
            return  # one line says it for all of them
        if isinstance(result.error, AuthenticationError):
            self.refused_key += 1
            self.refused_status = result.error.status_code
            return  # one line says it for all of them
        # Items the budget stopped are summed up in one line, not listed.
        listed = result.status in (ResultStatus.FAILED, ResultStatus.AMBIGUOUS)
        if listed and len(self.failures) < _SHOWN_FAILURES:
            self.failures.append(result)

    @property
    def total(self) -> int:
        """Results counted."""
        return sum(self.counts.values())

    @property
    def all_ok(self) -> bool:
        """True when every counted item succeeded."""
        return self.counts[ResultStatus.SUCCEEDED] == self.total


def summary_table(
    tally: Tally,
    *,
    expected: int,
    elapsed: float,
    billed: float | None = None,
    price_rule: str | None = None,
) -> Table:
    """The end-of-run table: items by outcome, cost and time.

    Args:
        tally: the run's counts.
        expected: items in the manifest (more than counted if the run was stopped).
        elapsed: seconds the run took.
        billed: US dollars this run's submits were billed, predictions still in flight
            included (the results' costs when None).
        price_rule: the price rule it was billed by, in words.
    """
    table = Table(title="seedream-async run", show_header=True, header_style="bold")
    table.add_column("outcome")
    table.add_column("items", justify="right")
    styles = {
        ResultStatus.SUCCEEDED: "green",
        ResultStatus.FAILED: "red",
        ResultStatus.AMBIGUOUS: "yellow",
        ResultStatus.NOT_SUBMITTED: "yellow",
    }
    for status, style in styles.items():
        if tally.counts[status] or status is ResultStatus.SUCCEEDED:
            table.add_row(
                f"[{style}]{status.value.replace('_', ' ')}[/]", str(tally.counts[status])
            )
    if expected > tally.total:
        table.add_row("[yellow]not reached[/]", str(expected - tally.total))
    table.add_row("total", str(expected), end_section=True)
    # Its own section: a count across every outcome above, not a part of the last one.
    if tally.from_journal:
        table.add_row("answered from the journal (no new cost)", str(tally.from_journal))
    table.add_row("billed this run", f"${tally.cost if billed is None else billed:.3f}")
    if tally.flagged:
        table.add_row("[yellow]outputs flagged NSFW by the API[/]", str(tally.flagged))
    if price_rule:
        table.add_row("price rule", price_rule)
    table.add_row("time", f"{elapsed:.1f}s")
    return table


def summary_json(
    tally: Tally,
    *,
    expected: int,
    elapsed: float,
    billed: float | None = None,
    price_rule: str | None = None,
) -> dict[str, Any]:
    """The end-of-run summary as JSON (``run --json``): the table's figures, by name.

    Args:
        tally: the run's counts.
        expected: items in the manifest.
        elapsed: seconds the run took.
        billed: US dollars this run's submits were billed (the results' costs when None).
        price_rule: the price rule it was billed by, in words.
    """
    return {
        "total": expected,
        **{str(status): tally.counts[status] for status in ResultStatus},
        "not_reached": max(expected - tally.total, 0),
        "from_journal": tally.from_journal,
        "cost": round(tally.cost if billed is None else billed, 6),
        "price_rule": price_rule,
        "flagged": tally.flagged,
        "elapsed": round(elapsed, 3),
    }


def estimate(executions: int) -> str:
    """The cost of ``executions`` paid predictions of the default model: "N times the
    price = total" (the fleet's dry run, which counts items without reading them).

    Args:
        executions: predictions that would be submitted.
    """
    total = executions * PRICE_PER_EXECUTION
    return f"{executions} \N{MULTIPLICATION SIGN} ${PRICE_PER_EXECUTION:.3f} = ${total:,.3f}"


# The engine words its hints for Python callers; the command line has flags instead.
_CLI_WORDS = {"pass resubmit_ambiguous=True": "re-run with --resubmit-ambiguous"}


def cli_words(message: str) -> str:
    """A library message with its Python-keyword hints replaced by the command's flags."""
    for python, flag in _CLI_WORDS.items():
        message = message.replace(python, flag)
    return message


def print_failures(console: Console, tally: Tally) -> None:
    """Print the first failed items with their errors."""
    for result in tally.failures:
        text = cli_words(f"{result.key} ({result.status.value}): {result.error_message}")
        console.print(f"[red]✗[/] {escape(text)}")
    listed = tally.counts[ResultStatus.FAILED] + tally.counts[ResultStatus.AMBIGUOUS]
    hidden = listed - tally.refused_key - tally.unreachable - len(tally.failures)
    if hidden > 0:
        console.print(f"  ... and {hidden} more; see report.jsonl")


def print_next_steps(
    console: Console,
    tally: Tally,
    *,
    budget: float | None,
    api_key_env: str = API_KEY_ENV,
    billed: float | None = None,
) -> None:
    """One line per outcome that needs the user: a refused key, the budget reached,
    ambiguous items.

    Args:
        console: where to print.
        tally: the run's counts.
        budget: the run's ``--budget``, if any.
        api_key_env: the variable the key came from.
        billed: US dollars billed this run (the results' costs when None).
    """
    if tally.unreachable:
        console.print(
            f"[red]Stopped: {escape(tally.unreachable_message)}[/] {tally.unreachable} item(s) "
            "not done; re-run the same command once it is fixed."
        )
    if tally.refused_key:
        console.print(
            f"[red]The API refused the key[/] (HTTP {tally.refused_status}) for "
            f"{tally.refused_key} item(s): check the key in {api_key_env} (a typo, a revoked "
            "key, another account's key). Then re-run the same command; finished items are "
            "not paid again."
        )
    skipped = tally.over_budget
    if skipped:
        limit = f" of ${budget:.2f}" if budget is not None else ""
        spent = tally.cost if billed is None else billed
        console.print(
            f"[yellow]Budget{limit} reached[/]: ${spent:.3f} billed this run, and one more "
            f"item would have passed it; {skipped} item(s) not submitted, nothing spent on "
            "them. Re-run with a higher --budget to finish them (finished items are not paid "
            "again)."
        )
    ambiguous = tally.counts[ResultStatus.AMBIGUOUS]
    if ambiguous:
        console.print(
            f"[yellow]{ambiguous} item(s) may have been billed without an answer[/] and were "
            "not sent again. To pay for them again knowingly, re-run with --resubmit-ambiguous."
        )
