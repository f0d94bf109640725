"""The review sheet: built from a real run's report, checked in a real headless Chromium.

The browser tests drive Debian's ``chromium`` through Playwright (the browser Playwright
would download is not available here); ``.ci/run`` installs it. They open the page the way
a user does, from disk over ``file://``, with no server and no network.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from rich.console import Console

from seedream_async import DEFAULT_MODEL, BatchOptions, PollPolicy
from seedream_async.cli import _parser, main
from seedream_async.cli._keys import keys_from_args, read_keys
from seedream_async.cli._review import REVIEW_NAME, review_data, write_review
from seedream_async.cli._run import RunOptions, run_manifest
from seedream_async.testing import Faults, make_png, serve

# A key and a prompt that would inject markup if the page ever parsed user text as HTML.
HOSTILE_KEY = 'sku-9<b id="k">x</b>&amp;\''
HOSTILE_PROMPT = '</script><img src=x onerror="window.pwned = 1"> on <i>marble</i>'
PRICE = 0.036
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _catalog(folder: Path, items: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "logo.png").write_bytes(make_png(24, 24, seed=99, label="logo"))
    rows = []
    for number in range(items):
        (folder / f"p{number}.png").write_bytes(make_png(48, 48, seed=number, label=f"p{number}"))
        key = HOSTILE_KEY if number == 0 else f"sku-{number}"
        prompt = HOSTILE_PROMPT if number == 0 else f"Studio shot {number}"
        rows.append({"key": key, "prompt": prompt, "images": [f"p{number}.png", "logo.png"]})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return manifest


async def _run(tmp: Path) -> Path:
    """Six items, one at a time on a seeded simulator: some fail, the budget stops one,
    some outputs are flagged NSFW."""
    manifest = _catalog(tmp / "catalog", 6)
    quiet = Console(file=open(os.devnull, "w"), width=120)  # noqa: SIM115, ASYNC230
    try:
        faults = Faults(prediction_failure=0.4, nsfw=0.5)
        async with serve(time_scale=0.001, seed=3, faults=faults) as sim:
            options = RunOptions(
                manifest=manifest,
                out=tmp / "out",
                api_key=sim.api_key or "key",
                base_url=sim.base_url,
                batch=BatchOptions(
                    concurrency=1,
                    budget=5 * PRICE,
                    # Polls paced for the simulator's 1/1000 time, not a real 8 s edit.
                    poll=PollPolicy().scaled(0.001),
                ),
            )
            await run_manifest(options, console=quiet, errors=quiet)
    finally:
        quiet.file.close()
    return tmp / "out"


@pytest.fixture(scope="module")
def run_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run's output folder, shared by this module's tests."""
    return anyio.run(_run, tmp_path_factory.mktemp("review"))


def _report(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]


def test_run_writes_the_sheet_and_a_full_report(run_out: Path) -> None:
    """The run leaves review.html and report lines with prompt, images, params, attempts."""
    lines = _report(run_out)
    assert len(lines) == len({line["key"] for line in lines}) == 6
    statuses = {line["status"] for line in lines}
    assert {"succeeded", "failed", "not_submitted"} <= statuses, statuses
    hostile = next(line for line in lines if line["key"] == HOSTILE_KEY)
    assert hostile["prompt"] == HOSTILE_PROMPT
    assert [Path(image["path"]).name for image in hostile["images"]] == ["p0.png", "logo.png"]
    for line in lines:
        assert all(Path(image["path"]).is_absolute() for image in line["images"])
        if line["status"] == "not_submitted":
            assert line["attempts"] == []
            continue
        # Submitted: the uploaded copies and the one paid attempt come from the journal.
        assert all(image["url"].startswith("http://127.0.0.1") for image in line["images"])
        assert [a["prediction_id"] for a in line["attempts"]] == [line["prediction_id"]]
        assert line["attempts"][0]["cost"] == pytest.approx(PRICE)
    assert (run_out / REVIEW_NAME).is_file()


