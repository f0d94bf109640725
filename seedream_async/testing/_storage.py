"""Uploaded files: the upload route stores them, storage serves them, submits read them.

A base of :class:`~seedream_async.testing._app.App`; its state is set in ``App.__init__``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ._contract import extension_for, input_problem, sniff
from ._http import Request, Response
from ._ledger import UploadRecord
from ._multipart import MultipartError, find_part
from ._replies import Replies

__all__ = ["FileStore"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FileStore(Replies):
    """The uploaded files by storage path, with their content type."""

    storage_url: str
    _files: dict[str, tuple[bytes, str]]

    async def _upload(self, request: Request) -> Response:
        config = self.config
        try:
            part = find_part(request.headers.get("content-type", ""), request.body, "file")
        except MultipartError as err:
            return self._error(400, str(err))
        if part is None:
            return self._error(400, "multipart body has no part named 'file'", field="file")
        if len(part.data) > config.max_upload_bytes:
            return self._error(413, f"upload is larger than {config.max_upload_bytes} bytes")
        content_type = sniff(part.data)
        if content_type is None or content_type not in config.accepted_types:
            shown = content_type or ("an empty file" if not part.data else "not an image")
            accepted = ", ".join(sorted(config.accepted_types))
            return self._error(415, f"unsupported media: {shown}; accepted: {accepted}")
        digest = hashlib.sha256(part.data).hexdigest()
        name = _UNSAFE.sub("_", (part.filename or "").rsplit("/", 1)[-1]).strip("._")
        name = name or f"file{extension_for(content_type)}"
        path = f"/uploads/{digest[:16]}/{name}"
        self._files[path] = (part.data, content_type)
        url = f"{self.storage_url}{path}"
        self.ledger.record_upload(
            UploadRecord(sha256=digest, size=len(part.data), content_type=content_type, url=url)
        )
        shape = config.shapes.upload
        answer: dict[str, Any]
        if shape == "url":
            answer = {"url": url}
        elif shape == "filename":
            answer = {"download_url": url, "filename": name, "type": content_type}
            answer["size"] = len(part.data)
        else:
            answer = {"download_url": url, "file_name": name, "content_type": content_type}
            answer["size"] = len(part.data)
        return self._json(200, answer)

    def _reference_problem(self, images: tuple[str, ...]) -> str | None:
        for index, url in enumerate(images):
            stored = self._files.get(url.removeprefix(self.storage_url).split("?")[0])
            problem = input_problem(stored[0]) if stored is not None else None
            if problem is not None:
                return f"images[{index}]: {problem}"
        return None
