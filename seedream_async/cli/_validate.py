"""Check a manifest without the network: every row, key, parameter and local image."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from pathlib import Path

from .._base._constants import MAX_UPLOAD_BYTES
from .._base._exceptions import InvalidImage, InvalidInput
from .._engine._names import safe_name
from .._media._inputs import check_image, check_shape, decode_data_uri, is_data_uri
from .._network._upload import DEFAULT_ACCEPTED_TYPES
from .._wire._requests import check_params, is_url
from ._manifest import ManifestProblem, ManifestRow, read_rows

__all__ = ["scan"]


def scan(
    path: str | Path,
    *,
    size: str | None = None,
    max_images: int | None = None,
    model: str | None = None,
    check_files: bool = True,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    accepted_types: Collection[str] = DEFAULT_ACCEPTED_TYPES,
) -> Iterator[ManifestRow | ManifestProblem]:
    """Yield each good row and each problem, in file order, sending no request.

    A row is good when it reads, its key names a file safely and is not a repeat, its
    parameters pass the request rules, and (with ``check_files``) each local image exists,
    is not empty, is small enough and is a PNG, JPEG or WEBP by its bytes.

    Args:
        path: the manifest.
        size: the ``size`` of rows that do not set one.
        max_images: the ``max_images`` of rows that do not set one.
        model: the ``model`` of rows that do not set one.
        check_files: also open every local image (each distinct file once).
        max_upload_bytes: the largest image accepted.
        accepted_types: the MIME types accepted, sniffed from the bytes.
    """
    path = Path(path)
    seen: dict[str, int] = {}
    files: dict[tuple[str, bool], str | None] = {}
    for row in read_rows(path, size=size, max_images=max_images, model=model):
        if isinstance(row, ManifestProblem):
            yield row
            continue
        problems = _row_problems(
            path, row, seen, files, check_files, max_upload_bytes, accepted_types
        )
        if problems:
            yield from problems
        else:
            yield row


def _row_problems(
    path: Path,
    row: ManifestRow,
    seen: dict[str, int],
    files: dict[tuple[str, bool], str | None],
    check_files: bool,
    max_upload_bytes: int,
    accepted_types: Collection[str],
) -> list[ManifestProblem]:
    item = row.item
    found: list[tuple[str | None, str]] = []
    try:
        safe_name(item.key)
    except InvalidInput as err:
        found.append(("key", err.message))
    if item.key in seen:
        found.append(("key", f"repeats the key of line {seen[item.key]}"))
    else:
        seen[item.key] = row.line
    try:
        check_params(key=item.key, prompt=item.prompt, images=item.images, **item.request_params())
    except InvalidInput as err:
        found.append((err.field, err.message))
    if check_files:
        limits = item.request_params().get("check_limits", True) is not False
        for position, image in enumerate(item.images):
            if is_url(image) or not isinstance(image, str):
                continue
            if (image, limits) not in files:
                files[image, limits] = _check_file(image, max_upload_bytes, accepted_types, limits)
            if files[image, limits] is not None:
                shown = image if len(image) <= 60 else image[:57] + "..."
                found.append((f"images[{position}]", f"{shown}: {files[image, limits]}"))
    return [
        ManifestProblem(path=path, line=row.line, field=field, message=message, key=item.key)
        for field, message in found
    ]


def _check_file(image: str, max_bytes: int, accepted: Collection[str], limits: bool) -> str | None:
    """What is wrong with a local image (or a data URI) for the API, or None: the checks
    the client makes before paying (type, size, integrity, and with ``limits`` the sides
    and aspect ratio)."""
    try:
        if is_data_uri(image):
            data = decode_data_uri(image, name=image)
        else:
            stat = os.stat(image)
            if not Path(image).is_file():
                return "is not a file"
            if stat.st_size == 0:
                return "is empty"
            if stat.st_size > max_bytes:
                return f"is {stat.st_size:,} bytes, over the {max_bytes:,}-byte upload limit"
            data = Path(image).read_bytes()
        if len(data) > max_bytes:
            return f"holds {len(data):,} bytes, over the {max_bytes:,}-byte upload limit"
        _, shape = check_image(data, name=image, accepted=accepted)
        if limits:
            check_shape(shape, name=image)
    except FileNotFoundError:
        return "does not exist"
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    except InvalidImage as err:
        return err.message.removeprefix(image).strip()
    return None
