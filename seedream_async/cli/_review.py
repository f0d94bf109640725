"""The review sheet: one static HTML page beside the outputs, built from ``report.jsonl``.

One self-contained file (inline CSS and JavaScript, no network, no server), paged (50 cards
in the DOM at a time, keyboard review with j/k, a/r, n/p): a card per item
with its input images and outputs side by side (lazy-loaded through relative links), its key,
prompt, status, cost, seed, prediction id and error (and its model, when the catalog mixes
models); filters by status; totals at the top (items per model, when mixed);
approve / reject per card; and a button that downloads the rejected keys as a plain text
file, one key per line, which ``seedream-async run --reroll FILE`` accepts.

Keys, prompts and errors are user text. They never pass through an HTML parser: the data
goes into the page as JSON inside a ``<script type="application/json">`` block with ``<``,
``>`` and ``&`` escaped, and the page builds its cards with ``textContent`` and attributes.
Links are either relative paths we percent-encode (so a ``:`` can never make a scheme) or
http(s) URLs. The page's template is ``review_page.html`` beside this module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .._base._constants import DEFAULT_MODEL

__all__ = ["REJECTED_NAME", "REVIEW_NAME", "read_report", "review_data", "write_review"]

REVIEW_NAME = "review.html"
REJECTED_NAME = "rejected-keys.txt"
# Cards per page of the sheet (the page's own PAGE_SIZE): only one page is in the DOM.
PAGE_SIZE = 50

# Fields of a report line the page shows; anything else stays in report.jsonl.
_CARD_FIELDS = ("key", "status", "model", "prompt", "cost", "seed", "prediction_id", "error")


def _link(location: str | None, folder: Path) -> str | None:
    """A link to an image from a page in ``folder``: relative for a local file, the URL as
    given for http(s), None for anything else (base64, ``javascript:``, ...)."""
    if not location:
        return None
    if location.startswith(("https://", "http://")):
        return location
    path = Path(location)
    if not path.is_absolute():
        return None  # the report writes absolute paths; a relative one has no known base
    try:
        relative = os.path.relpath(path, folder.resolve())
    except ValueError:  # another drive on Windows: no relative form
        return path.as_uri()
    link = quote(relative.replace(os.sep, "/"))
    return link if link.startswith("../") else f"./{link}"


def _card(line: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    card = {name: line.get(name) for name in _CARD_FIELDS}
    inputs = []
    for image in line.get("images") or []:
        if isinstance(image, Mapping):
            local, url = image.get("path"), image.get("url")
            name = local or url or ""
            src = _link(local, folder) or _link(url, folder)
            inputs.append({"name": Path(name).name, "src": src})
    outputs: list[dict[str, Any]] = [
        {"name": Path(file).name, "src": _link(file, folder)} for file in line.get("files") or []
    ]
    if not outputs:  # no saved files (a failed download, say): the URLs, if any
        outputs = [
            {"name": f"output {n}", "src": _link(url, folder)}
            for n, url in enumerate(line.get("outputs") or [], start=1)
        ]
    # has_nsfw_contents, one flag per output, in the outputs' order.
    flags = [bool(flag) for flag in line.get("nsfw") or []]
    for output, flag in zip(outputs, flags, strict=False):
        output["flagged"] = flag
    card["inputs"] = inputs
    card["outputs"] = outputs
    card["flagged"] = sum(flags)
    # Outputs of earlier paid attempts that are still on disk (moved aside by --reroll).
    card["earlier"] = [
        {"name": f"attempt {number}: {Path(file).name}", "src": _link(file, folder)}
        for number, attempt in enumerate(line.get("attempts") or [], start=1)
        if attempt.get("prediction_id") != line.get("prediction_id")
        for file in attempt.get("files") or []
    ]
    card["attempts"] = len(line.get("attempts") or [])
    card["from_journal"] = bool(line.get("from_journal"))
    return card


def review_data(lines: Iterable[Mapping[str, Any]], folder: Path) -> dict[str, Any]:
    """What the page shows, JSON-ready: cards and totals.

    Args:
        lines: the report's lines.
        folder: where the page will be written (links are relative to it).
    """
    cards = sorted((_card(line, folder) for line in lines), key=lambda card: str(card["key"]))
    counts: dict[str, int] = {}
    for card in cards:
        status = str(card["status"])
        counts[status] = counts.get(status, 0) + 1
    models: dict[str, int] = {}
    for card in cards:
        card["model"] = card["model"] or DEFAULT_MODEL  # a report from before models
        models[card["model"]] = models.get(card["model"], 0) + 1
    cost = sum(float(card["cost"] or 0) for card in cards)
    flagged = sum(1 for card in cards if card["flagged"])
    totals = {
        "items": len(cards),
        "counts": counts,
        "models": models,
        "cost": round(cost, 6),
        "flagged": flagged,
    }
    return {"cards": cards, "totals": totals, "rejected_name": REJECTED_NAME}


def _script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: nothing in it can close the element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def read_report(path: Path) -> list[dict[str, Any]]:
    """The report's lines; a line cut short by a crash is skipped."""
    lines = []
    with path.open(encoding="utf-8") as handle:
        for text in handle:
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(line, dict):
                lines.append(line)
    return lines


def write_review(report: Path, page: Path | None = None) -> Path:
    """Write the review sheet for ``report`` and return its path.

    Args:
        report: a ``report.jsonl``.
        page: where to write; ``review.html`` beside the report when None.
    """
    page = page or report.parent / REVIEW_NAME
    data = review_data(read_report(report), page.parent)
    template = resources.files(__package__ or "seedream_async.cli") / "review_page.html"
    before, rest = template.read_text(encoding="utf-8").split("/*HEAD*/", 1)
    middle, after = rest.split("/*DATA*/", 1)
    # The first page's cards again, alone: the page shows them before parsing the rest.
    head = {**data, "cards": data["cards"][:PAGE_SIZE]}
    html = "".join((before, _script_json(head), middle, _script_json(data), after))
    temporary = page.with_name(f".{page.name}.tmp")
    temporary.write_text(html, encoding="utf-8")
    temporary.replace(page)  # a reader never sees half a page
    return page
