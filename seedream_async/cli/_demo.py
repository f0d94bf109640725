"""``seedream-async demo``: a sample catalog through the real ``run`` path, offline.

It starts the bundled simulator in this event loop, writes a small catalog of product
photos sharing a logo and a few backdrops (real PNGs), and runs its manifest with
:func:`run_manifest`, the function behind ``seedream-async run``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rich.console import Console

from .._engine import BatchOptions
from .._policies._polling import PollPolicy
from ._run import EXIT_USAGE, RunOptions, run_manifest

__all__ = ["DEMO_MARKER", "run_demo", "write_catalog"]

DEMO_MARKER = ".seedream-demo"
_BACKDROPS = ("white seamless paper", "grey concrete", "warm oak table")
_PRODUCTS = ("sneaker", "ceramic mug", "leather bag", "desk lamp", "wrist watch", "headphones")
_PNG_SIDE = 192


def write_catalog(folder: Path, items: int) -> Path:
    """Write ``items`` product photos, a logo, three backdrops and ``manifest.jsonl``.

    Every item uses its product photo, one shared backdrop and the shared logo, so the
    run shows each shared file uploaded once.

    Args:
        folder: where to write (created).
        items: how many catalog items.

    Returns:
        The manifest's path.
    """
    from ..testing import make_png

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    (images / "logo.png").write_bytes(make_png(96, 96, seed=7, label="logo"))
    for index, _ in enumerate(_BACKDROPS):
        (images / f"backdrop-{index + 1}.png").write_bytes(
            make_png(_PNG_SIDE, _PNG_SIDE, seed=100 + index, label=f"backdrop {index + 1}")
        )
    manifest = folder / "manifest.jsonl"
    with manifest.open("w", encoding="utf-8") as handle:
        for number in range(1, items + 1):
            key = f"sku-{number:04d}"
            product = _PRODUCTS[number % len(_PRODUCTS)]
            backdrop = number % len(_BACKDROPS)
            photo = f"images/{key}.png"
            (folder / photo).write_bytes(
                make_png(_PNG_SIDE, _PNG_SIDE, seed=number, label=f"{product} {key}")
            )
            row = {
                "key": key,
                "prompt": f"Place the {product} on {_BACKDROPS[backdrop]}, soft studio light, "
                "and put the logo in the lower right corner",
                "images": [photo, f"images/backdrop-{backdrop + 1}.png", "images/logo.png"],
                # Inside Seedream 4.5's 2560*1440..4096*4096 pixel range (1024*1024 is not).
                "size": "2048*2048",
                "max_images": 1 + number % 2,
            }
            handle.write(json.dumps(row) + "\n")
    (folder / DEMO_MARKER).write_text("made by seedream-async demo; safe to delete\n")
    return manifest


def _prepare(out: Path, errors: Console) -> bool:
    if out.exists() and any(out.iterdir()):
        if not (out / DEMO_MARKER).exists():
            errors.print(f"{out} exists and is not a demo folder; pick another with --out")
            return False
        # A fresh simulator does not know the last demo's predictions: start over.
        shutil.rmtree(out)
    return True


async def run_demo(
    *, items: int, out: Path, time_scale: float, console: Console, errors: Console
) -> int:
    """Run the demo and return the exit code of its run.

    Args:
        items: catalog items to make.
        out: the demo folder (its catalog, outputs and report).
        time_scale: the simulator's latency factor (1.0 is about 8 s per edit).
        console: where the run's output goes.
        errors: where problems go.
    """
    from ..testing import serve

    if not _prepare(out, errors):
        return EXIT_USAGE
    manifest = write_catalog(out, items)
    console.print(f"Catalog: {items} items in {manifest}")
    async with serve(time_scale=time_scale, seed=1) as sim:
        console.print(f"Simulator: {sim.base_url} (no network, nothing billed)")
        options = RunOptions(
            manifest=manifest,
            out=out / "outputs",
            api_key=sim.api_key or "demo-key",
            base_url=sim.base_url,
            # Simulated time runs fast; poll on the same clock.
            batch=BatchOptions(poll=PollPolicy().scaled(time_scale)),
            resumable=False,
        )
        code = await run_manifest(options, console=console, errors=errors)
        ledger = sim.ledger
        console.print(
            f"Simulator ledger: {ledger.executions} executions, ${ledger.cost:.3f} "
            f"(would be billed), {len(ledger.uploads)} uploads of "
            f"{ledger.distinct_uploads} distinct files, {ledger.total_polls} polls, "
            f"{ledger.duplicate_submissions} duplicate submissions"
        )
    console.print(
        f"Done. The edited images are in {options.out}; to run your own catalog: "
        "seedream-async run MANIFEST --out DIR (with ATLASCLOUD_API_KEY set)."
    )
    return code
