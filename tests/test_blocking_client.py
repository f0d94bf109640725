"""The blocking client, ``Seedream``: the async client on a loop of its own, called from a
plain script, a thread pool, and a worker thread of a running event loop."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest
from _helpers import FAST_POLL, FAST_RETRY, TIME_SCALE, write_images

from seedream_async import ConfigurationError, InvalidInput, ResultStatus, Seedream
from seedream_async.testing import Simulator, serve, serve_in_thread

URL = "https://x.test/a.png"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """One simulator in its own thread for the module's synchronous tests."""
    with serve_in_thread(time_scale=TIME_SCALE, seed=3) as simulator:
        yield simulator


def blocking(sim: Simulator, **options: Any) -> Seedream:
    options = {"retry": FAST_RETRY, "poll": FAST_POLL, **options}
    return Seedream(sim.api_key, base_url=sim.base_url, **options)


def test_every_method_blocks_and_returns(sim: Simulator, tmp_path: Path) -> None:
    """upload, edit, get_prediction, wait and download work from synchronous code."""
    [image] = write_images(tmp_path, 1)
    with blocking(sim) as client:
        uploaded = client.upload(image)
        assert uploaded.download_url.startswith(sim.storage_url)
        prediction = client.edit("On marble", [image])
        assert prediction.done
        assert prediction.outputs
        assert client.get_prediction(prediction.id).done
        assert client.wait(prediction.id).id == prediction.id
        saved = client.download(prediction.outputs[0], tmp_path / "out")
        assert saved.read_bytes().startswith(b"\xff\xd8\xff")  # JPEG, the default
        assert saved.name == "out.jpg"
        assert "api_key='**********'" in repr(client)


def test_errors_raise_as_themselves(sim: Simulator) -> None:
    """Bad input raises the library's own exception in the caller's thread, before a request."""
    before = sim.ledger.requests["submit"]
    with blocking(sim) as client, pytest.raises(InvalidInput):
        client.edit("", ["https://example.com/a.png"])
    assert sim.ledger.requests["submit"] == before


def test_edit_batch_is_a_plain_iterator(sim: Simulator, tmp_path: Path) -> None:
    """``for result in client.edit_batch(...)`` yields every key once, with live progress."""
    images = write_images(tmp_path / "in", 2)
    items = [{"key": f"k{i}", "prompt": "p", "images": [images[i % 2]]} for i in range(5)]
    with blocking(sim) as client, client.edit_batch(items, concurrency=3) as run:
        keys = [result.key for result in run if result.status is ResultStatus.SUCCEEDED]
        assert run.progress.succeeded == 5
    assert sorted(keys) == [f"k{i}" for i in range(5)]


def test_leaving_a_batch_early_stops_it(sim: Simulator) -> None:
    """``break`` inside ``with client.edit_batch(...)`` stops the batch: nothing more is
    submitted once the run is closed."""
    items = ({"key": f"s{i}", "prompt": "p", "images": [URL]} for i in range(500))
    with blocking(sim) as client:
        with client.edit_batch(items, concurrency=2) as run:
            for _ in run:
                break
        settled = sim.ledger.requests["submit"]
        client.edit("again", ["https://x.test/a.png"])  # the client still works
    assert sim.ledger.requests["submit"] == settled + 1
    assert settled < 500


def test_breaking_out_of_a_plain_for_stops_the_batch(sim: Simulator) -> None:
    """``break`` out of ``for result in client.edit_batch(...)`` (no ``with``) stops the
    batch too, once the run is dropped."""
    items = ({"key": f"b{i}", "prompt": "b", "images": [URL]} for i in range(500))
    before = sim.ledger.requests["submit"]
    with blocking(sim) as client:
        for _ in client.edit_batch(items, concurrency=2):
            break
        settled = sim.ledger.requests["submit"]
        assert client.edit("after", [URL]).done
        assert sim.ledger.requests["submit"] == settled + 1
    assert settled - before < 500


def test_edit_all_in_input_order(sim: Simulator) -> None:
    """``edit_all(order="input")`` returns results in the items' order (blocking too)."""
    keys = [f"o{i:02d}" for i in range(12)][::-1]
    items = [{"key": key, "prompt": "p", "images": ["https://x.test/a.png"]} for key in keys]
    with blocking(sim) as client:
        results = client.edit_all(items, order="input", concurrency=6)
    assert [result.key for result in results] == keys


def test_a_thread_pool_shares_one_client(sim: Simulator) -> None:
    """Eight threads editing at once through one client: every edit succeeds, paid once."""
    before, twice = sim.ledger.executions, sim.ledger.duplicate_submissions
    with blocking(sim) as client, ThreadPoolExecutor(8) as pool:
        predictions = list(
            pool.map(lambda i: client.edit(f"pool {i}", ["https://x.test/a.png"]), range(8))
        )
    assert len({prediction.id for prediction in predictions}) == 8
    assert sim.ledger.executions == before + 8
    assert sim.ledger.duplicate_submissions == twice  # the prompts differ: none paid twice


def test_runs_on_trio_too(sim: Simulator) -> None:
    """``backend="trio"`` runs the client's loop on trio."""
    with blocking(sim, backend="trio") as client:
        assert client.edit("p", ["https://x.test/a.png"]).done


def test_with_options_shares_the_thread(sim: Simulator) -> None:
    """A copy from ``with_options`` works, and closing it leaves the original working."""
    with blocking(sim) as client:
        copy = client.with_options(headers={"X-Team": "blocking"})
        assert copy.edit("p", ["https://x.test/a.png"]).done
        copy.close()
        assert client.edit("p", ["https://x.test/a.png"]).done
    assert any(h.get("x-team") == "blocking" for _, h in sim.ledger.headers)


@pytest.mark.anyio
async def test_inside_a_running_loops_worker_thread(tmp_path: Path) -> None:
    """From a worker thread of a running event loop (``anyio.to_thread.run_sync``, as an
    async web framework runs sync views), while that loop serves the simulator itself."""
    [image] = write_images(tmp_path, 1)
    async with serve(time_scale=TIME_SCALE, seed=5) as sim:

        def view() -> str:
            with blocking(sim) as client:
                return client.edit("On marble", [image]).id

        prediction_id = await anyio.to_thread.run_sync(view)
        assert [record.prediction_id for record in sim.ledger.submissions] == [prediction_id]


def test_a_plain_script(sim: Simulator, tmp_path: Path) -> None:
    """A script with no event loop of its own edits and batches with ``Seedream``."""
    [image] = write_images(tmp_path, 1)
    script = textwrap.dedent(
        f"""
        from seedream_async import PollPolicy, Seedream
        with Seedream(poll=PollPolicy().scaled({TIME_SCALE})) as client:
            print(client.edit("On marble", [{str(image)!r}]).id)
            for result in client.edit_batch(
                [{{"key": "a", "prompt": "p", "images": [{str(image)!r}]}}]
            ):
                print(result.key, result.status)
        """
    )
    env = {
        **os.environ,
        "ATLASCLOUD_API_KEY": sim.api_key or "",
        "ATLASCLOUD_BASE_URL": sim.base_url,
        "PYTHONPATH": str(Path(__file__).parents[1]),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert any(record.prediction_id == lines[0] for record in sim.ledger.submissions)
    assert lines[1] == "a succeeded"


def test_a_configuration_error_leaves_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """No API key: ConfigurationError from the constructor, and its loop's thread is gone."""
    import threading

    monkeypatch.delenv("ATLASCLOUD_API_KEY", raising=False)
    before = threading.active_count()
    with pytest.raises(ConfigurationError, match="no API key"):
        Seedream()
    assert threading.active_count() == before
