"""Is a downloaded output a whole image? Checked before an item counts as delivered.

A storage host can answer 200 with an HTML error page, junk, or an image cut short (a
dropped connection that still closed cleanly). The type is sniffed from the bytes and the
file must be complete: a PNG's chunks (each CRC) through ``IEND``, a JPEG through its
``EOI`` marker, a WEBP as long as its RIFF header says, and within a size cap.

The same checks serve reference images before they are paid for (:func:`problem_in`), with
three more formats the API takes as input: a GIF through its trailer (``;``), a BMP as long
as its header says, a TIFF whose first IFD lies inside the file.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from .._base._exceptions import OutputInvalid
from ._header import ByteView, jpeg_scan_start
from ._sniff import SNIFF_BYTES, sniff_image_type

__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
    "EXPECTED_TYPES",
    "looks_whole",
    "problem_in",
    "verify_image",
    "verify_image_file",
]

DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024
EXPECTED_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})


def _check_png(data: ByteView) -> str | None:
    position = 8
    while position + 12 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        end = position + 12 + length
        if end > len(data):
            return f"PNG cut short inside its {kind.decode('latin-1')!r} chunk"
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(data[position + 4 : end - 4]) & 0xFFFFFFFF != crc:
            return f"PNG chunk {kind.decode('latin-1')!r} fails its CRC"
        if kind == b"IEND":
            return None
        position = end
    return "PNG cut short: no IEND chunk"


def _check_jpeg(data: ByteView) -> str | None:
    # Some encoders pad after the end marker; the image itself must reach EOI (FF D9).
    if not data[-65536:].rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "JPEG cut short: no end-of-image marker"
    return None


def _check_webp(data: ByteView) -> str | None:
    (size,) = struct.unpack("<I", data[4:8])
    if len(data) < 8 + size:
        return f"WEBP cut short: {len(data)} bytes of the {8 + size} its header announces"
    return None


def _check_jpeg_input(data: ByteView) -> str | None:
    # A reference photo may carry data after its end marker (a phone's motion-photo video,
    # a maker's trailer): the image is whole when an end marker follows its scan. Inside
    # entropy-coded data FF is always stuffed (FF 00) or a restart marker, so an FF D9
    # after the first scan is the end of the image, and one before it (an EXIF
    # thumbnail's) does not count.
    scan = jpeg_scan_start(data)
    if scan is None:
        return "JPEG cut short before its image data"
    if data.find(b"\xff\xd9", scan) == -1:
        return "JPEG cut short: no end-of-image marker"
    return None


def _check_gif(data: ByteView) -> str | None:
    if not data[-16:].rstrip(b"\x00").endswith(b";"):
        return "GIF cut short: no trailer"
    return None


def _check_bmp(data: ByteView) -> str | None:
    if len(data) < 26:
        return "BMP cut short inside its header"
    size, _, pixels = struct.unpack("<IIi", data[2:14])
    if len(data) < size or not 0 < pixels < len(data):
        return f"BMP cut short: {len(data)} bytes of the {max(size, pixels)} its header announces"
    return None


def _check_tiff(data: ByteView) -> str | None:
    order = "<" if data[:2] == b"II" else ">"
    if len(data) < 8:
        return "TIFF cut short inside its header"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    if ifd + 2 > len(data):
        return "TIFF cut short: its first directory lies past the end"
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    if ifd + 2 + 12 * count > len(data):
        return "TIFF cut short inside its first directory"
    # A single strip (tags 273 StripOffsets, 279 StripByteCounts, one value each) must end
    # inside the file; several strips' lists live elsewhere and are not followed.
    strip: dict[int, int] = {}
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        tag, kind, values = struct.unpack(order + "HHI", data[entry : entry + 8])
        if tag in (273, 279) and values == 1 and kind in (3, 4):
            fmt, end = (order + "H", entry + 10) if kind == 3 else (order + "I", entry + 12)
            (strip[tag],) = struct.unpack(fmt, data[entry + 8 : end])
    if 273 in strip and 279 in strip and strip[273] + strip[279] > len(data):
        return f"TIFF cut short: {len(data)} bytes of the {strip[273] + strip[279]} its strip needs"
    return None


_CHECKS = {
    "image/png": _check_png,
    "image/jpeg": _check_jpeg,
    "image/webp": _check_webp,
    "image/gif": _check_gif,
    "image/bmp": _check_bmp,
    "image/tiff": _check_tiff,
}


def problem_in(data: ByteView, kind: str) -> str | None:
    """What makes ``data`` (an image of sniffed type ``kind``) incomplete, or None.

    Structural checks only (lengths, markers, PNG's CRCs), no decoding: a file cut short
    or corrupted in transit is caught; a well-formed file of bad pixels is not. A JPEG may
    carry bytes after its end marker (phones append motion-photo video there).
    """
    check = _check_jpeg_input if kind == "image/jpeg" else _CHECKS.get(kind)
    try:
        return check(data) if check is not None else None
    except struct.error:
        return f"{kind.removeprefix('image/').upper()} cut short inside its header"


def verify_image(
    data: bytes,
    *,
    what: str = "output",
    max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    expected: frozenset[str] = EXPECTED_TYPES,
) -> str:
    """Return the MIME type of ``data`` if it is a whole image of an expected type.

    Args:
        data: the file's bytes.
        what: names the output in the error (a file path, a prediction id).
        max_bytes: the size cap.
        expected: the acceptable MIME types.

    Raises:
        OutputInvalid: empty, too large, not an expected image type, or incomplete.
    """
    if not data:
        raise OutputInvalid(f"{what} is empty")
    if len(data) > max_bytes:
        raise OutputInvalid(f"{what} is {len(data)} bytes, over the {max_bytes}-byte cap")
    kind = sniff_image_type(data[:SNIFF_BYTES])
    if kind is None or kind not in expected:
        start = data[:24].decode("latin-1").encode("unicode_escape").decode("ascii")
        shown = kind or f"not an image (starts {start!r})"
        raise OutputInvalid(f"{what} is {shown}; expected {', '.join(sorted(expected))}")
    problem = _CHECKS[kind](data) if kind in _CHECKS else None
    if problem is not None:
        raise OutputInvalid(f"{what}: {problem}")
    return kind


def verify_image_file(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    expected: frozenset[str] = EXPECTED_TYPES,
) -> str:
    """:func:`verify_image` on a file (blocking: run it in a worker thread).

    Raises:
        OutputInvalid: as :func:`verify_image`, or the file is missing or unreadable.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise OutputInvalid(f"{path} is {size} bytes, over the {max_bytes}-byte cap")
        data = path.read_bytes()
    except OSError as err:
        raise OutputInvalid(f"{path} cannot be read back: {err.strerror or err}") from err
    return verify_image(data, what=str(path), max_bytes=max_bytes, expected=expected)


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def looks_whole(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES) -> bool:
    """A cheap re-check of a file verified when it was delivered (blocking): it is there,
    within the cap, starts as an expected image and ends as one (PNG's IEND chunk, JPEG's
    EOI, WEBP's announced length). Reads two small pieces, not the whole file, so resuming a
    large catalog does not read every output again."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(SNIFF_BYTES)
            handle.seek(max(0, size - 64))
            tail = handle.read(64)
    except OSError:
        return False
    if not 0 < size <= max_bytes:
        return False
    kind = sniff_image_type(head)
    if kind == "image/png":
        return tail.endswith(_PNG_END)
    if kind == "image/jpeg":
        return tail.rstrip(b"\x00").endswith(b"\xff\xd9")
    if kind == "image/webp":
        riff: int = struct.unpack("<I", head[4:8])[0]
        return size >= 8 + riff
    return False
