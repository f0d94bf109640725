"""Just enough multipart/form-data (RFC 7578) to read one uploaded file."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FilePart", "MultipartError", "find_part"]

_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^\s;]+))', re.IGNORECASE)
_PARAM = re.compile(r'\b(name|filename)="((?:[^"\\]|\\.)*)"', re.IGNORECASE)


class MultipartError(ValueError):
    """The body is not multipart/form-data we can read."""


@dataclass(frozen=True, kw_only=True)
class FilePart:
    """One form part.

    Args:
        name: the form field name.
        filename: the file name the client sent, if any.
        content_type: the part's declared type, if any (never trusted).
        data: the part's bytes.
    """

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def find_part(content_type: str, body: bytes, name: str) -> FilePart | None:
    """Return the part called ``name`` of a multipart body, or None when there is none.

    Args:
        content_type: the request's Content-Type header, which carries the boundary.
        body: the whole request body.
        name: the form field to find.
    """
    if not content_type.lower().startswith("multipart/form-data"):
        raise MultipartError("expected a multipart/form-data body")
    match = _BOUNDARY.search(content_type)
    if not match:
        raise MultipartError("multipart/form-data without a boundary")
    delimiter = b"--" + (match[1] or match[2]).encode("latin-1")
    for raw in body.split(delimiter)[1:]:
        if raw.startswith(b"--"):
            break  # the closing delimiter
        head, sep, data = raw.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            continue
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        params = {
            key.lower(): value.replace('\\"', '"')
            for key, value in _PARAM.findall(headers.get("content-disposition", ""))
        }
        if params.get("name") == name:
            return FilePart(
                name=name,
                filename=params.get("filename"),
                content_type=headers.get("content-type"),
                data=data.removesuffix(b"\r\n"),
            )
    return None
