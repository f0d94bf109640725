"""The public surface: one sorted ``__all__``, every name importable, modules private."""

from __future__ import annotations

import importlib
import pkgutil

import seedream_async
import seedream_async.testing


def test_all_is_sorted_and_importable() -> None:
    """``seedream_async.__all__`` is sorted and every name in it resolves."""
    names = seedream_async.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(seedream_async, name), name


def test_every_module_is_private_and_declares_all() -> None:
    """Every module of the core is private (``_name``) and has its own ``__all__``."""
    for info in pkgutil.iter_modules(seedream_async.__path__):
        if info.ispkg or info.name == "__main__":
            continue
        assert info.name.startswith("_"), info.name
        module = importlib.import_module(f"seedream_async.{info.name}")
        if info.name != "_version":
            assert isinstance(module.__all__, list), info.name


def test_the_core_never_imports_the_optional_parts() -> None:
    """The simulator and the CLI are extras: importing the library loads neither."""
    import subprocess
    import sys

    code = (
        "import sys, seedream_async; "
        "loaded = [m for m in sys.modules if m.startswith(('seedream_async.testing', "
        "'seedream_async.cli'))]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_simulator_exports() -> None:
    """The simulator's public names are the documented ones."""
    assert seedream_async.testing.__all__ == sorted(seedream_async.testing.__all__)
    assert {"Faults", "Ledger", "Simulator", "SimulatorConfig", "make_png", "serve"} <= set(
        seedream_async.testing.__all__
    )
