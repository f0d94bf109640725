"""Upload each distinct reference image once per batch, however many items share it.

Images are keyed by content (BLAKE2b of the bytes). A path's digest is memoised by
``(path, size, mtime)`` so a logo shared by ten thousand items is read once; each new
file is checked, hashed and (when it fits in a chunk) read in one worker-thread trip. When two
items need the same image at once, the second waits for the first's upload.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from .._exceptions import InvalidImage, SeedreamError
from .._models import ImageRef, is_url
from .._upload import PreparedUpload, inspect_source, probe_file, stat_image
from ._api import EngineAPI

__all__ = ["UploadCache"]


@dataclass(eq=False)
class _Upload:
    done: anyio.Event = field(default_factory=anyio.Event)
    url: str | None = None
    error: SeedreamError | None = None


def _absolute(path: str | os.PathLike[str]) -> str:
    # Pure string work (plus getcwd), so fine on the event loop.
    return os.path.abspath(os.fspath(path))


class UploadCache:
    """Gives each image's URL, uploading every distinct content once.

    Args:
        client: what uploads (the engine's view of the client).
        max_in_flight: the most uploads at once.
        persist: seconds to keep trying an upload that fails for a passing reason
            (429, 5xx, connection) after the retry policy gave up. Uploads cost nothing
            and change nothing: in a rate-limit storm or an outage, keep at it for a while
            rather than fail items that have not cost anything yet.
    """

    def __init__(
        self,
        client: EngineAPI,
        *,
        max_in_flight: int,
        persist: float = 300.0,
        max_entries: int = 65_536,
    ) -> None:
        self._client = client
        self._persist = persist
        self._slots = anyio.CapacityLimiter(max_in_flight)
        # Both least recently used first, at most `max_entries` each: a catalog of a million
        # distinct images keeps the latest ones (an image forgotten is uploaded again, which
        # is free), not a million URLs.
        self._max = max_entries
        self._uploads: OrderedDict[str, _Upload] = OrderedDict()
        # Absolute path -> (size, mtime, digest): a file shared by many items is read once.
        self._paths: OrderedDict[str, tuple[int, int | None, str]] = OrderedDict()

    def __len__(self) -> int:
        """Images remembered (uploads and file identities)."""
        return len(self._uploads) + len(self._paths)

    async def url_for(self, image: ImageRef) -> str:
        """The URL to put in a request for ``image`` (uploading it if no one has yet)."""
        if is_url(image):
            return str(image)
        if isinstance(image, str) and "://" in image:
            raise InvalidImage(f"{image[:60]!r} is not an http(s) URL", field="images")
        digest, prepared = await self._identify(image)
        upload = self._uploads.get(digest)
        if upload is not None:
            self._uploads.move_to_end(digest)
            await upload.done.wait()
        else:
            if prepared is None:  # its upload was forgotten since: read the file again
                digest, prepared = await self._identify(image, fresh=True)
            assert prepared is not None  # a fresh look always prepares the upload
            upload = self._uploads[digest] = _Upload()
            _trim(self._uploads, self._max)
            try:
                async with self._slots:
                    uploaded = await self._client.upload_prepared(
                        prepared, keep_trying_for=self._persist
                    )
                    upload.url = uploaded.download_url
            except SeedreamError as err:
                upload.error = err
                raise
            finally:
                upload.done.set()
        if upload.error is not None:
            raise upload.error
        assert upload.url is not None
        return upload.url

    async def _identify(
        self, image: ImageRef, *, fresh: bool = False
    ) -> tuple[str, PreparedUpload | None]:
        """The image's content digest, and the checked upload unless the path is known
        (and not ``fresh``)."""
        rules = self._client.upload_rules
        if isinstance(image, bytes):
            prepared = await inspect_source(
                image, file_name=None, max_bytes=rules.max_bytes, accepted=rules.accepted
            )
            return hashlib.blake2b(image).hexdigest(), prepared
        path = Path(os.fspath(image))
        key = _absolute(path)
        known = None if fresh else self._paths.get(key)
        if known is not None:
            self._paths.move_to_end(key)
            stat = await stat_image(path)
            if (stat.st_size, stat.st_mtime_ns) == known[:2]:
                return known[2], None
        prepared, digest = await probe_file(
            path, max_bytes=rules.max_bytes, accepted=rules.accepted, digest=True
        )
        assert digest is not None
        assert prepared.size is not None
        self._paths[key] = (prepared.size, prepared.mtime_ns, digest)
        _trim(self._paths, self._max)
        return digest, prepared


def _trim(entries: OrderedDict[str, Any], most: int) -> None:
    while len(entries) > most:
        entries.popitem(last=False)
