"""The Seedream family on Atlas Cloud: one row per model id, the one place its limits live.

Every model is served through the same upload, submit and poll calls; what differs is the
shape of a request (how many reference images, whether ``max_images`` is taken, which sizes,
which extra fields) and how it is billed. Validation (``_requests.EditRequest``), prices and
budgets, the dry run and the manifest all read :data:`MODELS`; the bundled simulator keeps
its own table, written from the same sources (``seedream_async/testing/_family.py``).

A model id not in the table is sent as it is, with an :class:`UnknownModelWarning`, and
checked as ``check_limits=False`` checks: types only, the server judges the rest.

Sources (read 2026-12-03):

* Atlas Cloud model pages, ``https://www.atlascloud.ai/models/<model id>``: the price
  ("$0.036 per run" for v4.5 edit and edit-sequential, "$0.027 per run" for v4
  edit-sequential, "0.032 per run" for v5.0-lite edit-sequential; "up to 15 images in a
  single request" for v4.5 sequential).
* Atlas Cloud's ComfyUI nodes, ``AtlasCloudAI/atlascloud_comfyui``,
  ``src/atlascloud_comfyui/nodes/image/seedream_*.py``: the fields each model's node sends,
  its reference-image count and ``max_images`` range, v5.0-lite's 16 sizes and its
  ``output_format`` / ``optimize_prompt_options.mode`` choices.
* Atlas Cloud's skills repository, ``AtlasCloudAI/atlas-cloud-skills``,
  ``atlas-cloud/references/models.md``: "$0.036/image" for ``bytedance/seedream-v4.5`` and
  "$0.032/image" for the v5.0-lite family (billing per image).
* ByteDance ModelArk (Seedream 4.0 / 4.5 / 5.0-lite, as mirrored by resellers): 4.5's total
  pixel range 2560x1440..4096x4096 and aspect 1/16..16; reference images + generated
  images <= 15; 5.0-lite takes up to 14 reference images.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from .._base._constants import (
    DEFAULT_MODEL,
    MAX_ASPECT_RATIO,
    MAX_PIXELS,
    MIN_ASPECT_RATIO,
    MIN_PIXELS,
)

__all__ = [
    "MODELS",
    "Billing",
    "ModelKind",
    "ModelSpec",
    "SizeRule",
    "UnknownModelWarning",
    "flatten_options",
    "generated_problem",
    "images_problem",
    "model_spec",
    "nest_options",
    "options_problem",
    "parse_size",
    "total_problem",
]


class UnknownModelWarning(UserWarning):
    """A model id the client's table does not know: sent unchecked (``check_limits=False``)."""


class ModelKind(StrEnum):
    """What a model does with its inputs."""

    EDIT = "edit"
    """Reference images in, one image out."""
    EDIT_SEQUENTIAL = "edit-sequential"
    """Reference images in, a sequence of up to ``max_images`` out."""
    SEQUENTIAL = "sequential"
    """Text in, a sequence of up to ``max_images`` out."""
    TEXT_TO_IMAGE = "text-to-image"
    """Text in, one image out."""


class Billing(StrEnum):
    """How a model's price applies."""

    PER_RUN = "per_run"
    """Once per submitted prediction, whatever it returns."""
    PER_IMAGE = "per_image"
    """Once per image a prediction generates."""


_SIZE = re.compile(r"^\s*(\d+)\s*[*xX\u00d7]\s*(\d+)\s*$")


@dataclass(frozen=True, kw_only=True)
class SizeRule:
    """Which ``"W*H"`` sizes a model takes: a pixel range, a per-side range, or a list.

    Args:
        min_pixels: the fewest pixels in all, or None.
        max_pixels: the most pixels in all, or None.
        min_side: the shortest side, or None.
        max_side: the longest side, or None.
        presets: the only sizes taken, when the model has a fixed list.
        summary: the rule in words, for messages.
    """

    min_pixels: int | None = None
    max_pixels: int | None = None
    min_side: int | None = None
    max_side: int | None = None
    min_aspect: float = MIN_ASPECT_RATIO
    max_aspect: float = MAX_ASPECT_RATIO
    presets: tuple[str, ...] = ()
    summary: str = ""

    def problem(self, width: int, height: int) -> str | None:
        """Why ``width*height`` breaks the rule, or None when it does not."""
        size = f"{width}*{height}"
        if self.presets:
            if size in self.presets:
                return None
            return f"{size} is not one of this model's sizes ({', '.join(self.presets)})"
        pixels = width * height
        low, high = self.min_pixels, self.max_pixels
        if (low is not None and pixels < low) or (high is not None and pixels > high):
            return f"{size} is {pixels:,} pixels, outside {self.summary}"
        for side in (width, height):
            if (self.min_side is not None and side < self.min_side) or (
                self.max_side is not None and side > self.max_side
            ):
                return f"{size} has a side of {side}, outside {self.summary}"
        if height == 0 or not self.min_aspect <= width / height <= self.max_aspect:
            ratio = f"{width / height:.4g}" if height else "undefined"
            return f"{size} has aspect ratio {ratio}, outside 1/16 to 16"
        return None


