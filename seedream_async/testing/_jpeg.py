"""A tiny pure-Python baseline JPEG encoder: a flat grey image whose level comes from the
seed, with a comment segment (the label) so each output's bytes differ.

ModelArk returns Seedream's outputs as JPEG, so the simulator does too by default. A flat
image needs only each block's DC coefficient, which keeps the encoder to a page.
"""

from __future__ import annotations

import struct

__all__ = ["make_jpeg"]

# Huffman tables of our own (any prefix code is valid JPEG): DC categories 0 (no change)
# and the first block's category; AC has only end-of-block.
_AC_EOB = ("0", 1)


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload


def _dht(table_class: int, symbols: list[int], length: int) -> bytes:
    counts = [0] * 16
    counts[length - 1] = len(symbols)
    return bytes([table_class << 4]) + bytes(counts) + bytes(symbols)


def _bits(value: int, category: int) -> str:
    if category == 0:
        return ""
    if value < 0:
        value += (1 << category) - 1
    return format(value, f"0{category}b")


def make_jpeg(width: int = 64, height: int = 64, *, seed: int = 0, label: str = "") -> bytes:
    """Return a valid greyscale baseline JPEG of ``width`` x ``height`` pixels."""
    level = 40 + seed % 176
    dc = 8 * (level - 128)
    category = abs(dc).bit_length()
    dc_symbols = sorted({0, category})
    codes = {symbol: format(index, "02b") for index, symbol in enumerate(dc_symbols)}
    blocks = -(-width // 8) * -(-height // 8)
    stream = [codes[category] + _bits(dc, category) + _AC_EOB[0]]
    stream.extend([codes[0] + _AC_EOB[0]] * (blocks - 1))
    bits = "".join(stream)
    bits += "1" * (-len(bits) % 8)
    data = bytearray()
    for start in range(0, len(bits), 8):
        byte = int(bits[start : start + 8], 2)
        data.append(byte)
        if byte == 0xFF:
            data.append(0)  # byte stuffing
    return b"".join(
        (
            b"\xff\xd8",
            _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
            _segment(0xFE, label.encode("utf-8")[:60000]),
            _segment(0xDB, b"\x00" + bytes([1] * 64)),
            _segment(0xC0, struct.pack(">BHHBBBB", 8, height, width, 1, 1, 0x11, 0)),
            _segment(0xC4, _dht(0, dc_symbols, 2) + _dht(1, [0], _AC_EOB[1])),
            _segment(0xDA, bytes([1, 1, 0x00, 0, 63, 0])),
            bytes(data),
            b"\xff\xd9",
        )
    )
