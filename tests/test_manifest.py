"""Manifest reading and offline validation, in process (``cli/_manifest``, ``cli/_validate``)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from seedream_async.cli._manifest import (
    ManifestError,
    ManifestProblem,
    ManifestRow,
    iter_items,
    read_rows,
)
from seedream_async.cli._validate import scan
from seedream_async.testing import make_png


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def rows(path: Path, **defaults: object) -> list[ManifestRow | ManifestProblem]:
    return list(read_rows(path, **defaults))  # type: ignore[arg-type]


def problems(items: list[ManifestRow | ManifestProblem]) -> list[ManifestProblem]:
    return [row for row in items if isinstance(row, ManifestProblem)]


def test_csv_images_column_split_and_resolved(tmp_path: Path) -> None:
    """`|` and `;` split the images column; paths resolve from the manifest's folder."""
    manifest = write(
        tmp_path / "m.csv",
        "key,prompt,images,size,max_images,seed\n"
        "a,Put it on marble,shoe.png|logo.png,2560*1440,2,7\n"
        "b,Studio light,https://example.com/x.png; sub/y.png,,,\n",
    )
    a, b = (row for row in rows(manifest) if isinstance(row, ManifestRow))
    assert a.line == 2
    assert a.item.images == [str(tmp_path / "shoe.png"), str(tmp_path / "logo.png")]
    assert (a.item.size, a.item.max_images, a.item.seed) == ("2560*1440", 2, 7)
    assert b.item.images == ["https://example.com/x.png", str(tmp_path / "sub" / "y.png")]
    assert (b.item.size, b.item.max_images, b.item.seed) == (None, None, None)


def test_csv_image_columns_and_defaults(tmp_path: Path) -> None:
    """Columns image1..imageN are read in number order; CLI defaults fill unset fields."""
    manifest = write(
        tmp_path / "m.csv",
        "image2,key,prompt,image1\nsecond.png,k,Edit it,first.png\n",
    )
    (row,) = rows(manifest, size="2048*2048", max_images=3)
    assert isinstance(row, ManifestRow)
    assert row.item.images == [str(tmp_path / "first.png"), str(tmp_path / "second.png")]
    assert (row.item.size, row.item.max_images) == ("2048*2048", 3)


def test_csv_multiline_cell_keeps_start_line(tmp_path: Path) -> None:
    """A quoted cell spanning lines does not shift the line numbers of later rows."""
    manifest = write(
        tmp_path / "m.csv",
        'key,prompt,images\na,"two\nlines",x.png\nb,,x.png\n',
    )
    result = rows(manifest)
    assert isinstance(result[0], ManifestRow)
    (problem,) = problems(result)
    assert (problem.line, problem.field, problem.key) == (4, "prompt", "b")


@pytest.mark.parametrize(
    ("header", "field"),
    [
        pytest.param("key,images", "prompt", id="no-prompt"),
        pytest.param("key,prompt,images,colour", "colour", id="unknown"),
    ],
)
def test_csv_bad_header(tmp_path: Path, header: str, field: str) -> None:
    """A bad header is one problem on line 1 naming the column."""
    manifest = write(tmp_path / "m.csv", f"{header}\na,b,c\n")
    (problem,) = rows(manifest)
    assert isinstance(problem, ManifestProblem)
    assert (problem.line, problem.field) == (1, field)
    assert f"m.csv:1: field '{field}'" in str(problem)


def test_jsonl_rows_and_errors(tmp_path: Path) -> None:
    """JSONL: lists or strings of images; every bad line is named with its field."""
    lines = [
        {"key": "ok", "prompt": "p", "images": ["a.png", "https://h/b.png"], "max_images": 2},
        {"key": "str", "prompt": "p", "images": "a.png|b.png"},
        "{not json",
        {"key": "no-images", "prompt": "p"},
        {"key": "bad-max", "prompt": "p", "images": ["a.png"], "max_images": "3"},
        {"key": "bad-seed", "prompt": "p", "images": ["a.png"], "seed": 1.5},
        ["a", "list"],
        {"prompt": "p", "images": ["a.png"]},
        {"key": 42, "prompt": "p", "images": ["a.png"], "enable_base64_output": True},
    ]
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    manifest = write(tmp_path / "m.jsonl", text + "\n\n")
    result = rows(manifest)
    good = [row.item for row in result if isinstance(row, ManifestRow)]
    assert [item.key for item in good] == ["ok", "str", "42"]
    assert good[1].images == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert good[2].params == {"enable_base64_output": True}
    found = {(p.line, p.field) for p in problems(result)}
    assert found == {
        (3, None),
        (4, "images"),
        (5, "max_images"),
        (6, "seed"),
        (7, None),
        (8, "key"),
    }
    invalid = next(p for p in problems(result) if p.line == 3)
    assert "invalid JSON" in str(invalid)
    assert str(invalid).startswith(f"{manifest}:3:")


