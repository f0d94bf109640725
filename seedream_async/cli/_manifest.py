"""Read a manifest (CSV or JSON Lines) one row at a time, naming the line of every problem.

CSV has a header row: ``key,prompt,images[,size,max_images,seed,model,options,extra]``;
several images go in the ``images`` column separated by ``|`` or ``;``, or in columns
``image1`` .. ``imageN``. JSON Lines has one object a line: ``key``, ``prompt``, ``images``
(a list, or a string split like the CSV column) and optional ``size``, ``max_images``,
``seed``, ``model``, ``options``, ``extra``; any other field is passed to the request and
checked like one.

``model`` picks the row's model (v4.5 edit-sequential when absent); text-to-image and
sequential models take no images, so their rows leave ``images`` empty (and a catalog of
them needs no ``images`` column). ``options`` is a JSON object of the model's own fields,
checked against its row in the table (``{"output_format": "png"}`` for v5.0-lite).

``extra`` is a JSON object (in CSV, its JSON text) of fields sent as they are, merged last
into the request body: the request's ``extra_body``, for parameters this client does not
know (``{"output_format": "jpeg"}``).

Relative image paths are read from the manifest's folder; http(s) URLs pass through.
Rows are read lazily, so a manifest of any length is never held in memory.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._base._constants import DEFAULT_MODEL
from .._base._exceptions import SeedreamError
from .._engine._items import ITEM_FIELDS, EditItem
from .._media._inputs import is_data_uri
from .._wire._family import ModelSpec, model_spec
from .._wire._requests import is_url

__all__ = [
    "ManifestError",
    "ManifestProblem",
    "ManifestRow",
    "iter_items",
    "read_rows",
]

_REQUIRED = ("key", "prompt")
_CSV_COLUMNS = frozenset(
    {"key", "prompt", "images", "size", "max_images", "seed", "model", "options", "extra"}
)
_IMAGE_COLUMN = re.compile(r"^image(\d+)$")
_SPLIT = re.compile(r"[|;]")
_JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})


@dataclass(frozen=True, kw_only=True)
class ManifestProblem:
    """One thing wrong with a manifest.

    Args:
        path: the manifest.
        line: the 1-based line the row starts on (the header is line 1 of a CSV).
        field: the offending field or column, when there is one.
        message: what is wrong.
        key: the row's key, when it was read.
    """

    path: Path
    line: int
    field: str | None
    message: str
    key: str | None = None

    def __str__(self) -> str:
        field = f" field '{self.field}':" if self.field else ""
        key = f" (key {self.key!r})" if self.key is not None else ""
        return f"{self.path}:{self.line}:{field} {self.message}{key}"


class ManifestError(SeedreamError):
    """A manifest row cannot be read.

    Attributes:
        problem: the file, line, field and message.
    """

    def __init__(self, problem: ManifestProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True, kw_only=True)
class ManifestRow:
    """One readable row.

    Args:
        line: the 1-based line it starts on.
        item: the edit it asks for.
    """

    line: int
    item: EditItem


class _RowError(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def read_rows(
    path: str | Path,
    *,
    size: str | None = None,
    max_images: int | None = None,
    model: str | None = None,
) -> Iterator[ManifestRow | ManifestProblem]:
    """Yield every row of the manifest, or the problem that keeps it from being read.

    Only the row's shape is checked here (fields present, of the right type); the request
    rules are :func:`seedream_async._wire._parsing.check_params`'s. A problem with the file itself
    (missing, unreadable, a bad CSV header) is yielded once and ends the iteration.

    Args:
        path: a ``.csv`` or ``.jsonl`` file (others are sniffed: ``{`` starts JSON Lines).
        size: the ``size`` of rows that do not set one.
        max_images: the ``max_images`` of rows that do not set one.
        model: the ``model`` of rows that do not set one.
    """
    path = Path(path)
    defaults: dict[str, Any] = {"size": size, "max_images": max_images, "model": model}
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as err:
        yield ManifestProblem(path=path, line=0, field=None, message=f"cannot open: {err}")
        return
    with handle:
        try:
            rows = _jsonl_rows(path, handle) if _is_jsonl(path, handle) else _csv_rows(path, handle)
            for line, fields in rows:
                if isinstance(fields, ManifestProblem):
                    yield fields
                    continue
                key = fields.get("key")
                try:
                    yield ManifestRow(line=line, item=_item(path.parent, fields, defaults))
                except _RowError as err:
                    shown = key if isinstance(key, str) else None
                    yield ManifestProblem(
                        path=path, line=line, field=err.field, message=err.message, key=shown
                    )
        except UnicodeDecodeError as err:
            yield ManifestProblem(path=path, line=0, field=None, message=f"not UTF-8 text: {err}")


def iter_items(
    path: str | Path,
    *,
    size: str | None = None,
    max_images: int | None = None,
    model: str | None = None,
) -> Iterator[EditItem]:
    """Yield the manifest's items lazily; raise :class:`ManifestError` at the first bad row.

    Args:
        path: the manifest.
        size: the ``size`` of rows that do not set one.
        max_images: the ``max_images`` of rows that do not set one.
        model: the ``model`` of rows that do not set one.
    """
    for row in read_rows(path, size=size, max_images=max_images, model=model):
        if isinstance(row, ManifestProblem):
            raise ManifestError(row)
        yield row.item


def _is_jsonl(path: Path, handle: Any) -> bool:
    if path.suffix.lower() in _JSONL_SUFFIXES:
        return True
    if path.suffix.lower() == ".csv":
        return False
    start = handle.read(4096)
    handle.seek(0)
    return bool(start.lstrip().startswith("{"))


def _jsonl_rows(path: Path, handle: Any) -> Iterator[tuple[int, dict[str, Any] | ManifestProblem]]:
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            yield (
                line,
                ManifestProblem(
                    path=path,
                    line=line,
                    field=None,
                    message=f"invalid JSON: {err.msg} (column {err.colno})",
                ),
            )
            continue
        if not isinstance(value, dict):
            yield (
                line,
                ManifestProblem(
                    path=path,
                    line=line,
                    field=None,
                    message=f"expected a JSON object, got {type(value).__name__}",
                ),
            )
            continue
        yield line, value


def _csv_rows(path: Path, handle: Any) -> Iterator[tuple[int, dict[str, Any] | ManifestProblem]]:
    reader = csv.reader(handle)
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        yield 1, ManifestProblem(path=path, line=1, field=None, message="empty file, no header row")
        return
    except csv.Error as err:
        yield 1, ManifestProblem(path=path, line=1, field=None, message=f"bad CSV: {err}")
        return
    problem = _csv_header_problem(path, header)
    if problem is not None:
        yield 1, problem
        return
    line = 2
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield line, ManifestProblem(path=path, line=line, field=None, message=f"bad CSV: {err}")
            return
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            message = f"{len(cells)} cells but the header has {len(header)} columns"
            yield start, ManifestProblem(path=path, line=start, field=None, message=message)
            continue
        yield start, _csv_fields(header, cells + [""] * (len(header) - len(cells)))


def _csv_header_problem(path: Path, header: list[str]) -> ManifestProblem | None:
    """What is wrong with the header row (a missing, unknown or repeated column), if anything."""
    unknown = [
        name for name in header if name not in _CSV_COLUMNS and not _IMAGE_COLUMN.match(name)
    ]
    missing = [name for name in _REQUIRED if name not in header]
    if not (unknown or missing or len(set(header)) != len(header)):
        return None
    if missing:
        message = f"the header row lacks column(s) {', '.join(missing)}"
    elif unknown:
        message = f"unknown column(s) {', '.join(unknown)}"
    else:
        message = "the header row repeats a column"
    return ManifestProblem(
        path=path,
        line=1,
        field=(missing or unknown)[0] if missing or unknown else None,
        message=f"{message}; expected key,prompt,images[,size,max_images,seed,model,"
        "options,extra] (or image1..imageN)",
    )


def _csv_fields(header: list[str], cells: list[str]) -> dict[str, Any]:
    """One data row's fields, by the header's column names (``image1..imageN`` and the
    ``images`` column gathered into ``images``)."""
    index = {name: position for position, name in enumerate(header)}
    image_columns = sorted(
        (int(m[1]), position)
        for position, name in enumerate(header)
        if (m := _IMAGE_COLUMN.match(name))
    )
    fields: dict[str, Any] = {}
    for name in ("key", "prompt", "size", "max_images", "seed", "model", "options", "extra"):
        if name in index and cells[index[name]].strip():
            fields[name] = cells[index[name]].strip()
    images: list[str] = _split(cells[index["images"]]) if "images" in index else []
    images += [cells[position].strip() for _, position in image_columns if cells[position].strip()]
    if images:
        fields["images"] = images
    for name in ("max_images", "seed"):
        if name in fields:
            fields[name] = _csv_int(name, fields[name])
    return fields


def _csv_int(name: str, text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text  # _item reports it, naming the field


def _split(text: str) -> list[str]:
    return [part.strip() for part in _SPLIT.split(text) if part.strip()]


def _item(folder: Path, fields: Mapping[str, Any], defaults: Mapping[str, Any]) -> EditItem:
    key = fields.get("key")
    if isinstance(key, int) and not isinstance(key, bool):
        key = str(key)
    for name in _REQUIRED:
        if fields.get(name) in (None, ""):
            raise _RowError(name, "is missing")
    if not isinstance(key, str):
        raise _RowError("key", f"must be a string, got {type(key).__name__}")
    prompt = fields["prompt"]
    if not isinstance(prompt, str):
        raise _RowError("prompt", f"must be a string, got {type(prompt).__name__}")
    model = fields.get("model", defaults.get("model"))
    if model is not None and not isinstance(model, str):
        raise _RowError("model", f"must be a model id string, got {type(model).__name__}")
    spec = model_spec(model or DEFAULT_MODEL)
    images = _images(folder, fields.get("images"), spec)
    size = fields.get("size", defaults.get("size"))
    if size is not None and not isinstance(size, str):
        raise _RowError("size", f"must be a string like '2048*2048', got {type(size).__name__}")
    # A --max-images default is for rows whose model takes one (not a one-image edit).
    takes_count = spec is None or spec.generated is not None
    max_images = fields.get("max_images", defaults.get("max_images") if takes_count else None)
    if max_images is not None and (not isinstance(max_images, int) or isinstance(max_images, bool)):
        raise _RowError("max_images", f"must be an integer, got {max_images!r}")
    seed = fields.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise _RowError("seed", f"must be an integer, got {seed!r}")
    known = (set(ITEM_FIELDS) - {"params"}) | {"extra"}
    params = {name: value for name, value in fields.items() if name not in known}
    return EditItem(
        key=key,
        prompt=prompt,
        images=images,
        size=size,
        max_images=max_images,
        seed=seed,
        model=model,
        options=_json_object("options", fields["options"]) if "options" in fields else None,
        params=params,
        extra_body=_json_object("extra", fields["extra"]) if "extra" in fields else None,
    )


def _images(folder: Path, raw: Any, spec: ModelSpec | None) -> list[str]:
    if raw is None or raw == [] or raw == "":
        if spec is not None and spec.min_images > 0:
            raise _RowError(
                "images",
                f"is missing ({spec.id} needs at least {spec.min_images} reference image)",
            )
        return []
    if isinstance(raw, str):
        raw = _split(raw)
    if not isinstance(raw, list):
        raise _RowError("images", f"must be a list or a string, got {type(raw).__name__}")
    images: list[str] = []
    for position, image in enumerate(raw):
        if not isinstance(image, str) or not image.strip():
            raise _RowError(f"images[{position}]", "must be a non-empty path or URL string")
        if "\x00" in image:
            # The OS refuses such a path with a bare ValueError; say which row and field.
            raise _RowError(f"images[{position}]", "contains a NUL byte; no file can have it")
        images.append(_resolve(folder, image.strip()))
    return images


def _json_object(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise _RowError(name, f"is not valid JSON ({err.msg})") from None
    if not isinstance(value, dict):
        raise _RowError(name, f"must be a JSON object, got {type(value).__name__}")
    return value


def _resolve(folder: Path, image: str) -> str:
    if is_url(image) or is_data_uri(image):
        return image
    path = Path(image).expanduser()
    return str(path if path.is_absolute() else folder / path)