def parse_size(value: str) -> tuple[int, int] | None:
    """``(width, height)`` from ``"W*H"`` (also ``x``, ``X``, the multiplication sign), or None."""
    match = _SIZE.match(value)
    return (int(match[1]), int(match[2])) if match else None


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """One model's request shape and price.

    Args:
        id: the model id sent as ``model``.
        kind: what it does (:class:`ModelKind`).
        min_images: the fewest reference images (0 for text-only models).
        max_images: the most reference images (0: it takes none).
        generated: the ``max_images`` range it takes, or None when it takes no
            ``max_images`` (one image out).
        max_total: the most reference + generated images in one request, or None.
        size: which sizes it takes.
        options: extra fields it takes, by dotted path, each with its allowed values.
        price: US dollars, per run or per image (see ``billing``).
        billing: how ``price`` applies.
        source: where the row comes from.
    """

    id: str
    kind: ModelKind
    min_images: int
    max_images: int
    generated: tuple[int, int] | None
    max_total: int | None
    size: SizeRule
    options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    price: float
    billing: Billing
    source: str

    @property
    def takes_images(self) -> bool:
        """Whether it takes reference images at all."""
        return self.max_images > 0

    def most_generated(self, max_images: int | None) -> int:
        """The most images one request with this ``max_images`` can return."""
        if self.generated is None:
            return 1
        return max(1, max_images or 1)


# -- the rules ------------------------------------------------------------------------------

_V45_SIZE = SizeRule(
    min_pixels=MIN_PIXELS,
    max_pixels=MAX_PIXELS,
    summary="Seedream 4.5's 3,686,400 (2560*1440) to 16,777,216 (4096*4096) pixels",
)
# Seedream 4.0 on Atlas Cloud: a free size, each side 1024..4096 (the table; the
# sibling hosts' 4.0 schemas say the same). ModelArk's own 4.0 rule is by total pixels
# (921,600..16,777,216), which this per-side rule stays inside.
_V4_SIZE = SizeRule(min_side=1024, max_side=4096, summary="Seedream 4.0's 1024 to 4096 per side")
# Seedream 5.0-lite: the 16 sizes Atlas Cloud's own node offers, nothing else.
_V50_LITE_SIZES = (
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
)
_V50_LITE_SIZE = SizeRule(presets=_V50_LITE_SIZES, summary="Seedream 5.0-lite's 16 sizes")

_PAGE = "https://www.atlascloud.ai/models/"
_NODES = "AtlasCloudAI/atlascloud_comfyui src/atlascloud_comfyui/nodes/image/"
_SKILLS = "AtlasCloudAI/atlas-cloud-skills atlas-cloud/references/models.md"


_V45 = "bytedance/seedream-v4.5"
_V4 = "bytedance/seedream-v4"
_LITE = "bytedance/seedream-v5.0-lite"
_ROWS = (
    ModelSpec(
        id=DEFAULT_MODEL,
        kind=ModelKind.EDIT_SEQUENTIAL,
        min_images=1,
        max_images=10,
        generated=(1, 15),
        max_total=15,
        size=_V45_SIZE,
        price=0.036,
        billing=Billing.PER_RUN,
        source=f"{_PAGE}{DEFAULT_MODEL}; {_NODES}seedream_v45_edit_sequential.py",
    ),
    ModelSpec(
        id=f"{_V45}/edit",
        kind=ModelKind.EDIT,
        min_images=1,
        max_images=10,
        generated=None,
        max_total=None,
        size=_V45_SIZE,
        price=0.036,
        billing=Billing.PER_RUN,
        source=f"{_PAGE}{_V45}/edit; {_NODES}seedream_v45_edit.py",
    ),
    ModelSpec(
        id=f"{_V45}/sequential",
        kind=ModelKind.SEQUENTIAL,
        min_images=0,
        max_images=0,
        generated=(1, 15),
        max_total=15,
        size=_V45_SIZE,
        # No price on the page we could read; v4.5's per-image rate (the skills
        # repository), which holds a budget under either rule.
        price=0.036,
        billing=Billing.PER_IMAGE,
        source=f"{_PAGE}{_V45}/sequential; {_NODES}seedream_v45_sequential_t2i.py; {_SKILLS}",
    ),
    ModelSpec(
        id=_V45,
        kind=ModelKind.TEXT_TO_IMAGE,
        min_images=0,
        max_images=0,
        generated=None,
        max_total=None,
        size=_V45_SIZE,
        price=0.036,
        billing=Billing.PER_IMAGE,
        source=f"{_SKILLS}; {_NODES}seedream_v45_t2i.py",
    ),
    ModelSpec(
        id=f"{_V4}/edit-sequential",
        kind=ModelKind.EDIT_SEQUENTIAL,
        min_images=1,
        max_images=10,
        generated=(1, 14),
        max_total=15,
        size=_V4_SIZE,
        price=0.027,
        billing=Billing.PER_RUN,
        source=f"{_PAGE}{_V4}/edit-sequential; {_NODES}seedream_v4_edit_sequential.py",
    ),
    ModelSpec(
        id=f"{_V4}/sequential",
        kind=ModelKind.SEQUENTIAL,
        min_images=0,
        max_images=0,
        generated=(1, 14),
        max_total=15,
        size=_V4_SIZE,
        # The figure; no Atlas Cloud page confirmed it.
        price=0.024,
        billing=Billing.PER_RUN,
        source=f"issue 24's table; {_NODES}seedream_v4_sequential_t2i.py",
    ),
    ModelSpec(
        id=f"{_LITE}/edit-sequential",
        kind=ModelKind.EDIT_SEQUENTIAL,
        min_images=1,
        max_images=14,
        generated=(1, 15),
        max_total=15,
        size=_V50_LITE_SIZE,
        options={
            "output_format": ("jpeg", "png"),
            "optimize_prompt_options.mode": ("standard", "fast"),
        },
        price=0.032,
        billing=Billing.PER_IMAGE,
        source=f"{_PAGE}{_LITE}/edit-sequential; {_NODES}seedream_v50_lite_edit_sequential.py;"
        f" {_SKILLS}",
    ),
)


