"""The package's shape: no import cycle, and knowledge written twice kept in step.

The layers themselves are import-linter's contract in pyproject.toml (``lint-imports`` in
``.ci/run``); these tests keep what a type checker cannot see from drifting.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from pathlib import Path

import grimp
import pytest

from seedream_async import BatchOptions, BatchProgress, JournalState, ResultStatus, Timings
from seedream_async._engine import BatchOptionsDict, Stage


def test_no_import_cycle_counting_lazy_imports() -> None:
    """No module reaches back to one that imports it, counting imports inside functions
    and under TYPE_CHECKING (grimp reads every import statement)."""
    graph = grimp.build_graph("seedream_async")
    cycles = [
        (importer, imported)
        for importer in sorted(graph.modules)
        for imported in sorted(graph.find_modules_directly_imported_by(importer))
        if graph.chain_exists(importer=imported, imported=importer)
    ]
    assert cycles == []


def test_every_module_has_a_layer() -> None:
    """A module no contract names is checked by none: each one is named in the layers
    (a subpackage's modules by the subpackage, the engine's one by one)."""
    pyproject = Path(__file__).parents[1] / "pyproject.toml"
    contracts = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["contracts"]
    named: set[str] = set()
    containers: set[str] = set()
    for contract in contracts:
        containers.update(contract.get("containers", []))
        for container in contract.get("containers", [""]):
            for layer in contract.get("layers", ()):  # independence/forbidden: no layers
                for name in re.split(r"[|:]", layer):
                    named.add(f"{container}.{name.strip()}" if container else name.strip())
    graph = grimp.build_graph("seedream_async")
    beside = ("seedream_async", "seedream_async.testing")  # the root re-exports; the simulator
    unnamed = [
        module
        for module in sorted(graph.modules)
        if module not in named
        and not module.startswith(beside[1])
        and module != beside[0]
        and not any(module.startswith(f"{name}.") for name in named - containers)
    ]
    assert unnamed == []


def test_batch_options_dict_matches_batch_options() -> None:
    """``edit_batch``'s keyword arguments are exactly BatchOptions' fields, same types."""
    options = typing.get_type_hints(BatchOptions)
    keywords = typing.get_type_hints(BatchOptionsDict)
    assert list(keywords) == [field.name for field in dataclasses.fields(BatchOptions)]
    assert keywords == options


@pytest.mark.parametrize("enum", [Stage, ResultStatus], ids=["Stage", "ResultStatus"])
def test_each_stage_and_status_names_its_progress_counter(enum: type[Stage]) -> None:
    """The tracker moves items between BatchProgress counters by these enums' values."""
    counters = {field.name for field in dataclasses.fields(BatchProgress)}
    assert {member.value for member in enum} <= counters


def test_every_journal_state_reads_as_a_result_status() -> None:
    """The report reads each journal state as one of the result statuses, and every result
    status is what some journal state reads as."""
    from seedream_async.cli._report import _JOURNAL_STATUS

    assert set(_JOURNAL_STATUS) == set(JournalState)
    assert set(_JOURNAL_STATUS.values()) == set(ResultStatus)


def test_timings_come_from_stage_marks() -> None:
    """Each Timings span runs from entering its stage to entering the next one reached."""
    marks = {Stage.UPLOADING: 1.0, Stage.WAITING: 3.0, Stage.RUNNING: 4.0}
    timings = Timings.from_marks(marks, started=0.5, now=10.0)
    assert timings == Timings(upload=2.0, queued=1.0, running=6.0, download=None, total=9.5)