def test_page_escapes_user_text(run_out: Path) -> None:
    """User text sits in the page only as escaped JSON: no tag of it reaches the HTML."""
    html = (run_out / REVIEW_NAME).read_text()
    assert "<img src=x" not in html
    assert '<b id="k">' not in html
    assert html.count("</script>") == 4  # two data blocks (first page, all) and two scripts


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        pytest.param("https://cdn.example.com/a.png", "https://cdn.example.com/a.png", id="url"),
        pytest.param("javascript:alert(1)", None, id="javascript"),
        pytest.param("data:image/png;base64,AAAA", None, id="data"),
        pytest.param("relative/a.png", None, id="relative-without-base"),
    ],
)
def test_links_are_relative_paths_or_http(
    tmp_path: Path, location: str, expected: str | None
) -> None:
    """An image link is a percent-encoded relative path or an http(s) URL, nothing else."""
    line = {"key": "k", "status": "failed", "images": [{"path": None, "url": location}]}
    assert review_data([line], tmp_path)["cards"][0]["inputs"][0]["src"] == expected


def test_local_links_are_percent_encoded(tmp_path: Path) -> None:
    """A local file's name can't become a scheme or break out of the attribute."""
    name = tmp_path / "out" / 'javascript:x "y".png'
    line = {"key": "k", "status": "succeeded", "files": [str(name)]}
    data = review_data([line], tmp_path / "out")
    assert data["cards"][0]["outputs"][0]["src"] == "./javascript%3Ax%20%22y%22.png"
    elsewhere = review_data([line], tmp_path / "pages")
    assert elsewhere["cards"][0]["outputs"][0]["src"].startswith("../out/")


def test_keys_file(tmp_path: Path) -> None:
    """A keys file: one key a line, exact but for the line end; blanks and repeats skipped."""
    path = tmp_path / "keys.txt"
    path.write_bytes(b"\xef\xbb\xbfa\r\n\n b \nc\na\n")
    assert read_keys(path) == ["a", " b ", "c"]
    assert keys_from_args(["x", str(path), "c"]) == ["x", "a", " b ", "c"]


