"""Output names: one key, one name, never shared, compared case-insensitively."""

from __future__ import annotations

import random

import pytest

from seedream_async import InvalidInput
from seedream_async._engine._names import NameRegistry, fold, output_stem

# Keys whose names collided under the old scheme (60-character prefix + 32-bit hash).
HASH_TWINS = (
    "https://shop.example.com/products/pppppppppppppppppppppppppp/11451",
    "https://shop.example.com/products/pppppppppppppppppppppppppp/54613",
)


def test_plain_keys_are_their_own_names() -> None:
    """A plain key names its files as is."""
    assert output_stem("sku-001_A") == "sku-001_A"


def test_old_hash_collisions_get_distinct_names() -> None:
    """Keys with the same cleaned prefix get different names (a 128-bit digest)."""
    a, b = (output_stem(key) for key in HASH_TWINS)
    assert a != b
    assert fold(a) != fold(b)


def test_a_key_shaped_like_a_hashed_name_is_hashed_too() -> None:
    """A plain key copying another key's hashed name cannot take that name."""
    hashed = output_stem("shoes/red")
    assert output_stem(hashed) != hashed


@pytest.mark.parametrize("key", ["CON", "nul", "a.png", ".hidden", "sku 1", "x" * 400])
def test_odd_keys_are_hashed_and_plain(key: str) -> None:
    """Device names, dots, spaces and long keys become a plain name of at most 100 chars."""
    name = output_stem(key)
    assert name != key
    assert len(name) <= 100
    assert not name.startswith(".")
    assert all(c.isalnum() or c in "_-" for c in name)


@pytest.mark.parametrize("key", ["", "  ", "a/../b", "x" * 513, "a\x00b"])
def test_unusable_keys_are_refused(key: str) -> None:
    """Empty, climbing, over-long keys and control characters raise InvalidInput."""
    with pytest.raises(InvalidInput):
        output_stem(key)


def test_no_two_keys_share_a_folded_name() -> None:
    """Over 20,000 random keys, distinct keys never share a name, even case-folded, unless
    they differ only in case (which the registry refuses)."""
    rng = random.Random(11)
    alphabet = "aAbB/._- ~%é"
    seen: dict[str, str] = {}
    for _ in range(20_000):
        key = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))
        try:
            name = fold(output_stem(key))
        except InvalidInput:
            continue
        other = seen.setdefault(name, key)
        assert other == key or other.casefold() == key.casefold(), (key, other)


def test_the_registry_refuses_case_twins() -> None:
    """The second key whose name folds to a taken one is refused, naming the first."""
    names = NameRegistry()
    assert names.claim("Sku-7", output_stem("Sku-7")) is None
    assert names.claim("Sku-7", output_stem("Sku-7")) is None  # the same key again is fine
    assert names.claim("sku-7", output_stem("sku-7")) == "Sku-7"
