"""A prediction the API has billed is paid for once, ever: one test per way a catalog team
has seen it paid twice (issue 11's table), through the public API and the CLI only.

Every test checks the same invariants against the simulator's ledger of executions:
items paid twice = 0, nothing lost, every key reported exactly once, no output file shared
by two keys. Each prints its figures (``FIGURES <scenario>: ...``) for the closing note;
run with ``-s`` to see them.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import struct
import sys
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from subprocess import PIPE
from typing import Any

import anyio
import pytest
from _helpers import FAST_POLL, simulated, write_images

from seedream_async import (
    AuthenticationError,
    BatchResult,
    EditItem,
    InsufficientBalance,
    InvalidInput,
    ResultStatus,
)
from seedream_async.testing import Faults, Simulator
from seedream_async.testing import _app as sim_app
from seedream_async.testing import _predictions as sim_predictions

pytestmark = pytest.mark.anyio

URL = "https://cdn.example.com/ref.png"
PRICE = 0.036
ROOT = Path(__file__).resolve().parents[1]


# -- the invariants ---------------------------------------------------------------------


def catalog(count: int, *, prefix: str = "sku", **fields: Any) -> list[EditItem]:
    """``count`` items with distinct prompts, so the ledger tells their executions apart."""
    return [
        EditItem(
            key=f"{prefix}-{n:03d}", prompt=f"never twice {prefix} {n}", images=[URL], **fields
        )
        for n in range(count)
    ]


def paid_twice(sim: Simulator) -> int:
    """Executions beyond the first of each item (items have distinct prompts)."""
    return sum(n - 1 for n in Counter(r.prompt for r in sim.ledger.submissions).values() if n > 1)


def assert_valid_png(data: bytes, what: object) -> None:
    """A whole PNG: signature, every chunk's CRC, IHDR first, IEND last."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", what
    position, kinds = 8, []
    while position < len(data):
        assert position + 12 <= len(data), f"{what}: cut short"
        (length,) = struct.unpack(">I", data[position : position + 4])
        assert position + 12 + length <= len(data), f"{what}: cut short"
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, what
        kinds.append(kind)
        position += 12 + length
    assert kinds[0] == b"IHDR", what
    assert kinds[-1] == b"IEND", what


def assert_whole_image(path: Path) -> None:
    """A whole JPEG (start and end markers, named .jpg: the simulator's default, as
    ModelArk returns) or a whole PNG (every chunk checked)."""
    data = path.read_bytes()
    if data[:3] == b"\xff\xd8\xff":
        assert data.endswith(b"\xff\xd9"), f"{path}: JPEG cut short"
        assert path.suffix == ".jpg", path
        return
    assert_valid_png(data, path)


def check_run(results: Sequence[BatchResult], items: Iterable[EditItem]) -> None:
    """One run's results: every key exactly once; no output file shared by two keys; every
    file a succeeded item names is a whole image."""
    keys = Counter(result.key for result in results)
    expected = {item.key for item in items}
    assert set(keys) == expected, f"lost: {sorted(expected - set(keys))[:5]}"
    assert max(keys.values()) == 1, [key for key, n in keys.items() if n > 1]
    owners: dict[str, str] = {}
    for result in results:
        for file in result.files:
            name = str(Path(file).resolve()).casefold()
            assert owners.setdefault(name, result.key) == result.key, (
                f"{file} is claimed by {owners[name]!r} and {result.key!r}"
            )
            if result.ok:
                assert_whole_image(Path(file))


def finish(
    scenario: str,
    sim: Simulator,
    items: Sequence[EditItem],
    final: Sequence[BatchResult],
    *,
    all_ok: bool = True,
) -> None:
    """The closing checks of a scenario: the last run delivered (or accounted for) every
    item, and no item was paid twice. Prints the figures for the note."""
    check_run(final, items)
    ambiguous = sum(r.status is ResultStatus.AMBIGUOUS for r in final)
    print(
        f"\nFIGURES {scenario}: items={len(items)} executions={sim.ledger.executions} "
        f"paid_twice={paid_twice(sim)} ambiguous={ambiguous} "
        f"statuses={dict(Counter(r.status.value for r in final))}"
    )
    assert paid_twice(sim) == 0
    assert sim.ledger.duplicate_submissions == 0
    if all_ok:
        assert [r for r in final if not r.ok] == []
        assert sim.ledger.executions == len(items)


