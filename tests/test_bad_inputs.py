"""The catalog of bad inputs: each fails its own item with an error naming the item and
saying what is wrong, before anything is uploaded or paid for; the good items beside them
run as usual. A corrupt journal stops the batch before its first request."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _helpers import simulated, write_images

from seedream_async import (
    AsyncSeedream,
    BatchResult,
    EditItem,
    InvalidImage,
    InvalidInput,
    JournalError,
    ResultStatus,
)
from seedream_async.testing import make_png, serve

pytestmark = pytest.mark.anyio

URL = "https://cdn.example.com/ref.png"
MAX_UPLOAD = 32_000  # the client's upload limit in these tests: the over-size file is ~70 kB
GOOD_KEYS = [f"good-{n}" for n in range(6)]


@dataclass(frozen=True)
class Files:
    """The files on disk the cases use."""

    good: Path
    unused: list[Path]  # referenced only by items that must fail before their upload
    missing: Path
    empty: Path
    text: Path
    oversize: Path

    @property
    def bad(self) -> list[Path]:
        """Every existing file no upload may carry."""
        return [*self.unused, self.empty, self.text, self.oversize]


def make_files(folder: Path) -> Files:
    good = write_images(folder / "good", 1)[0]
    unused = []
    for index in range(11):
        path = folder / "unused" / f"ref{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make_png(48, 48, seed=1000 + index))
        unused.append(path)
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    text = folder / "notes.png"
    text.write_text("these are my notes, not an image\n")
    oversize = folder / "huge.png"
    oversize.write_bytes(make_png(48, 48, seed=5, label="x" * 70_000))
    assert oversize.stat().st_size > MAX_UPLOAD
    return Files(good, unused, folder / "nope.png", empty, text, oversize)


@dataclass(frozen=True)
class Case:
    """One bad item: how to build it, the error it must end with, and words its message uses."""

    key: str
    build: Callable[[Files], EditItem | dict[str, Any]]
    error: type[InvalidInput]
    words: str


CASES = [
    Case(
        "missing-file",
        lambda f: EditItem(key="missing-file", prompt="p", images=[f.missing]),
        InvalidImage,
        "does not exist",
    ),
    Case(
        "empty-file",
        lambda f: EditItem(key="empty-file", prompt="p", images=[f.empty]),
        InvalidImage,
        "empty (0 bytes)",
    ),
    Case(
        "text-named-png",
        lambda f: EditItem(key="text-named-png", prompt="p", images=[f.text]),
        InvalidImage,
        "not an image",
    ),
    Case(
        "eleven-refs",
        lambda f: EditItem(key="eleven-refs", prompt="p", images=f.unused[:11]),
        InvalidInput,
        "at most 10",
    ),
    Case(
        "size-500",
        lambda f: EditItem(key="size-500", prompt="p", images=[f.unused[0]], size="500*500"),
        InvalidInput,
        "outside Seedream 4.5's 3,686,400",
    ),
    Case(
        "empty-prompt",
        lambda f: EditItem(key="empty-prompt", prompt="", images=[f.unused[0]]),
        InvalidInput,
        "prompt",
    ),
    Case(
        "blank-prompt",
        lambda f: EditItem(key="blank-prompt", prompt="   ", images=[f.unused[0]]),
        InvalidInput,
        "prompt is blank",
    ),
    Case(
        "max-images-0",
        lambda f: EditItem(key="max-images-0", prompt="p", images=[f.unused[0]], max_images=0),
        InvalidInput,
        "max_images",
    ),
    Case(
        "max-images-16",
        lambda f: EditItem(key="max-images-16", prompt="p", images=[f.unused[0]], max_images=16),
        InvalidInput,
        "max_images",
    ),
    Case(
        "refs-plus-outputs-16",
        lambda f: EditItem(
            key="refs-plus-outputs-16", prompt="p", images=f.unused[:10], max_images=6
        ),
        InvalidInput,
        "more than the 15 images",
    ),
    Case(
        "oversize-file",
        lambda f: EditItem(key="oversize-file", prompt="p", images=[f.oversize]),
        InvalidImage,
        "upload limit",
    ),
    Case(
        "../escape",
        lambda f: EditItem(key="../escape", prompt="p", images=[f.unused[0]]),
        InvalidInput,
        "'..' path part",
    ),
    Case(
        "ftp-url",
        lambda f: EditItem(key="ftp-url", prompt="p", images=["ftp://files.example.com/a.png"]),
        InvalidInput,
        "http(s) URL",
    ),
    Case(
        "row-without-prompt",
        lambda f: {"key": "row-without-prompt", "images": [f.unused[0]]},
        InvalidInput,
        "missing 'prompt'",
    ),
    # Its twin, earlier or later in the batch, is good: whichever runs second fails.
    Case(
        "dup",
        lambda f: EditItem(key="dup", prompt="twin", images=[f.good]),
        InvalidInput,
        "duplicate key",
    ),
]


@dataclass
class Outcome:
    """One run of the mixed batch."""

    results: list[BatchResult]
    files: Files
    executions: int
    uploaded: set[str]
    requests: int


_OUTCOMES: dict[str, Outcome] = {}


@pytest.fixture
async def mixed(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """Every bad case and the good items in one batch, run once per backend."""
    if anyio_backend not in _OUTCOMES:
        folder = tmp_path_factory.mktemp(f"bad-{anyio_backend}")
        files = make_files(folder)
        good = [
            EditItem(key=key, prompt=f"fine {key}", images=[files.good, URL]) for key in GOOD_KEYS
        ]
        twin = EditItem(key="dup", prompt="first twin", images=[URL])
        rows = [*good[:3], twin, *(case.build(files) for case in CASES), *good[3:]]
        options = {"max_upload_bytes": MAX_UPLOAD}
        async with simulated(client_options=options) as (sim, client):
            results = await client.edit_all(
                rows, concurrency=4, out_dir=folder / "out", journal=folder / "journal.sqlite"
            )
        _OUTCOMES[anyio_backend] = Outcome(
            results=results,
            files=files,
            executions=sim.ledger.executions,
            uploaded={upload.sha256 for upload in sim.ledger.uploads},
            requests=sum(sim.ledger.requests.values()),
        )
    return _OUTCOMES[anyio_backend]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("case", CASES, ids=[case.key for case in CASES])
async def test_bad_item_fails_alone_naming_itself(mixed: Outcome, case: Case) -> None:
    """The bad item ends failed, with an error of the right kind that names its key and the
    problem, and nothing billed for it."""
    mine = [r for r in mixed.results if r.key == case.key]
    failed = [r for r in mine if not r.ok]
    assert len(failed) == 1, mine
    result = failed[0]
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, case.error), repr(result.error)
    assert repr(case.key) in str(result.error)
    assert case.words in str(result.error)
    assert result.cost == 0
    assert result.prediction_id is None
    assert result.files == ()


async def test_bad_items_never_sink_the_batch_or_cost_money(mixed: Outcome) -> None:
    """Every row has one result; the good ones (and one twin) succeed and are the only ones
    billed; no bad file, and no image of an item that failed validation, was uploaded."""
    results = mixed.results
    assert len(results) == len(GOOD_KEYS) + 1 + len(CASES)
    ok = sorted(r.key for r in results if r.ok)
    assert ok == sorted([*GOOD_KEYS, "dup"])
    assert all(r.files for r in results if r.ok)
    assert mixed.executions == len(ok)
    leaked = {path.name for path in mixed.files.bad if sha256(path) in mixed.uploaded}
    assert not leaked
    assert sha256(mixed.files.good) in mixed.uploaded


# -- the same checks one call at a time ------------------------------------------------


EDIT_CASES: list[Any] = [
    pytest.param(lambda f: ("p", [f.missing], {}), "does not exist", id="missing-file"),
    pytest.param(lambda f: ("p", [f.empty], {}), "empty (0 bytes)", id="empty-file"),
    pytest.param(lambda f: ("p", [f.text], {}), "not an image", id="text-named-png"),
    pytest.param(lambda f: ("p", [f.oversize], {}), "upload limit", id="oversize-file"),
    pytest.param(lambda f: ("p", f.unused[:11], {}), "at most 10", id="eleven-refs"),
    pytest.param(lambda f: ("p", [f.good], {"size": "500*500"}), "outside", id="size-500"),
    pytest.param(lambda f: ("", [f.good], {}), "prompt", id="empty-prompt"),
    pytest.param(lambda f: ("p", [f.good], {"max_images": 0}), "max_images", id="max-images-0"),
    pytest.param(lambda f: ("p", [f.good], {"max_images": 16}), "max_images", id="max-images-16"),
    pytest.param(
        lambda f: ("p", f.unused[:10], {"max_images": 6}), "15 images", id="refs-plus-outputs-16"
    ),
    pytest.param(lambda f: ("p", ["ftp://h/a.png"], {}), "http(s) URL", id="ftp-url"),
    pytest.param(lambda f: ("p", [], {}), "images", id="no-images"),
    pytest.param(lambda f: ("p", [f.good], {"colour": "red"}), "unknown", id="unknown-param"),
]


@pytest.mark.parametrize(("build", "words"), EDIT_CASES)
async def test_edit_rejects_bad_input_before_any_request(
    tmp_path: Path, build: Callable[[Files], tuple[str, list[Any], dict[str, Any]]], words: str
) -> None:
    """``client.edit`` raises InvalidInput (not wrapped in a group) saying what is wrong,
    and neither the simulator nor the client saw a single request."""
    prompt, images, params = build(make_files(tmp_path))
    async with (
        serve(api_key="sk-unit-1", time_scale=0.001) as sim,
        AsyncSeedream(
            api_key="sk-unit-1", base_url=sim.base_url, max_upload_bytes=MAX_UPLOAD
        ) as client,
    ):
        with pytest.raises(InvalidInput) as info:
            await client.edit(prompt, images, **params)
    assert words in str(info.value)
    assert sum(client.requests.values()) == 0
    assert sum(sim.ledger.requests.values()) == 0


# -- a journal that is not one ---------------------------------------------------------


def garbled_journal(path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 300,)] * 100)
    conn.commit()
    conn.close()
    data = bytearray(path.read_bytes())
    data[100:] = os.urandom(len(data) - 100)  # a real SQLite header, every page ruined
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda p: p.write_bytes(os.urandom(8192)), id="random-bytes"),
        pytest.param(lambda p: p.write_text("key,prompt\nsku-1,hi\n"), id="text-file"),
        pytest.param(garbled_journal, id="garbled-sqlite"),
    ],
)
async def test_corrupt_journal_stops_the_batch_before_any_request(
    tmp_path: Path, spoil: Callable[[Path], object]
) -> None:
    """A journal path holding something else raises JournalError naming the path, and the
    file is left as it was; not one request reaches the server."""
    journal = tmp_path / "batch.journal"
    spoil(journal)
    before = journal.read_bytes()
    good = write_images(tmp_path / "refs", 1)[0]
    items = [EditItem(key=f"k{n}", prompt="p", images=[good]) for n in range(5)]
    async with simulated() as (sim, client):
        with pytest.raises(JournalError) as info:
            await client.edit_all(items, journal=journal, out_dir=tmp_path / "out")
    assert str(journal) in str(info.value)
    assert sum(sim.ledger.requests.values()) == 0
    assert sim.ledger.executions == 0
    assert journal.read_bytes() == before
