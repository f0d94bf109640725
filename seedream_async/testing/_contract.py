"""What the simulated API accepts, written from ``shared/api-contract.md`` on its own.

The simulator is the client's counterpart, not its mirror: it shares no code with the
client's models or sniffing, only the contract's numbers (``_constants.py``), so a test
against it shows the client agrees with the contract, not merely with itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .._constants import (
    DEFAULT_MODEL,
    DEFAULT_SIZE,
    MAX_ASPECT_RATIO,
    MAX_GENERATED_IMAGES,
    MAX_PIXELS,
    MAX_PROMPT_CHARS,
    MAX_REFERENCE_IMAGES,
    MAX_TOTAL_IMAGES,
    MIN_ASPECT_RATIO,
    MIN_PIXELS,
)

__all__ = ["ContractError", "Edit", "extension_for", "sniff", "validate_edit"]

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
    """A valid edit-sequential request, as the simulator needs it."""

    model: str
    prompt: str
    images: tuple[str, ...]
    size: tuple[int, int]
    max_images: int
    seed: int | None
    base64_output: bool
    sync_mode: bool
    unknown: tuple[str, ...]  # fields the API ignores (an extra_body, a newer parameter)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _size(value: Any) -> tuple[int, int]:
    if not isinstance(value, str) or not (match := _SIZE.match(value)):
        raise ContractError(422, "size", f"must be 'W*H' such as {DEFAULT_SIZE!r}, got {value!r}")
    width, height = int(match[1]), int(match[2])
    pixels = width * height
    if not MIN_PIXELS <= pixels <= MAX_PIXELS:
        raise ContractError(
            422,
            "size",
            f"{width}*{height} has {pixels} pixels; total pixels must be within "
            f"[{MIN_PIXELS}, {MAX_PIXELS}]",
        )
    if height == 0 or not MIN_ASPECT_RATIO <= width / height <= MAX_ASPECT_RATIO:
        ratio = f"{width}*{height}: aspect ratio must be within [1/16, 16]"
        raise ContractError(422, "size", ratio)
    return width, height


def _images(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ContractError(422, "images", "must be a list of image URLs")
    if not 1 <= len(value) <= MAX_REFERENCE_IMAGES:
        raise ContractError(
            422, "images", f"takes 1 to {MAX_REFERENCE_IMAGES} images, got {len(value)}"
        )
    for index, url in enumerate(value):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ContractError(422, f"images[{index}]", "must be an http or https URL")
    return tuple(value)


def validate_edit(body: Any) -> Edit:
    """Check a ``generateImage`` body against the contract's table.

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
    if model is None:
        raise ContractError(422, "model", "field required")
    if model != DEFAULT_MODEL:
        raise ContractError(422, "model", f"this endpoint serves {DEFAULT_MODEL!r} only")
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ContractError(422, "prompt", "required, a non-empty string")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ContractError(422, "prompt", f"longer than {MAX_PROMPT_CHARS} characters")
    if "images" not in fields:
        raise ContractError(422, "images", "field required")
    images = _images(fields["images"])
    size = _size(fields.get("size", DEFAULT_SIZE))
    max_images = fields.get("max_images", 1)
    if not _is_int(max_images) or not 1 <= max_images <= MAX_GENERATED_IMAGES:
        raise ContractError(
            422, "max_images", f"must be an integer from 1 to {MAX_GENERATED_IMAGES}"
        )
    if len(images) + max_images > MAX_TOTAL_IMAGES:
        raise ContractError(
            422,
            "max_images",
            f"{len(images)} reference images + {max_images} generated exceed {MAX_TOTAL_IMAGES}",
        )
    seed = fields.get("seed")
    if seed is not None and (not _is_int(seed) or not -1 <= seed <= _SEED_MAX):
        raise ContractError(422, "seed", f"must be an integer from -1 to {_SEED_MAX}")
    for name in _BOOLEANS:
        if name in fields and not isinstance(fields[name], bool):
            raise ContractError(422, name, "must be true or false")
    known = {"model", "prompt", "images", "size", "max_images", "seed", *_BOOLEANS}
    return Edit(
        model=model,
        prompt=prompt,
        images=images,
        size=size,
        max_images=max_images,
        seed=None if seed in (None, -1) else seed,
        base64_output=fields.get("enable_base64_output") is True,
        sync_mode=fields.get("enable_sync_mode") is True,
        unknown=tuple(sorted(set(fields) - known)),
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