def test_iter_items_is_lazy_and_raises_at_bad_row(tmp_path: Path) -> None:
    """iter_items is a generator: rows before a bad one come out, then ManifestError."""
    manifest = write(
        tmp_path / "m.jsonl",
        json.dumps({"key": "a", "prompt": "p", "images": ["x.png"]}) + "\n{oops\n",
    )
    items = iter_items(manifest)
    assert isinstance(items, types.GeneratorType)
    assert next(items).key == "a"
    with pytest.raises(ManifestError) as caught:
        next(items)
    assert caught.value.problem.line == 2


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    """A manifest that does not exist is one problem, not a traceback."""
    (problem,) = rows(tmp_path / "nope.csv")
    assert isinstance(problem, ManifestProblem)
    assert "cannot open" in problem.message


def test_scan_checks_params_keys_and_files(tmp_path: Path) -> None:
    """validate's scan: request rules, unsafe and repeated keys, and each local file."""
    (tmp_path / "ok.png").write_bytes(make_png(8, 8))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_bytes(b"hello, not an image")
    lines = [
        {"key": "good", "prompt": "p", "images": ["ok.png", "https://h/x.png"]},
        {"key": "big", "prompt": "p", "images": ["ok.png"], "size": "9000*9000"},
        {"key": "good", "prompt": "p", "images": ["ok.png"]},
        {"key": "../up", "prompt": "p", "images": ["ok.png"]},
        {"key": "missing", "prompt": "p", "images": ["gone.png"]},
        {"key": "empty", "prompt": "p", "images": ["ok.png", "empty.png"]},
        {"key": "text", "prompt": "p", "images": ["text.png"]},
        {"key": "many", "prompt": "p", "images": ["ok.png"] * 11},
    ]
    manifest = write(tmp_path / "m.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    result = list(scan(manifest))
    assert [row.item.key for row in result if isinstance(row, ManifestRow)] == ["good"]
    found = {(p.line, p.field) for p in problems(result)}
    assert found == {
        (2, "size"),
        (3, "key"),
        (4, "key"),
        (5, "images[0]"),
        (6, "images[1]"),
        (7, "images[0]"),
        (8, "images"),
    }
    by_line = {p.line: p.message for p in problems(result)}
    assert "line 1" in by_line[3]
    assert "does not exist" in by_line[5]
    assert "is empty" in by_line[6]
    assert "not an image" in by_line[7]


def test_scan_without_files_opens_nothing(tmp_path: Path) -> None:
    """check_files=False (run's pre-scan) skips the file checks."""
    manifest = write(tmp_path / "m.csv", "key,prompt,images\na,p,gone.png\n")
    assert problems(list(scan(manifest, check_files=False))) == []
    assert len(problems(list(scan(manifest)))) == 1


def test_extra_column_becomes_extra_body(tmp_path: Path) -> None:
    """`extra` (a JSON object; JSON text in CSV) is the request's extra_body; scan accepts
    the unknown fields inside it and reports bad JSON with the line and field."""
    (tmp_path / "ok.png").write_bytes(make_png(8, 8))
    csv_manifest = write(
        tmp_path / "m.csv",
        'key,prompt,images,extra\na,p,ok.png,"{""output_format"": ""jpeg""}"\n'
        "b,p,ok.png,{nope\n"
        "c,p,ok.png,[1]\n",
    )
    result = rows(csv_manifest)
    first = result[0]
    assert isinstance(first, ManifestRow)
    assert first.item.extra_body == {"output_format": "jpeg"}
    assert first.item.request_params() == {"extra_body": {"output_format": "jpeg"}}
    assert [(p.line, p.field) for p in problems(result)] == [(3, "extra"), (4, "extra")]
    lines = [
        {"key": "a", "prompt": "p", "images": ["ok.png"], "extra": {"watermark": False}},
        {"key": "b", "prompt": "p", "images": ["ok.png"], "watermark": False},
    ]
    jsonl = write(tmp_path / "m.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    scanned = list(scan(jsonl))
    assert [row.item.key for row in scanned if isinstance(row, ManifestRow)] == ["a"]
    (problem,) = problems(scanned)
    assert (problem.line, problem.field) == (2, "watermark")
    assert "extra_body" in problem.message