# -- the output disk: full, read-only -----------------------------------------------------


@asynccontextmanager
async def _failing_open(path: Any, mode: str) -> AsyncIterator[Any]:
    raise AssertionError("replaced per test")
    yield  # pragma: no cover


def break_output_writes(monkeypatch: pytest.MonkeyPatch, code: int, after: int) -> dict[str, int]:
    """Make every output write after the first ``after`` fail with ``OSError(code)``, at the
    one seam that opens files for writing (``open_binary``), wherever it was imported."""
    from seedream_async._media import _files

    original = _files.open_binary
    state = {"writes": 0, "refused": 0, "broken": 1}

    @asynccontextmanager
    async def open_binary(path: Any, mode: str) -> AsyncIterator[Any]:
        if mode != "rb" and state["broken"]:
            state["writes"] += 1
            if state["writes"] > after:
                state["refused"] += 1
                raise OSError(code, os.strerror(code), str(path))
        async with original(path, mode) as handle:
            yield handle

    for name, module in list(sys.modules.items()):
        if name.startswith("seedream_async") and getattr(module, "open_binary", None) is original:
            monkeypatch.setattr(module, "open_binary", open_binary)
    return state


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["disk-full", "read-only"])
async def test_output_disk_fails_then_rerun_fetches_by_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """The output folder fills up (or turns read-only) mid-batch; once fixed, the re-run
    downloads the paid predictions again by id and pays for none of them twice."""
    items = catalog(30)
    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    async with simulated() as (sim, client):
        state = break_output_writes(monkeypatch, code, after=8)
        first = await client.edit_all(items, journal=journal, out_dir=out, concurrency=8)
        check_run(first, items)
        assert state["refused"] > 0
        assert sum(r.ok for r in first) < len(items)
        assert all(r.prediction_id for r in first if not r.ok), "the paid id is kept"
        state["broken"] = 0  # space freed, folder writable again
        second = await client.edit_all(items, journal=journal, out_dir=out, concurrency=8)
        finish(f"disk-{errno.errorcode[code]}", sim, items, second)
    assert not list(out.glob(".*.part"))


# -- outputs that cannot be delivered on the first try ------------------------------------


@pytest.mark.parametrize("cause", ["expired-urls", "storage-5xx", "deadline"])
async def test_undelivered_outputs_are_fetched_again_not_resubmitted(
    tmp_path: Path, cause: str
) -> None:
    """Output URLs expired before download, storage answering 5xx through every retry, or
    the per-prediction deadline: the re-run fetches each prediction by id, never resubmits."""
    items = catalog(20)
    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    options: dict[str, Any] = {"journal": journal, "out_dir": out, "concurrency": 8}
    faults = Faults()
    poll = FAST_POLL
    if cause == "expired-urls":
        faults = Faults(output_ttl=0.0)
    elif cause == "storage-5xx":
        faults = Faults(server_error=1.0, endpoints=frozenset({"output"}))
    else:
        poll = replace(FAST_POLL, deadline=0.001)
    async with simulated(faults=faults, time_scale=0.003) as (sim, client):
        first = await client.edit_all(items, poll=poll, **options)
        check_run(first, items)
        assert not any(r.ok for r in first)
        assert all(r.prediction_id for r in first), "every paid id is kept"
        sim.configure(faults=Faults())
        second = await client.edit_all(items, **options)
        finish(f"undelivered-{cause}", sim, items, second)


# -- the account: key revoked, balance gone, forbidden -----------------------------------


