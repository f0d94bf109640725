"""The review sheet at scale: time to first card and JS heap, N items against 100.

    python -m benchmarks.review_sheet                     # 100 vs 50,000 items
    python -m benchmarks.review_sheet --sizes 100,10000,50000 --repeats 3 --json out.json

Writes a synthetic ``report.jsonl`` of N items (keys, prompts, one input and one output
path each, statuses mixed), builds ``review.html`` with ``seedream-async``'s own
:func:`write_review`, opens it from disk in headless Chromium (Playwright; Debian's
``/usr/bin/chromium`` or ``$CHROMIUM``) with the network cut, and reads:

* time to first card: the page's ``performance`` mark ``first-card`` (set when the first
  page's cards are in the DOM), from navigation start, median of ``--repeats`` loads;
  and ``ready``, when every item is parsed and the pager, filters and keys work on all;
* the JS heap in use once the page settled (CDP ``Performance.getMetrics``
  ``JSHeapUsedSize``), and the cards in the DOM.

The figure is the ratio of the N-item time to the 100-item time (target <= 3x at 50,000).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from seedream_async.cli._review import write_review

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
STATUSES = ("succeeded", "succeeded", "succeeded", "failed", "not_submitted")


def _report(folder: Path, n: int) -> Path:
    report = folder / "report.jsonl"
    with report.open("w", encoding="utf-8") as out:
        for i in range(n):
            status = STATUSES[i % len(STATUSES)]
            line = {
                "key": f"sku-{i:06d}", "status": status,
                "prompt": f"put product {i} on a plain white background, soft shadow",
                "cost": 0.036 if status != "not_submitted" else 0.0, "seed": i,
                "prediction_id": f"pred-{i:06d}" if status != "not_submitted" else None,
                "error": "the model refused" if status == "failed" else None,
                "images": [{"path": str(folder / "in" / f"sku-{i:06d}.png")}],
                "files": [str(folder / "out" / f"{i}.png")] if status == "succeeded" else [],
            }  # fmt: skip
            out.write(json.dumps(line) + "\n")
    return report


def _chromium() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise SystemExit("no Chromium: apt-get install -y chromium, or set CHROMIUM")


def _measure(browser: Any, page_path: Path, repeats: int) -> dict[str, Any]:
    times: list[float] = []
    ready: list[float] = []
    heap = cards = 0.0
    for _ in range(repeats):
        # bypass_csp: Playwright polls its wait conditions with eval, which the page's CSP
        # forbids; the page's own scripts run as they would anyway.
        context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        context.route("http*://**", lambda route: route.abort())
        page = context.new_page()
        page.goto(page_path.as_uri(), wait_until="commit", timeout=300_000)
        page.wait_for_function(
            "performance.getEntriesByName('first-card').length > 0", timeout=300_000
        )
        times.append(page.evaluate("performance.getEntriesByName('first-card')[0].startTime"))
        page.wait_for_function("performance.getEntriesByName('ready').length > 0", timeout=300_000)
        ready.append(page.evaluate("performance.getEntriesByName('ready')[0].startTime"))
        cdp = context.new_cdp_session(page)
        cdp.send("HeapProfiler.collectGarbage")
        cdp.send("Performance.enable")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        heap = metrics["JSHeapUsedSize"]
        cards = page.locator("article.card").count()
        context.close()
    return {
        "first_card_ms": statistics.median(times),
        "first_card_ms_all": times,
        "ready_ms": statistics.median(ready),
        "js_heap_mb": heap / 1e6,
        "cards_in_dom": cards,
        "page_mb": page_path.stat().st_size / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.review_sheet")
    parser.add_argument("--sizes", default="100,50000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    ns = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    sizes = [int(size) for size in ns.sizes.split(",")]
    result: dict[str, Any] = {"load_before": os.getloadavg(), "sizes": {}}
    with (
        tempfile.TemporaryDirectory(prefix="seedream-review-bench-") as tmp,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=_chromium(), args=ARGS)
        try:
            for n in sizes:
                folder = Path(tmp) / str(n)
                folder.mkdir()
                page = write_review(_report(folder, n))
                result["sizes"][n] = _measure(browser, page, ns.repeats)
        finally:
            browser.close()
    result["load_after"] = os.getloadavg()
    base = result["sizes"][sizes[0]]["first_card_ms"]
    for n in sizes:
        row = result["sizes"][n]
        row["first_card_x"] = row["first_card_ms"] / base
        print(
            f"review sheet, {n:>6} items: first card {row['first_card_ms']:7.0f} ms "
            f"({row['first_card_x']:5.2f}x {sizes[0]} items), "
            f"all parsed {row['ready_ms']:6.0f} ms, "
            f"JS heap {row['js_heap_mb']:6.1f} MB, "
            f"{row['cards_in_dom']} cards in the DOM, page {row['page_mb']:.1f} MB"
        )
    print(f"load average {result['load_before'][0]:.2f} -> {result['load_after'][0]:.2f}")
    if ns.json is not None:
        ns.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
