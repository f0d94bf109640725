"""Issue 18, item 10: reference images the API would refuse (or bill and fail) are refused
before anything is paid: the six input formats, 10 MB, 6000 x 6000 px, aspect 1/16..16,
files cut short; ``data:`` URIs; inlining small images. Source: ByteDance ModelArk's input
rules (https://docs.myrouter.ai/docs/models/reference-seedream-4.0 mirrors them).
"""

from __future__ import annotations

import base64
import functools
import json
import struct
import zlib
from pathlib import Path

import httpx
import pytest

from seedream_async import (
    BadRequestError,
    EditItem,
    InvalidImage,
    InvalidInput,
    PredictionFailed,
    ResultStatus,
)
from seedream_async._base._constants import DEFAULT_MODEL
from seedream_async._media._header import image_dimensions
from seedream_async._media._inputs import check_image
from seedream_async._media._sniff import sniff_image_type
from seedream_async._wire._requests import check_params
from seedream_async.cli._manifest import ManifestProblem
from seedream_async.cli._validate import scan
from seedream_async.testing import make_png, serve
from seedream_async.testing._contract import input_problem
from seedream_async.testing._jpeg import make_jpeg
from tests._helpers import simulated

PROMPT = "Put it on a marble pedestal"


# -- tiny, well-formed files of each format, any size -----------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def big_png(width: int, height: int) -> bytes:
    """A whole 1-bit greyscale PNG, compressed row by row: 20,000 x 20,000 is ~50 KB on
    disk and 50 MB inflated (a "bomb" for whoever decodes it)."""
    row = bytes(1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )


def gif(width: int, height: int) -> bytes:
    one_pixel = (
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00"
        b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )
    return one_pixel[:6] + struct.pack("<HH", width, height) + one_pixel[10:]


def bmp(width: int, height: int) -> bytes:
    stride = (width * 3 + 3) // 4 * 4
    pixels = bytes(stride * height)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 0, 0, 0, 0)
    size = 14 + len(info) + len(pixels)
    return b"BM" + struct.pack("<IHHI", size, 0, 0, 54) + info + pixels


def tiff(width: int, height: int) -> bytes:
    pixels = 8 + 2 + 12 * 6 + 4
    entries = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 1, 8), (262, 3, 1, 1)]
    entries += [(273, 3, 1, pixels), (279, 3, 1, width * height)]
    ifd = struct.pack("<H", len(entries))
    ifd += b"".join(
        struct.pack("<HHIHH", tag, kind, n, value, 0) for tag, kind, n, value in entries
    )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + bytes(width * height)


def webp(width: int, height: int) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes(4)
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


MAKERS = {
    "png": make_png,
    "jpeg": make_jpeg,
    "gif": gif,
    "bmp": bmp,
    "tiff": tiff,
    "webp": webp,
}


# -- the header and integrity checks, per format (no network) ---------------------------


@pytest.mark.parametrize("fmt", sorted(MAKERS))
def test_sides_come_from_the_header_of_every_format(fmt: str) -> None:
    """Each of the six formats: sniffed, its sides read from the header, and whole; the
    simulator's own reader agrees."""
    data = MAKERS[fmt](40, 24)
    kind = sniff_image_type(data[:16])
    assert kind == f"image/{fmt}"
    assert image_dimensions(data, kind) == (40, 24)
    assert check_image(data, name="x", accepted={kind})[1].width == 40
    assert input_problem(data) is None


