"""Names of output files, derived from item keys so none escapes ``out_dir`` or collides."""

from __future__ import annotations

import hashlib
import re

from .._exceptions import InvalidInput

__all__ = ["MAX_KEY_CHARS", "output_stems", "safe_name"]

_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{p}{n}" for p in ("COM", "LPT") for n in range(1, 10)}
)
MAX_KEY_CHARS = 512


def safe_name(key: str) -> str:
    """A file name for ``key``: the key itself when it is plain, else a cleaned form plus
    a short hash of the key, so two keys never share a name and none escapes ``out_dir``.

    Raises:
        InvalidInput: the key is empty, too long, has control characters, or a ``..`` part.
    """
    if not isinstance(key, str) or not key.strip():
        raise InvalidInput("item key is empty", field="key", key=key)
    if len(key) > MAX_KEY_CHARS:
        raise InvalidInput(f"item key is over {MAX_KEY_CHARS} characters", field="key", key=key)
    if any(ord(char) < 32 or ord(char) == 127 for char in key):
        raise InvalidInput("item key has control characters", field="key", key=key)
    if ".." in re.split(r"[/\\]", key):
        raise InvalidInput(
            "item key has a '..' path part; keys name output files and may not climb out of "
            "the output folder",
            field="key",
            key=key,
        )
    if _SAFE.match(key) and key.upper() not in _RESERVED:
        return key
    cleaned = _UNSAFE_CHARS.sub("_", key).strip("_")[:60] or "item"
    digest = hashlib.blake2b(key.encode(), digest_size=4).hexdigest()
    return f"{cleaned}-{digest}"


def output_stems(name: str, count: int) -> list[str]:
    """The file stems of ``count`` outputs of the item named ``name``: ``name``, then
    ``name.2``, ``name.3``, ... Output n has the same name whatever ``max_images`` is, so
    changing it never renames the first image (a key never has a dot, so no clash)."""
    return [name] + [f"{name}.{n}" for n in range(2, count + 1)]
