"""The Seedream family on one client: every model in the table, end to end on the simulator.

Each model's valid requests are accepted and billed by the simulator's own table; each
model's invalid sizes, image counts and options are refused by the client before anything
is paid; prices and budgets hold under per-run and per-image billing.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from _helpers import simulated as _simulated

from seedream_async import (
    MODELS,
    Billing,
    EditItem,
    InvalidInput,
    Job,
    ModelSpec,
    PriceModel,
    ResultStatus,
    UnknownModelWarning,
)
from seedream_async.testing import Shapes
from seedream_async.testing._family import SERVED


def simulated(**options: Any) -> Any:
    """The simulator returning every image a sequence may make (``output_count="max"``):
    these tests check each model's price against what it bills, which the model's own
    choice of count (the simulator's documented default) would make a matter of chance."""
    options.setdefault("shapes", Shapes(output_count="max"))
    return _simulated(**options)


pytestmark = pytest.mark.anyio

URL = "https://cdn.example.com/ref.png"
V45_ES = "bytedance/seedream-v4.5/edit-sequential"
V4_ES = "bytedance/seedream-v4/edit-sequential"
LITE = "bytedance/seedream-v5.0-lite/edit-sequential"

# A size each model takes that at least one other model refuses, so a request can only
# pass when the model's own rule is the one applied.
OWN_SIZE = {"v4.5": "2560*1440", "v4/": "1024*1024", "v5.0-lite": "4704*2016"}
# A size each model refuses although another model takes it.
WRONG_SIZE = {"v4.5": "1024*1024", "v4/": "4704*2016", "v5.0-lite": "2560*1440"}


def _pick(table: dict[str, str], model: str) -> str:
    return next(value for marker, value in table.items() if marker in model)


def valid_item(spec: ModelSpec, key: str = "job", **fields: Any) -> EditItem:
    """A request ``spec``'s model takes: its fewest images, its own size, 2 outputs when
    it makes a sequence."""
    fields.setdefault("size", _pick(OWN_SIZE, spec.id))
    if spec.generated is not None:
        fields.setdefault("max_images", 2)
    if spec.options:
        fields.setdefault("options", {"output_format": "png"})
    images = [URL] * spec.min_images
    return EditItem(key=key, prompt="a red sneaker", images=images, model=spec.id, **fields)


def expected_cost(spec: ModelSpec, images: int) -> float:
    return round(spec.price * (images if spec.billing is Billing.PER_IMAGE else 1), 6)


def invalid_items(spec: ModelSpec) -> dict[str, tuple[EditItem, str]]:
    """Requests ``spec``'s model refuses, each with the field the error must name."""
    base = valid_item(spec)
    cases: dict[str, tuple[EditItem, str]] = {
        "size": (EditItem(**{**vars(base), "size": _pick(WRONG_SIZE, spec.id)}), "size"),
    }
    if spec.takes_images:
        too_many = [URL] * (spec.max_images + 1)
        cases["no-images"] = (EditItem(**{**vars(base), "images": []}), "images")
        cases["too-many-images"] = (EditItem(**{**vars(base), "images": too_many}), "images")
    else:
        cases["an-image"] = (EditItem(**{**vars(base), "images": [URL]}), "images")
    if spec.generated is None:
        cases["max-images"] = (EditItem(**{**vars(base), "max_images": 2}), "max_images")
    else:
        high = spec.generated[1] + 1
        cases["max-images"] = (EditItem(**{**vars(base), "max_images": high}), "max_images")
    if spec.options:
        bad = {"output_format": "gif"}
        cases["option"] = (EditItem(**{**vars(base), "options": bad}), "options")
        cases["total"] = (
            EditItem(**{**vars(base), "images": [URL] * spec.max_images, "max_images": 2}),
            "request",
        )
    return {
        name: (EditItem(**{**vars(item), "key": name}), field)
        for name, (item, field) in cases.items()
    }


def test_the_simulator_serves_every_model_in_the_client_table() -> None:
    """The two tables, written apart, name the same models and agree on their prices."""
    assert set(SERVED) == set(MODELS)
    for model, spec in MODELS.items():
        served = SERVED[model]
        assert served.price == spec.price, model
        assert served.per_image == (spec.billing is Billing.PER_IMAGE), model
        assert served.references == (spec.min_images, spec.max_images), model
        assert served.sequence == spec.generated, model


@pytest.mark.parametrize("model", list(MODELS))
async def test_each_model_runs_end_to_end(model: str) -> None:
    """A valid request of each model goes through edit_batch, is accepted and billed by the
    simulator's own rule, and the result's cost is what the simulator billed."""
    spec = MODELS[model]
    async with simulated() as (sim, client):
        (result,) = await client.edit_all([valid_item(spec)], budget=1.0)
    assert result.status is ResultStatus.SUCCEEDED, result.error
    outputs = spec.most_generated(2)
    assert len(result.outputs) == outputs
    (record,) = sim.ledger.submissions
    assert record.model == model
    assert record.unknown_fields == ()  # only fields the model takes were sent
    assert sim.ledger.cost == pytest.approx(expected_cost(spec, outputs))
    assert result.cost == pytest.approx(sim.ledger.cost)


@pytest.mark.parametrize("model", list(MODELS))
async def test_each_models_invalid_requests_are_refused_before_paying(model: str) -> None:
    """Each model's wrong sizes, image counts, max_images and options fail their own item
    with InvalidInput naming the field; the simulator never sees a submit."""
    spec = MODELS[model]
    cases = invalid_items(spec)
    async with simulated() as (sim, client):
        results = await client.edit_all([item for item, _ in cases.values()])
    assert sim.ledger.executions == 0
    assert sim.ledger.requests["submit"] == 0
    for result in results:
        assert result.status is ResultStatus.FAILED, result.key
        assert isinstance(result.error, InvalidInput), result.key
        assert result.error.field == cases[result.key][1], result.error
        assert result.cost == 0.0


@pytest.mark.parametrize(
    ("model", "max_images", "budget", "submitted"),
    [
        pytest.param(V4_ES, 3, 0.06, 2, id="per-run"),  # 0.027 a run, whatever the count
        pytest.param(LITE, 3, 0.2, 2, id="per-image"),  # 3 x 0.032 held per submit
    ],
)
async def test_budget_holds_each_models_own_price(
    model: str, max_images: int, budget: float, submitted: int
) -> None:
    """The budget holds each submit at its model's own price rule: the items past it are
    not submitted, and what was billed matches the simulator's bill and stays in budget."""
    spec = MODELS[model]
    items = [valid_item(spec, f"k{n}", max_images=max_images) for n in range(3)]
    async with simulated() as (sim, client):
        results = await client.edit_all(items, budget=budget, concurrency=1)
    statuses = sorted(result.status for result in results)
    assert statuses.count(ResultStatus.SUCCEEDED) == submitted
    assert statuses.count(ResultStatus.NOT_SUBMITTED) == 3 - submitted
    assert sim.ledger.executions == submitted
    assert sim.ledger.cost == pytest.approx(submitted * expected_cost(spec, max_images))
    assert sum(result.cost for result in results) == pytest.approx(sim.ledger.cost)
    assert sim.ledger.cost <= budget


async def test_a_mixed_catalog_is_priced_per_model(tmp_path: Path) -> None:
    """One journaled batch mixing every model: each item costs its model's price, the
    total matches the simulator's bill, and a re-run pays nothing more."""
    items = [valid_item(spec, f"k{n}") for n, spec in enumerate(MODELS.values())]
    journal = tmp_path / "catalog.sqlite"
    async with simulated() as (sim, client):
        results = await client.edit_all(items, journal=journal, budget=5.0)
        again = await client.edit_all(items, journal=journal, budget=5.0)
    by_key = {result.key: result for result in results}
    for n, spec in enumerate(MODELS.values()):
        result = by_key[f"k{n}"]
        assert result.ok, result.error
        assert result.cost == pytest.approx(expected_cost(spec, spec.most_generated(2)))
    assert sim.ledger.cost == pytest.approx(sum(result.cost for result in results))
    assert {model: round(cost, 6) for model, cost in sim.ledger.cost_by_model().items()} == {
        spec.id: expected_cost(spec, spec.most_generated(2)) for spec in MODELS.values()
    }
    assert all(result.from_journal for result in again)
    assert sim.ledger.executions == len(MODELS)


async def test_an_explicit_price_overrides_the_models_own() -> None:
    """A price set on the client prices every model, whatever its own rule."""
    spec = MODELS[LITE]
    price = PriceModel(per_execution=0.05, per_image=0.0)
    async with simulated(client_options={"price": price}) as (_, client):
        assert client.price_for(LITE) == price
        (result,) = await client.edit_all([valid_item(spec, max_images=3)])
    assert result.ok
    assert result.cost == pytest.approx(0.05)


async def test_client_prices_default_to_each_models_rule() -> None:
    """Without a price, each model is priced by its row; the default model's is $0.036."""
    async with simulated() as (_, client):
        assert client.price == PriceModel(per_execution=0.036, per_image=0.0)
        assert client.price_for(LITE) == PriceModel.per_generated_image(0.032)
        assert client.price_for(V4_ES) == PriceModel(per_execution=0.027, per_image=0.0)
        assert client.price_for("someone/else") == client.price


async def test_text_to_image_through_edit_and_job() -> None:
    """A text-to-image model runs through ``client.edit`` with no images, and ``Job`` is
    the same class as ``EditItem``."""
    assert Job is EditItem
    async with simulated() as (sim, client):
        prediction = await client.edit("a poster", [], model="bytedance/seedream-v4.5")
    assert len(prediction.outputs) == 1
    assert sim.ledger.submissions[0].model == "bytedance/seedream-v4.5"


async def test_an_unknown_model_is_sent_unchecked_with_a_warning() -> None:
    """A model id outside the table warns, skips the local limits (as check_limits=False)
    and lets the server judge: here the simulator refuses it, unbilled."""
    item = EditItem(key="x", prompt="p", images=[URL], model="bytedance/seedream-v9", size="1*1")
    async with simulated() as (sim, client):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            (result,) = await client.edit_all([item])
    assert any(issubclass(w.category, UnknownModelWarning) for w in caught)
    assert result.status is ResultStatus.FAILED
    assert not isinstance(result.error, InvalidInput)  # the server's answer, not ours
    assert sim.ledger.requests["submit"] == 1
    assert sim.ledger.executions == 0


SUBMIT = "/api/v1/model/generateImage"


def _raw_body(model: str, **changes: Any) -> dict[str, Any]:
    served = SERVED[model]
    body: dict[str, Any] = {"model": model, "prompt": "p", "size": _pick(OWN_SIZE, model)}
    if served.references[0]:
        body["images"] = [URL] * served.references[0]
    return {**body, **changes}


@pytest.mark.parametrize(
    ("model", "changes", "field"),
    [
        pytest.param("bytedance/seedream-v4.5", {"images": [URL]}, "images", id="t2i-image"),
        pytest.param(
            "bytedance/seedream-v4.5/sequential", {"max_images": 16}, "max_images", id="seq-16"
        ),
        pytest.param("bytedance/seedream-v4.5/edit", {"max_images": 3}, "max_images", id="edit-3"),
        pytest.param(V45_ES, {"size": "1024*1024"}, "size", id="v45-small"),
        pytest.param(V4_ES, {"size": "4704*2016"}, "size", id="v4-wide"),
        pytest.param(V4_ES, {"max_images": 15}, "max_images", id="v4-15"),
        pytest.param(LITE, {"size": "2560*1440"}, "size", id="lite-unlisted"),
        pytest.param(LITE, {"images": [URL] * 15}, "images", id="lite-15-images"),
        pytest.param(LITE, {"output_format": "gif"}, "output_format", id="lite-format"),
        pytest.param(
            LITE,
            {"optimize_prompt_options": {"mode": "slow"}},
            "optimize_prompt_options.mode",
            id="lite-mode",
        ),
    ],
)
async def test_the_simulator_refuses_what_each_model_refuses(
    model: str, changes: dict[str, Any], field: str
) -> None:
    """Sent past the client, each model's wrong request is refused by the simulator's own
    table (422 naming the field) and never billed; the same body, corrected, is taken."""
    async with simulated() as (sim, client):
        del client
        async with httpx.AsyncClient(
            base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.api_key}"}
        ) as http:
            refused = await http.post(SUBMIT, json=_raw_body(model, **changes))
            assert refused.status_code == 422, refused.text
            assert refused.json()["field"] == field
            assert sim.ledger.executions == 0
            taken = await http.post(SUBMIT, json=_raw_body(model))
            assert taken.status_code == 200, taken.text
    assert sim.ledger.executions == 1


