"""Reference images: inspect a source before spending a request, then stream it as multipart.

A file is never read whole into memory: its size comes from ``stat``, its type, sides and
integrity are checked through a read-only memory map (:func:`._inputs.check_image`), and
the body is produced chunk by chunk (aiofiles under asyncio), so an upload's memory is one
chunk whatever the file's size. An async byte stream can be read only once: its type is
sniffed and, when its header arrives within the first 64 KiB, its sides checked; its
integrity cannot be checked before it is sent.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import mmap
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

import anyio

from .._base._constants import INPUT_TYPES, MAX_INPUT_SIDE, MAX_UPLOAD_BYTES
from .._base._exceptions import InvalidImage
from .._base._threads import off_loop
from .._media._files import open_binary
from .._media._header import image_dimensions
from .._media._inputs import (
    Shape,
    as_data_uri,
    check_image,
    check_shape,
    decode_data_uri,
    sniff_accepted,
)
from .._media._sniff import SNIFF_BYTES, extension_for

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_ACCEPTED_TYPES",
    "ImageSource",
    "PreparedUpload",
    "UploadRules",
    "check_data_uri",
    "inline_uri",
    "inlines",
    "inspect_source",
    "multipart_body",
    "probe_file",
    "stat_image",
]

# A file streams in chunks of this size: each chunk is one trip to a worker thread and
# one socket write, so at 256 KiB an 8 MB upload spent a fifth of its time on those
# trips (0.67x an in-memory httpx POST); at 1 MiB the memory per upload is still small.
CHUNK_SIZE = 1024 * 1024

ImageSource = str | os.PathLike[str] | bytes | AsyncIterable[bytes]
"""A reference image: a path, the bytes themselves, or an async stream of bytes."""

DEFAULT_ACCEPTED_TYPES = INPUT_TYPES
# How much of an async stream is read ahead to find its sides (a JPEG's frame header may
# sit behind EXIF data).
_STREAM_HEAD = 64 * 1024


@dataclass(frozen=True, kw_only=True)
class UploadRules:
    """What a reference image must be before it is uploaded (or inlined).

    Args:
        max_bytes: the largest image accepted.
        accepted: the MIME types accepted (sniffed from the bytes).
        max_side: the most pixels a side may have (skipped with ``check_limits=False``).
        inline_max_bytes: local images up to this size go inside the request as data
            URIs instead of being uploaded; None uploads every one.
    """

    max_bytes: int = MAX_UPLOAD_BYTES
    accepted: frozenset[str] = DEFAULT_ACCEPTED_TYPES
    max_side: int = MAX_INPUT_SIDE
    inline_max_bytes: int | None = None


@dataclass(frozen=True)
class PreparedUpload:
    """A checked source, ready to be streamed (possibly more than once, for retries).

    ``stream`` is set for an async byte stream: it can be sent only once, and its size
    is only known once it has been read (it is checked while streaming).
    """

    file_name: str
    content_type: str
    size: int | None
    path: Path | None = None
    data: bytes | None = None
    head: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    mtime_ns: int | None = None
    shape: Shape | None = None


def _stat(path: Path) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise InvalidImage(f"{path} does not exist", field="images") from None
    except OSError as err:
        raise InvalidImage(f"{path} cannot be read: {err.strerror}", field="images") from None


async def stat_image(path: Path) -> os.stat_result:
    """``stat`` a reference image, turning a missing or unreadable file into InvalidImage."""
    return await anyio.to_thread.run_sync(_stat, path)


def _probe(
    path: Path, *, file_name: str | None, max_bytes: int, accepted: Collection[str], digest: bool
) -> tuple[PreparedUpload, str | None]:
    # One trip to a worker thread does it all: a file within one chunk is read whole (the
    # memory bound is a chunk either way) and sent from memory; a larger one is checked
    # through a memory map (only the pages the checks touch are read: for a JPEG its
    # header and tail, for a PNG every chunk, for its CRC), hashed if asked, and later
    # streamed from disk.
    stat = _stat(path)
    if not S_ISREG(stat.st_mode):
        raise InvalidImage(f"{path} is not a regular file", field="images")
    _check_size(stat.st_size, name=str(path), limit=max_bytes)
    name = file_name or path.name
    try:
        with path.open("rb") as handle:
            if stat.st_size <= CHUNK_SIZE:
                data = handle.read()
                kind, shape = check_image(data, name=str(path), accepted=accepted)
                hashed = hashlib.blake2b(data).hexdigest() if digest else None
                prepared = PreparedUpload(
                    name, kind, len(data), path=path, data=data, mtime_ns=stat.st_mtime_ns
                )
                return _shaped(prepared, shape), hashed
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
                kind, shape = check_image(view, name=str(path), accepted=accepted)
                head = view[:SNIFF_BYTES]
            hashed = None
            if digest:
                handle.seek(0)
                hashed = hashlib.file_digest(handle, "blake2b").hexdigest()
    except (OSError, ValueError) as err:  # mmap raises ValueError for a file emptied since
        raise InvalidImage(f"{path} cannot be read: {err}", field="images") from None
    prepared = PreparedUpload(
        name, kind, stat.st_size, path=path, head=head, mtime_ns=stat.st_mtime_ns, shape=shape
    )
    return prepared, hashed


def _shaped(prepared: PreparedUpload, shape: Shape | None) -> PreparedUpload:
    return dataclasses.replace(prepared, shape=shape)


async def probe_file(
    path: Path,
    *,
    file_name: str | None = None,
    max_bytes: int,
    accepted: Collection[str],
    digest: bool = False,
) -> tuple[PreparedUpload, str | None]:
    """Check a file (exists, regular, size, sniffed type) in one worker-thread trip.

    Returns the upload, and with ``digest`` the BLAKE2b of its content.

    Raises:
        InvalidImage: missing, unreadable, empty, too large or not an accepted image.
    """
    return await off_loop(
        functools.partial(
            _probe,
            path,
            file_name=file_name,
            max_bytes=max_bytes,
            accepted=accepted,
            digest=digest,
        )
    )


def _check_head(head: bytes, *, name: str, accepted: Collection[str]) -> str:
    if not head:
        raise InvalidImage(f"{name} is empty (0 bytes)", field="images")
    return sniff_accepted(head, name=name, accepted=accepted)


def _check_size(size: int, *, name: str, limit: int) -> None:
    if size == 0:
        raise InvalidImage(f"{name} is empty (0 bytes)", field="images")
    if size > limit:
        raise InvalidImage(
            f"{name} is {size / 1e6:.1f} MB, over the {limit / 1e6:.1f} MB upload limit",
            field="images",
        )


async def inspect_source(
    source: ImageSource,
    *,
    file_name: str | None,
    max_bytes: int,
    accepted: Collection[str],
    max_side: int | None = None,
) -> PreparedUpload:
    """Check a source's type, size, sides and integrity without reading a file whole;
    raise :class:`InvalidImage`.

    Args:
        source: a path, bytes or an async byte stream.
        file_name: the name to upload under; derived from the path or the type when None.
        max_bytes: the largest upload accepted.
        accepted: the MIME types accepted.
        max_side: the most pixels a side may have (and the aspect ratio 1/16..16 is
            checked); None skips both (``check_limits=False``).
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        name = file_name or "image"
        _check_size(len(data), name=name, limit=max_bytes)
        kind, shape = await anyio.to_thread.run_sync(
            functools.partial(check_image, data, name=name, accepted=accepted)
        )
        prepared = PreparedUpload(_named(name, kind), kind, len(data), data=data, shape=shape)
    elif isinstance(source, str | os.PathLike):
        prepared, _ = await probe_file(
            Path(source), file_name=file_name, max_bytes=max_bytes, accepted=accepted
        )
        name = str(source)
    else:
        prepared = await _inspect_stream(source, file_name or "image", accepted, max_bytes)
        name = prepared.file_name
    if max_side is not None and prepared.shape is not None:
        if prepared.stream is not None:
            try:
                check_shape(prepared.shape, name=name, max_side=max_side)
            except InvalidImage:
                await _close(prepared.stream)
                raise
        else:
            check_shape(prepared.shape, name=name, max_side=max_side)
    return prepared


