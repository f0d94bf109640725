"""The workloads' items, built the same way in every contender's process.

Item ``i`` has one reference image: its own ``unique-i.png``, or, for a ``shared_fraction``
of the items (spread evenly, Bresenham style), one of ``shared_count`` shared images
(``shared-j.png``), as when many products share one backdrop. Images are small PNGs so
the figures measure the orchestration, not the loopback's bandwidth.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from seedream_async.testing import make_png

__all__ = ["Spec", "from_json", "is_shared", "item_specs", "max_images_of", "prepare_images"]

_SIDE = 64


@dataclass(frozen=True, kw_only=True)
class Spec:
    """One workload, as passed to a contender process (``--spec`` JSON).

    Args:
        n: items.
        image_dir: where the images are.
        shared_fraction: the fraction of items whose image is one of the shared ones.
        shared_count: how many shared images there are.
        max_images: item ``i`` asks for ``max_images[i % len(max_images)]`` images (an
            edit-sequential run grows with it, so this mixes prediction durations).
    """

    n: int
    image_dir: str
    shared_fraction: float = 0.0
    shared_count: int = 8
    max_images: tuple[int, ...] = (1,)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def is_shared(index: int, fraction: float) -> bool:
    """Whether item ``index`` uses a shared image: exactly ``fraction`` of any prefix, rounded."""
    return math.floor((index + 1) * fraction) > math.floor(index * fraction)


def from_json(payload: dict[str, Any]) -> Spec:
    """The :class:`Spec` that :meth:`Spec.to_json` wrote."""
    return Spec(**{**payload, "max_images": tuple(payload.get("max_images", (1,)))})


def max_images_of(spec: Spec, index: int) -> int:
    """Item ``index``'s ``max_images``."""
    return spec.max_images[index % len(spec.max_images)]


def item_specs(spec: Spec) -> Iterator[tuple[str, str, list[str]]]:
    """Yield ``(key, prompt, [image path])`` per item, lazily (``max_images_of`` gives
    each item's ``max_images``; item ``i``'s prompt names ``i``)."""
    folder = Path(spec.image_dir)
    for index in range(spec.n):
        if is_shared(index, spec.shared_fraction):
            image = folder / f"shared-{index % spec.shared_count}.png"
        else:
            image = folder / f"unique-{index}.png"
        yield f"item-{index:06d}", f"Put product {index} on a marble pedestal", [str(image)]


def prepare_images(spec: Spec) -> int:
    """Write every image the workload references (once); return how many are distinct."""
    folder = Path(spec.image_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = set()
    for index in range(spec.n):
        if is_shared(index, spec.shared_fraction):
            name, seed = f"shared-{index % spec.shared_count}", -1 - index % spec.shared_count
        else:
            name, seed = f"unique-{index}", index
        if name in written:
            continue
        path = folder / f"{name}.png"
        if not path.exists():
            # The tEXt label makes every file's bytes distinct, whatever the drawing.
            path.write_bytes(make_png(_SIDE, _SIDE, seed=seed, label=name))
        written.add(name)
    return len(written)
