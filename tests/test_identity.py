"""Content identity: an image is its bytes, not its path or mtime."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from seedream_async._engine._identity import DigestCache
from seedream_async.testing import make_png

pytestmark = pytest.mark.anyio


async def test_touch_copy_and_move_keep_the_identity(tmp_path: Path) -> None:
    """Touching, copying or moving a file keeps its identity; changing a byte changes it."""
    path = tmp_path / "a.png"
    path.write_bytes(make_png(8, 8, seed=1))
    cache = DigestCache()
    first = await cache.identity(path)
    assert first.startswith("blake2b:")
    os.utime(path, (1, 1))
    assert await cache.identity(path) == first
    copy = Path(shutil.copy(path, tmp_path / "b.png"))
    assert await cache.identity(copy) == first
    moved = path.rename(tmp_path / "moved.png")
    assert await cache.identity(moved) == first
    assert await cache.identity(moved.read_bytes()) == first
    moved.write_bytes(make_png(8, 8, seed=2))
    assert await cache.identity(moved) != first


async def test_a_changed_file_with_the_same_stat_tuple_is_not_trusted_blindly(
    tmp_path: Path,
) -> None:
    """The stat memo is a speed-up keyed by inode too: a file replaced by another one (new
    inode) under the same name, size and mtime is hashed again."""
    path = tmp_path / "a.png"
    path.write_bytes(make_png(8, 8, seed=1))
    cache = DigestCache()
    first = await cache.identity(path)
    stat = path.stat()
    replacement = tmp_path / "new.png"
    replacement.write_bytes(make_png(8, 8, seed=2))
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    replacement.replace(path)
    assert await cache.identity(path) != first


async def test_urls_and_missing_files(tmp_path: Path) -> None:
    """A URL's identity is the URL; a missing file gets a 'missing' identity, not an error."""
    cache = DigestCache()
    assert (
        await cache.identity("https://cdn.example.com/x.png") == "url:https://cdn.example.com/x.png"
    )
    assert (await cache.identity(tmp_path / "nope.png")).startswith("missing:")
