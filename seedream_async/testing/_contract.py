"""What the simulated API accepts, written from ``shared/api-contract.md`` on its own.

The simulator is the client's counterpart, not its mirror: it shares no code with the
client's models or sniffing, only the contract's numbers (``_constants.py``), so a test
against it shows the client agrees with the contract, not merely with itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .._constants import DEFAULT_SIZE, MAX_PROMPT_CHARS
from ._family import MAX_IN_AND_OUT, SERVED, Served

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
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ContractError(422, f"images[{index}]", "must be an http or https URL")
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
