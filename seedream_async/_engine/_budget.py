"""What a run may spend and has spent (the journal keeps the budget over every run)."""

from __future__ import annotations

from collections.abc import Callable

from .._base._exceptions import BudgetExceeded
from .._wire._pricing import PriceModel
from ._items import BatchProgress

__all__ = ["Budget"]


class Budget:
    """This run's money: reserve the price of a submit before it is sent, refund it when
    the server did not take it, count it as spent once billed (an ambiguous one too).

    With a journal, the budget over the whole journal is checked by the journal itself
    (``JournalStore.reserve``); this object then holds only a per-run cap, if any.

    A submit's price comes from its model's :class:`PriceModel` (``price_for``, the
    client's: the user's price, else the model's own rule): per execution, or per
    generated image, where the most the submit can generate (``max_images``) is held and
    held (the upper bound), then settled to the images the prediction returned
    (:meth:`settle`): a sequence may stop short, and a failed prediction costs nothing.

    Args:
        price: how the API bills (a plain number is dollars per execution); the price of
            every model when ``price_for`` is None.
        limit: US dollars this run may spend, or None for no limit.
        progress: the live counters, whose ``executions`` and ``spent`` it keeps.
        price_for: the price of a prediction of a given model id.
    """

    def __init__(
        self,
        *,
        price: PriceModel | float,
        limit: float | None,
        progress: BatchProgress,
        price_for: Callable[[str], PriceModel] | None = None,
    ) -> None:
        self.model = price if isinstance(price, PriceModel) else PriceModel(per_execution=price)
        self._price_for = price_for
        self.limit = limit
        self.reserved = 0.0
        self._progress = progress

    @property
    def price(self) -> float:
        """The price of the smallest submit (one generated image)."""
        return self.model.worst_case(1)

    def cost_of(self, max_images: int = 1, model: str | None = None) -> float:
        """What one submit of ``model`` generating up to ``max_images`` costs at most."""
        if model is None or self._price_for is None:
            return self.model.worst_case(max_images)
        return self._price_for(model).worst_case(max_images)

    def reserve(self, cost: float | None = None) -> None:
        """Hold the price of one submit (``cost``, or the smallest submit's).

        Raises:
            BudgetExceeded: it does not fit in what is left; nothing is held.
        """
        cost = self.price if cost is None else cost
        if self.limit is not None and self.reserved + cost > self.limit + 1e-9:
            raise BudgetExceeded(
                f"budget ${self.limit:.2f} reached before this item; nothing was spent on it"
            )
        self.reserved += cost

    def refund(self, cost: float | None = None) -> None:
        """Give back a reservation whose submit the server did not take."""
        self.reserved -= self.price if cost is None else cost

    def settle(self, held: float, bill: float) -> float:
        """Settle a billed submit that held ``held`` to its real ``bill`` (per image: the
        images its prediction returned; a failed one: nothing): the difference goes back
        to the budget and leaves the spend. Returns the settled cost."""
        change = round(bill - held, 9)
        if change:
            self.reserved += change
            self._progress.spent = round(self._progress.spent + change, 6)
        return bill

    def spend(self, cost: float | None = None) -> float:
        """Count a reserved submit as billed; return what it cost."""
        cost = self.price if cost is None else cost
        progress = self._progress
        progress.executions += 1
        progress.spent = round(progress.spent + cost, 6)
        return cost
