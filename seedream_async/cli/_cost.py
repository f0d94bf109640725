"""What a run would pay, per model: each paid submit's price rule and worst case, and the
dry run's cost lines (one for a single model, a total and a line per model for a mix)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .._base._constants import DEFAULT_MODEL
from .._engine._items import EditItem
from .._wire._family import model_spec
from .._wire._pricing import PriceModel

__all__ = ["PaidItem", "cost_lines", "paid_item"]


@dataclass(frozen=True)
class PaidItem:
    """One submit a run would pay for: its model, how it is billed, what it may cost."""

    model: str
    price: PriceModel
    images: int  # the most images it can generate

    @property
    def cost(self) -> float:
        """The most it can cost (per image: every image it may generate)."""
        return self.price.worst_case(self.images)


def paid_item(item: EditItem, price_for: Callable[[str], PriceModel] | None = None) -> PaidItem:
    """What submitting ``item`` costs at most: its model's own price rule, or the one
    ``price_for`` gives (a price the user set for every model)."""
    params = item.request_params()
    model = str(params.get("model") or DEFAULT_MODEL)
    spec = model_spec(model)
    count = params.get("max_images")
    images = spec.most_generated(count) if spec else max(1, count if isinstance(count, int) else 1)
    price = price_for(model) if price_for else PriceModel.for_model(model) or PriceModel()
    return PaidItem(model=model, price=price, images=images)


def _group_line(paid: list[PaidItem]) -> str:
    """``N times $p = $total`` for a per-run price; with the images counted for a per-image one."""
    times = "\N{MULTIPLICATION SIGN}"
    price = paid[0].price
    total = sum(item.cost for item in paid)
    if not price.per_image:
        return f"{len(paid)} {times} ${price.per_execution:.3f} = ${total:,.3f} (per run)"
    images = sum(item.images for item in paid)
    runs = f"{len(paid)} {times} ${price.per_execution:.3f} + " if price.per_execution else ""
    return (
        f"{runs}up to {images} images {times} ${price.per_image:.3f} = up to ${total:,.3f} "
        f"(per image; a sequence may return fewer)"
    )


def cost_lines(costs: list[PaidItem]) -> list[str]:
    """The dry run's cost: one line for one model; a total and a line per model (each with
    its price rule) for a catalog that mixes them."""
    groups: dict[tuple[str, PriceModel], list[PaidItem]] = {}
    for paid in costs:
        groups.setdefault((paid.model, paid.price), []).append(paid)
    if not groups:
        return ["Cost: nothing to pay"]
    if len(groups) == 1:
        ((model, _), group), *_ = groups.items()
        shown = "" if model == DEFAULT_MODEL else f" ({model})"
        return [f"Cost{shown}: {_group_line(group)}"]
    total = sum(paid.cost for paid in costs)
    lines = [f"Cost: up to ${total:,.3f} over {len(costs)} submits of {len(groups)} models"]
    lines += [f"  {model}: {_group_line(group)}" for (model, _), group in groups.items()]
    return lines
