"""Saving outputs: stream a URL to disk, or decode a base64 output, always atomically.

A file appears under its final name only once complete (written to a hidden temporary
name beside it, then renamed), so a crash never leaves a truncated image behind a
name a resumed batch would trust. A download has one overall deadline and a size cap, and
what arrives must be an image (a storage error page served with 200 is not saved).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path

import anyio
import httpx

from .._base._constants import MAX_OUTPUT_BYTES
from .._base._exceptions import InvalidInput, MalformedResponse, OutputExpired
from .._media._files import open_binary
from .._media._sniff import SNIFF_BYTES, extension_for, sniff_image_type
from ._bounded import bounded
from ._errors import status_error

__all__ = ["stream_to_file", "write_base64"]

# Storage answers these once a URL or its object expired: Atlas Cloud's data-retention
# page says expired media answers 404 (kept 14 days by default); signed URLs on S3 and GCS
# say 403, some CDNs 410. Each is fetched again by id, once (fresh URLs), not re-paid.
_EXPIRED = frozenset({401, 403, 404, 410})


def _temporary(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")


_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tiff", ".bin"})


def _with_suffix(dest: Path, head: bytes, content_type: str) -> Path:
    if dest.suffix.lower() in _IMAGE_SUFFIXES:
        return dest
    return dest.with_name(dest.name + extension_for(sniff_image_type(head) or content_type))


async def _discard(temp: Path) -> None:
    with anyio.CancelScope(shield=True):
        await anyio.Path(temp).unlink(missing_ok=True)


async def stream_to_file(
    http: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    max_bytes: int = MAX_OUTPUT_BYTES,
    deadline: float | None = None,
    http_timeout: httpx.Timeout | None = None,
) -> Path:
    """GET ``url`` (no credentials) into ``dest``; return the final path.

    Args:
        http: the HTTP client.
        url: the output URL.
        dest: where to save it (a suffix is added from the sniffed type when it has none).
        max_bytes: the largest output accepted.
        deadline: seconds the whole download may take, or None.
        http_timeout: the request's httpx timeout; the HTTP client's when None.

    Raises:
        OutputExpired: the storage refused the URL as expired (401, 403, 404, 410).
        MalformedResponse: the answer is larger than ``max_bytes`` or not an image.
    """
    await anyio.Path(dest.parent).mkdir(parents=True, exist_ok=True)
    temp = _temporary(dest)
    shown = url.split("?")[0]
    what = f"download of {shown}"
    request = http.build_request(
        "GET", url, headers={"Accept": "image/*"}, timeout=http_timeout or httpx.USE_CLIENT_DEFAULT
    )
    try:
        async with bounded(request, deadline):
            response = await http.send(request, stream=True)
            try:
                head = await _save_body(response, temp, what, max_bytes)
            finally:
                await response.aclose()
        final = _with_suffix(dest, head, response.headers.get("content-type", ""))
        await anyio.Path(temp).replace(final)
        return final
    finally:
        await _discard(temp)


async def _save_body(response: httpx.Response, temp: Path, what: str, max_bytes: int) -> bytes:
    """Write the body to ``temp`` and return its first bytes, checking status, size, type."""
    if response.status_code in _EXPIRED:
        raise OutputExpired(
            f"output URL expired or refused (HTTP {response.status_code}): "
            f"{what.removeprefix('download of ')}"
        )
    if not response.is_success:
        await response.aread()
        raise status_error(response, what=what)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(response, what, max_bytes)
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind.startswith("text/") or kind == "application/json":
        _check_image(response, b"", what)  # an error page served as 200: not even read
    head = b""
    size = 0
    async with open_binary(temp, "wb") as handle:
        async for chunk in response.aiter_bytes():
            if len(head) < SNIFF_BYTES:
                head += chunk[: SNIFF_BYTES - len(head)]
                if len(head) >= SNIFF_BYTES:
                    _check_image(response, head, what)
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(response, what, max_bytes)
            await handle.write(chunk)
    _check_image(response, head, what)
    return head


def _check_image(response: httpx.Response, head: bytes, what: str) -> None:
    if sniff_image_type(head) is None:
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        raise MalformedResponse(
            f"{what}: the storage answered HTTP {response.status_code} with {kind}, "
            "not an image; nothing was saved",
            status_code=response.status_code,
        )


def _too_large(response: httpx.Response, what: str, max_bytes: int) -> MalformedResponse:
    return MalformedResponse(
        f"{what}: the output is larger than the {max_bytes:,}-byte cap; nothing was saved "
        "(raise AsyncSeedream(max_output_bytes=...) if it is genuine)",
        status_code=response.status_code,
    )


async def write_base64(output: str, dest: Path) -> Path:
    """Decode a base64 output (bare, or a ``data:`` URI) into ``dest``; return the path."""
    try:
        data = base64.b64decode(output.split(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidInput("output is neither a URL nor base64 image data") from err
    final = _with_suffix(dest, data[:SNIFF_BYTES], "")
    await anyio.Path(final.parent).mkdir(parents=True, exist_ok=True)
    temp = _temporary(final)
    try:
        async with open_binary(temp, "wb") as handle:
            await handle.write(data)
        await anyio.Path(temp).replace(final)
        return final
    finally:
        await _discard(temp)