async def _inspect_stream(
    source: AsyncIterable[bytes], name: str, accepted: Collection[str], max_bytes: int
) -> PreparedUpload:
    iterator = aiter(source)
    head = b""
    while len(head) < _STREAM_HEAD:
        try:
            head += await anext(iterator)
        except StopAsyncIteration:
            break
    try:
        kind = _check_head(head, name=name, accepted=accepted)
        _check_size(len(head), name=name, limit=max_bytes)  # the read-ahead alone
    except InvalidImage:
        await _close(iterator)
        raise
    sides = image_dimensions(head, kind)
    shape = Shape(*sides) if sides is not None else None
    return PreparedUpload(_named(name, kind), kind, None, head=head, stream=iterator, shape=shape)


async def _close(iterator: AsyncIterator[bytes]) -> None:
    """Close an async byte stream we stop reading early, as ``contextlib.aclosing`` would:
    an abandoned async generator is otherwise finalised by the garbage collector, which
    trio reports as an ignored exception."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


async def check_data_uri(uri: str, rules: UploadRules, *, check_limits: bool) -> None:
    """Check an inlined image as an uploaded one is checked (size, type, integrity, and
    with ``check_limits`` its sides and aspect ratio).

    Raises:
        InvalidImage: naming the URI's start and the problem.
    """
    name = f"the data URI {uri[:40]!r}..." if len(uri) > 40 else f"the data URI {uri!r}"
    data = decode_data_uri(uri, name=name)
    if len(data) > rules.max_bytes:
        raise InvalidImage(
            f"{name} holds {len(data) / 1e6:.1f} MB, over the "
            f"{rules.max_bytes / 1e6:.1f} MB the API accepts",
            field="images",
        )
    _, shape = await anyio.to_thread.run_sync(
        lambda: check_image(data, name=name, accepted=rules.accepted)
    )
    if check_limits:
        check_shape(shape, name=name, max_side=rules.max_side)


def inlines(prepared: PreparedUpload, rules: UploadRules) -> bool:
    """Whether ``prepared`` goes in the request as a data URI (``inline_max_bytes``)."""
    limit, size = rules.inline_max_bytes, prepared.size
    return limit is not None and size is not None and size <= limit


async def inline_uri(prepared: PreparedUpload) -> str:
    """``prepared`` as a ``data:`` URI (a file over one chunk is read now)."""
    data = prepared.data
    if data is None:
        assert prepared.path is not None
        data = await anyio.Path(prepared.path).read_bytes()
    return as_data_uri(prepared.content_type, data)


def _named(name: str, kind: str) -> str:
    return name if "." in name else name + extension_for(kind)


def multipart_body(
    upload: PreparedUpload, *, max_bytes: int, chunk_size: int = CHUNK_SIZE
) -> tuple[dict[str, str], AsyncIterator[bytes]]:
    """Headers and a fresh streaming ``multipart/form-data`` body with one part, ``file``.

    ``Content-Length`` is set whenever the size is known, so the server can refuse an
    over-size body before reading it.
    """
    boundary = secrets.token_hex(16)
    safe_name = upload.file_name.replace('"', "_").replace("\r", "_").replace("\n", "_")
    preamble = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
        f"Content-Type: {upload.content_type}\r\n\r\n"
    ).encode()
    epilogue = f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if upload.size is not None:
        headers["Content-Length"] = str(len(preamble) + upload.size + len(epilogue))

    async def body() -> AsyncIterator[bytes]:
        yield preamble
        if upload.data is not None:
            for start in range(0, len(upload.data), chunk_size):
                yield upload.data[start : start + chunk_size]
        elif upload.path is not None:
            async with open_binary(upload.path, "rb") as handle:
                while chunk := await handle.read(chunk_size):
                    yield chunk
        else:
            assert upload.stream is not None
            total = len(upload.head)
            yield upload.head
            try:
                async for chunk in upload.stream:
                    total += len(chunk)
                    if total > max_bytes:
                        raise InvalidImage(
                            f"{upload.file_name} is over the {max_bytes / 1e6:.1f} MB upload limit",
                            field="images",
                        )
                    yield chunk
            finally:
                await _close(upload.stream)
        yield epilogue

    return headers, body()
