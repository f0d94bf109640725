"""Keys named on the command line: ``--only KEY…``, ``--reroll KEY…|FILE``, ``--keys-file``.

A keys file is plain text, one key per line, as the review sheet exports it. Only the line
ending is removed (a key may start or end with a space); blank lines are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["keys_from_args", "read_keys"]


def read_keys(path: Path) -> list[str]:
    """The keys in a keys file, in order, each once.

    Args:
        path: the file (UTF-8; a byte-order mark is ignored).
    """
    text = path.read_text(encoding="utf-8-sig")
    keys: dict[str, None] = {}
    for line in text.splitlines():
        if line.strip():
            keys.setdefault(line)
    return list(keys)


def keys_from_args(values: Iterable[str]) -> list[str]:
    """Keys from command-line values: each is a key, or the path of a keys file.

    A value naming an existing file is read as a keys file; any other value is a key.

    Args:
        values: what followed the option.
    """
    keys: dict[str, None] = {}
    for value in values:
        path = Path(value)
        found = read_keys(path) if path.is_file() else [value]
        for key in found:
            keys.setdefault(key)
    return list(keys)
