"""The account's balance beside a cost (``validate``, ``run --dry-run``): one request to
Atlas Cloud's Billing Public API, only when an API key is at hand; never fatal."""

from __future__ import annotations

import os

from rich.markup import escape

from .._base._constants import API_KEY_ENV, PRICE_PER_EXECUTION
from .._base._exceptions import SeedreamError
from .._clients._async import AsyncSeedream
from .._policies._retry import RetryPolicy

__all__ = ["balance_note"]

# A look at the balance must not hold a dry run up: two quick tries, then say so.
_TIMEOUT = 10.0
_RETRY = RetryPolicy(max_attempts=2, initial_delay=0.2, max_delay=1.0, max_retry_after=2.0)


async def balance_note(
    *,
    paid: int,
    api_key: str | None = None,
    base_url: str | None = None,
    api_key_env: str = API_KEY_ENV,
    cost: float | None = None,
) -> str:
    """One line on the account's balance next to the cost of ``paid`` predictions.

    Args:
        paid: predictions the run would pay for.
        cost: the most they cost (each by its model's price); ``paid`` times the default
            model's price when None.
        api_key: the key; ``api_key_env``'s value when None (no key: no request).
        base_url: the API's origin; the client's default when None.
        api_key_env: the environment variable the key comes from.
    """
    key = api_key or os.environ.get(api_key_env)
    if not key:
        return f"Balance: not checked (no API key in {api_key_env})"
    try:
        async with AsyncSeedream(
            key, base_url=base_url, timeout=_TIMEOUT, retry=_RETRY, request_deadline=_TIMEOUT
        ) as client:
            balance = await client.balance()
    except SeedreamError as err:
        return f"Balance: not available ({escape(str(err))})"
    cost = paid * PRICE_PER_EXECUTION if cost is None else cost
    # Predictions at their average price (the default model's when there are none).
    covers = balance.covers(cost / paid if paid and cost else PRICE_PER_EXECUTION)
    line = f"Balance: {balance} available, enough for {covers:,} predictions"
    if covers < paid:
        return (
            f"[yellow]{line}: short of the {paid:,} this would submit (${cost:,.3f}); "
            "the rest would be refused (HTTP 402)[/]"
        )
    return line
