"""A small pure-Python PNG encoder drawing a product shot: a gradient backdrop, a pedestal
and a coloured object whose hue and position come from the seed."""

from __future__ import annotations

import colorsys
import math
import random
import struct
import zlib

__all__ = ["make_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def make_png(
    width: int = 64, height: int = 64, *, seed: int = 0, label: str | None = None
) -> bytes:
    """Return a valid RGB PNG of ``width`` x ``height`` pixels, the same for the same seed.

    Rows are built from whole spans rather than pixels, so 512x512 takes milliseconds.

    Args:
        width: pixels, at least 1.
        height: pixels, at least 1.
        seed: chooses the backdrop, the object's colour and its position.
        label: stored as a PNG ``tEXt`` comment when given.
    """
    if width < 1 or height < 1:
        raise ValueError(f"PNG size must be at least 1x1, got {width}x{height}")
    rng = random.Random(seed)
    backdrop_hue = rng.random()
    object_colour = bytes(_rgb(rng.random(), 0.75, 0.9))
    pedestal = bytes(_rgb(backdrop_hue, 0.05, 0.55))
    top, bottom = _rgb(backdrop_hue, 0.15, 0.98), _rgb(backdrop_hue, 0.35, 0.7)

    radius = max(1.0, min(width, height) * rng.uniform(0.15, 0.25))
    centre_x = width * rng.uniform(0.35, 0.65)
    pedestal_top = round(height * 0.72)
    centre_y = pedestal_top - radius
    pedestal_left, pedestal_right = round(width * 0.2), round(width * 0.8)

    rows = []
    span = max(1, height - 1)
    for y in range(height):
        t = y / span
        shade = bytes(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        row = bytearray(shade * width)
        if y >= pedestal_top:
            row[pedestal_left * 3 : pedestal_right * 3] = pedestal * (
                pedestal_right - pedestal_left
            )
        dy = y + 0.5 - centre_y
        if abs(dy) < radius:
            half = math.sqrt(radius * radius - dy * dy)
            left = max(0, round(centre_x - half))
            right = min(width, round(centre_x + half))
            if right > left:
                row[left * 3 : right * 3] = object_colour * (right - left)
        rows.append(b"\x00" + bytes(row))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = [_chunk(b"IHDR", header)]
    if label is not None:
        chunks.append(_chunk(b"tEXt", b"Comment\x00" + label.encode("latin-1", "replace")))
    chunks.append(_chunk(b"IDAT", zlib.compress(b"".join(rows), 6)))
    chunks.append(_chunk(b"IEND", b""))
    return _SIGNATURE + b"".join(chunks)
