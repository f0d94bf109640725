"""The pytest plugin (seedream_async/_pytest_plugin.py), run in a user's test suite by
pytester: the fixtures, the marker, indirect parametrisation, asyncio and trio."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

# The user's conftest: the plugin as its entry point would load it (once, even when the
# package is installed and the entry point has loaded it already).
CONFTEST = """
import seedream_async._pytest_plugin as plugin

def pytest_configure(config):
    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "seedream_async")
"""

USER_TESTS = '''
import pytest
from seedream_async import AsyncSeedream, PollPolicy, Seedream
from seedream_async.testing import Faults

URL = "https://example.com/shoe.png"
FAST = PollPolicy().scaled(0.001)


def my_code() -> list[str]:
    """The user's own code: it makes its client from the environment."""
    with Seedream(poll=FAST) as client:
        return list(client.edit("On marble", [URL]).outputs)


def test_user_code_runs_against_the_simulator(seedream_sim):
    assert my_code()
    assert seedream_sim.ledger.executions == 1


@pytest.mark.seedream_sim(faults=Faults(rate_limit=0.4, retry_after=0.001), seed=2)
def test_marker_configures_faults(seedream_sim, seedream_blocking_client):
    for i in range(4):
        assert seedream_blocking_client.edit(f"p{i}", [URL]).done
    assert seedream_sim.config.seed == 2
    assert seedream_sim.ledger.faults["429"] > 0
    assert seedream_sim.ledger.duplicate_submissions == 0


@pytest.mark.parametrize(
    "seedream_sim", [{"envelope": "flat"}, {"envelope": "code"}], indirect=True
)
def test_indirect_parametrisation(seedream_sim, seedream_blocking_client):
    assert seedream_sim.config.envelope in ("flat", "code")
    assert seedream_blocking_client.edit("p", [URL]).outputs


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_async_client_on_both_loops(seedream_client, seedream_sim):
    assert isinstance(seedream_client, AsyncSeedream)
    results = await seedream_client.edit_all(
        [{"key": str(i), "prompt": "p", "images": [URL]} for i in range(3)], order="input"
    )
    assert [r.key for r in results] == ["0", "1", "2"]
    async with AsyncSeedream(poll=FAST) as mine:  # the environment points at the simulator
        assert (await mine.edit("p", [URL])).done
    assert seedream_sim.ledger.executions == 4


@pytest.mark.seedream_sim(no_such_knob=1)
def test_unknown_field(seedream_sim):
    pass
'''


@pytest.fixture
def user_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_user=USER_TESTS)
    return pytester


def test_the_fixtures_in_a_users_suite(user_suite: pytest.Pytester) -> None:
    """The user's tests pass on every fixture and both loops; a marker with an unknown
    field errors with a message naming it; ``--strict-markers`` knows the marker."""
    result = user_suite.runpytest("--strict-markers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, errors=1)
    result.stdout.fnmatch_lines(["*unknown SimulatorConfig fields ?'no_such_knob'?*"])


def test_the_environment_is_restored(pytester: pytest.Pytester) -> None:
    """The simulator's URL leaves the environment with the test that used it."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import os

        def test_uses(seedream_sim):
            assert os.environ["ATLASCLOUD_BASE_URL"] == seedream_sim.base_url

        def test_after():
            assert "127.0.0.1" not in os.environ.get("ATLASCLOUD_BASE_URL", "")
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly").assert_outcomes(passed=2)


def test_registered_as_a_pytest11_entry_point() -> None:
    """pyproject.toml registers the plugin, so installing the package installs it."""
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    entry = pyproject["project"]["entry-points"]["pytest11"]
    assert entry == {"seedream_async": "seedream_async._pytest_plugin"}