MODELS: Mapping[str, ModelSpec] = {spec.id: spec for spec in _ROWS}
"""Every model the client knows, by id. v4.5 edit-sequential (``DEFAULT_MODEL``) is the
default; the numbers are easy to change here, in one place."""


def model_spec(model: str) -> ModelSpec | None:
    """The table's row for ``model``, or None for an id it does not know."""
    return MODELS.get(model)


# -- the checks EditRequest runs (pure: each returns why a value breaks the row, or None) ---


def images_problem(spec: ModelSpec, count: int) -> str | None:
    """Why ``count`` reference images do not fit ``spec``, or None."""
    if not spec.takes_images:
        if count == 0:
            return None
        return (
            f"{spec.id} is {spec.kind.value} and takes no reference images, got {count}; "
            "leave images empty"
        )
    if spec.min_images <= count <= spec.max_images:
        return None
    return (
        f"{count} reference images; {spec.id} takes at least {spec.min_images} and at most "
        f"{spec.max_images}"
    )


def generated_problem(spec: ModelSpec, max_images: int) -> str | None:
    """Why ``max_images`` does not fit ``spec``, or None."""
    if spec.generated is None:
        if max_images == 1:
            return None
        return f"{spec.id} generates one image and takes no max_images (got {max_images})"
    low, high = spec.generated
    if low <= max_images <= high:
        return None
    return (
        f"max_images {max_images} must be greater than or equal to {low} and less than or "
        f"equal to {high} for {spec.id}"
    )


def total_problem(spec: ModelSpec, images: int, max_images: int) -> str | None:
    """Why references plus generated images exceed ``spec``'s total, or None."""
    if spec.max_total is None or spec.generated is None or images + max_images <= spec.max_total:
        return None
    return (
        f"{images} reference images + max_images {max_images} = {images + max_images}, "
        f"more than the {spec.max_total} images one {spec.id} request allows"
    )


def flatten_options(options: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``: each option by its dotted path."""
    flat: dict[str, object] = {}
    for name, value in options.items():
        path = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(flatten_options(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def nest_options(options: Mapping[str, object]) -> dict[str, object]:
    """Dotted keys as nested objects: ``{"a.b": 1}`` as ``{"a": {"b": 1}}`` (the wire form)."""
    nested: dict[str, object] = {}
    for path, value in flatten_options(options).items():
        *parents, leaf = path.split(".")
        node = nested
        for name in parents:
            child = node.setdefault(name, {})
            if not isinstance(child, dict):
                raise TypeError(f"option {path!r} conflicts with {name!r}")
            node = child
        node[leaf] = value
    return nested


def options_problem(spec: ModelSpec, options: Mapping[str, object]) -> str | None:
    """Why ``options`` (nested or dotted) do not fit ``spec``'s extra fields, or None."""
    for path, value in flatten_options(options).items():
        allowed = spec.options.get(path)
        if allowed is None:
            known = ", ".join(spec.options) or "none"
            return (
                f"{spec.id} takes no option {path!r} (its options: {known}); "
                "to send it anyway, put it in extra_body"
            )
        if value not in allowed:
            return f"option {path}={value!r} is not one of {', '.join(map(repr, allowed))}"
    return None