def refuse_account(monkeypatch: pytest.MonkeyPatch, status: int, after: int) -> dict[str, Any]:
    """From the ``after``-th billed execution on, the API answers ``status``: 402 refuses
    submits only (polls still work, as a balance does not stop them); 401/403 refuse every
    API request. Counts the refused submits."""
    state: dict[str, Any] = {"on": True, "refused_submits": 0, "tripped": False}
    original = sim_app.App._handle_api

    async def handle(self: sim_app.App, request: Any) -> Any:
        endpoint = self._route(request)[0]
        if state["on"] and self.ledger.executions >= after:
            state["tripped"] = True
        if state["tripped"] and state["on"] and (status != 402 or endpoint == "submit"):
            if endpoint == "submit":
                state["refused_submits"] += 1
            message = {402: "Insufficient balance", 401: "Invalid API key"}.get(status, "Forbidden")
            return self._error(status, message)
        return await original(self, request)

    monkeypatch.setattr(sim_app.App, "_handle_api", handle)
    return state


@pytest.mark.parametrize("status", [401, 402, 403])
async def test_fatal_account_errors_stop_submits_and_resume_by_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    """A revoked key (401), an empty balance (402) or a forbidden key (403) mid-batch stops
    every new submit at once; after the fix, the re-run polls the journaled ids."""
    items = catalog(40)
    concurrency = 8
    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    state = refuse_account(monkeypatch, status, after=10)
    async with simulated(time_scale=0.003) as (sim, client):
        first = await client.edit_all(items, journal=journal, out_dir=out, concurrency=concurrency)
        check_run(first, items)
        billed_first = sim.ledger.executions
        # Only submits already on the wire when the account failed may meet the error.
        assert state["refused_submits"] <= concurrency
        expected = InsufficientBalance if status == 402 else AuthenticationError
        errors = [r.error for r in first if r.status is ResultStatus.NOT_SUBMITTED]
        assert errors, "items past the failure are not submitted"
        assert all(isinstance(error, expected) for error in errors)
        assert sum(r.cost for r in first) == pytest.approx(billed_first * PRICE)
        state["on"] = False  # key restored, balance topped up
        second = await client.edit_all(items, journal=journal, out_dir=out, concurrency=concurrency)
        finish(f"account-{status}", sim, items, second)
    print(f"FIGURES account-{status}: refused submits={state['refused_submits']}")


# -- two runs on one journal at once ------------------------------------------------------


async def test_two_runs_on_one_journal_split_the_catalog(tmp_path: Path) -> None:
    """Two runs of one catalog on one journal at once (cron overlap) pay for each item once,
    and each reports every key exactly once."""
    items = catalog(40)
    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    async with simulated(time_scale=0.003) as (sim, first_client):
        async with simulated_client(sim) as second_client:
            runs: list[list[BatchResult]] = []

            async def run(client: Any) -> None:
                runs.append(
                    await client.edit_all(items, journal=journal, out_dir=out, concurrency=8)
                )

            async with anyio.create_task_group() as group:
                group.start_soon(run, first_client)
                group.start_soon(run, second_client)
        for results in runs:
            check_run(results, items)
            assert all(r.ok for r in results)
        fresh = [sum(not r.from_journal for r in results) for results in runs]
        print(f"FIGURES two-runs-api: submitted by each run={fresh}")
        finish("two-runs-api", sim, items, runs[0])


@asynccontextmanager
async def simulated_client(sim: Simulator) -> AsyncIterator[Any]:
    from _helpers import FAST_RETRY

    from seedream_async import AsyncSeedream

    async with AsyncSeedream(
        api_key=sim.api_key, base_url=sim.base_url, retry=FAST_RETRY, poll=FAST_POLL
    ) as client:
        yield client


# -- the same photos, touched, copied or moved ---------------------------------------------


