"""Is a downloaded output a whole image? Checked before an item counts as delivered.

A storage host can answer 200 with an HTML error page, junk, or an image cut short (a
dropped connection that still closed cleanly). The type is sniffed from the bytes and the
file must be complete: a PNG's chunks (each CRC) through ``IEND``, a JPEG through its
``EOI`` marker, a WEBP as long as its RIFF header says, and within a size cap.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from ._exceptions import OutputInvalid
from ._sniff import SNIFF_BYTES, sniff_image_type

__all__ = ["DEFAULT_MAX_OUTPUT_BYTES", "EXPECTED_TYPES", "verify_image", "verify_image_file"]

DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024
EXPECTED_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})


def _check_png(data: bytes) -> str | None:
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


def _check_jpeg(data: bytes) -> str | None:
    # Some encoders pad after the end marker; the image itself must reach EOI (FF D9).
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "JPEG cut short: no end-of-image marker"
    return None


def _check_webp(data: bytes) -> str | None:
    (size,) = struct.unpack("<I", data[4:8])
    if len(data) < 8 + size:
        return f"WEBP cut short: {len(data)} bytes of the {8 + size} its header announces"
    return None


_CHECKS = {"image/png": _check_png, "image/jpeg": _check_jpeg, "image/webp": _check_webp}


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
