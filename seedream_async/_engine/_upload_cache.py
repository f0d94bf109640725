"""Upload each distinct reference image once per batch, however many items share it.

Images are keyed by content (BLAKE2b of the bytes). A path's digest is memoised by
``(path, size, mtime)`` so a logo shared by ten thousand items is read once; each new
file is checked, hashed and (when it fits in a chunk) read in one worker-thread trip. When two
items need the same image at once, the second waits for the first's upload.

Every image is checked before anything is paid for (:mod:`.._inputs`): type, size,
integrity, and (unless the item says ``check_limits=False``) its sides and aspect ratio,
remembered per content so a shared image is read once. ``data:`` URIs are checked the same
way and sent as they are; with ``inline_max_bytes`` small local images become data URIs
instead of uploads.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from .._base._exceptions import InvalidImage, SeedreamError
from .._media._inputs import Shape, check_shape, is_data_uri
from .._network._upload import (
    PreparedUpload,
    check_data_uri,
    inline_uri,
    inlines,
    inspect_source,
    probe_file,
    stat_image,
)
from .._wire._parsing import ImageRef
from .._wire._requests import is_url
from ._api import EngineAPI

__all__ = ["UploadCache"]


@dataclass(eq=False)
class _Upload:
    done: anyio.Event = field(default_factory=anyio.Event)
    url: str | None = None
    error: SeedreamError | None = None
    shape: Shape | None = None


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

    async def url_for(self, image: ImageRef, *, check_limits: bool = True) -> str:
        """The URL to put in a request for ``image`` (uploading it if no one has yet): an
        http(s) URL as it is, a checked data URI as it is, a local image uploaded or, under
        ``inline_max_bytes``, inlined.

        Raises:
            InvalidImage: the image breaks the API's input rules (see :mod:`.._inputs`).
        """
        if is_url(image):
            return str(image)
        rules = self._client.upload_rules
        if is_data_uri(image):
            assert isinstance(image, str)
            await check_data_uri(image, rules, check_limits=check_limits)
            return image
        if isinstance(image, str) and "://" in image:
            raise InvalidImage(f"{image[:60]!r} is not an http(s) URL", field="images")
        digest, prepared = await self._identify(image)
        upload = self._uploads.get(digest)
        if prepared is None and upload is None:  # forgotten since: read the file again
            digest, prepared = await self._identify(image, fresh=True)
        shape = prepared.shape if prepared is not None else upload.shape if upload else None
        if check_limits and shape is not None:
            check_shape(shape, name=_name(image), max_side=rules.max_side)
        if upload is None and prepared is not None and inlines(prepared, rules):
            return await inline_uri(prepared)
        if upload is not None:
            self._uploads.move_to_end(digest)
            await upload.done.wait()
        else:
            assert prepared is not None  # a fresh look always prepares the upload
            upload = self._uploads[digest] = _Upload(shape=shape)
            _trim(self._uploads, self._max)
            try:
                await self._take_slot()
                try:
                    uploaded = await self._client.upload_prepared(
                        prepared, keep_trying_for=self._persist
                    )
                finally:
                    self._slots.release()
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

    async def _take_slot(self) -> None:
        """An upload slot: at once when one is free (``async with`` the limiter would yield
        a whole loop pass first, per upload), else when one is given back."""
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            await self._slots.acquire()

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


def _name(image: ImageRef) -> str:
    return "an image given as bytes" if isinstance(image, bytes) else os.fspath(image)


def _trim(entries: OrderedDict[str, Any], most: int) -> None:
    while len(entries) > most:
        entries.popitem(last=False)