@pytest.mark.parametrize("change", ["touch", "copy", "move"])
async def test_unchanged_photos_are_not_paid_again(tmp_path: Path, change: str) -> None:
    """An image's identity is its content: touching, copying (without -p) or moving the
    unchanged photos bills nothing on the re-run."""
    photos = write_images(tmp_path / "catalog", 20)

    def items_for(paths: list[Path]) -> list[EditItem]:
        return [
            EditItem(key=f"photo-{n:03d}", prompt=f"never twice photo {n}", images=[path])
            for n, path in enumerate(paths)
        ]

    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    async with simulated() as (sim, client):
        first = await client.edit_all(items_for(photos), journal=journal, out_dir=out)
        assert all(r.ok for r in first)
        if change == "touch":
            for path in photos:
                os.utime(path, (path.stat().st_atime + 60, path.stat().st_mtime + 60))
            moved = photos
        elif change == "copy":
            (tmp_path / "copy").mkdir()
            moved = [Path(shutil.copy(path, tmp_path / "copy" / path.name)) for path in photos]
        else:
            (tmp_path / "catalog").rename(tmp_path / "moved")
            moved = [tmp_path / "moved" / path.name for path in photos]
        second = await client.edit_all(items_for(moved), journal=journal, out_dir=out)
        finish(f"identity-{change}", sim, items_for(moved), second)
    assert all(r.from_journal for r in second)


# -- a stop while submits are on the wire ------------------------------------------------

SLOW_SUBMITS = Faults(slow=1.0, slow_seconds=0.3, endpoints=frozenset({"submit"}))


@pytest.mark.parametrize("how", ["break", "cancelled-scope"])
async def test_a_stop_keeps_the_ids_of_submits_on_the_wire(tmp_path: Path, how: str) -> None:
    """``break`` or a cancelled scope while submits are on the wire: they get a bounded,
    shielded time to return their ids, which are journaled; the re-run polls them, so nothing
    is left ambiguous and nothing is paid twice."""
    items = catalog(24)
    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    options: dict[str, Any] = {"journal": journal, "out_dir": out, "concurrency": 8}
    async with simulated(faults=SLOW_SUBMITS) as (sim, client):
        if how == "break":
            async with client.edit_batch(items, **options) as run:
                async for _ in run:
                    break
        else:
            with anyio.CancelScope() as scope:

                def stop(progress: Any) -> None:
                    if sim.ledger.requests["submit"] >= 12:
                        scope.cancel()

                await client.edit_all(items, on_progress=stop, **options)
        on_the_wire = sim.ledger.requests["submit"]
        billed = sim.ledger.executions
        assert billed == on_the_wire, "every submit on the wire at the stop got its answer"
        sim.configure(faults=Faults())
        second = await client.edit_all(items, **options)
        finish(f"stop-{how}", sim, items, second)
    assert sum(r.from_journal for r in second) >= billed


def cli_env(api_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLASCLOUD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "200"
    env["ATLASCLOUD_API_KEY"] = api_key
    return env


def manifest(folder: Path, items: Sequence[EditItem]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.jsonl"
    rows = [json.dumps({"key": i.key, "prompt": i.prompt, "images": [URL]}) for i in items]
    path.write_text("\n".join(rows) + "\n")
    return path


def cli_command(sim: Simulator, path: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "seedream_async", "run", str(path), "--out", str(out),
        "--base-url", sim.base_url, "--concurrency", "8",
        "--first-poll", "0.005", "--poll-interval", "0.005", *extra,
    ]  # fmt: skip


def report(out: Path) -> list[dict[str, Any]]:
    """report.jsonl, every line parsed (a torn line fails the test)."""
    return [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]


def check_report(rows: list[dict[str, Any]], items: Sequence[EditItem]) -> None:
    keys = Counter(row["key"] for row in rows)
    assert set(keys) == {item.key for item in items}
    assert max(keys.values()) == 1
    files = [f.casefold() for row in rows for f in row["files"]]
    assert len(files) == len(set(files))


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "Ctrl-C"]
)
@pytest.mark.timeout(90)
async def test_cli_stop_by_signal_keeps_ids_and_resumes(
    tmp_path: Path, anyio_backend: str, sig: signal.Signals, code: int
) -> None:
    """SIGTERM (like Ctrl-C) while submits are on the wire: the command lets them return
    their ids, prints a summary counting what was billed and the command to resume, exits
    143 (130); the re-run pays for nothing twice and reports every key once."""
    if anyio_backend != "asyncio":
        pytest.skip("the command runs in its own process; one backend here is enough")
    items = catalog(30)
    out = tmp_path / "out"
    path = manifest(tmp_path, items)
    async with simulated(faults=SLOW_SUBMITS) as (sim, _):
        env = cli_env(sim.api_key or "")
        process = await anyio.open_process(cli_command(sim, path, out), env=env)
        async with process:
            with anyio.fail_after(30):
                while sim.ledger.requests["submit"] < 12:  # noqa: ASYNC110 (no event to wait on)
                    await anyio.sleep(0.01)
            process.send_signal(sig)
            output = b""
            assert process.stdout is not None
            assert process.stderr is not None
            with anyio.fail_after(30):
                async for chunk in process.stdout:
                    output += chunk
                async for chunk in process.stderr:
                    output += chunk
                await process.wait()
        text = output.decode()
        assert process.returncode == code, text
        billed = sim.ledger.executions
        assert billed == sim.ledger.requests["submit"], "every submit on the wire got its id"
        assert f"${billed * PRICE:.3f}" in text, "the summary counts every billed prediction"
        assert "resume" in text
        assert str(path) in text
        sim.configure(faults=Faults())
        again = await anyio.run_process(cli_command(sim, path, out), env=env, check=False)
        assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()
        rows = report(out)
        check_report(rows, items)
        assert all(row["status"] == "succeeded" for row in rows)
        ambiguous = sum(row["status"] == "ambiguous" for row in rows)
        print(
            f"\nFIGURES cli-{sig.name}: items={len(items)} executions={sim.ledger.executions} "
            f"paid_twice={paid_twice(sim)} ambiguous={ambiguous} billed_at_stop={billed}"
        )
        assert paid_twice(sim) == 0
        assert sim.ledger.executions == len(items)
    assert not list(out.glob(".*.part"))


