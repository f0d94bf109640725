"""Saving outputs: stream a URL to disk, or decode a base64 output, always atomically.

A file appears under its final name only once complete (written to a hidden temporary
name beside it, then renamed), so a crash never leaves a truncated image behind a
name a resumed batch would trust.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path

import anyio
import httpx

from ._exceptions import InvalidInput, OutputExpired
from ._files import open_binary
from ._http import status_error
from ._sniff import SNIFF_BYTES, extension_for, sniff_image_type

__all__ = ["stream_to_file", "write_base64"]

# Signed storage URLs answer these once expired (S3 and GCS say 403, some CDNs 410).
_EXPIRED = frozenset({401, 403, 410})


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


async def stream_to_file(http: httpx.AsyncClient, url: str, dest: Path) -> Path:
    """GET ``url`` (no credentials) into ``dest``; return the final path.

    Raises:
        OutputExpired: the storage refused the URL as expired (401, 403, 410).
    """
    await anyio.Path(dest.parent).mkdir(parents=True, exist_ok=True)
    temp = _temporary(dest)
    shown = url.split("?")[0]
    try:
        async with http.stream("GET", url, headers={"Accept": "image/*"}) as response:
            if response.status_code in _EXPIRED:
                raise OutputExpired(
                    f"output URL expired or refused (HTTP {response.status_code}): {shown}"
                )
            if not response.is_success:
                await response.aread()
                raise status_error(response, what=f"download of {shown}")
            head = b""
            async with open_binary(temp, "wb") as handle:
                async for chunk in response.aiter_bytes():
                    if len(head) < SNIFF_BYTES:
                        head += chunk[:SNIFF_BYTES]
                    await handle.write(chunk)
        final = _with_suffix(dest, head, response.headers.get("content-type", ""))
        await anyio.Path(temp).replace(final)
        return final
    finally:
        await _discard(temp)


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
