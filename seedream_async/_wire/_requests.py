"""Requests: one prediction of a Seedream model, checked against its row in the table of
models (``_family.py``) before anything is uploaded or paid.

Two ways past the local checks, as openai-python has: ``extra_body`` (fields merged last
into the JSON body) and ``check_limits=False`` (types are still checked, the model's limits
are not). A model id the table does not know is checked as ``check_limits=False`` checks,
with an :class:`~seedream_async.UnknownModelWarning`.
"""

from __future__ import annotations

import warnings
from typing import Any, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .._base._constants import DEFAULT_MODEL, DEFAULT_SIZE, MAX_PROMPT_CHARS, MAX_REQUEST_BYTES
from .._base._exceptions import InvalidInput
from ._family import (
    MODELS,
    ModelSpec,
    UnknownModelWarning,
    generated_problem,
    images_problem,
    model_spec,
    nest_options,
    options_problem,
    parse_size,
    total_problem,
)

__all__ = ["EditRequest", "build_request", "check_params", "check_size", "is_url"]


def is_url(value: object) -> bool:
    """True for an http(s) URL string: the one check of "is this a URL" in the package."""
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def check_size(value: str, model: str = DEFAULT_MODEL) -> str:
    """Check a ``"W*H"`` size against ``model``'s size rule and return it normalised.

    Seedream 4.5's rule is by total pixels (2560x1440 = 3,686,400 to 4096x4096 =
    16,777,216) and aspect ratio (1/16 to 16), not per side; v4 takes 1024..4096 per side,
    v5.0-lite a list of sizes. The rules live in ``_family.py``, with their sources.

    Raises:
        ValueError: naming the size and the rule it breaks.
    """
    parsed = parse_size(value)
    if parsed is None:
        raise ValueError(f"size must look like '2048*2048' (width*height), got {value!r}")
    width, height = parsed
    spec = model_spec(model) or MODELS[DEFAULT_MODEL]
    problem = spec.size.problem(width, height)
    if problem is not None:
        raise ValueError(f"{problem}; try {DEFAULT_SIZE}")
    return f"{width}*{height}"


def _is_data_uri(value: str) -> bool:
    return value[:11].lower() == "data:image/" and ";base64," in value[:100]


def _check_url(index: int, url: str) -> None:
    if not (is_url(url) or _is_data_uri(url)):
        shown = url if len(url) <= 60 else url[:57] + "..."
        raise ValueError(
            f"images[{index}] must be an http(s) URL or a data:image/<format>;base64,... "
            f"URI, got {shown!r}"
        )


def _limits_on(info: ValidationInfo) -> bool:
    context = info.context
    return not (isinstance(context, dict) and context.get("check_limits") is False)


def _rules(info: ValidationInfo) -> ModelSpec | None:
    """The model's row when its limits are checked: None with ``check_limits=False`` or
    for a model id the table does not know (the server judges those)."""
    model = info.data.get("model")
    if not _limits_on(info) or not isinstance(model, str):
        return None
    return model_spec(model)


def _fail(problem: str | None) -> None:
    if problem is not None:
        raise ValueError(problem)


