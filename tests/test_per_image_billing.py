"""Issue 18, item 3: per-image billing. The budget holds ``max_images x price`` per submit
before it is sent and settles to the images the prediction returned; a failed prediction
costs nothing. Over real HTTP against the simulator (the model decides how many images a
sequence returns), on asyncio and trio, with a journal and without one."""

from __future__ import annotations

from pathlib import Path

import pytest

from seedream_async import EditItem, PriceModel, ResultStatus
from seedream_async._engine._journal import open_journal
from seedream_async.testing import Faults, Shapes, make_png
from seedream_async.testing._ledger import Ledger
from tests._helpers import simulated

pytestmark = pytest.mark.anyio

PNG = make_png(16, 16, seed=3)
PRICE = 0.036
BUDGET = 2.0  # 55 images: far less than the catalog's worst case, more than one submit's


def _items(count: int) -> list[EditItem]:
    # max_images from 1 to 14 (one reference + 14 generated is the API's limit of 15).
    return [
        EditItem(key=f"k{n}", prompt=f"scene {n}", images=[PNG], max_images=1 + n % 14)
        for n in range(count)
    ]


def _peak_commitment(ledger: Ledger) -> float:
    """The most the server's own bills could have reached at any moment: every prediction
    still running at its worst case (max_images), every finished one at its real bill."""
    peak = 0.0
    for now in sorted(record.created_at for record in ledger.submissions):
        images = 0
        for record in ledger.submissions:
            if record.created_at > now:
                continue
            running = record.done_at > now
            images += record.max_images if running else (0 if record.failed else record.outputs)
        peak = max(peak, images * PRICE)
    return peak


@pytest.mark.parametrize("journaled", [False, True], ids=["no-journal", "journal"])
async def test_the_budget_holds_and_settles_to_the_images_returned(
    tmp_path: Path, journaled: bool
) -> None:
    price = PriceModel.per_generated_image(PRICE)
    shapes = Shapes(output_count="model", output_format="jpeg")
    faults = Faults(prediction_failure=0.15)
    journal = tmp_path / "journal.sqlite" if journaled else None
    async with simulated(shapes=shapes, faults=faults, client_options={"price": price}) as (
        sim,
        client,
    ):
        results = await client.edit_all(_items(28), budget=BUDGET, journal=journal, concurrency=8)
    ledger = sim.ledger
    bill = round(ledger.images_generated * PRICE, 6)
    # The money promise: the server's per-image bill never passed the budget, even
    # counting every running prediction at its worst case.
    assert bill <= BUDGET + 1e-9
    assert _peak_commitment(ledger) <= BUDGET + 1e-9
    # Settled: each result costs the images it returned; failures cost nothing.
    assert sum(result.cost for result in results) == pytest.approx(bill)
    for result in results:
        if result.status is ResultStatus.SUCCEEDED:
            assert result.cost == pytest.approx(len(result.outputs) * PRICE)
        elif result.status is not ResultStatus.NOT_SUBMITTED:
            assert result.cost == 0
    # The model returned fewer images than asked at least once, and settling gave the
    # difference back: more submits got through than the worst case would allow.
    assert ledger.images_generated < sum(r.max_images for r in ledger.submissions)
    assert any(r.status is ResultStatus.NOT_SUBMITTED for r in results)
    if journal is not None:
        async with await open_journal(journal) as store:
            assert (await store.spend()).billed == pytest.approx(bill)
