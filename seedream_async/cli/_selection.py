"""The manifest's rows a run is about, read before anything is paid for: every problem
found first (a bad manifest, or a key named that is not in it, refuses the whole run), then
the rows selected (``--only``), with re-rolled seeds pinned and ``--seed-from-key`` seeds."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator

from rich.console import Console
from rich.markup import escape

from .._engine._items import EditItem
from ._manifest import ManifestProblem, iter_items
from ._options import EXIT_USAGE
from ._reroll import apply_pin, load_pins
from ._run_options import RunOptions
from ._validate import scan

__all__ = ["key_seed", "prescan", "print_problems", "refusal", "selected_items"]

# Problems printed before "... and N more".
_SHOWN_PROBLEMS = 20


def print_problems(console: Console, problems: list[ManifestProblem], total: int) -> None:
    """Print the first manifest problems, then how many more there were.

    Args:
        console: where to print (stderr, usually).
        problems: the first problems found.
        total: how many were found in all.
    """
    for problem in problems:
        console.print(f"[red]error[/] {escape(str(problem))}")
    if total > len(problems):
        console.print(f"... and {total - len(problems)} more problem(s)")


def key_seed(key: str) -> int:
    """The seed ``--seed-from-key`` gives a row without one: 32 bits of its key's digest."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big")


def prescan(options: RunOptions) -> tuple[list[str], list[ManifestProblem], int, set[str]]:
    """Read the whole manifest once before spending anything: the selected keys (in order),
    first problems, how many problems, and the named keys found (to name the --only keys not
    found)."""
    keys: list[str] = []
    problems = 0
    shown: list[ManifestProblem] = []
    found: set[str] = set()
    for row in scan(
        options.manifest,
        size=options.size,
        max_images=options.max_images,
        model=options.model,
        check_files=False,
    ):
        if isinstance(row, ManifestProblem):
            problems += 1
            if len(shown) < _SHOWN_PROBLEMS:
                shown.append(row)
        else:
            if options.only is None or row.item.key in options.only:
                keys.append(row.item.key)
            if row.item.key in options.named:
                found.add(row.item.key)
    return keys, shown, problems, found


def selected_items(options: RunOptions) -> Iterator[EditItem]:
    """The manifest's items this run is about: --only applied, re-rolled seeds pinned,
    --seed-from-key seeds set."""
    pins = load_pins(options.pins_path)
    for item in iter_items(
        options.manifest, size=options.size, max_images=options.max_images, model=options.model
    ):
        if options.only is not None and item.key not in options.only:
            continue
        item = apply_pin(item, pins)
        if options.seed_from_key and item.seed is None:
            item = dataclasses.replace(item, seed=key_seed(item.key))
        yield item


def refusal(
    options: RunOptions,
    keys: list[str],
    problems: list[ManifestProblem],
    count: int,
    found: set[str],
    errors: Console,
) -> int | None:
    """The exit code when the manifest (or a key named) is refused before anything runs."""
    if count:
        print_problems(errors, problems, count)
        errors.print(f"{options.manifest}: {count} problem(s); nothing was sent")
        return EXIT_USAGE
    if missing := sorted(options.named - found):
        shown = ", ".join(repr(key) for key in missing[:_SHOWN_PROBLEMS])
        errors.print(
            f"error: {len(missing)} key(s) given are not in {options.manifest}: "
            f"{escape(shown)}; nothing was sent"
        )
        return EXIT_USAGE
    if not keys:
        errors.print(f"{options.manifest}: no rows to run")
        return EXIT_USAGE
    return None
