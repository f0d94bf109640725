"""The batch engine against every response shape and every hostile answer, over the
simulator's real HTTP: nothing lost, nothing paid twice, the key never stored or raised,
and no hostile answer ends the batch."""

from __future__ import annotations

import json
import traceback
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from seedream_async import (
    AsyncSeedream,
    BadRequestError,
    EditItem,
    MalformedResponse,
    PollPolicy,
    ResultStatus,
    RetryPolicy,
    TransportError,
)
from seedream_async.cli._report import record
from seedream_async.testing import Faults, Hostile, Shapes, make_png, serve

pytestmark = pytest.mark.anyio

KEY = "sk-HOSTILE-0123456789abcdef"
ITEMS = 6
RETRY = RetryPolicy(initial_delay=0.001, max_delay=0.01, max_attempts=4)
POLL = replace(PollPolicy().scaled(0.001), deadline=20.0)
SOME = 0.3  # hostile on about a third of the requests it targets


@dataclass(frozen=True)
class Case:
    """One server behaviour and what the batch must make of it."""

    sim: dict[str, Any]
    succeeded: int = ITEMS  # items that end succeeded
    billed: int | None = ITEMS  # billed executions (None: not asserted)
    error: type[Exception] | None = None  # the error of every failed item
    client: dict[str, Any] = field(default_factory=dict)


