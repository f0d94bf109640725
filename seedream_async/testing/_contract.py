"""What the simulated API accepts, written from ``shared/api-contract.md`` on its own.

The simulator is the client's counterpart, not its mirror: it shares no code with the
client's models or sniffing, only the contract's numbers (``_constants.py``), so a test
against it shows the client agrees with the contract, not merely with itself.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass
from typing import Any, Literal

from .._base._constants import (
    DEFAULT_SIZE,
    MAX_ASPECT_RATIO,
    MAX_INPUT_SIDE,
    MAX_PROMPT_CHARS,
    MAX_UPLOAD_BYTES,
    MIN_ASPECT_RATIO,
)
from ._family import MAX_IN_AND_OUT, SERVED, Served

__all__ = [
    "INPUT_TYPES",
    "ContractError",
    "Edit",
    "extension_for",
    "input_problem",
    "sniff",
    "validate_edit",
]

# The contract writes sizes as ``W*H``; nothing else.
_SIZE = re.compile(r"^(\d{1,6})\*(\d{1,6})$")
_SEED_MAX = 2**32 - 1
_BOOLEANS = ("enable_base64_output", "enable_sync_mode")


class ContractError(Exception):
    """A request the API would refuse: the status, the field, and a message naming both."""

    def __init__(self, status: int, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.status = status
        self.field = field
        self.message = f"{field}: {reason}"


@dataclass(frozen=True, kw_only=True)
class Edit:
    """A valid request of a served model, as the simulator needs it."""

    model: str
    prompt: str
    images: tuple[str, ...]
    size: tuple[int, int]
    max_images: int  # the most images it generates (1 for a model that takes none)
    seed: int | None
    base64_output: bool
    sync_mode: bool
    unknown: tuple[str, ...]  # fields the API ignores (an extra_body, a newer parameter)
    served: Served
    output_format: str | None = None  # a model's own output_format choice, when it has one


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _size(value: Any, served: Served) -> tuple[int, int]:
    if not isinstance(value, str) or not (match := _SIZE.match(value)):
        raise ContractError(422, "size", f"must be 'W*H' such as {DEFAULT_SIZE!r}, got {value!r}")
    width, height = int(match[1]), int(match[2])
    problem = served.size_check(width, height)
    if problem is not None:
        raise ContractError(422, "size", problem)
    return width, height


def _images(fields: dict[str, Any], served: Served) -> tuple[str, ...]:
    least, most = served.references
    value = fields.get("images", [] if most == 0 else None)
    if value is None:
        raise ContractError(422, "images", "field required")
    if not isinstance(value, list):
        raise ContractError(422, "images", "must be a list of image URLs")
    if most == 0 and value:
        raise ContractError(422, "images", f"this model takes no images, got {len(value)}")
    if not least <= len(value) <= most:
        raise ContractError(422, "images", f"takes {least} to {most} images, got {len(value)}")
    for index, url in enumerate(value):
        if isinstance(url, str) and url.startswith("data:"):
            problem = _data_uri_problem(url)
            if problem is not None:
                raise ContractError(400, f"images[{index}]", problem)
        elif not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ContractError(
                422, f"images[{index}]", "must be an http or https URL or a data:image URI"
            )
    return tuple(value)


def _max_images(fields: dict[str, Any], served: Served, references: int) -> int:
    if served.sequence is None:
        if fields.get("max_images", 1) != 1:
            raise ContractError(422, "max_images", "this model generates one image")
        return 1
    least, most = served.sequence
    value = fields.get("max_images", 1)
    if not _is_int(value) or not least <= value <= most:
        raise ContractError(422, "max_images", f"must be an integer from {least} to {most}")
    if references + value > MAX_IN_AND_OUT:
        raise ContractError(
            422,
            "max_images",
            f"{references} reference images + {value} generated exceed {MAX_IN_AND_OUT}",
        )
    return int(value)


def _choices(fields: dict[str, Any], served: Served) -> None:
    for path, accepted in served.choices.items():
        value: Any = fields
        for name in path.split("."):
            value = value.get(name) if isinstance(value, dict) else None
        if value is not None and value not in accepted:
            raise ContractError(422, path, f"must be one of {sorted(accepted)}, got {value!r}")


def _served(model: Any) -> Served:
    if model is None:
        raise ContractError(422, "model", "field required")
    served = SERVED.get(model) if isinstance(model, str) else None
    if served is None:
        raise ContractError(
            422, "model", f"{model!r} is not a model this endpoint serves: {', '.join(SERVED)}"
        )
    return served


# -- reference images: ModelArk's input rules ------------------------------------------------
# JPEG, PNG, WEBP, BMP, TIFF, GIF; at most 10 MB; at most 6000 px a side; aspect ratio
# 1/16..16; ``data:image/<fmt>;base64,<...>`` in place of a URL. Written from those rules
# alone: the sides come from each format's header, read here on purpose without the
# client's reader, so a test catches the client drifting from the contract.

INPUT_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif"}
)
_DATA = re.compile(r"data:image/([a-z0-9.+-]+);base64,(.*)", re.DOTALL | re.IGNORECASE)


def _data_uri_problem(uri: str) -> str | None:
    match = _DATA.fullmatch(uri)
    if match is None:
        return "a data URI must be data:image/<format>;base64,<data>"
    try:
        data = base64.b64decode(match[2], validate=True)
    except (binascii.Error, ValueError):
        return "the data URI's base64 does not decode"
    return input_problem(data)


def _sides(data: bytes, kind: str) -> tuple[int, int] | None:
    if kind == "image/png" and data[12:16] == b"IHDR":
        return struct.unpack(">2I", data[16:24])
    if kind == "image/gif":
        return struct.unpack("<2H", data[6:10])
    if kind == "image/bmp":
        width, height = struct.unpack("<2i", data[18:26])
        return width, abs(height)
    if kind == "image/webp":
        return _webp_sides(data)
    if kind == "image/tiff":
        return _tiff_sides(data)
    return _jpeg_sides(data)


def _webp_sides(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + (bits >> 14 & 0x3FFF)
    if chunk == b"VP8 ":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(
            data[28:30], "little"
        ) & 0x3FFF
    return None


def _tiff_sides(data: bytes) -> tuple[int, int] | None:
    endian: Literal["little", "big"] = "little" if data[:2] == b"II" else "big"
    ifd = int.from_bytes(data[4:8], endian)
    found: dict[int, int] = {}
    for n in range(int.from_bytes(data[ifd : ifd + 2], endian)):
        entry = data[ifd + 2 + 12 * n : ifd + 14 + 12 * n]
        tag, kind = int.from_bytes(entry[:2], endian), int.from_bytes(entry[2:4], endian)
        found[tag] = int.from_bytes(entry[8:10] if kind == 3 else entry[8:12], endian)
    return (found[256], found[257]) if 256 in found and 257 in found else None


def _jpeg_sides(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE):
            return int.from_bytes(data[at + 7 : at + 9], "big"), int.from_bytes(
                data[at + 5 : at + 7], "big"
            )
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            at += 1 if marker == 0xFF else 2
            continue
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return None


def input_problem(data: bytes) -> str | None:
    """Why the API would refuse ``data`` as a reference image, or None: its format, size,
    sides (read from the header) or aspect ratio."""
    if len(data) > MAX_UPLOAD_BYTES:
        return f"image is {len(data)} bytes, over {MAX_UPLOAD_BYTES}"
    kind = sniff(data)
    if kind not in INPUT_TYPES:
        return f"image format {kind or 'unknown'} is not one of JPEG, PNG, WEBP, BMP, TIFF, GIF"
    try:
        sides = _sides(data, kind)
    except (struct.error, KeyError, IndexError):
        sides = None
    if sides is None:
        return "image header is unreadable"
    ending = {"image/png": b"IEND\xaeB`\x82", "image/jpeg": b"\xff\xd9", "image/gif": b";"}
    if kind in ending and not data.rstrip(b"\x00").endswith(ending[kind]):
        return "image data is cut short (the decoder found no end of image)"
    width, height = sides
    if not (0 < width <= MAX_INPUT_SIDE and 0 < height <= MAX_INPUT_SIDE):
        return f"image is {width}x{height} px; each side must be within [1, {MAX_INPUT_SIDE}]"
    if not MIN_ASPECT_RATIO <= width / height <= MAX_ASPECT_RATIO:
        return f"image is {width}x{height} px; aspect ratio must be within [1/16, 16]"
    return None


def validate_edit(body: Any) -> Edit:
    """Check a ``generateImage`` body against the model's row in :data:`SERVED`.

    Unknown fields are accepted and ignored (the API may add fields; clients send them in
    an ``extra_body``). The seed's ``{"model": ..., "input": {...}}`` form is read too.

    Raises:
        ContractError: 400 for a body that is not a JSON object, 422 for a broken rule.
    """
    if not isinstance(body, dict):
        raise ContractError(400, "request", "body must be a JSON object")
    fields = dict(body)
    nested = fields.pop("input", None)
    if isinstance(nested, dict) and "prompt" not in fields:
        fields = {**nested, **fields}
    model = fields.get("model")
    served = _served(model)
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ContractError(422, "prompt", "required, a non-empty string")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ContractError(422, "prompt", f"longer than {MAX_PROMPT_CHARS} characters")
    images = _images(fields, served)
    size = _size(fields.get("size", DEFAULT_SIZE), served)
    max_images = _max_images(fields, served, len(images))
    _choices(fields, served)
    seed = fields.get("seed")
    if seed is not None and (not _is_int(seed) or not -1 <= seed <= _SEED_MAX):
        raise ContractError(422, "seed", f"must be an integer from -1 to {_SEED_MAX}")
    for name in _BOOLEANS:
        if name in fields and not isinstance(fields[name], bool):
            raise ContractError(422, name, "must be true or false")
    known = {"model", "prompt", "images", "size", "max_images", "seed", *_BOOLEANS}
    known |= {path.split(".")[0] for path in served.choices}
    return Edit(
        model=str(model),
        prompt=prompt,
        images=images,
        size=size,
        max_images=max_images,
        seed=None if seed in (None, -1) else seed,
        base64_output=fields.get("enable_base64_output") is True,
        sync_mode=fields.get("enable_sync_mode") is True,
        unknown=tuple(sorted(set(fields) - known)),
        served=served,
        output_format=fields.get("output_format") if "output_format" in served.choices else None,
    )


# -- uploads: the API sniffs bytes, it does not trust names ---------------------------------

_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
)
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
}


def sniff(data: bytes) -> str | None:
    """The image MIME type ``data`` starts with, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for offset, magic, kind in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return kind
    return None


def extension_for(content_type: str) -> str:
    """A file extension for a sniffed type."""
    return _EXTENSIONS.get(content_type, ".bin")
