"""Upload each distinct reference image once per batch, however many items share it.

Images are keyed by content (BLAKE2b of the bytes). A path's digest is memoised by
``(path, size, mtime)`` so a logo shared by ten thousand items is read once; each new
file is checked, hashed and (when it fits in a chunk) read in one worker-thread trip. When two
items need the same image at once, the second waits for the first's upload.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

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

    def __init__(self, client: EngineAPI, *, max_in_flight: int, persist: float = 300.0) -> None:
        self._client = client
        self._persist = persist
        self._slots = anyio.CapacityLimiter(max_in_flight)
        self._uploads: dict[str, _Upload] = {}
        # Absolute path -> (size, mtime, digest): a file shared by many items is read once.
        self._paths: dict[str, tuple[int, int | None, str]] = {}

    async def url_for(self, image: ImageRef) -> str:
        """The URL to put in a request for ``image`` (uploading it if no one has yet)."""
        if is_url(image):
            return str(image)
        if isinstance(image, str) and "://" in image:
            raise InvalidImage(f"{image[:60]!r} is not an http(s) URL", field="images")
        digest, prepared = await self._identify(image)
        upload = self._uploads.get(digest)
        if upload is not None:
            await upload.done.wait()
        else:
            assert prepared is not None  # a known digest always has its upload entry
            upload = self._uploads[digest] = _Upload()
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

    async def _identify(self, image: ImageRef) -> tuple[str, PreparedUpload | None]:
        """The image's content digest, and the checked upload unless the path is known."""
        rules = self._client.upload_rules
        if isinstance(image, bytes):
            prepared = await inspect_source(
                image, file_name=None, max_bytes=rules.max_bytes, accepted=rules.accepted
            )
            return hashlib.blake2b(image).hexdigest(), prepared
        path = Path(os.fspath(image))
        key = _absolute(path)
        known = self._paths.get(key)
        if known is not None:
            stat = await stat_image(path)
            if (stat.st_size, stat.st_mtime_ns) == known[:2]:
                return known[2], None
        prepared, digest = await probe_file(
            path, max_bytes=rules.max_bytes, accepted=rules.accepted, digest=True
        )
        assert digest is not None
        assert prepared.size is not None
        self._paths[key] = (prepared.size, prepared.mtime_ns, digest)
        return digest, prepared
