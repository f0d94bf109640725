"""What a prediction costs: :class:`PriceModel`, from the contract's prices."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._base._constants import PRICE_PER_EXECUTION, PRICE_PER_IMAGE
from ._family import Billing, model_spec

__all__ = ["PriceModel"]


# -- prices -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PriceModel:
    """How the API bills, for budgets and cost figures.

    The default is the contract's: $0.036 per execution (a submitted prediction, whatever
    its outcome). Some Atlas Cloud models bill per generated image instead::

        PriceModel.per_generated_image(0.04)

    Args:
        per_execution: US dollars per submitted prediction.
        per_image: US dollars per generated image (an output of a completed prediction).
    """

    per_execution: float = PRICE_PER_EXECUTION
    per_image: float = PRICE_PER_IMAGE

    def __post_init__(self) -> None:
        for name in ("per_execution", "per_image"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"PriceModel.{name} must be a finite price >= 0, got {value!r}")

    @classmethod
    def per_generated_image(cls, price: float) -> PriceModel:
        """Bill ``price`` per generated image and nothing per execution."""
        return cls(per_execution=0.0, per_image=price)

    @classmethod
    def for_model(cls, model: str) -> PriceModel | None:
        """``model``'s own price rule from the table of models, or None for an id it does
        not know (see ``seedream_async._wire._family``)."""
        spec = model_spec(model)
        if spec is None:
            return None
        if spec.billing is Billing.PER_IMAGE:
            return cls.per_generated_image(spec.price)
        return cls(per_execution=spec.price, per_image=0.0)

    def describe(self) -> str:
        """The rule in words: ``"$0.036 per execution"``, ``"$0.036 per generated image,
        up to max_images"`` (held at ``max_images``, settled to the images returned)."""
        parts = []
        if self.per_execution or not self.per_image:
            parts.append(f"${self.per_execution:.3f} per execution")
        if self.per_image:
            parts.append(f"${self.per_image:.3f} per generated image, up to max_images")
        return " + ".join(parts)

    def worst_case(self, max_images: int = 1) -> float:
        """The most one submit can cost: what a budget must hold back before sending it."""
        return self.per_execution + self.per_image * max(1, max_images)

    def cost(self, *, executions: int, images: int = 0) -> float:
        """US dollars for ``executions`` submitted predictions that generated ``images``."""
        return round(self.per_execution * executions + self.per_image * images, 6)
