"""``run --reroll KEY…|FILE``: a deliberate new paid attempt of an item, with a new seed.

The journal files an item under a fingerprint of its inputs, the seed among them; a new
seed is a new job, so the journal keeps the earlier attempt (its prediction id and cost) in
the item's history and pays once for the new one. Two things make that safe to do by hand:

- **The new seed is pinned** beside the journal (``<journal stem>.seeds.json``), so the
  next plain run of the same manifest sends the same seed, finds the same fingerprint, and
  answers the item from the journal instead of paying for it again. A pin applies while
  the row's own ``seed`` is what it was when pinned; edit the row's seed and the row wins.
- **The earlier outputs stay on disk**: before the new attempt they move to
  ``<out>/rerolled/`` as ``<file stem>.attempt<N><suffix>``, so nothing overwrites them.

With ``--seed-from-key`` the new seed is derived from the key and the attempt number, so a
catalog's re-rolls are reproducible too; otherwise it is random.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .._engine._items import EditItem

__all__ = ["REROLLED_DIR", "Pin", "apply_pin", "load_pins", "pins_path", "reroll"]

REROLLED_DIR = "rerolled"
_SEEDS = 2**32  # the API takes seeds 0 .. 2**32 - 1


@dataclass(frozen=True, kw_only=True)
class Pin:
    """A seed chosen by a re-roll, sent while the row's own seed is ``row_seed``.

    Args:
        seed: the seed to send.
        row_seed: the manifest row's seed when the pin was made (None: it had none).
        rerolls: how many times the key was re-rolled.
    """

    seed: int
    row_seed: int | None
    rerolls: int


def pins_path(journal: Path) -> Path:
    """Where the pinned seeds of ``journal`` live: beside it, as the fingerprints do in it."""
    return journal.with_name(f"{journal.stem}.seeds.json")


def load_pins(path: Path) -> dict[str, Pin]:
    """The pinned seeds in ``path`` (none when the file is missing)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {key: Pin(**fields) for key, fields in raw.items()}


def _save_pins(path: Path, pins: Mapping[str, Pin]) -> None:
    data = {key: vars(pin) for key, pin in sorted(pins.items())}
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    temporary.replace(path)  # all pins or none, even if the run dies here


def apply_pin(item: EditItem, pins: Mapping[str, Pin]) -> EditItem:
    """``item`` with its pinned seed, when it has one and the row's seed is unchanged."""
    pin = pins.get(item.key)
    if pin is None or item.seed != pin.row_seed:
        return item
    return replace(item, seed=pin.seed)


def _new_seed(key: str, attempt: int, *, from_key: bool) -> int:
    if not from_key:
        return secrets.randbelow(_SEEDS)
    digest = hashlib.blake2b(f"{key}\x00reroll {attempt}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def _move_aside(out: Path, files: Collection[str], attempt: int) -> list[Path]:
    moved = []
    folder = out / REROLLED_DIR
    for name in files:
        path = Path(name)
        if not path.is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{path.stem}.attempt{attempt}{path.suffix}"
        os.replace(path, target)
        moved.append(target)
    return moved


def reroll(
    pins_file: Path,
    out: Path,
    items: Mapping[str, EditItem],
    files: Mapping[str, Collection[str]],
    *,
    seed_from_key: bool,
) -> dict[str, Any]:
    """Give each item a new pinned seed and move its current outputs aside.

    Args:
        pins_file: the pinned seeds (see :func:`pins_path`).
        out: the run's output folder.
        items: the items to re-roll, by key, as the manifest gives them.
        files: each key's current output files (from the journal).
        seed_from_key: derive the new seeds from key and attempt instead of at random.

    Returns:
        For each key: its new seed and where its earlier files went.
    """
    pins_file.parent.mkdir(parents=True, exist_ok=True)
    pins = load_pins(pins_file)
    done: dict[str, Any] = {}
    for key, item in items.items():
        old = pins.get(key)
        count = (old.rerolls if old is not None and old.row_seed == item.seed else 0) + 1
        seed = _new_seed(key, count, from_key=seed_from_key)
        pins[key] = Pin(seed=seed, row_seed=item.seed, rerolls=count)
        moved = _move_aside(out, files.get(key, ()), count)
        done[key] = {"seed": seed, "moved": [str(path) for path in moved]}
    _save_pins(pins_file, pins)
    return done