def test_review_command(run_out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """review OUT rewrites the sheet; a folder without a report is a usage error."""
    (run_out / REVIEW_NAME).unlink()
    assert main(["review", str(run_out)]) == 0
    assert (run_out / REVIEW_NAME).is_file()
    assert str(run_out / REVIEW_NAME) in capsys.readouterr().out
    assert main(["review", str(tmp_path)]) == 2
    assert "report.jsonl" in capsys.readouterr().err


# -- in the browser ---------------------------------------------------------------------


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium under Playwright, once for the module."""
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium: install Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, run_out: Path) -> Iterator[Any]:
    """The review sheet opened from disk, with no network; fails on any page error."""
    write_review(run_out / "report.jsonl")
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    context.route("http*://**", lambda route: route.abort())  # no network, ever
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto((run_out / REVIEW_NAME).as_uri())
    yield opened
    context.close()
    assert errors == []


def _visible_keys(page: Any) -> list[str]:
    return list(page.locator("article.card:visible .key").all_inner_texts())


def test_cards_show_each_item(page: Any, run_out: Path) -> None:
    """One card per report line, user text shown literally, totals right, images loaded."""
    lines = _report(run_out)
    assert sorted(_visible_keys(page)) == sorted(line["key"] for line in lines)
    assert page.evaluate("window.pwned") is None
    assert page.locator("#k").count() == 0
    hostile = page.locator("article.card", has_text=HOSTILE_PROMPT)
    assert hostile.locator(".key").inner_text() == HOSTILE_KEY
    totals = page.locator("#totals").inner_text()
    assert f"items {len(lines)}" in totals
    assert f"${sum(line['cost'] for line in lines):.3f}" in totals
    done = next(line for line in lines if line["status"] == "succeeded")
    card = page.locator(f"article.card[data-status=succeeded]:has-text('{done['prediction_id']}')")
    images = card.locator("img")
    assert images.count() == len(done["images"]) + len(done["files"])
    images.last.scroll_into_view_if_needed()
    page.wait_for_function(
        "(imgs) => imgs.every((img) => img.complete)", arg=images.element_handles()
    )
    widths = images.evaluate_all("(imgs) => imgs.map((img) => img.naturalWidth)")
    assert all(width > 0 for width in widths), widths  # relative links resolved from disk
    failed = next(line for line in lines if line["status"] == "failed")
    failed_card = page.locator("article.card", has_text=failed["prediction_id"])
    assert failed["error"] in failed_card.locator(".error").inner_text()


def test_flagged_outputs_have_a_badge_and_a_filter(page: Any, run_out: Path) -> None:
    """Outputs the API flagged (has_nsfw_contents) carry a badge; the "flagged" filter
    shows exactly the items with one; the report line keeps a flag per output."""
    lines = _report(run_out)
    for line in lines:
        assert len(line["nsfw"]) == (len(line["files"]) if line["status"] == "succeeded" else 0)
        assert line["flagged"] == sum(line["nsfw"])
    flagged = sorted(line["key"] for line in lines if line["flagged"])
    assert flagged, "the seeded run flags some outputs"
    assert review_data(lines, run_out)["totals"]["flagged"] == len(flagged)
    page.click("button[data-filter=flagged]")
    assert sorted(_visible_keys(page)) == flagged
    badges = page.locator("article.card:visible .badge.flagged")
    assert badges.count() == sum(line["flagged"] for line in lines)
    page.click("button[data-filter=all]")
    assert len(_visible_keys(page)) == len(lines)


@pytest.mark.parametrize("status", ["succeeded", "failed", "not_submitted"])
def test_status_filter(page: Any, run_out: Path, status: str) -> None:
    """A status filter shows exactly that status's cards; "all" shows every card again."""
    lines = _report(run_out)
    page.click(f"button[data-filter={status}]")
    expected = sorted(line["key"] for line in lines if line["status"] == status)
    assert sorted(_visible_keys(page)) == expected
    page.click("button[data-filter=all]")
    assert len(_visible_keys(page)) == len(lines)


def test_reject_export_round_trip(
    page: Any, run_out: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Rejected keys download as a file that `run --reroll FILE` reads back exactly."""
    lines = _report(run_out)
    chosen = [HOSTILE_KEY, next(line["key"] for line in lines if line["key"] != HOSTILE_KEY)]
    for key in chosen:
        card = page.locator("article.card").filter(has=page.get_by_text(key, exact=True))
        card.get_by_role("button", name="Reject").click()
    approved = next(line["key"] for line in lines if line["key"] not in chosen)
    card = page.locator("article.card").filter(has=page.get_by_text(approved, exact=True))
    card.get_by_role("button", name="Approve").click()
    assert page.locator("#rejected-count").inner_text() == "2"
    page.click("button[data-filter=rejected]")
    assert sorted(_visible_keys(page)) == sorted(chosen)
    page.click("button[data-filter=all]")
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_function("[...document.images].slice(0, 6).every((img) => img.complete)")
    shot = tmp_path / "review-sheet.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")
    target = os.environ.get("SEEDREAM_REVIEW_SCREENSHOT")
    if target:  # how docs/review-sheet.png is made: see the README's Development section
        shutil.copyfile(shot, target)

    with page.expect_download() as download_info:
        page.click("#export")
    download = download_info.value
    assert download.suggested_filename == "rejected-keys.txt"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    # As `run --reroll FILE` reads it: the command's own parser, then its keys reader.
    ns = _parser().parse_args(["run", "m.jsonl", "--out", "o", "--reroll", str(saved)])
    assert keys_from_args(ns.reroll) == sorted(chosen)


# -- at scale: paging and keyboard review ------------------------------------------------


def _synthetic_report(folder: Path, count: int) -> Path:
    report = folder / "report.jsonl"
    lines = [
        {"key": f"sku-{n:04d}", "status": "succeeded", "prompt": f"edit {n}", "cost": PRICE,
         "seed": n, "prediction_id": f"pred-{n}", "images": [], "files": []}
        for n in range(count)
    ]  # fmt: skip
    report.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return report


@pytest.fixture
def big_page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    """The sheet of 120 items (three pages of 50), opened from disk."""
    page_path = write_review(_synthetic_report(tmp_path, 120))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("http*://**", lambda route: route.abort())
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto(page_path.as_uri())
    yield opened
    context.close()
    assert errors == []


def _current_key(page: Any) -> str:
    return str(page.locator("article.card.current .key").inner_text())


def test_the_sheet_is_paged(big_page: Any) -> None:
    """Only one page of cards is in the DOM; the pager and n/p walk the pages in order."""
    page = big_page
    assert page.locator("article.card").count() == 50
    assert page.locator("#page-info").inner_text() == "page 1 of 3 (120 items)"
    assert _visible_keys(page)[0] == "sku-0000"
    assert page.locator("#prev-page").is_disabled()
    page.click("#next-page")
    assert _visible_keys(page)[0] == "sku-0050"
    page.keyboard.press("n")
    assert _visible_keys(page) == [f"sku-{n:04d}" for n in range(100, 120)]
    assert page.locator("#next-page").is_disabled()
    page.keyboard.press("n")  # past the last page: nothing moves
    assert page.locator("#page-info").inner_text() == "page 3 of 3 (120 items)"
    page.keyboard.press("p")
    assert _visible_keys(page)[0] == "sku-0050"


def test_keyboard_review_across_pages(big_page: Any) -> None:
    """j/k move through the items (onto the next page past the 50th), a approves and r
    rejects the current one, and the decisions hold across pages, filters and export."""
    page = big_page
    page.keyboard.press("j")
    assert _current_key(page) == "sku-0000"
    page.keyboard.press("a")
    card = page.locator("article.card[data-key=sku-0000]")
    assert "approved" in str(card.get_attribute("class"))
    assert card.get_by_role("button", name="Approve").get_attribute("aria-pressed") == "true"
    page.keyboard.press("j")
    page.keyboard.press("r")
    assert _current_key(page) == "sku-0001"
    assert page.locator("#rejected-count").inner_text() == "1"
    for _ in range(49):
        page.keyboard.press("j")
    assert _current_key(page) == "sku-0050"  # onto page 2
    assert page.locator("#page-info").inner_text().startswith("page 2 of 3")
    page.keyboard.press("r")
    page.keyboard.press("k")
    assert _current_key(page) == "sku-0049"  # back onto page 1
    page.click("button[data-filter=rejected]")
    assert _visible_keys(page) == ["sku-0001", "sku-0050"]
    page.click("button[data-filter=undecided]")
    assert page.locator("#page-info").inner_text() == "page 1 of 3 (117 items)"
    page.keyboard.press("j")
    assert _current_key(page) == "sku-0002"
    page.keyboard.press("a")  # it leaves the undecided filter; the next one is current
    assert _current_key(page) == "sku-0003"
    assert page.locator("#rejected-count").inner_text() == "2"


def test_a_mixed_catalog_shows_each_cards_model(browser: Any, tmp_path: Path) -> None:
    """When a catalog mixes models, each card names its model and the totals count items
    per model; a single-model sheet shows neither."""
    v4 = "bytedance/seedream-v4/edit-sequential"
    lines = [
        {"key": "a", "status": "succeeded", "model": v4, "cost": 0.027},
        {"key": "b", "status": "succeeded", "model": "bytedance/seedream-v4.5", "cost": 0.036},
        {"key": "c", "status": "failed", "cost": 0.0},  # a report line from before models
    ]
    single = [{**line, "model": v4} for line in lines]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("http*://**", lambda route: route.abort())
    try:
        for folder, rows in (("mixed", lines), ("single", single)):
            report = tmp_path / folder / "report.jsonl"
            report.parent.mkdir()
            report.write_text("".join(json.dumps(row) + "\n" for row in rows))
            opened = context.new_page()
            opened.goto(write_review(report).as_uri())
            models = opened.locator("article.card .model").all_inner_texts()
            totals = opened.locator("#totals").inner_text()
            if folder == "mixed":
                assert sorted(models) == sorted(
                    [f"model {v4}", "model bytedance/seedream-v4.5", f"model {DEFAULT_MODEL}"]
                )
                assert f"{v4} 1" in totals
            else:
                assert all(text == "" for text in models)
                assert v4 not in totals
    finally:
        context.close()
