"""Re-run control from the command line: status, --dry-run, --only, --keys-file,
--seed-from-key. Each against the simulator, counting what it was sent."""

from __future__ import annotations

import json
import random
from pathlib import Path

import anyio
import pytest
from test_cli import FAST_POLL, catalog, cli, cli_env, out, report

from seedream_async.cli._review import review_data
from seedream_async.cli._run import key_seed
from seedream_async.testing import Faults, serve

pytestmark = pytest.mark.anyio
PRICE = 0.036


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: the command runs in its own process (see test_cli.py)."""
    return "asyncio"


def _seed_with_failures(draws: int) -> int:
    """A simulator seed whose first ``draws`` fault draws at 0.5 mix failures and successes."""
    for seed in range(200):
        rng = random.Random(f"{seed}:faults")
        failed = sum(rng.random() < 0.5 for _ in range(draws))
        if 0 < failed < draws:
            return seed
    raise AssertionError("no such seed")


async def test_status(tmp_path: Path) -> None:
    """status: counts by state, money billed, failed keys with reasons; no key, no request."""
    manifest = catalog(tmp_path / "cat", 4)
    target = tmp_path / "out"
    faults = Faults(prediction_failure=0.5)
    async with serve(time_scale=0.001, seed=_seed_with_failures(4), faults=faults) as sim:
        args = ["--base-url", sim.base_url, "--concurrency", "1", *FAST_POLL]
        await cli("run", manifest, "--out", target, *args)
        requests = sim.ledger.requests.total()
        shown = await cli("status", target, env=cli_env(None))
        as_json = await cli("status", target / ".seedream-journal.sqlite", "--json")
        assert sim.ledger.requests.total() == requests
    lines = report(target)
    failed = {line["key"]: line["error"] for line in lines if line["status"] == "failed"}
    assert shown.returncode == 0, out(shown)
    text = out(shown)
    assert f"${4 * PRICE:.3f}" in text
    assert f"{len(failed)} item(s) failed:" in text
    for key, error in failed.items():
        assert f"{key}: {error}" in text
    summary = json.loads(as_json.stdout)
    # Counted in the journal's own states (issue 11's JournalState values).
    assert summary["counts"] == {"api_failed": len(failed), "delivered": 4 - len(failed)}
    assert summary["failed"] == failed
    assert summary["billed"] == pytest.approx(4 * PRICE)
    missing = await cli("status", tmp_path / "nowhere")
    assert missing.returncode == 2
    assert "no journal" in out(missing)


async def test_dry_run_predicts_what_the_run_pays(tmp_path: Path) -> None:
    """--dry-run names each kind of item and the cost, sends nothing, and the real run that
    follows pays for exactly the items the dry run said it would."""
    manifest = catalog(tmp_path / "cat", 4)
    target = tmp_path / "out"
    async with serve(time_scale=0.001) as sim:
        args = ["run", manifest, "--out", target, "--base-url", sim.base_url, *FAST_POLL]
        assert (await cli(*args)).returncode == 0
        # One row's prompt changes, one new row, one output file lost.
        rows = [json.loads(line) for line in manifest.read_text().splitlines()]
        rows[0]["prompt"] = "A different prompt"
        rows.append({**rows[1], "key": "sku-new"})
        manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
        lost = next(line for line in report(target) if line["key"] == "sku-2")["files"][0]
        await anyio.Path(lost).unlink()
        requests = sim.ledger.requests.total()

        dry = await cli(*args, "--dry-run", env=cli_env(None))
        assert sim.ledger.requests.total() == requests  # nothing sent
        assert dry.returncode == 0, out(dry)
        text = out(dry)
        assert "submit again: inputs changed since billed: sku-0" in text
        assert "submit (new or never billed): sku-new" in text
        assert "Cost: 2 \N{MULTIPLICATION SIGN} $0.036 = $0.072" in text
        for words in ("answered from the journal", "fetched again by prediction id"):
            assert words in text

        paid = sim.ledger.executions
        assert (await cli(*args)).returncode == 0
        assert sim.ledger.executions - paid == 2


async def test_only_and_keys_file(tmp_path: Path) -> None:
    """--only and --keys-file run just those keys; a key not in the manifest sends nothing."""
    manifest = catalog(tmp_path / "cat", 4)
    target = tmp_path / "out"
    keys = tmp_path / "keys.txt"
    keys.write_text("sku-0\nsku-3\n")
    async with serve(time_scale=0.001) as sim:
        args = ["run", manifest, "--out", target, "--base-url", sim.base_url, *FAST_POLL]
        only = await cli(*args, "--only", "sku-1")
        assert only.returncode == 0, out(only)
        assert [line["key"] for line in report(target)] == ["sku-1"]
        from_file = await cli(*args, "--keys-file", keys)
        assert sorted(line["key"] for line in report(target)) == ["sku-0", "sku-3"]
        assert from_file.returncode == 0
        assert sim.ledger.executions == 3
        unknown = await cli(*args, "--only", "sku-2", "sku-9")
        assert unknown.returncode == 2
        assert "'sku-9'" in out(unknown)
        assert sim.ledger.executions == 3


async def test_seed_from_key(tmp_path: Path) -> None:
    """--seed-from-key sends each unseeded row a seed derived from its key, the same every
    time; a row's own seed wins."""
    manifest = catalog(tmp_path / "cat", 2)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[1]["seed"] = 42
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    async with serve(time_scale=0.001) as sim:
        for target in (tmp_path / "a", tmp_path / "b"):
            done = await cli(
                "run", manifest, "--out", target, "--base-url", sim.base_url, "--seed-from-key",
                *FAST_POLL,
            )  # fmt: skip
            assert done.returncode == 0, out(done)
            seeds = {line["key"]: line["seed"] for line in report(target)}
            assert seeds == {"sku-0": key_seed("sku-0"), "sku-1": 42}


