"""What a run may spend and has spent (the journal keeps the budget over every run)."""

from __future__ import annotations

from .._exceptions import BudgetExceeded
from ._items import BatchProgress

__all__ = ["Budget"]


class Budget:
    """This run's money: reserve the price of a submit before it is sent, refund it when
    the server did not take it, count it as spent once billed (an ambiguous one too).

    With a journal, the budget over the whole journal is checked by the journal itself
    (``JournalStore.reserve``); this object then holds only a per-run cap, if any.

    Args:
        price: US dollars per submitted prediction.
        limit: US dollars this run may spend, or None for no limit.
        progress: the live counters, whose ``executions`` and ``spent`` it keeps.
    """

    def __init__(self, *, price: float, limit: float | None, progress: BatchProgress) -> None:
        self.price = price
        self.limit = limit
        self.reserved = 0.0
        self._progress = progress

    def reserve(self) -> None:
        """Hold the price of one submit.

        Raises:
            BudgetExceeded: it does not fit in what is left; nothing is held.
        """
        if self.limit is not None and self.reserved + self.price > self.limit + 1e-9:
            raise BudgetExceeded(
                f"budget ${self.limit:.2f} reached before this item; nothing was spent on it"
            )
        self.reserved += self.price

    def refund(self) -> None:
        """Give back a reservation whose submit the server did not take."""
        self.reserved -= self.price

    def spend(self) -> float:
        """Count a reserved submit as billed; return what it cost."""
        progress = self._progress
        progress.executions += 1
        progress.spent = round(progress.executions * self.price, 6)
        return self.price