@pytest.mark.timeout(90)
async def test_cli_two_runs_at_once_write_one_clean_report(
    tmp_path: Path, anyio_backend: str
) -> None:
    """Two ``seedream-async run`` of one manifest into one folder at once: each item paid once,
    report.jsonl parseable with every key exactly once."""
    if anyio_backend != "asyncio":
        pytest.skip("the command runs in its own process; one backend here is enough")
    items = catalog(40)
    out = tmp_path / "out"
    path = manifest(tmp_path, items)
    async with simulated(time_scale=0.003) as (sim, _):
        env = cli_env(sim.api_key or "")
        codes: list[int | None] = []

        async def one() -> None:
            done = await anyio.run_process(
                cli_command(sim, path, out), env=env, check=False, stdout=PIPE, stderr=PIPE
            )
            codes.append(done.returncode)

        async with anyio.create_task_group() as group:
            group.start_soon(one)
            group.start_soon(one)
        assert codes == [0, 0]
        rows = report(out)
        check_report(rows, items)
        assert all(row["status"] == "succeeded" for row in rows)
        print(
            f"\nFIGURES two-runs-cli: items={len(items)} executions={sim.ledger.executions} "
            f"paid_twice={paid_twice(sim)} ambiguous=0"
        )
        assert paid_twice(sim) == 0
        assert sim.ledger.executions == len(items)


# -- output names ------------------------------------------------------------------------

# Two product-URL keys whose old safe names collided (same 60-character prefix, same
# 32-bit hash), and two keys that differ only in case (one file on macOS and Windows).
HASH_TWINS = (
    "https://shop.example.com/products/pppppppppppppppppppppppppp/11451",
    "https://shop.example.com/products/pppppppppppppppppppppppppp/54613",
)
CASE_TWINS = ("Sku-Case-7", "sku-case-7")


