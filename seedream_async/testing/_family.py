"""The models the simulated API serves, and what each accepts and costs.

Written from the same public sources as the client's table, but on its own: the simulator
is the client's counterpart, so it never imports the client's table or validation (only
``_constants``' numbers). Sources, read 2026-12-03:

* Atlas Cloud's model pages, https://www.atlascloud.ai/models/<model id> (prices).
* Atlas Cloud's ComfyUI nodes, AtlasCloudAI/atlascloud_comfyui,
  src/atlascloud_comfyui/nodes/image/seedream_*.py (fields, counts, v5.0-lite's sizes).
* Atlas Cloud's skills repository, AtlasCloudAI/atlas-cloud-skills,
  atlas-cloud/references/models.md (per-image prices for v4.5 and v5.0-lite).
* ByteDance ModelArk's Seedream 4.0 / 4.5 / 5.0-lite parameter rules (pixel ranges,
  references + outputs <= 15).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .._base._constants import MAX_ASPECT_RATIO, MAX_PIXELS, MIN_ASPECT_RATIO, MIN_PIXELS

__all__ = ["SERVED", "Served"]

SizeCheck = Callable[[int, int], "str | None"]


def _aspect(width: int, height: int) -> str | None:
    if height == 0 or not MIN_ASPECT_RATIO <= width / height <= MAX_ASPECT_RATIO:
        return f"{width}*{height}: aspect ratio must be within [1/16, 16]"
    return None


def _by_pixels(width: int, height: int) -> str | None:
    pixels = width * height
    if not MIN_PIXELS <= pixels <= MAX_PIXELS:
        return (
            f"{width}*{height} has {pixels} pixels; total pixels must be within "
            f"[{MIN_PIXELS}, {MAX_PIXELS}]"
        )
    return _aspect(width, height)


def _by_side(width: int, height: int) -> str | None:
    if not (1024 <= width <= 4096 and 1024 <= height <= 4096):
        return f"{width}*{height}: width and height must each be within [1024, 4096]"
    return None


_LITE_SIZES = frozenset(
    {
        "2048*2048",
        "2304*1728",
        "1728*2304",
        "2848*1600",
        "1600*2848",
        "2496*1664",
        "1664*2496",
        "3136*1344",
        "3072*3072",
        "3456*2592",
        "2592*3456",
        "4096*2304",
        "2304*4096",
        "2496*3744",
        "3744*2496",
        "4704*2016",
    }
)


def _listed(width: int, height: int) -> str | None:
    if f"{width}*{height}" not in _LITE_SIZES:
        return f"{width}*{height} is not a supported size"
    return None


@dataclass(frozen=True, kw_only=True)
class Served:
    """What one model accepts and how it bills.

    Args:
        references: the (least, most) reference images; (0, 0) for a text-only model.
        sequence: the (least, most) ``max_images``, or None when the model takes none.
        size_check: why a ``W*H`` size is refused, or None.
        choices: extra fields by dotted path, each with its accepted values.
        price: US dollars per run, or per generated image when ``per_image``.
        per_image: bill each generated image instead of each run.
    """

    references: tuple[int, int]
    sequence: tuple[int, int] | None
    size_check: SizeCheck
    choices: dict[str, frozenset[str]] = field(default_factory=dict)
    price: float
    per_image: bool = False

    def bill(self, *, images: int, failed: bool) -> float:
        """What one prediction costs: per run whatever its outcome; per image, only the
        images a prediction that did not fail returned."""
        if not self.per_image:
            return self.price
        return 0.0 if failed else self.price * images


_LITE_CHOICES = {
    "output_format": frozenset({"jpeg", "png"}),
    "optimize_prompt_options.mode": frozenset({"standard", "fast"}),
}

SERVED: dict[str, Served] = {
    "bytedance/seedream-v4.5/edit-sequential": Served(
        references=(1, 10), sequence=(1, 15), size_check=_by_pixels, price=0.036
    ),
    "bytedance/seedream-v4.5/edit": Served(
        references=(1, 10), sequence=None, size_check=_by_pixels, price=0.036
    ),
    "bytedance/seedream-v4.5/sequential": Served(
        references=(0, 0), sequence=(1, 15), size_check=_by_pixels, price=0.036, per_image=True
    ),
    "bytedance/seedream-v4.5": Served(
        references=(0, 0), sequence=None, size_check=_by_pixels, price=0.036, per_image=True
    ),
    "bytedance/seedream-v4/edit-sequential": Served(
        references=(1, 10), sequence=(1, 14), size_check=_by_side, price=0.027
    ),
    "bytedance/seedream-v4/sequential": Served(
        references=(0, 0), sequence=(1, 14), size_check=_by_side, price=0.024
    ),
    "bytedance/seedream-v5.0-lite/edit-sequential": Served(
        references=(1, 14),
        sequence=(1, 15),
        size_check=_listed,
        choices=_LITE_CHOICES,
        price=0.032,
        per_image=True,
    ),
}
"""Every model id the simulator serves; any other answers 422."""

# References plus generated images in one request (ModelArk's rule, every sequential model).
MAX_IN_AND_OUT = 15
