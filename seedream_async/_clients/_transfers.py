"""Images in and out: what :class:`AsyncSeedream` gets from this module.

Reference images are checked before any request (type sniffed from the bytes, size, sides,
structure) and uploaded, or inlined as ``data:`` URIs under ``inline_max_bytes``; outputs
are streamed to disk atomically (never with the API key: they live on a storage host) or
decoded from base64.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import httpx

from .._base._constants import MAX_INPUT_SIDE
from .._base._exceptions import InvalidInput, SeedreamError
from .._base._secret import Secret
from .._media._inputs import is_data_uri
from .._network._download import stream_to_file, write_base64
from .._network._driver import Driver
from .._network._endpoint import read_json
from .._network._upload import (
    ImageSource,
    PreparedUpload,
    UploadRules,
    check_data_uri,
    inline_uri,
    inlines,
    inspect_source,
)
from .._wire._parsing import ImageRef, UploadedMedia, read_upload
from .._wire._requests import is_url
from ._options import PerCallOptions

__all__ = ["ImageTransfers"]

_UPLOAD = "/api/v1/model/uploadMedia"


class ImageTransfers(PerCallOptions):
    """Upload, check and download images: the transfers of :class:`AsyncSeedream`."""

    _key: Secret
    _driver: Driver
    _http: httpx.AsyncClient
    max_upload_bytes: int
    accepted_types: frozenset[str]
    inline_max_bytes: int | None
    max_output_bytes: int
    request_deadline: float | None

    @property
    def upload_rules(self) -> UploadRules:
        """What a reference image must be before it is uploaded."""
        return UploadRules(
            max_bytes=self.max_upload_bytes,
            accepted=self.accepted_types,
            inline_max_bytes=self.inline_max_bytes,
        )

    async def upload(
        self,
        source: ImageSource,
        *,
        file_name: str | None = None,
        check_limits: bool = True,
        extra_headers: Mapping[str, str] | None = None,
    ) -> UploadedMedia:
        """Upload one reference image, streamed from disk, and return where it is stored.

        Before any request, the type is sniffed from the bytes, the size checked, the
        sides read from the header (at most 6000 px, aspect ratio 1/16 to 16) and the
        file's structure walked (a file cut short is refused); an async stream's
        integrity cannot be checked before it is sent. :class:`~seedream_async.InvalidImage`
        says what is wrong.

        Args:
            source: a path, the image's bytes, or an async iterable of bytes (sent once,
                never retried, since it cannot be read twice).
            file_name: the name to store it under; the path's name when None.
            check_limits: False skips the sides and aspect ratio (type, size and
                integrity are still checked).
            extra_headers: headers added to this request.
        """
        if extra_headers:
            clone = self._per_call(extra_headers)
            return await clone.upload(source, file_name=file_name, check_limits=check_limits)
        prepared = await inspect_source(
            source,
            file_name=file_name,
            max_bytes=self.max_upload_bytes,
            accepted=self.accepted_types,
            max_side=MAX_INPUT_SIDE if check_limits else None,
        )
        return await self.upload_prepared(prepared)

    async def upload_prepared(
        self, prepared: PreparedUpload, *, keep_trying_for: float | None = None
    ) -> UploadedMedia:
        """Upload a source already checked by ``inspect_source`` or ``probe_file``.

        Args:
            prepared: the checked source.
            keep_trying_for: seconds to go on after the retry policy gave up on a passing
                failure (429, 5xx, connection), backing off between rounds; None does not.
        """
        response = await self._endpoint.send(
            "POST",
            _UPLOAD,
            what=f"upload of {prepared.file_name}",
            operation="upload",
            policy=self.retry,
            upload=prepared,
            max_upload_bytes=self.max_upload_bytes,
            keep_trying_for=keep_trying_for,
        )
        what = f"upload of {prepared.file_name}"
        return read_upload(
            read_json(response, what=what),
            what=what,
            status_code=response.status_code,
            secrets=(self._key.reveal(),),
        )

    async def upload_images(
        self, images: Sequence[ImageRef], *, check_limits: bool = True
    ) -> list[str]:
        """Check every image and upload the local ones at once; return each as it goes in
        the request: a URL, or a ``data:`` URI (given, or inlined under
        ``inline_max_bytes``). ``check_limits=False`` skips the sides and aspect ratio."""
        urls: list[str] = [""] * len(images)
        errors: list[SeedreamError] = []
        rules = self.upload_rules

        async def one(index: int, image: ImageRef, scope: anyio.CancelScope) -> None:
            try:
                if is_data_uri(image):
                    assert isinstance(image, str)
                    await check_data_uri(image, rules, check_limits=check_limits)
                    urls[index] = image
                    return
                prepared = await inspect_source(
                    image,
                    file_name=None,
                    max_bytes=rules.max_bytes,
                    accepted=rules.accepted,
                    max_side=rules.max_side if check_limits else None,
                )
                if inlines(prepared, rules):
                    urls[index] = await inline_uri(prepared)
                else:
                    urls[index] = (await self.upload_prepared(prepared)).download_url
            except SeedreamError as err:  # raised as itself below, not in an ExceptionGroup
                errors.append(err)
                scope.cancel()

        async with anyio.create_task_group() as group:
            for index, image in enumerate(images):
                if is_url(image):
                    urls[index] = str(image)
                else:
                    group.start_soon(one, index, image, group.cancel_scope)
        if errors:
            raise errors[0]
        return urls

    async def download(self, url: str, dest: str | os.PathLike[str]) -> Path:
        """Stream one output to ``dest``, atomically: a temporary name, renamed when complete.

        The API key is never sent with it: outputs live on a storage host. Transport
        errors and 5xx are retried by the retry policy. If ``dest`` has no suffix, one is
        added from the image's sniffed type.

        Raises:
            OutputExpired: the signed URL has expired; fetch the prediction again for fresh ones.
        """
        if not is_url(url):
            raise InvalidInput(f"not an http(s) output URL: {url[:60]!r}", field="url")
        shown = url.split("?")[0]
        # 408, 429 and 5xx from the storage host are retried like any idempotent GET,
        # honouring its Retry-After; 404 and the like are raised. Not gated: the storage
        # host's limits are not the API key's.
        return await self._driver.call(
            lambda: stream_to_file(
                self._http,
                url,
                Path(dest),
                max_bytes=self.max_output_bytes,
                deadline=self.request_deadline,
                http_timeout=self._endpoint.timeout,
            ),
            policy=self.retry,
            what=f"download of {shown}",
            operation="download",
            gated=False,
        )

    async def save_output(self, output: str, dest: str | os.PathLike[str]) -> Path:
        """Save one output, a URL (downloaded) or a base64 image (decoded), to ``dest``."""
        if is_url(output):
            return await self.download(output, dest)
        return await write_base64(output, Path(dest))