async def test_keys_never_share_an_output_file(tmp_path: Path) -> None:
    """Keys whose cleaned names and short hashes collide get distinct files; keys equal but
    for case are refused before anything is paid (the first keeps its name), never an
    overwrite."""
    keys = [*HASH_TWINS, *CASE_TWINS, "plain-1"]
    items = [
        EditItem(key=k, prompt=f"never twice name {n}", images=[URL]) for n, k in enumerate(keys)
    ]
    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    async with simulated() as (sim, client):
        for _ in range(2):  # the re-run refuses the same key, and pays for nothing
            results = {r.key: r for r in await client.edit_all(items, journal=journal, out_dir=out)}
            check_run(list(results.values()), items)
        finish("names", sim, items, list(results.values()), all_ok=False)
        billed_prompts = {r.prompt for r in sim.ledger.submissions}
    assert results[HASH_TWINS[0]].ok
    assert results[HASH_TWINS[1]].ok
    a, b = (results[k].files[0].read_bytes() for k in HASH_TWINS)
    assert a != b, "each key holds its own prediction's output"
    refused = results[CASE_TWINS[1]]
    assert results[CASE_TWINS[0]].ok
    assert refused.status is ResultStatus.FAILED
    assert isinstance(refused.error, InvalidInput)
    assert CASE_TWINS[0] in str(refused.error)
    assert items[3].prompt not in billed_prompts
    assert sim.ledger.executions == len(items) - 1


# -- outputs that are not whole images ---------------------------------------------------


def corrupt_outputs(monkeypatch: pytest.MonkeyPatch, kind: str) -> dict[str, bool]:
    """Storage answers 200 with an HTML page, a PNG cut in half, or (base64 outputs) junk."""
    state = {"on": True}
    original_image = sim_predictions._output_image
    original_serve = sim_app.App._serve_output

    def output_image(prediction_id: str, index: int, width: int, height: int, fmt: str) -> bytes:
        png = original_image(prediction_id, index, width, height, fmt)
        if not state["on"]:
            return png
        return png[: len(png) // 2] if kind == "truncated" else b"\x00junk, not an image" * 8

    def serve_output(self: sim_app.App, request: Any) -> Any:
        if state["on"] and kind == "html":
            page = b"<!doctype html><html><body>Service temporarily unavailable</body></html>"
            return sim_app.Response(status=200, body=page, content_type="text/html")
        return original_serve(self, request)

    monkeypatch.setattr(sim_predictions, "_output_image", output_image)
    monkeypatch.setattr(sim_app.App, "_serve_output", serve_output)
    return state


@pytest.mark.parametrize("kind", ["html", "truncated", "junk-base64"])
async def test_broken_outputs_are_not_delivered_and_are_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A 200 with an HTML page, a PNG cut in half or junk base64 is not 'succeeded': the item
    fails with its id kept, and the re-run fetches it again instead of paying again."""
    fields = {"params": {"enable_base64_output": True}} if kind == "junk-base64" else {}
    items = catalog(12, **fields)
    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    state = corrupt_outputs(monkeypatch, kind)
    async with simulated() as (sim, client):
        first = await client.edit_all(items, journal=journal, out_dir=out)
        check_run(first, items)
        assert not any(r.ok for r in first)
        assert all(r.prediction_id for r in first)
        state["on"] = False
        second = await client.edit_all(items, journal=journal, out_dir=out)
        finish(f"broken-output-{kind}", sim, items, second)
    assert all(f.suffix == ".jpg" for r in second for f in r.files)


# -- the budget, over every run of the journal -------------------------------------------


async def test_budget_holds_across_killed_and_rerun_runs(tmp_path: Path) -> None:
    """``budget`` caps what the journal has spent over every run: a run stopped four times
    and re-run spends at most the budget; each stopped run's counters count what it billed,
    in-flight predictions included."""
    items = catalog(30)
    budget = 10 * PRICE
    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    options: dict[str, Any] = {"journal": journal, "out_dir": out, "budget": budget}
    async with simulated(time_scale=0.003) as (sim, client):
        for _ in range(4):
            before = sim.ledger.executions
            async with client.edit_batch(items, concurrency=4, **options) as run:
                async for _ in run:
                    break
            assert run.progress.spent == pytest.approx((sim.ledger.executions - before) * PRICE)
        final = await client.edit_all(items, concurrency=4, **options)
        finish("budget", sim, items, final, all_ok=False)
        assert sim.ledger.cost <= budget + 1e-9
        assert sum(r.ok for r in final) == sim.ledger.executions == 10
        assert sum(r.status is ResultStatus.NOT_SUBMITTED for r in final) == 20
