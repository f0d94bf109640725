"""Output names: output n of an item is named the same whatever max_images is."""

from __future__ import annotations

import pytest

from seedream_async._engine._names import output_stems, safe_name


@pytest.mark.parametrize("count", [1, 2, 5, 15])
def test_names_do_not_depend_on_the_count(count: int) -> None:
    """The first output is always <name>, then <name>.2 ...; a longer sequence only adds."""
    stems = output_stems("sku-1", count)
    assert stems[0] == "sku-1"
    assert stems == output_stems("sku-1", 15)[:count]
    assert len(set(stems)) == count


def test_numbered_names_never_meet_another_key() -> None:
    """A key's own name never has a dot, so sku.2-style names can't be another key's."""
    assert "." not in safe_name("sku.2")
    assert safe_name("sku.2") not in output_stems(safe_name("sku"), 3)
