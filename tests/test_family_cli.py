"""The command line on a catalog that mixes models: a CSV ``model`` column, text-only rows
without images, per-model costs in validate and the dry run, the model in status, the report
and the review sheet, and a wrong row refused before anything is paid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import FAST_POLL, cli, out, report

from seedream_async import MODELS
from seedream_async.cli._review import review_data
from seedream_async.testing import serve

pytestmark = pytest.mark.anyio

URL = "https://cdn.example.com/ref.png"
LITE = "bytedance/seedream-v5.0-lite/edit-sequential"


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: the command runs in its own process (see test_cli.py)."""
    return "asyncio"


def mixed_catalog(folder: Path) -> Path:
    """A CSV with one row per model: the text-only rows leave images empty."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["key,prompt,images,size,max_images,model,options"]
    for number, spec in enumerate(MODELS.values()):
        images = URL if spec.min_images else ""
        size = "4704*2016" if spec.id == LITE else "2560*1440" if "4.5" in spec.id else ""
        count = "2" if spec.generated else ""
        options = '"{""output_format"": ""png""}"' if spec.options else ""
        lines.append(f"k{number},a poster,{images},{size},{count},{spec.id},{options}")
    path = folder / "catalog.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_a_mixed_catalog_through_the_command_line(tmp_path: Path) -> None:
    """validate and --dry-run price each model by its own rule; run bills each row once at
    that price; status, the report and the review sheet name each row's model."""
    manifest = mixed_catalog(tmp_path / "cat")
    checked = await cli("validate", manifest)
    assert checked.returncode == 0, out(checked)
    assert f"over {len(MODELS)} submits of {len(MODELS)} models" in out(checked)
    assert f"{LITE}: up to 2 images" in out(checked)
    target = tmp_path / "out"
    async with serve(time_scale=0.001) as sim:
        args = ["run", manifest, "--out", target, "--base-url", sim.base_url, *FAST_POLL]
        dry = await cli(*args, "--dry-run")
        assert sim.ledger.executions == 0
        assert "bytedance/seedream-v4/edit-sequential: 1 \N{MULTIPLICATION SIGN} $0.027" in out(dry)
        done = await cli(*args)
        assert done.returncode == 0, out(done)
        assert sorted(r.model for r in sim.ledger.submissions) == sorted(MODELS)
        billed = sim.ledger.cost
    lines = report(target)
    assert {line["key"]: line["model"] for line in lines} == {
        f"k{n}": model for n, model in enumerate(MODELS)
    }
    assert sum(line["cost"] for line in lines) == pytest.approx(billed)
    data = review_data(lines, target)
    assert data["totals"]["models"] == dict.fromkeys(MODELS, 1)
    status = await cli("status", target, "--json")
    assert status.returncode == 0, out(status)
    models = json.loads(status.stdout)["models"]
    assert {model: entry["items"] for model, entry in models.items()} == dict.fromkeys(MODELS, 1)
    assert sum(entry["billed"] for entry in models.values()) == pytest.approx(billed)
    shown = await cli("status", target)
    assert "by model" in out(shown)


async def test_a_row_wrong_for_its_model_is_refused_before_paying(tmp_path: Path) -> None:
    """A v5.0-lite row with a size outside its list stops the run at validation: exit 2,
    the line and field named, nothing submitted."""
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"key,prompt,images,size,model\na,p,{URL},2560*1440,{LITE}\n")
    async with serve(time_scale=0.001) as sim:
        done = await cli("run", manifest, "--out", tmp_path / "out", "--base-url", sim.base_url)
        assert done.returncode == 2, out(done)
        assert "size" in out(done)
        assert "not one of this model's sizes" in out(done)
        assert sim.ledger.requests["submit"] == 0


async def test_model_flag_runs_a_text_only_catalog(tmp_path: Path) -> None:
    """``--model`` sets the model of rows without one: a JSONL catalog of prompts alone runs
    on v4.5 sequential, each row billed at that model's per-image price."""
    manifest = tmp_path / "prompts.jsonl"
    rows = [{"key": f"p{n}", "prompt": f"poster {n}", "max_images": 2} for n in range(2)]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    sequential = "bytedance/seedream-v4.5/sequential"
    async with serve(time_scale=0.001) as sim:
        args = ["run", manifest, "--out", tmp_path / "out", "--base-url", sim.base_url]
        done = await cli(*args, *FAST_POLL, "--model", sequential, "--size", "2560*1440")
        assert done.returncode == 0, out(done)
        assert [record.model for record in sim.ledger.submissions] == [sequential] * 2
        assert sim.ledger.cost == pytest.approx(2 * 2 * 0.036)
    assert {line["model"] for line in report(tmp_path / "out")} == {sequential}