CASES = {
    # -- every documented shape: all read, all delivered ------------------------------------
    "envelope-code": Case({"envelope": "code"}),
    "output-key": Case({"shapes": Shapes(output_key="output")}),
    "output-string": Case({"shapes": Shapes(output_form="string")}),
    "output-objects": Case({"shapes": Shapes(output_items="object")}),
    "numeric-ids": Case({"shapes": Shapes(numeric_ids=True)}),
    "timestamps-missing": Case({"shapes": Shapes(timestamps="missing")}),
    "timestamps-garbage": Case({"shapes": Shapes(timestamps="garbage")}),
    "upload-filename": Case({"shapes": Shapes(upload="filename")}),
    "upload-url": Case({"shapes": Shapes(upload="url")}),
    "statuses": Case(
        {
            "shapes": Shapes(
                running=("starting", "queued", "running", "warming_up"), done="succeeded"
            )
        }
    ),
    # -- hostile answers to polls: a later poll is fine, so every item still arrives --------
    "envelope-500-on-polls": Case(
        {"hostile": Hostile(error_envelope=frozenset({"poll"}), error_code=500, rate=SOME)}
    ),
    "envelope-400-on-polls": Case(
        {"hostile": Hostile(error_envelope=frozenset({"poll"}), error_code=400, rate=SOME)}
    ),
    "html-polls": Case({"hostile": Hostile(html=frozenset({"poll"}), rate=SOME)}),
    "oversized-polls": Case(
        {"hostile": Hostile(oversized=frozenset({"poll"}), oversized_bytes=1_200_000, rate=SOME)}
    ),
    "trickled-polls": Case(
        {"hostile": Hostile(trickle=frozenset({"poll"}), trickle_rate=50, rate=SOME)},
        client={"request_deadline": 0.5},
    ),
    "redirected-polls": Case({"hostile": Hostile(redirect=frozenset({"poll"}), rate=SOME)}),
    # -- hostile answers that end an item, never the batch, never billed twice -------------
    "envelope-400-on-submit": Case(
        {"hostile": Hostile(error_envelope=frozenset({"submit"}))},
        succeeded=0,
        billed=0,
        error=BadRequestError,
    ),
    "redirected-submits": Case(
        {"hostile": Hostile(redirect=frozenset({"submit"}))},
        succeeded=0,
        billed=0,
        error=MalformedResponse,
    ),
    "redirected-uploads": Case(
        {"hostile": Hostile(redirect=frozenset({"upload"}))},
        succeeded=0,
        billed=0,
        error=MalformedResponse,
    ),
    "html-outputs": Case(
        {"hostile": Hostile(html=frozenset({"output"}))}, succeeded=0, error=MalformedResponse
    ),
    "oversized-outputs": Case(
        {"hostile": Hostile(oversized=frozenset({"output"}), oversized_bytes=300_000)},
        succeeded=0,
        error=MalformedResponse,
        client={"max_output_bytes": 200_000},
    ),
    "trickled-outputs": Case(
        {"hostile": Hostile(trickle=frozenset({"output"}), trickle_rate=20)},
        succeeded=0,
        error=TransportError,
        client={"request_deadline": 0.3},
    ),
    "echoed-key": Case(
        {
            "hostile": Hostile(echo_key=True, error_envelope=frozenset({"poll"}), rate=SOME),
            "faults": Faults(
                server_error=0.3, prediction_failure=0.5, endpoints=frozenset({"poll", "upload"})
            ),
        },
        succeeded=-1,  # failed predictions fail; how many is the seed's business
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_batch_contains_every_shape_and_hostile_answer(name: str, tmp_path: Path) -> None:
    """One result per item, nobody pays twice, failures are SeedreamErrors of the expected
    kind, nothing over the cap or not an image is saved, and the key is in no error,
    journal byte or report line."""
    case = CASES[name]
    refs = []
    for index in range(ITEMS):
        path = tmp_path / f"ref{index}.png"
        path.write_bytes(make_png(16, 16, seed=index))
        refs.append(path)
    items = [
        EditItem(key=f"item-{n}", prompt=f"edit {n}", images=[refs[n]], max_images=1 + n % 2)
        for n in range(ITEMS)
    ]
    out_dir, journal = tmp_path / "out", tmp_path / "state" / "journal.sqlite"
    options = {"retry": RETRY, "poll": POLL, **case.client}
    async with serve(api_key=KEY, time_scale=0.001, seed=5, **case.sim) as sim:
        async with AsyncSeedream(api_key=KEY, base_url=sim.base_url, **options) as client:
            results = await client.edit_all(
                items, concurrency=ITEMS, out_dir=out_dir, journal=journal
            )
        ledger = sim.ledger

    # Nothing lost: one result per item.
    assert Counter(r.key for r in results) == Counter(item.key for item in items)
    statuses = Counter(r.status for r in results)
    if case.succeeded >= 0:
        assert statuses[ResultStatus.SUCCEEDED] == case.succeeded, [
            str(r.error) for r in results if r.error
        ]
    # Nothing paid twice; billed as expected.
    assert ledger.duplicate_submissions == 0
    if case.billed is not None:
        assert ledger.executions == case.billed
    # Requests (and their bodies) never left the API's origin.
    assert ledger.redirected == []
    assert ledger.auth_on_storage == 0
    # Every failure is the expected SeedreamError.
    for result in results:
        if not result.ok and case.error is not None:
            assert isinstance(result.error, case.error), repr(result.error)
    # Saved files are whole images under the cap.
    cap = case.client.get("max_output_bytes")
    for result in results:
        for path in result.files:
            data = path.read_bytes()
            assert data.startswith(b"\xff\xd8\xff")  # a JPEG, the simulator's default
            assert data.rstrip(b"\x00").endswith(b"\xff\xd9")
            assert cap is None or len(data) <= cap
    if out_dir.exists():
        assert not list(out_dir.glob(".*.part"))
    # The key: in no error (str, repr, traceback), journal byte or report line.
    for result in results:
        if result.error is not None:
            error = result.error
            texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
            assert all(KEY not in text for text in texts), texts[0]
    journal_bytes = b"".join(p.read_bytes() for p in journal.parent.iterdir() if p.is_file())
    assert KEY.encode() not in journal_bytes
    report = "".join(json.dumps(record(result)) + "\n" for result in results)
    assert KEY not in report


async def test_echoed_key_is_scrubbed_where_it_would_have_shown(tmp_path: Path) -> None:
    """The server echoes the key in failed predictions' errors: the errors still say why,
    with the key replaced."""
    hostile = Hostile(echo_key=True)
    faults = Faults(prediction_failure=1.0)
    async with (
        serve(api_key=KEY, time_scale=0.001, hostile=hostile, faults=faults) as sim,
        AsyncSeedream(api_key=KEY, base_url=sim.base_url, retry=RETRY, poll=POLL) as client,
    ):
        (result,) = await client.edit_all(
            [EditItem(key="k", prompt="p", images=[make_png(8, 8)])],
            journal=tmp_path / "j.sqlite",
        )
    assert result.status is ResultStatus.FAILED
    assert "simulated failure" in str(result.error)
    assert "Authorization: Bearer **********" in str(result.error)
    assert KEY not in str(result.error)
