"""Edit every photo in a folder with one prompt, the outputs saved beside a journal.

    export ATLASCLOUD_API_KEY=...
    python examples/edit_folder.py photos/ edited/ "Put the product on white marble" \
        --logo brand/logo.png

Stopped half way? Run the same command again: the journal in the output folder lets the
batch skip what is done and never pay twice for a photo.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio

from seedream_async import AsyncSeedream, BatchProgress

PHOTO_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})


def photo_items(folder: Path, prompt: str, logo: Path | None = None) -> Iterator[dict[str, Any]]:
    """One batch item per photo, keyed by its file name (a generator: folders can be big)."""
    seen: set[str] = set()
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in PHOTO_SUFFIXES or not path.is_file():
            continue
        key = path.stem if path.stem not in seen else path.name  # shoe.png and shoe.jpg
        seen.add(key)
        images = [path] if logo is None else [path, logo]
        yield {"key": key, "prompt": prompt, "images": images}


async def edit_folder(
    folder: Path,
    out: Path,
    prompt: str,
    *,
    logo: Path | None = None,
    concurrency: int = 32,
    budget: float | None = None,
) -> int:
    """Edit the folder's photos into ``out``; return how many did not succeed."""

    def show(progress: BatchProgress) -> None:
        print(
            f"\r{progress.succeeded} done, {progress.failed} failed, "
            f"{progress.running} running, ${progress.spent:.2f}",
            end="",
            file=sys.stderr,
        )

    failed = 0
    await anyio.Path(out).mkdir(parents=True, exist_ok=True)  # the journal lives there
    async with AsyncSeedream() as client:
        run = client.edit_batch(
            photo_items(folder, prompt, logo),
            concurrency=concurrency,
            out_dir=out,
            journal=out / ".journal.sqlite",
            budget=budget,
            on_progress=show,
        )
        async with run:
            async for result in run:
                if not result.ok:
                    failed += 1
                    print(f"\n{result.key}: {result.status}: {result.error_message}")
    print(file=sys.stderr)
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("folder", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("prompt")
    parser.add_argument("--logo", type=Path, default=None, help="a reference added to each edit")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--budget", type=float, default=None, help="US dollars at most")
    ns = parser.parse_args(argv)
    failed = anyio.run(
        lambda: edit_folder(
            ns.folder,
            ns.out,
            ns.prompt,
            logo=ns.logo,
            concurrency=ns.concurrency,
            budget=ns.budget,
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
