"""The API key stays secret and outputs stay inside ``out_dir``, even under faults.

A batch with a journal, downloads and every kind of fault runs with a distinctive key; the
key must then appear in no log line (ours, httpx's or anyone's, at DEBUG), in no error's
str, repr or traceback, in no journal byte, in no output file or report, and never reach
the storage host. Keys that try to climb out of ``out_dir`` fail their item.
"""

from __future__ import annotations

import json
import logging
import random
import traceback
from pathlib import Path

import pytest
from _helpers import simulated, write_images

from seedream_async import EditItem, InvalidInput, ResultStatus
from seedream_async._engine._names import safe_name
from seedream_async.testing import Faults

pytestmark = pytest.mark.anyio

KEY = "sk-TOPSECRET-42"
URL = "https://cdn.example.com/ref.png"
FAULTS = Faults(
    rate_limit=0.05,
    send_retry_after=True,
    retry_after=0.002,
    server_error=0.08,
    drop=0.05,
    slow=0.05,
    slow_seconds=0.01,
    prediction_failure=0.1,
    output_ttl=0.01,
    endpoints=frozenset({"upload", "submit", "poll", "output"}),
)


def error_texts(error: BaseException) -> list[str]:
    """Every way an error is commonly shown: str, repr and the formatted traceback, for it
    and each error in its cause / context chain."""
    texts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), repr(vars(current))]
        current = current.__cause__ or current.__context__
    return texts


