"""The account's balance: Atlas Cloud's Billing Public API (GET /public/v1/balance), served
by the simulator, read by the clients, shown by ``validate --balance`` and
``run --dry-run --balance`` beside the cost."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from _helpers import simulated
from test_cli import catalog, cli, cli_env, out

from seedream_async import AuthenticationError, Balance, MalformedResponse, Seedream
from seedream_async._wire._balance import read_balance
from seedream_async.testing import serve, serve_in_thread

pytestmark = pytest.mark.anyio

# The answer as Atlas Cloud's docs show it (https://www.atlascloud.ai/docs/public-api/balance).
DOCUMENTED = {
    "object": "balance",
    "scope": "account",
    "account": {"id": "acc_123", "name": "Production", "type": "team"},
    "available": {"value": "125.500000", "currency": "usd"},
    "cash": {"value": "100.000000", "currency": "usd"},
    "bonus": {"value": "25.500000", "currency": "usd"},
    "subscription_bonus": {"value": "0.000000", "currency": "usd"},
    "frozen": {"value": "0.000000", "currency": "usd"},
    "request_id": "req_123",
}


def test_reads_the_documented_answer() -> None:
    """The documented body reads into exact decimals; wrapped in data too; no amount raises."""
    balance = read_balance(DOCUMENTED)
    assert balance == Balance(
        available=Decimal("125.5"),
        currency="usd",
        cash=Decimal(100),
        bonus=Decimal("25.5"),
        frozen=Decimal(0),
    )
    assert str(balance) == "$125.50"
    assert balance.covers(0.036) == 3486
    assert read_balance({"data": DOCUMENTED}) == balance
    with pytest.raises(MalformedResponse, match="available"):
        read_balance({"object": "balance", "available": {"value": "n/a"}})


async def test_client_reads_what_is_left() -> None:
    """``client.balance()`` is the simulator's balance less what it billed."""
    async with simulated(balance=10.0) as (sim, client):
        assert (await client.balance()).available == Decimal(10)
        await client.edit("p", ["https://x.test/a.png"])
        assert (await client.balance()).available == Decimal("9.964")
        assert sim.ledger.requests["balance"] == 2


async def test_no_permission_is_an_authentication_error() -> None:
    """A key without balance read permission (403) raises AuthenticationError."""
    async with simulated(balance=None) as (_sim, client):
        with pytest.raises(AuthenticationError):
            await client.balance()


def test_blocking_client_balance() -> None:
    """``Seedream.balance()`` too."""
    with serve_in_thread(balance=5.0) as sim, Seedream(sim.api_key, base_url=sim.base_url) as c:
        assert c.balance().available == Decimal(5)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the CLI runs in its own process
async def test_validate_and_dry_run_show_it(tmp_path: Path) -> None:
    """``validate --balance`` and ``run --dry-run --balance`` print the balance beside the
    cost, warn when it is short, and send nothing but that one GET; without ``--balance``
    nothing is sent."""
    manifest = catalog(tmp_path / "cat", 3)
    async with serve(balance=0.1) as sim:
        base = ["--base-url", sim.base_url]
        plain = await cli("validate", manifest)
        assert plain.returncode == 0, out(plain)
        assert "Balance" not in out(plain)
        done = await cli("validate", manifest, "--balance", *base)
        assert done.returncode == 0, out(done)
        text = " ".join(out(done).split())
        assert "3 \N{MULTIPLICATION SIGN} $0.036 = $0.108" in text
        assert "Balance: $0.10 available, enough for 2 predictions: short of the 3" in text
        dry = await cli("run", manifest, "--out", tmp_path / "out", *base, "--dry-run", "--balance")
        assert dry.returncode == 0, out(dry)
        assert "Balance: $0.10 available" in out(dry)
        no_key = await cli("validate", manifest, "--balance", *base, env=cli_env(None))
        assert "Balance: not checked (no API key in ATLASCLOUD_API_KEY)" in out(no_key)
        assert dict(sim.ledger.requests) == {"balance": 2}