class EditRequest(BaseModel):
    """One prediction of a Seedream model, validated against that model's row.

    The limits below are v4.5 edit-sequential's (the default ``model``); every model in
    ``seedream_async._wire._family.MODELS`` has its own (text-only models take no images, v4 a
    free size, v5.0-lite up to 14 references and its own sizes and options).

    Args:
        prompt: what to do, 1 to 4,000 characters.
        images: 1 to 10 reference image URLs (upload local files with ``client.upload``);
            empty for text-to-image and sequential models.
        size: output ``"W*H"``: 3,686,400 (2560*1440) to 16,777,216 (4096*4096) pixels in
            all, aspect ratio 1/16 to 16 (``"2048x2048"`` is accepted too).
        max_images: images generated in the sequence, 1 to 15; references plus this <= 15.
            Models that generate one image take none.
        seed: a fixed seed, or None / -1 for random.
        enable_base64_output: ask for base64 strings instead of URLs.
        enable_sync_mode: ask the API to answer only when the prediction is done.
        model: the model id; v4.5 edit-sequential unless you say otherwise. An id the
            table does not know is sent unchecked, with an ``UnknownModelWarning``.
        options: the model's own extra fields, checked against its row, nested or by
            dotted path: ``{"output_format": "png", "optimize_prompt_options.mode": "fast"}``.
        extra_body: fields sent as they are, merged last into the JSON body (so they win
            over the fields above): parameters this client does not know yet. Values must
            be JSON.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = DEFAULT_MODEL
    prompt: str
    images: list[str] = Field(default_factory=list)
    size: str = DEFAULT_SIZE
    max_images: int = Field(default=1, strict=True)
    seed: int | None = Field(default=None, strict=True)
    enable_base64_output: bool = Field(default=False, strict=True)
    enable_sync_mode: bool = Field(default=False, strict=True)
    options: dict[str, JsonValue] | None = Field(default=None, exclude=True)
    extra_body: dict[str, JsonValue] | None = Field(default=None, exclude=True)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if model_spec(value) is None:
            warnings.warn(
                f"model {value!r} is not in seedream_async's table of models: it is sent "
                "unchecked (as with check_limits=False) and priced at the client's price",
                UnknownModelWarning,
                stacklevel=2,
            )
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str, info: ValidationInfo) -> str:
        if _rules(info) is None:
            return value
        if not value:
            raise ValueError("prompt is empty; it needs at least 1 character")
        if not value.strip():
            raise ValueError("prompt is blank")
        if len(value) > MAX_PROMPT_CHARS:
            raise ValueError(
                f"prompt has {len(value):,} characters, at most {MAX_PROMPT_CHARS} allowed"
            )
        return value

    @field_validator("images")
    @classmethod
    def _images(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if (spec := _rules(info)) is not None:
            _fail(images_problem(spec, len(value)))
        for index, url in enumerate(value):
            _check_url(index, url)
        return value

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, tuple | list) and len(value) == 2:
            value = f"{value[0]}*{value[1]}"
        if not isinstance(value, str):
            return value
        if (spec := _rules(info)) is None:
            parsed = parse_size(value)
            return f"{parsed[0]}*{parsed[1]}" if parsed else value
        return check_size(value, spec.id)

    @field_validator("max_images")
    @classmethod
    def _max_images(cls, value: int, info: ValidationInfo) -> int:
        if (spec := _rules(info)) is not None:
            _fail(generated_problem(spec, value))
        return value

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and _limits_on(info) and not -1 <= value <= 2**32 - 1:
            raise ValueError(f"seed {value} is outside -1..{2**32 - 1}")
        return value

    @field_validator("options")
    @classmethod
    def _options(
        cls, value: dict[str, JsonValue] | None, info: ValidationInfo
    ) -> dict[str, JsonValue] | None:
        if value is None:
            return None
        if (spec := _rules(info)) is not None:
            _fail(options_problem(spec, value))
        return cast("dict[str, JsonValue]", nest_options(value))

    @model_validator(mode="after")
    def _total(self, info: ValidationInfo) -> EditRequest:
        spec = model_spec(self.model) if _limits_on(info) else None
        if spec is not None:
            _fail(total_problem(spec, len(self.images), self.max_images))
        inlined = sum(len(image) for image in self.images if not is_url(image))
        if _limits_on(info) and inlined > MAX_REQUEST_BYTES - 64 * 1024:
            raise ValueError(
                f"the inlined images (data URIs) make the request about {inlined / 1e6:.1f} MB, "
                f"over the {MAX_REQUEST_BYTES / 1e6:.0f} MB the API accepts (it answers 413); "
                "upload them instead (a smaller inline_max_bytes, or none)"
            )
        return self

    @property
    def spec(self) -> ModelSpec | None:
        """The model's row in the table, or None for a model id it does not know."""
        return model_spec(self.model)

    def to_payload(self) -> dict[str, Any]:
        """The flat JSON body ``generateImage`` takes: ``seed`` left out when random,
        ``enable_sync_mode`` only when asked for, ``images`` when empty (a text-only
        model), ``max_images`` for a model that takes none; then the model's ``options``,
        then ``extra_body`` merged last."""
        payload = self.model_dump()
        # Only what the user set, plus what Atlas's own v4.5 node sends (model, images,
        # prompt, size, max_images, enable_base64_output): a default the user did not ask
        # for (``seed``, ``enable_sync_mode: false``) is left out, for an API that may
        # validate strictly.
        if payload["seed"] is None:
            del payload["seed"]
        if not payload["enable_sync_mode"]:
            del payload["enable_sync_mode"]
        if not payload["images"]:
            del payload["images"]
        spec = self.spec
        if spec is not None and spec.generated is None:
            del payload["max_images"]
        payload.update(self.options or {})
        payload.update(self.extra_body or {})
        return payload


def build_request(
    key: str | None = None,
    *,
    extra_body: dict[str, Any] | None = None,
    check_limits: bool = True,
    **fields: Any,
) -> EditRequest:
    """Build an :class:`EditRequest`, turning a validation failure into :class:`InvalidInput`.

    The message names the field and why, and the item's ``key`` when there is one.

    Args:
        key: the batch item's key, for messages.
        extra_body: fields merged last into the JSON body, unchecked.
        check_limits: False skips the contract's limits (counts, lengths, the size rule,
            the seed's range) while still checking types; for a server whose limits moved.
        fields: the :class:`EditRequest` fields.
    """
    if extra_body is not None:
        fields["extra_body"] = extra_body
    _gather_options(fields)
    try:
        return EditRequest.model_validate(fields, context={"check_limits": check_limits})
    except ValidationError as err:
        first = err.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "request"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = (
                "unknown edit parameter; to send it anyway, pass it in extra_body "
                f"(extra_body={{{location!r}: ...}})"
            )
        raise InvalidInput(f"{location}: {message}", field=location, key=key) from None


def _gather_options(fields: dict[str, Any]) -> None:
    """A model's own extra field given as a plain parameter (``output_format="png"``)
    goes into ``options``, where its row checks it."""
    spec = model_spec(str(fields.get("model", DEFAULT_MODEL)))
    if spec is None:
        return
    roots = {path.split(".")[0] for path in spec.options} - set(EditRequest.model_fields)
    given = {name: fields.pop(name) for name in roots if name in fields}
    if given:
        options = fields.get("options")
        fields["options"] = {**given, **(options if isinstance(options, dict) else {})}


def check_params(
    *, key: str | None = None, prompt: Any, images: Any, check_limits: bool = True, **params: Any
) -> None:
    """Check every rule of an edit that can be checked before any image is uploaded.

    Local images (paths, bytes) stand in as placeholder URLs, so counts and limits are
    checked exactly as :class:`EditRequest` will check them after upload.

    Raises:
        InvalidInput: naming the field, and ``key`` when given.
    """
    if isinstance(images, str | bytes) or not hasattr(images, "__len__"):
        raise InvalidInput(
            f"images must be a list of URLs, paths or bytes, got {type(images).__name__}",
            field="images",
            key=key,
        )
    stand_ins = [
        image
        if isinstance(image, str) and ("://" in image or _is_data_uri(image))
        else f"https://local.invalid/{index}"
        for index, image in enumerate(images)
    ]
    build_request(key, prompt=prompt, images=stand_ins, check_limits=check_limits, **params)
