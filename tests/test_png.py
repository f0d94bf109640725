from __future__ import annotations

import struct
import time
import zlib

import pytest

from seedream_async._media._sniff import sniff_image_type
from seedream_async.testing import make_png


def decode(png: bytes) -> tuple[int, int, bytes, dict[bytes, bytes]]:
    """Walk the chunks, checking every CRC; return size, raw scanlines and chunks."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, idat = 8, {}, b""
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        data = png[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", png[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF
        chunks[kind] = data
        idat += data if kind == b"IDAT" else b""
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2)
    assert b"IEND" in chunks
    return width, height, zlib.decompress(idat), chunks


@pytest.mark.parametrize(("width", "height"), [(1, 1), (64, 64), (300, 120), (512, 512)])
def test_valid_png(width: int, height: int) -> None:
    """Every size decodes to the right number of filtered RGB scanlines."""
    png = make_png(width, height, seed=3)
    assert sniff_image_type(png) == "image/png"
    got_width, got_height, raw, _ = decode(png)
    assert (got_width, got_height) == (width, height)
    assert len(raw) == height * (1 + 3 * width)


def test_seed_changes_the_picture_and_label_is_stored() -> None:
    """The same seed draws the same image, another seed another; a label becomes tEXt."""
    assert make_png(seed=1) == make_png(seed=1)
    assert make_png(seed=1) != make_png(seed=2)
    _, _, _, chunks = decode(make_png(seed=1, label="sku-42"))
    assert chunks[b"tEXt"] == b"Comment\x00sku-42"


def test_fast_enough() -> None:
    """A 512x512 image takes well under a second in pure Python."""
    start = time.perf_counter()
    make_png(512, 512, seed=9)
    assert time.perf_counter() - start < 0.5


def test_rejects_empty_size() -> None:
    """A zero-pixel image is refused."""
    with pytest.raises(ValueError, match="at least 1x1"):
        make_png(0, 5)