@pytest.mark.parametrize("fmt", sorted(MAKERS))
def test_a_file_cut_short_is_damaged_in_every_format(fmt: str) -> None:
    """A third of a file (what a dropped copy leaves) is refused as damaged, by name."""
    data = MAKERS[fmt](40, 24)
    with pytest.raises(InvalidImage, match=r"cut\.png is (a )?damaged"):
        check_image(data[: max(len(data) // 3, 12)], name="cut.png", accepted={f"image/{fmt}"})


def test_a_jpeg_is_judged_by_its_own_scan_not_a_thumbnail_or_a_trailer() -> None:
    """A phone photo with a motion-photo video after its end marker is whole; a photo cut
    short is not, even when its EXIF thumbnail (a whole JPEG in APP1) ends properly."""
    photo = make_jpeg(64, 48)
    assert check_image(photo + b"ftypmp42" + bytes(2000), name="m.jpg", accepted={"image/jpeg"})
    thumb = make_jpeg(8, 8)
    app1 = b"\xff\xe1" + struct.pack(">H", len(thumb) + 2) + thumb
    with_thumb = photo[:2] + app1 + photo[2:]
    assert image_dimensions(with_thumb, "image/jpeg") == (64, 48)
    with pytest.raises(InvalidImage, match="JPEG cut short"):
        check_image(with_thumb[: -len(photo) // 3], name="cut.jpg", accepted={"image/jpeg"})


def test_a_request_inlining_over_50_mb_is_refused() -> None:
    """Data URIs count towards the API's 50 MB body (413): refused before sending."""
    huge = "data:image/png;base64," + "A" * (50 * 1024 * 1024)
    with pytest.raises(InvalidInput, match="413"):
        check_params(prompt=PROMPT, images=[huge])


# -- over real HTTP, asyncio and trio ----------------------------------------------------

anyio = pytest.mark.anyio


@anyio
async def test_truncated_photo_and_bomb_are_refused_before_paying(tmp_path: Path) -> None:
    """The issue's held-out cases (a photo cut to a third, a 20,000 x 20,000 PNG) and the
    other limits each fail their own item with a message naming the file and the problem;
    nothing of theirs is uploaded or submitted, and the good item goes on."""
    photo = make_jpeg(320, 240)
    files = {
        "good": make_png(64, 48),
        "cut": photo[: len(photo) // 3],
        "bomb": big_png(20_000, 20_000),
        "wide": bmp(6_001, 8),
        "thin": make_png(1_700, 100),  # aspect 17
    }
    expected = {
        "cut": "JPEG cut short",
        "bomb": "20000x20000 px, over the 6000x6000",
        "wide": "6001x8 px, over",
        "thin": "aspect ratio 17",
    }
    for name, data in files.items():
        (tmp_path / f"{name}.img").write_bytes(data)
    items = [EditItem(key=name, prompt=PROMPT, images=[tmp_path / f"{name}.img"]) for name in files]
    async with simulated() as (sim, client):
        results = {result.key: result for result in await client.edit_all(items)}
        with pytest.raises(InvalidImage, match="20000x20000"):
            await client.edit(PROMPT, [tmp_path / "bomb.img"])
    assert results["good"].status is ResultStatus.SUCCEEDED
    for key, problem in expected.items():
        result = results[key]
        assert result.status is ResultStatus.FAILED
        assert isinstance(result.error, InvalidImage)
        assert str(result.error).startswith(f"item {key!r}: ")
        assert f"{key}.img" in str(result.error)
        assert problem in str(result.error)
        assert result.cost == 0
    assert len(sim.ledger.uploads) == 1
    assert sim.ledger.executions == 1


@anyio
async def test_every_input_format_is_uploaded_and_edited() -> None:
    """JPEG, PNG, WEBP, BMP, TIFF and GIF all go through, sniffed from their bytes."""
    async with simulated() as (sim, client):
        for fmt in sorted(MAKERS):
            prediction = await client.edit(PROMPT, [MAKERS[fmt](40, 24)])
            assert prediction.outputs
    assert {upload.content_type for upload in sim.ledger.uploads} == {
        f"image/{fmt}" for fmt in MAKERS
    }
    assert sim.ledger.executions == len(MAKERS)


def _uri(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


@anyio
async def test_data_uris_are_checked_and_sent_as_they_are(tmp_path: Path) -> None:
    """A data: URI needs no upload (also with check_limits=False, refused before); a
    damaged or over-size one is refused before paying; with check_limits=False the
    simulator's own reading of the contract refuses 7000 px (400, not billed)."""
    photo = make_jpeg(64, 64)
    async with simulated() as (sim, client):
        await client.edit(PROMPT, [_uri(make_png(32, 32))])
        await client.edit(PROMPT, [_uri(photo, "image/jpeg")], check_limits=False)
        await client.edit(PROMPT, [_uri(bmp(800, 700), "image/bmp")])  # 2.2 MB of JSON
        (result,) = await client.edit_all(
            [EditItem(key="inline", prompt=PROMPT, images=[_uri(make_png(30, 20))])],
            journal=tmp_path / "journal.sqlite",
        )
        assert result.ok, result.error
        with pytest.raises(InvalidImage, match="damaged"):
            await client.edit(PROMPT, [_uri(photo[: len(photo) // 3], "image/jpeg")])
        with pytest.raises(InvalidImage, match="7000x10 px"):
            await client.edit(PROMPT, [_uri(make_png(7_000, 10))])
        with pytest.raises(BadRequestError, match="6000"):
            await client.edit(PROMPT, [_uri(make_png(7_000, 10))], check_limits=False)
    assert sim.ledger.uploads == []
    assert sim.ledger.executions == 4


@anyio
async def test_check_limits_false_lets_the_server_judge_an_uploaded_bomb(tmp_path: Path) -> None:
    """Past the client's checks, the simulator (written from the contract, not the client)
    bills the prediction and fails it, as the real API did: the test that would catch the
    client's checks drifting from the contract."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(big_png(20_000, 20_000))
    async with simulated() as (sim, client):
        with pytest.raises(PredictionFailed, match="6000"):
            await client.edit(PROMPT, [bomb], check_limits=False)
    assert len(sim.ledger.uploads) == 1
    assert sim.ledger.executions == 1


@anyio
async def test_inline_max_bytes_sends_small_images_inside_the_request(tmp_path: Path) -> None:
    """Under inline_max_bytes, local images skip the upload (edit and batch); larger ones
    are still uploaded."""
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    small.write_bytes(make_png(32, 32))
    large.write_bytes(make_png(400, 400, seed=3))
    limit = small.stat().st_size
    async with simulated(client_options={"inline_max_bytes": limit}) as (sim, client):
        await client.edit(PROMPT, [small])
        assert sim.ledger.uploads == []
        items = [EditItem(key=f"k{n}", prompt=PROMPT, images=[small, large]) for n in range(2)]
        results = await client.edit_all(items)
    assert all(result.ok for result in results)
    assert len(sim.ledger.uploads) == 1  # the large one, once
    assert sim.ledger.executions == 3


def test_validate_finds_what_the_client_would_refuse(tmp_path: Path) -> None:
    """`seedream-async validate` (scan) runs the same checks, per row, before any run: a
    photo cut short, a bomb, a damaged data URI; check_limits=False rows skip the sides."""
    photo = make_jpeg(320, 240)
    (tmp_path / "ok.gif").write_bytes(gif(40, 24))
    (tmp_path / "cut.jpg").write_bytes(photo[: len(photo) // 3])
    (tmp_path / "bomb.png").write_bytes(big_png(20_000, 20_000))
    lines = [
        {"key": "good", "prompt": "p", "images": ["ok.gif", _uri(make_png(8, 8))]},
        {"key": "cut", "prompt": "p", "images": ["cut.jpg"]},
        {"key": "bomb", "prompt": "p", "images": ["bomb.png"]},
        {"key": "bad-uri", "prompt": "p", "images": [_uri(photo[:40], "image/jpeg")]},
        {"key": "unchecked", "prompt": "p", "images": ["bomb.png"], "check_limits": False},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    found = {p.line: p.message for p in scan(manifest) if isinstance(p, ManifestProblem)}
    assert sorted(found) == [2, 3, 4]
    assert "JPEG cut short" in found[2]
    assert "20000x20000 px" in found[3]
    assert "damaged" in found[4]


@anyio
async def test_simulator_refuses_data_uris_from_the_contract() -> None:
    """The simulator judges a data URI by ModelArk's rules with its own reader, over raw
    HTTP (no client checks in the way): the refused ones are 400 and not billed."""
    cases = [
        (_uri(make_png(40, 24)), 200, ""),
        (_uri(tiff(40, 24), "image/tiff"), 200, ""),
        (_uri(make_png(6_001, 4)), 400, "6000"),
        (_uri(make_png(1_700, 100)), 400, "aspect"),
        (_uri(b"<svg/>" * 8, "image/svg+xml"), 400, "format"),
        ("data:image/png;base64,%%%", 400, "base64"),
    ]
    async with (
        serve(time_scale=0.001) as sim,
        httpx.AsyncClient(
            base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.api_key}"}
        ) as http,
    ):
        for image, status, reason in cases:
            payload = {"model": DEFAULT_MODEL, "prompt": PROMPT, "images": [image]}
            response = await http.post("/api/v1/model/generateImage", json=payload)
            assert response.status_code == status, response.text
            assert reason in response.text
    assert sim.ledger.executions == 2
