"""Output verification: only a whole image of an expected type counts as delivered."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest

from seedream_async import OutputInvalid
from seedream_async._media._verify import looks_whole, verify_image, verify_image_file
from seedream_async.testing import make_png

PNG = make_png(16, 16, seed=3)
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"\x11" * 200 + b"\xff\xd9"
WEBP_BODY = b"WEBPVP8 " + struct.pack("<I", 10) + b"\x00" * 10
WEBP = b"RIFF" + struct.pack("<I", len(WEBP_BODY)) + WEBP_BODY


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (JPEG + b"\x00\x00", "image/jpeg"),
        (WEBP, "image/webp"),
    ],
    ids=["png", "jpeg", "jpeg-padded", "webp"],
)
def test_whole_images_pass(data: bytes, kind: str) -> None:
    """A complete PNG, JPEG (padding after EOI allowed) or WEBP is accepted with its type."""
    assert verify_image(data) == kind


BROKEN = {
    "empty": b"",
    "html": b"<!doctype html><html><body>503</body></html>",
    "junk": base64.b64decode(base64.b64encode(b"\x00junk" * 20)),
    "png-half": PNG[: len(PNG) // 2],
    "png-no-iend": PNG[:-12],
    "png-bad-crc": PNG[:-1] + bytes([PNG[-1] ^ 1]),
    "jpeg-cut": JPEG[:-2],
    "webp-cut": WEBP[:-4],
    "gif": b"GIF89a" + b"\x00" * 20,
}


@pytest.mark.parametrize("name", list(BROKEN), ids=list(BROKEN))
def test_broken_outputs_are_refused(name: str) -> None:
    """Empty, HTML, junk, cut-short, corrupt or unexpected-type bytes raise OutputInvalid."""
    with pytest.raises(OutputInvalid):
        verify_image(BROKEN[name], what="output 1 of pred_x")


def test_the_size_cap_is_enforced(tmp_path: Path) -> None:
    """A file over the cap is refused before it is read; one within it passes."""
    path = tmp_path / "big.png"
    path.write_bytes(PNG)
    assert verify_image_file(path, max_bytes=len(PNG)) == "image/png"
    with pytest.raises(OutputInvalid, match="cap"):
        verify_image_file(path, max_bytes=len(PNG) - 1)


def test_a_missing_file_is_invalid_not_an_os_error(tmp_path: Path) -> None:
    """Reading back a file that vanished is an OutputInvalid naming it."""
    with pytest.raises(OutputInvalid, match=r"gone\.png"):
        verify_image_file(tmp_path / "gone.png")


@pytest.mark.parametrize(
    ("data", "whole"),
    [(PNG, True), (JPEG, True), (WEBP, True), (PNG[:-12], False), (JPEG[:-2], False),
     (WEBP[:-4], False), (b"<html></html>", False), (b"", False)],
    ids=["png", "jpeg", "webp", "png-cut", "jpeg-cut", "webp-cut", "html", "empty"],
)  # fmt: skip
def test_the_cheap_recheck_of_a_delivered_file(tmp_path: Path, data: bytes, whole: bool) -> None:
    """looks_whole (used on resume) accepts whole images and refuses a cut or foreign file."""
    path = tmp_path / "out.img"
    path.write_bytes(data)
    assert looks_whole(path) is whole
    assert looks_whole(tmp_path / "gone.png") is False