async def test_reroll(tmp_path: Path) -> None:
    """--reroll FILE pays once more for each key with a new seed, keeps the earlier output
    (moved aside) and attempt (in the history); the next plain run pays nothing."""
    manifest = catalog(tmp_path / "cat", 3)
    target = tmp_path / "out"
    rejected = tmp_path / "rejected-keys.txt"
    rejected.write_text("sku-1\n")
    async with serve(time_scale=0.001) as sim:
        args = ["run", manifest, "--out", target, "--base-url", sim.base_url, *FAST_POLL]
        assert (await cli(*args)).returncode == 0
        before = {line["key"]: line for line in report(target)}
        earlier = await anyio.Path(before["sku-1"]["files"][0]).read_bytes()

        dry = await cli(*args, "--reroll", rejected, "--dry-run")
        assert "re-roll with a new seed (--reroll): sku-1" in out(dry)
        assert sim.ledger.executions == 3

        rolled = await cli(*args, "--reroll", rejected)
        assert rolled.returncode == 0, out(rolled)
        assert sim.ledger.executions == 4
        after = {line["key"]: line for line in report(target)}
        line = after["sku-1"]
        assert line["seed"] is not None
        assert line["prediction_id"] != before["sku-1"]["prediction_id"]
        assert [a["prediction_id"] for a in line["attempts"]] == [
            before["sku-1"]["prediction_id"],
            line["prediction_id"],
        ]
        kept = target / "rerolled" / "sku-1.attempt1.jpg"
        assert await anyio.Path(kept).read_bytes() == earlier
        assert line["attempts"][0]["files"] == [str(kept)]  # where the earlier output is now
        card = review_data([line], target)["cards"][0]
        assert [image["src"] for image in card["earlier"]] == ["./rerolled/sku-1.attempt1.jpg"]
        assert await anyio.Path(line["files"][0]).exists()
        assert after["sku-0"]["from_journal"]

        again = await cli(*args)
        assert again.returncode == 0, out(again)
        assert sim.ledger.executions == 4  # the pinned seed finds the re-rolled attempt
        assert sim.ledger.duplicate_submissions == 0
