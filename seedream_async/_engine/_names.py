"""Output file names from item keys: one key, one name, never shared, on any file system.

A plain key (``[A-Za-z0-9_-]``, up to 100 characters, not a Windows device name, not shaped
like one of our hashed names) is its own name. Any other key becomes a cleaned, readable
prefix plus ``-`` and 32 hex digits of its BLAKE2b-128 digest. Plain names never end in
``-`` + 32 hex digits and hashed names always do, so the two kinds cannot meet; two hashed
names meet only if BLAKE2b-128 collides (2**64 work, not something a catalog finds or
anyone crafts). That leaves keys equal but for case (``SKU-1`` / ``sku-1``), one file on
macOS and Windows: :class:`NameRegistry` (or the journal, across runs) compares names with
``str.casefold`` and refuses the later key before anything is paid.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3

from .._base._exceptions import InvalidInput

__all__ = [
    "MAX_KEY_CHARS",
    "NameRegistry",
    "check_key",
    "fold",
    "output_stem",
    "output_stems",
    "safe_name",
]

MAX_KEY_CHARS = 512
_PLAIN = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_HASHED_TAIL = re.compile(r"-[0-9a-f]{32}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{p}{n}" for p in ("COM", "LPT") for n in range(1, 10)}
)


def check_key(key: str) -> None:
    """Refuse a key that cannot name an item's files.

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


def output_stem(key: str) -> str:
    """The file stem for ``key``'s outputs (``<stem>.png``, then ``<stem>.2.png`` ... for
    several): the key itself when plain, else a cleaned prefix and the key's digest.

    Raises:
        InvalidInput: see :func:`check_key`.
    """
    check_key(key)
    if _PLAIN.match(key) and key.upper() not in _RESERVED and not _HASHED_TAIL.search(key):
        return key
    cleaned = _UNSAFE_CHARS.sub("_", key).strip("_")[:60] or "item"
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return f"{cleaned}-{digest}"


def fold(name: str) -> str:
    """The form two names are compared in: equal folds are one file on a case-insensitive
    file system (macOS, Windows)."""
    return name.casefold()


class NameRegistry:
    """One run's keys and their names: a key seen twice, and a second key whose name folds
    to a taken one, are refused (the journal does the same across runs).

    Up to ``memory_cap`` entries live in dicts; past it, every entry moves to a private
    temporary SQLite database (an empty file name: on disk, its page cache capped at about
    1 MB, deleted on close), so a run of millions of items keeps its memory flat.

    Args:
        memory_cap: keys held in memory before spilling to disk.
    """

    def __init__(self, *, memory_cap: int = 20_000) -> None:
        self._cap = memory_cap
        self._owners: dict[str, str] = {}  # folded name -> key
        self._keys: set[str] = set()  # keys being processed or done
        self._disk: sqlite3.Connection | None = None

    def __len__(self) -> int:
        """Entries held in memory (0 once spilled to disk)."""
        return len(self._owners) + len(self._keys)

    @property
    def spilled(self) -> bool:
        """Whether the entries live on disk."""
        return self._disk is not None

    def claim(self, key: str, name: str) -> str | None:
        """Give ``name`` to ``key``; return the other key that holds it already, or None."""
        folded = fold(name)
        if self._disk is None:
            owner = self._owners.setdefault(folded, key)
            self._spill_if_full()
        else:
            self._disk.execute("INSERT OR IGNORE INTO names VALUES (?, ?)", (folded, key))
            row = self._disk.execute("SELECT key FROM names WHERE name = ?", (folded,))
            owner = row.fetchone()[0]
        return None if owner == key else owner

    def add_key(self, key: str) -> bool:
        """Record ``key`` as seen in this run; False if it was seen already."""
        if self._disk is None:
            if key in self._keys:
                return False
            self._keys.add(key)
            self._spill_if_full()
            return True
        cursor = self._disk.execute("INSERT OR IGNORE INTO keys VALUES (?)", (key,))
        return cursor.rowcount == 1

    def discard_key(self, key: str) -> None:
        """Forget that ``key`` was seen (its item comes back later)."""
        if self._disk is None:
            self._keys.discard(key)
        else:
            self._disk.execute("DELETE FROM keys WHERE key = ?", (key,))

    def close(self) -> None:
        """Drop everything (the temporary database is deleted)."""
        self._owners.clear()
        self._keys.clear()
        if self._disk is not None:
            self._disk.close()
            self._disk = None

    def _spill_if_full(self) -> None:
        if len(self) <= self._cap:
            return
        disk = sqlite3.connect("", isolation_level=None)
        disk.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -1024;"
            "CREATE TABLE names (name TEXT PRIMARY KEY, key TEXT NOT NULL) WITHOUT ROWID;"
            "CREATE TABLE keys (key TEXT PRIMARY KEY) WITHOUT ROWID;"
        )
        disk.execute("BEGIN")
        disk.executemany("INSERT INTO names VALUES (?, ?)", self._owners.items())
        disk.executemany("INSERT INTO keys VALUES (?)", ((key,) for key in self._keys))
        disk.execute("COMMIT")
        self._owners, self._keys, self._disk = {}, set(), disk


safe_name = output_stem
"""The name :func:`output_stem` had before keys were checked case-insensitively."""


def output_stems(name: str, count: int) -> list[str]:
    """The file stems of ``count`` outputs of the item named ``name``: ``name``, then
    ``name.2``, ``name.3``, ... Output n has the same name whatever ``max_images`` is, so
    changing it never renames the first image (a key never has a dot, so no clash)."""
    return [name] + [f"{name}.{n}" for n in range(2, count + 1)]
