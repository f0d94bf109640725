"""Issue 18 at the command line: the price rule named by the dry run, the summary and
status; request ids kept for support; what --retry-failed costs for moderated items."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_cli import FAST_POLL, catalog, cli, out

from seedream_async.testing import Faults, serve

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: the command runs in its own process (see test_cli.py)."""
    return "asyncio"


async def test_moderated_failures_their_request_ids_and_the_price_rule(tmp_path: Path) -> None:
    manifest = catalog(tmp_path / "cat", 2)
    target = tmp_path / "out"
    faults = Faults(prediction_failure=1.0, failure_code=1039)
    async with serve(time_scale=0.001, faults=faults) as sim:
        args = ["run", manifest, "--out", target, "--base-url", sim.base_url, *FAST_POLL]
        done = await cli(*args, "--json")
        assert done.returncode == 1, out(done)
        summary = json.loads(done.stdout)
        assert summary["failed"] == 2
        assert summary["price_rule"] == "$0.036 per execution"
        lines = [json.loads(line) for line in (target / "report.jsonl").read_text().splitlines()]
        submitted = {s.prediction_id for s in sim.ledger.submissions}
        assert {line["prediction_id"] for line in lines} == submitted
        assert all(line["request_id"] and line["error_type"] == "ContentModerationError"
                   for line in lines)  # fmt: skip

        status = await cli("status", target)
        shown = out(status)
        assert "price rule" in shown
        assert "$0.036 per execution" in shown
        assert "2 of the failed item(s) failed content moderation" in shown
        for line in lines:
            assert f"request id {line['request_id']}" in shown
        as_json = json.loads((await cli("status", target, "--json")).stdout)
        assert sorted(as_json["moderated"]) == ["sku-0", "sku-1"]
        assert as_json["price_rules"] == ["$0.036 per execution"]

        for extra in (["--dry-run"], []):
            retry = await cli(*args, "--retry-failed", *extra)
            text = out(retry)
            assert (
                "2 item(s) failed content moderation; re-running them costs $0.072 and will "
                "likely fail again"
            ) in text, text
        assert "Price rule: $0.036 per execution" in out(await cli(*args, "--dry-run"))
    assert sim.ledger.executions == 4  # the dry runs sent nothing; the retry paid again


async def test_per_image_price_is_named_and_settled(tmp_path: Path) -> None:
    """--price-per-image: the dry run and the summary name the rule, and the run's bill
    is the images returned, which the simulator's ledger counts. Every output flagged
    NSFW: the summary and status count them."""
    manifest = catalog(tmp_path / "cat", 3, max_images=4)
    target = tmp_path / "out"
    async with serve(time_scale=0.001, faults=Faults(nsfw=1.0)) as sim:
        args = ["run", manifest, "--out", target, "--base-url", sim.base_url, *FAST_POLL]
        args += ["--price-per-image", "0.04"]
        dry = await cli(*args, "--dry-run")
        assert "Price rule: $0.040 per generated image, up to max_images" in out(dry)
        done = await cli(*args, "--json")
    assert done.returncode == 0, out(done)
    summary = json.loads(done.stdout)
    images = sim.ledger.images_generated
    assert summary["price_rule"] == "$0.040 per generated image, up to max_images"
    assert summary["cost"] == pytest.approx(images * 0.04)
    assert summary["flagged"] == images
    shown = out(await cli("status", target))
    assert re.search(rf"flagged NSFW by the API\s*│\s*3 \({images} outputs\)", shown), shown
    assert "$0.040 per generated image, up to max_images" in shown