def test_the_blocking_client_prices_models_alike() -> None:
    """``Seedream.price_for`` answers as the async client does."""
    from seedream_async import Seedream

    with Seedream(api_key="k", base_url="http://127.0.0.1:9") as client:
        assert client.price_for(LITE) == PriceModel.per_generated_image(0.032)
        assert client.price_for(V45_ES) == client.async_client.price


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
async def test_v5_lite_output_format_reaches_the_files(fmt: str, tmp_path: Path) -> None:
    """v5.0-lite's own ``output_format`` option is sent, honoured by the simulator, and the
    saved files are named by the bytes that came back."""
    spec = MODELS[LITE]
    item = valid_item(spec, options={"output_format": fmt})
    async with simulated() as (sim, client):
        (result,) = await client.edit_all([item], out_dir=tmp_path)
    assert result.ok, result.error
    assert {path.suffix for path in result.files} == {".png" if fmt == "png" else ".jpg"}
    assert sim.ledger.submissions[0].unknown_fields == ()


@pytest.mark.parametrize("model", [LITE, "bytedance/seedream-v4.5/sequential", V4_ES])
async def test_the_budget_holds_when_the_model_returns_fewer_images(model: str) -> None:
    """With the model deciding how many images a sequence returns (Atlas's documented
    behaviour), the budget still holds each submit at its worst case: what the simulator
    billed never passes the budget, and never exceeds what the results count."""
    spec = MODELS[model]
    items = [valid_item(spec, f"k{n}", max_images=4) for n in range(6)]
    budget = 3.5 * spec.price * (4 if spec.billing is Billing.PER_IMAGE else 1)
    shapes = Shapes(output_count="model")
    async with simulated(shapes=shapes, seed=3) as (sim, client):
        results = await client.edit_all(items, budget=budget, concurrency=2)
    submitted = [result for result in results if result.status is ResultStatus.SUCCEEDED]
    assert len(submitted) == 3  # 3.5 worst cases fit 3
    assert sim.ledger.cost <= budget + 1e-9
    assert sum(result.cost for result in results) >= sim.ledger.cost - 1e-9
    returned = sum(len(result.outputs) for result in submitted)
    assert sim.ledger.cost == pytest.approx(
        expected_cost(spec, returned) if spec.billing is Billing.PER_IMAGE else 3 * spec.price
    )


async def test_naming_the_default_model_is_not_a_new_job(tmp_path: Path) -> None:
    """A catalog that gains a model column naming the default model is answered from its
    journal, not billed again; naming another model is a new, paid job."""
    journal = tmp_path / "catalog.sqlite"
    plain = EditItem(key="k", prompt="p", images=[URL])
    named = EditItem(key="k", prompt="p", images=[URL], model=V45_ES)
    other = EditItem(key="k", prompt="p", images=[URL], model=V4_ES)
    async with simulated() as (sim, client):
        (first,) = await client.edit_all([plain], journal=journal)
        (again,) = await client.edit_all([named], journal=journal)
        assert sim.ledger.executions == 1
        (changed,) = await client.edit_all([other], journal=journal)
    assert first.ok
    assert again.from_journal
    assert changed.ok
    assert not changed.from_journal
    assert sim.ledger.executions == 2
    assert sim.ledger.submissions[1].model == V4_ES
