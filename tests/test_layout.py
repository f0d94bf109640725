"""The package's shape: no import cycle, and knowledge written twice kept in step.

The layers themselves are import-linter's contract in pyproject.toml (``lint-imports`` in
``.ci/run``); these tests keep what a type checker cannot see from drifting.
"""

from __future__ import annotations

import dataclasses
import typing

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


def test_every_result_status_is_a_journal_state() -> None:
    """A result is journaled as the state of the same name."""
    assert {status.value for status in ResultStatus} <= {state.value for state in JournalState}


def test_timings_come_from_stage_marks() -> None:
    """Each Timings span runs from entering its stage to entering the next one reached."""
    marks = {Stage.UPLOADING: 1.0, Stage.WAITING: 3.0, Stage.RUNNING: 4.0}
    timings = Timings.from_marks(marks, started=0.5, now=10.0)
    assert timings == Timings(upload=2.0, queued=1.0, running=6.0, download=None, total=9.5)
