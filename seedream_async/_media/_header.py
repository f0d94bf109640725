"""An image's width and height, read from its header without decoding a pixel.

One small reader per format the API takes (JPEG, PNG, WEBP, BMP, TIFF, GIF), each from the
format's own specification: PNG's ``IHDR`` (the first chunk), GIF's logical screen
descriptor, BMP's DIB header, WEBP's ``VP8 ``/``VP8L``/``VP8X`` chunk, TIFF's first IFD
(tags 256 and 257), and JPEG's first start-of-frame segment (found by walking the segment
lengths, so a large EXIF block in front costs a few seeks, not a scan). A 20,000 x 20,000
"bomb" is refused from these few bytes, before anything decompresses it.

``data`` is anything sliced into bytes: ``bytes`` or a read-only ``mmap`` of the file.
"""

from __future__ import annotations

import mmap
import struct

__all__ = ["ByteView", "image_dimensions", "jpeg_scan_start"]

ByteView = bytes | mmap.mmap
"""Bytes, or a memory map of a file (sliced, it reads only the pages it touches)."""

# JPEG start-of-frame markers: C0-CF but DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length: TEM, RST0-7, SOI, EOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})


def _png(data: ByteView) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _gif(data: ByteView) -> tuple[int, int] | None:
    if len(data) < 10:
        return None
    width, height = struct.unpack("<HH", data[6:10])
    return width, height


def _bmp(data: ByteView) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:  # BITMAPCOREHEADER: 16-bit sides
        width, height = struct.unpack("<HH", data[18:22])
        return width, height
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # a negative height means top-down rows


def _webp(data: ByteView) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def _tiff(data: ByteView) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    if len(data) < 8:
        return None
    (ifd,) = struct.unpack(order + "I", data[4:8])
    if ifd + 2 > len(data):
        return None
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    sides: dict[int, int] = {}
    for entry in range(ifd + 2, min(ifd + 2 + 12 * count, len(data) - 11), 12):
        tag, kind = struct.unpack(order + "HH", data[entry : entry + 4])
        if tag in (256, 257):
            # SHORT (3) sits in the first two bytes of the value field; LONG (4) fills it.
            fmt = order + ("H" if kind == 3 else "I")
            end = entry + (10 if kind == 3 else 12)
            (sides[tag],) = struct.unpack(fmt, data[entry + 8 : end])
    if 256 in sides and 257 in sides:
        return sides[256], sides[257]
    return None


def _jpeg(data: ByteView) -> tuple[int, int] | None:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _SOF:
            if position + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any frame header: not a valid JPEG
            return None
        position += 2 + length
    return None


def jpeg_scan_start(data: ByteView) -> int | None:
    """Where a JPEG's first top-level start-of-scan segment begins (its image data follows),
    or None when the segments before it are cut short. Segments are skipped by their
    lengths, so an EXIF thumbnail (a whole JPEG inside APP1) is not mistaken for it."""
    position = 2
    try:
        while position + 4 <= len(data):
            if data[position] != 0xFF:
                return None
            marker = data[position + 1]
            if marker == 0xDA:
                return position
            if marker == 0xFF or marker in _STANDALONE:
                position += 1 if marker == 0xFF else 2
                continue
            (length,) = struct.unpack(">H", data[position + 2 : position + 4])
            position += 2 + length
    except (struct.error, IndexError):
        return None
    return None


_READERS = {
    "image/png": _png,
    "image/gif": _gif,
    "image/bmp": _bmp,
    "image/webp": _webp,
    "image/tiff": _tiff,
    "image/jpeg": _jpeg,
}


def image_dimensions(data: ByteView, kind: str) -> tuple[int, int] | None:
    """``(width, height)`` from the header of an image of MIME type ``kind``, or None when
    the header is cut short, malformed, or the type is not one of the six read here."""
    reader = _READERS.get(kind)
    try:
        return reader(data) if reader is not None else None
    except (struct.error, IndexError):
        return None