async def test_key_never_leaks_from_a_faulty_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Under faults, the key is in no log record, error, journal byte or output file, and
    never sent to the storage host."""
    caplog.set_level(logging.DEBUG)  # the root logger: ours, httpx, httpcore, everyone's
    refs = write_images(tmp_path / "refs", 4)
    items = [
        EditItem(
            key=f"sku-{n}", prompt=f"edit {n}", images=[refs[n % 4], URL], max_images=1 + n % 2
        )
        for n in range(80)
    ]
    items.append(EditItem(key="missing", prompt="p", images=[tmp_path / "nope.png"]))
    items.append(EditItem(key="../climb", prompt="p", images=[URL]))
    out_dir = tmp_path / "out"
    journal = tmp_path / "state" / "journal.sqlite"
    async with simulated(api_key=KEY, faults=FAULTS) as (sim, client):
        results = await client.edit_all(items, concurrency=16, out_dir=out_dir, journal=journal)
        journal_bytes = b"".join(
            path.read_bytes() for path in journal.parent.iterdir() if path.is_file()
        )  # the database, and its -wal and -shm while the batch's connection was open
    assert client.requests["submit"] > 0
    assert KEY not in repr(client)

    # Retries, billed predictions and failures happened, so the check below covers them.
    # (Not "some succeeded": with 10 ms output URLs, a loaded machine may see every
    # download expire, and the test must not depend on the machine's speed.)
    assert len(results) == len(items)
    assert ResultStatus.FAILED in {r.status for r in results}
    assert any(r.prediction_id for r in results)
    assert sim.ledger.faults["drop"] > 0
    assert any(r.name.startswith("httpx") for r in caplog.records)

    # Logs: every record's message and any traceback it carries.
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            assert all(KEY not in text for text in error_texts(record.exc_info[1]))

    # Results and their errors, as a user would print or log them.
    errors = [r.error for r in results if r.error is not None]
    assert errors
    for result in results:
        assert KEY not in repr(result)
    for error in errors:
        for text in error_texts(error):
            assert KEY not in text

    # The journal's bytes (database, WAL and shared memory), after the batch too.
    journal_bytes += b"".join(path.read_bytes() for path in journal.parent.iterdir())
    assert KEY.encode() not in journal_bytes

    # Output files, and a report of the run written the way a user would.
    report = tmp_path / "report.json"
    report.write_text(
        json.dumps(
            [
                {
                    "key": r.key,
                    "status": r.status,
                    "error": r.error_message,
                    "outputs": r.outputs,
                    "files": [str(f) for f in r.files],
                }
                for r in results
            ]
        )
    )
    # Output files, when any download beat its 10 ms expiry (a loaded machine may see none).
    files = [path for path in out_dir.rglob("*") if path.is_file()]
    for path in [*files, report]:
        assert KEY.encode() not in path.read_bytes(), path

    # The storage host never saw an Authorization header.
    assert sim.ledger.requests["output"] > 0
    assert sim.ledger.auth_on_storage == 0


# -- nothing is written outside out_dir ------------------------------------------------


CLIMBING_KEYS = ["..", "../x", "a/../../b", "..\\x", "a\\..\\..\\b", "ok/../../../etc/passwd"]


@pytest.mark.parametrize("key", CLIMBING_KEYS, ids=CLIMBING_KEYS)
def test_safe_name_refuses_climbing_keys(key: str) -> None:
    """A key with a '..' part is refused, naming the key."""
    with pytest.raises(InvalidInput, match=r"'\.\.' path part") as info:
        safe_name(key)
    assert info.value.field == "key"
    assert repr(key) in str(info.value)


ODD_KEYS = [
    "/etc/passwd",
    "/",
    ".",
    "...",
    ".hidden",
    "a/b/c",
    "a\\b",
    "C:\\Windows\\x",
    "~root",
    "CON",
    "nul",
    "lpt1",
    "%2e%2e%2fx",
    "..%2fx",
    "sku 1.png",
    "ü/ß",
    "-rf",
    "x" * 400,
]


def assert_plain_file_name(key: str, out_dir: Path) -> None:
    name = safe_name(key)
    assert name
    assert "/" not in name
    assert "\\" not in name
    assert ":" not in name
    assert not name.startswith(".")
    assert name not in {".", ".."}
    assert len(name) <= 100
    assert (out_dir / name).resolve().parent == out_dir.resolve()


@pytest.mark.parametrize("key", ODD_KEYS, ids=[repr(key)[:20] for key in ODD_KEYS])
def test_safe_name_is_one_plain_file_name(key: str, tmp_path: Path) -> None:
    """Any other key becomes one plain, non-hidden file name directly inside out_dir."""
    assert_plain_file_name(key, tmp_path)


def test_safe_name_fuzz(tmp_path: Path) -> None:
    """Random keys of path-ish characters either fail with InvalidInput or give a plain
    file name inside out_dir, and two different keys never share a name."""
    rng = random.Random(42)
    alphabet = "./\\a_-:~ %\x00\u00e9"
    names: dict[str, str] = {}
    for _ in range(3000):
        key = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        try:
            name = safe_name(key)
        except InvalidInput as err:
            refused = err
        else:
            refused = None
        if refused is not None:
            assert refused.field == "key"
            continue
        assert_plain_file_name(key, tmp_path)
        assert names.setdefault(name, key) == key, f"{key!r} and {names[name]!r} share {name!r}"


async def test_climbing_keys_fail_and_write_nothing_outside(tmp_path: Path) -> None:
    """In a batch, keys that climb fail their item before any request; keys with slashes
    are saved flat inside out_dir; nothing appears beside out_dir."""
    workdir = tmp_path / "work"
    out_dir = workdir / "out"
    workdir.mkdir()
    climbing = [EditItem(key=key, prompt=f"climb {key}", images=[URL]) for key in CLIMBING_KEYS]
    odd = [EditItem(key=key, prompt=f"odd {key}", images=[URL]) for key in ODD_KEYS]
    async with simulated() as (sim, client):
        results = {r.key: r for r in await client.edit_all([*climbing, *odd], out_dir=out_dir)}
    for key in CLIMBING_KEYS:
        assert results[key].status is ResultStatus.FAILED
        assert isinstance(results[key].error, InvalidInput)
        assert results[key].cost == 0
    assert sim.ledger.executions == len(ODD_KEYS)
    for key in ODD_KEYS:
        assert results[key].ok, results[key].error
        (file,) = results[key].files
        assert file.resolve().parent == out_dir.resolve()
    assert [path.name for path in workdir.iterdir()] == ["out"]
    assert len(list(out_dir.iterdir())) == len(ODD_KEYS)
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "b").exists()
