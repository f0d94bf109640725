"""An image's identity is its content: the BLAKE2b digest of its bytes.

An item's fingerprint (what decides whether the journal's row is the same job) is built
from these identities, so touching, copying (without ``-p``), checking out again or moving
unchanged photos changes nothing and bills nothing. Hashing a file costs a read, so digests
are memoised by ``(path, size, mtime, inode, device)``; that tuple is only a speed-up: a
file whose tuple changed is read and hashed again, and a new path with the same bytes
gets the same identity.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections import OrderedDict
from typing import Any

from .._base._exceptions import InvalidImage
from .._base._threads import off_loop
from .._media._inputs import decode_data_uri, is_data_uri

__all__ = ["DigestCache", "file_digest"]

_CHUNK = 1024 * 1024

_StatKey = tuple[str, int, int, int, int]


def file_digest(path: str) -> tuple[_StatKey, str]:
    """Hash the file at ``path`` (blocking: run it in a worker thread).

    Returns its stat key and its BLAKE2b hex digest. The stat is taken from the open file,
    so the two describe the same file even if the path is replaced meanwhile.
    """
    with open(path, "rb") as handle:
        stat = os.fstat(handle.fileno())
        digest = hashlib.blake2b()
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return (path, stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev), digest.hexdigest()


def _absolute(path: str) -> str:
    # String work plus getcwd: cheap enough for the event loop.
    return os.path.abspath(path)


class DigestCache:
    """Content identities of images, memoised by path and stat.

    Args:
        max_entries: paths remembered (least recently used forgotten first).
    """

    def __init__(self, max_entries: int = 65_536) -> None:
        self._max = max_entries
        self._digests: OrderedDict[str, tuple[_StatKey, str]] = OrderedDict()

    def remember(self, path: str, stat: os.stat_result, digest: str) -> None:
        """Record a digest computed elsewhere (the upload pipeline hashes files too)."""
        key = (path, stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev)
        self._store(path, key, digest)

    def _store(self, path: str, key: _StatKey, digest: str) -> None:
        self._digests[path] = (key, digest)
        self._digests.move_to_end(path)
        while len(self._digests) > self._max:
            self._digests.popitem(last=False)

    async def identity(self, image: Any) -> str:
        """The identity of one reference image: ``url:<url>`` for a URL (the content behind
        it is the host's to change), ``blake2b:<hex>`` for bytes or a file, and
        ``missing:<path>`` for a file that cannot be read (the item fails on it later)."""
        if isinstance(image, bytes | bytearray | memoryview):
            return "blake2b:" + hashlib.blake2b(bytes(image)).hexdigest()
        text = os.fspath(image) if isinstance(image, os.PathLike) else str(image)
        if text.startswith(("http://", "https://")):
            return "url:" + text
        if is_data_uri(text):
            # The image's content, as for a file: inlining it does not make it another job.
            try:
                content = decode_data_uri(text, name="image")
            except InvalidImage:  # the item fails on it later; still one stable identity
                content = text.encode()
            return "blake2b:" + hashlib.blake2b(content).hexdigest()
        path = _absolute(text)
        known = self._digests.get(path)
        try:
            if known is not None:
                stat = await off_loop(functools.partial(os.stat, path))
                if (path, stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev) == known[0]:
                    self._digests.move_to_end(path)
                    return "blake2b:" + known[1]
            key, digest = await off_loop(functools.partial(file_digest, path))
        except OSError:
            return f"missing:{path}"
        self._store(path, key, digest)
        return "blake2b:" + digest
