"""Is a reference image one the API will take? Checked before anything is paid for.

ByteDance ModelArk's rules for Seedream's input images (``_constants.py`` has the source):
JPEG, PNG, WEBP, BMP, TIFF or GIF; at most 10 MB; at most 6000 x 6000 px; aspect ratio
1/16 to 16. The API bills a prediction whose reference breaks them (a photo cut to a third
of its bytes, a 20,000 x 20,000 "bomb" PNG were both billed $0.036), so each is checked here
from the bytes: the type sniffed, the sides read from the header (:mod:`._header`, nothing
decoded), and the file's structure walked by the output verifier (:func:`._verify.problem_in`).

``check_limits=False`` skips the numeric limits (sides, aspect), as it does for the
request's; the type and the file's integrity are always checked.

Images may also travel inside the request as ``data:image/<fmt>;base64,...`` URIs: read with
:func:`decode_data_uri`, made with :func:`as_data_uri`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection
from dataclasses import dataclass

from .._base._constants import MAX_ASPECT_RATIO, MAX_INPUT_SIDE, MIN_ASPECT_RATIO
from .._base._exceptions import InvalidImage
from ._header import ByteView, image_dimensions
from ._sniff import SNIFF_BYTES, sniff_image_type
from ._verify import problem_in

__all__ = [
    "Shape",
    "as_data_uri",
    "check_image",
    "check_shape",
    "decode_data_uri",
    "describe_types",
    "is_data_uri",
    "sniff_accepted",
]

_TYPE_NAMES = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/webp": "WEBP",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
    "image/gif": "GIF",
}
_DATA_URI = re.compile(r"^data:(image/[A-Za-z0-9.+-]+)?((?:;[^;,]*)*?);base64,", re.ASCII)


@dataclass(frozen=True)
class Shape:
    """An image's sides in pixels, as its header gives them."""

    width: int
    height: int


def describe_types(accepted: Collection[str]) -> str:
    """``"BMP, GIF, JPEG, ..."``: the accepted MIME types, named for a person."""
    return ", ".join(sorted(_TYPE_NAMES.get(kind, kind) for kind in accepted))


def sniff_accepted(head: bytes, *, name: str, accepted: Collection[str]) -> str:
    """The MIME type ``head`` starts with, if accepted; else :class:`InvalidImage`."""
    kind = sniff_image_type(head[:SNIFF_BYTES])
    if kind is None or kind not in accepted:
        what = f"a {kind} image" if kind else f"not an image (it starts with {head[:8]!r})"
        raise InvalidImage(
            f"{name} is {what}; accepted: {describe_types(accepted)}", field="images"
        )
    return kind


def check_image(data: ByteView, *, name: str, accepted: Collection[str]) -> tuple[str, Shape]:
    """The type and sides of a whole image, checked: accepted type, readable header, and
    structurally complete (not cut short, no bad PNG chunk).

    Raises:
        InvalidImage: naming ``name`` and the problem.
    """
    if not len(data):
        raise InvalidImage(f"{name} is empty (0 bytes)", field="images")
    kind = sniff_accepted(data[:SNIFF_BYTES], name=name, accepted=accepted)
    sides = image_dimensions(data, kind)
    if sides is None:
        label = _TYPE_NAMES.get(kind, kind)
        raise InvalidImage(
            f"{name} is a damaged {label}: its header does not give its size", field="images"
        )
    problem = problem_in(data, kind)
    if problem is not None:
        raise InvalidImage(f"{name} is damaged: {problem}", field="images")
    return kind, Shape(*sides)


def check_shape(shape: Shape, *, name: str, max_side: int = MAX_INPUT_SIDE) -> None:
    """Refuse sides over ``max_side`` or an aspect ratio outside 1/16..16 (the API's rules).

    Raises:
        InvalidImage: naming ``name``, its size and the rule it breaks.
    """
    width, height = shape.width, shape.height
    if width < 1 or height < 1:
        raise InvalidImage(f"{name} claims to be {width}x{height} px", field="images")
    if width > max_side or height > max_side:
        raise InvalidImage(
            f"{name} is {width}x{height} px, over the {max_side}x{max_side} px the API "
            "accepts; scale it down first",
            field="images",
        )
    if not MIN_ASPECT_RATIO <= width / height <= MAX_ASPECT_RATIO:
        raise InvalidImage(
            f"{name} is {width}x{height} px, aspect ratio {width / height:.4g}, outside the "
            "1/16 to 16 the API accepts",
            field="images",
        )


def is_data_uri(value: object) -> bool:
    """True for a ``data:`` URI string (an image inlined in the request)."""
    return isinstance(value, str) and value[:5].lower() == "data:"


def decode_data_uri(uri: str, *, name: str) -> bytes:
    """The bytes of a ``data:image/<fmt>;base64,...`` URI.

    Raises:
        InvalidImage: not an image data URI in base64, or its base64 is broken.
    """
    match = _DATA_URI.match(uri)
    if match is None or match[1] is None:
        raise InvalidImage(
            f"{name} is not a data:image/<format>;base64,... URI (starts {uri[:30]!r})",
            field="images",
        )
    try:
        return base64.b64decode(uri[match.end() :], validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidImage(f"{name} has broken base64: {err}", field="images") from None


def as_data_uri(kind: str, data: bytes) -> str:
    """``data:<kind>;base64,<data>``."""
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"
