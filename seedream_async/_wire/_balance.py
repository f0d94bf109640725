"""The account's balance, from Atlas Cloud's Billing Public API (``GET /public/v1/balance``,
https://www.atlascloud.ai/docs/public-api/balance): money as six-decimal strings with a
currency, read here into exact decimals."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .._base._exceptions import MalformedResponse

__all__ = ["BALANCE_PATH", "Balance", "read_balance"]

BALANCE_PATH = "/public/v1/balance"
"""On the API's origin (not under ``/api/v1``)."""


@dataclass(frozen=True)
class Balance:
    """The account's balance, as :meth:`AsyncSeedream.balance` reads it.

    Attributes:
        available: what can be spent now (cash, bonus and credit), in ``currency``.
        currency: ``"usd"``.
        cash: topped-up money, when the answer gives it.
        bonus: promotional credit, when the answer gives it.
        frozen: money held, when the answer gives it.
    """

    available: Decimal
    currency: str
    cash: Decimal | None = None
    bonus: Decimal | None = None
    frozen: Decimal | None = None

    def covers(self, price: float) -> int:
        """How many predictions at ``price`` US dollars each the available balance pays."""
        if price <= 0 or self.available <= 0:
            return 0
        return int(self.available // Decimal(str(price)))

    def __str__(self) -> str:
        symbol = "$" if self.currency.lower() == "usd" else f"{self.currency.upper()} "
        return f"{symbol}{self.available:.2f}"


def _money(body: dict[str, Any], name: str, *, required: bool = False) -> tuple[Decimal, str]:
    value = body.get(name)
    try:
        amount = value["value"] if isinstance(value, dict) else None
        if amount is not None and isinstance(value, dict):
            return Decimal(str(amount)), str(value.get("currency", "usd"))
    except (KeyError, InvalidOperation):
        pass
    if required:
        raise MalformedResponse(
            f"balance: the answer has no readable {name!r} amount", status_code=200
        )
    return Decimal("NaN"), ""


def read_balance(body: Any) -> Balance:
    """The :class:`Balance` in a ``/public/v1/balance`` answer (also inside ``{"data": ...}``).

    Raises:
        MalformedResponse: there is no readable ``available`` amount.
    """
    if isinstance(body, dict) and "available" not in body and isinstance(body.get("data"), dict):
        body = body["data"]
    if not isinstance(body, dict):
        raise MalformedResponse("balance: the answer is not a JSON object", status_code=200)
    available, currency = _money(body, "available", required=True)

    def optional(name: str) -> Decimal | None:
        amount, _ = _money(body, name)
        return None if amount.is_nan() else amount

    return Balance(
        available=available,
        currency=currency,
        cash=optional("cash"),
        bonus=optional("bonus"),
        frozen=optional("frozen"),
    )
