"""The client reads every first-party response shape the simulator serves, over real HTTP."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from seedream_async import (
    BadRequestError,
    DeadlineExceeded,
    EditItem,
    InvalidInput,
    PollPolicy,
    PredictionFailed,
    PriceModel,
    RetryPolicy,
)
from seedream_async.testing import Faults, Hostile, Shapes, make_png
from tests._helpers import simulated

pytestmark = pytest.mark.anyio

PNG = make_png(16, 16, seed=3)
PROMPT = "Put the sneaker on a marble pedestal"

SHAPES = [
    pytest.param({"envelope": "code"}, id="code-envelope"),
    pytest.param({"envelope": "flat"}, id="flat"),
    pytest.param({"shapes": Shapes(output_key="output")}, id="output-key"),
    pytest.param({"shapes": Shapes(output_form="string")}, id="output-string"),
    pytest.param({"shapes": Shapes(output_items="object")}, id="output-objects"),
    pytest.param(
        {"shapes": Shapes(output_key="output", output_form="string", output_items="object")},
        id="output-one-object",
    ),
    pytest.param({"shapes": Shapes(numeric_ids=True)}, id="numeric-ids"),
    pytest.param({"shapes": Shapes(timestamps="missing")}, id="timestamps-missing"),
    pytest.param({"shapes": Shapes(timestamps="empty")}, id="timestamps-empty"),
    pytest.param({"shapes": Shapes(timestamps="garbage")}, id="timestamps-garbage"),
    pytest.param({"shapes": Shapes(upload="filename")}, id="upload-filename"),
    pytest.param({"shapes": Shapes(upload="url")}, id="upload-url"),
    pytest.param(
        {"shapes": Shapes(running=("starting", "queued", "processing", "running", "warming_up"))},
        id="running-statuses",
    ),
    pytest.param({"shapes": Shapes(done="succeeded")}, id="succeeded"),
]


@pytest.mark.parametrize("options", SHAPES)
@pytest.mark.parametrize("max_images", [1, 2])
async def test_edit_reads_every_shape(
    options: dict[str, Any], max_images: int, tmp_path: Path
) -> None:
    """Upload, submit, poll and download work in each shape; nothing is paid twice."""
    async with simulated(**options) as (sim, client):
        done = await client.edit(PROMPT, [PNG], max_images=max_images)
        assert done.done
        # The model decides how many (1..max_images); the ledger knows what it returned.
        (record,) = sim.ledger.submissions
        assert 1 <= len(done.outputs) == record.outputs <= max_images
        saved = await client.save_output(done.outputs[0], tmp_path / "out")
    assert saved.read_bytes().startswith(b"\xff\xd8\xff")  # JPEG, as ModelArk returns
    assert saved.suffix == ".jpg"
    assert sim.ledger.executions == 1
    assert sim.ledger.duplicate_submissions == 0


async def test_base64_outputs_bare(tmp_path: Path) -> None:
    """Bare base64 outputs (with object-shaped URL items configured) decode to the JPEG,
    saved under the name its bytes call for."""
    async with simulated(shapes=Shapes(output_items="object")) as (sim, client):
        done = await client.edit(PROMPT, [PNG], enable_base64_output=True)
        saved = await client.save_output(done.outputs[0], tmp_path / "b64")
    assert saved.read_bytes().startswith(b"\xff\xd8\xff")
    assert saved.name == "b64.jpg"
    assert sim.ledger.requests["output"] == 0


@pytest.mark.parametrize(
    "status", ["failed", "error", "canceled", "cancelled", "timeout", "expired"]
)
async def test_failed_statuses(status: str) -> None:
    """Every failure word ends the wait with PredictionFailed, billed once."""
    async with simulated(shapes=Shapes(failed=status), faults=Faults(prediction_failure=1.0)) as (
        sim,
        client,
    ):
        with pytest.raises(PredictionFailed):
            await client.edit(PROMPT, [PNG])
    assert sim.ledger.executions == 1


async def test_unknown_status_is_running_until_the_deadline() -> None:
    """A status nobody documented reads as running: the wait ends at its deadline."""
    poll = replace(PollPolicy().scaled(0.001), deadline=0.3)
    async with simulated(shapes=Shapes(done="mystery"), client_options={"poll": poll}) as (
        sim,
        client,
    ):
        with pytest.raises(DeadlineExceeded):
            await client.edit(PROMPT, [PNG])
    assert sim.ledger.executions == 1
    assert sim.ledger.total_polls > 1


async def test_error_envelope_on_submit_is_a_definite_rejection() -> None:
    """A 200 carrying {"code": 400} on submit raises BadRequestError, not
    AmbiguousSubmission: nothing was billed and nothing is re-sent."""
    hostile = Hostile(error_envelope=frozenset({"submit"}), error_code=400)
    async with simulated(hostile=hostile) as (sim, client):
        with pytest.raises(BadRequestError) as caught:
            await client.edit(PROMPT, [PNG])
    assert caught.value.status_code == 400
    assert "error code 400" in str(caught.value)
    assert sim.ledger.executions == 0
    assert sim.ledger.requests["submit"] == 1


async def test_error_envelope_on_upload() -> None:
    """A 200 carrying {"code": 400} on upload raises BadRequestError."""
    hostile = Hostile(error_envelope=frozenset({"upload"}), error_code=422)
    retry = RetryPolicy(initial_delay=0.001, max_delay=0.005, max_attempts=2)
    async with simulated(hostile=hostile, client_options={"retry": retry}) as (sim, client):
        with pytest.raises(BadRequestError):
            await client.upload(PNG)
    assert sim.ledger.uploads == []


async def test_extra_body_and_check_limits_reach_the_server() -> None:
    """extra_body fields arrive in the JSON body (edit and batch); check_limits=False lets
    the server, not the client, judge a size outside the local rule."""
    async with simulated() as (sim, client):
        await client.edit(PROMPT, [PNG], extra_body={"output_format": "jpeg"})
        item = EditItem(key="k", prompt=PROMPT, images=[PNG], extra_body={"w": 1})
        (result,) = await client.edit_all([item])
        assert result.ok, result.error
        with pytest.raises(InvalidInput, match="extra_body"):
            await client.edit(PROMPT, [PNG], watermark=False)
        with pytest.raises(BadRequestError, match="size"):
            await client.edit(PROMPT, [PNG], size="1024*1024", check_limits=False)
    first, second = sim.ledger.submissions
    assert first.unknown_fields == ("output_format",)
    assert second.unknown_fields == ("w",)
    assert sim.ledger.executions == 2


async def test_per_image_price_drives_budget_and_cost() -> None:
    """With per-image pricing, a budget holds max_images x price per submit and results
    carry that cost; the default stays $0.036 per execution. (The model returns every
    image here: settling to fewer is tests/test_per_image_billing.py's.)"""
    price = PriceModel.per_generated_image(0.05)
    items = [EditItem(key=f"k{n}", prompt=PROMPT, images=[PNG], max_images=2) for n in range(3)]
    every = Shapes(output_count="max")
    async with simulated(shapes=every, client_options={"price": price}) as (sim, client):
        results = await client.edit_all(items, budget=0.25)
    by_status = {r.key: r.status.value for r in results}
    assert sorted(by_status.values()) == ["not_submitted", "succeeded", "succeeded"]
    assert sum(r.cost for r in results) == pytest.approx(0.2)
    assert sim.ledger.executions == 2
    assert sim.ledger.images_generated == 4
    assert price.cost(executions=0, images=sim.ledger.images_generated) == pytest.approx(0.2)
    async with simulated() as (sim, client):
        (result,) = await client.edit_all(items[:1])
    assert result.cost == pytest.approx(0.036)
