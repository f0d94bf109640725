"""Tell an image's type from its first bytes, never from its file name."""

from __future__ import annotations

__all__ = ["SNIFF_BYTES", "sniff_image_type"]

# Enough bytes to tell every signature below apart.
SNIFF_BYTES = 16

_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
}


def sniff_image_type(head: bytes) -> str | None:
    """Return the MIME type that ``head`` (a file's first bytes) starts with, or None.

    Args:
        head: at least the first :data:`SNIFF_BYTES` bytes of the file, when it has as many.
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head.startswith(b"BM"):
        return "image/bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    return None


def extension_for(content_type: str) -> str:
    """Return the file extension, with its dot, for an image MIME type (``.bin`` if unknown)."""
    return _EXTENSIONS.get(content_type.split(";")[0].strip().lower(), ".bin")
