"""The pytest plugin: test your own code against the simulator, offline, for free.

Installed with the package (the ``pytest11`` entry point ``seedream_async``); its fixtures
appear in every test suite of a project that has seedream-async installed (the simulator
needs the ``sim`` extra: ``pip install 'seedream-async[sim]'``):

``seedream_sim``
    A running simulator (:class:`~seedream_async.testing.Simulator`) on 127.0.0.1, fresh
    for each test, in a thread of its own, so sync tests and async tests on any event loop
    (asyncio, trio) can use it. While it runs, ``ATLASCLOUD_API_KEY`` and
    ``ATLASCLOUD_BASE_URL`` point at it, so code that makes its own ``AsyncSeedream()`` or
    ``Seedream()`` talks to it unchanged. Configure it with the marker, whose keywords are
    :class:`~seedream_async.testing.SimulatorConfig` fields::

        @pytest.mark.seedream_sim(faults=Faults(rate_limit=0.3), seed=4)
        def test_my_code_survives_429s(seedream_sim): ...

    or by indirect parametrisation, one dict of fields per case::

        @pytest.mark.parametrize("seedream_sim", [{}, {"envelope": "flat"}], indirect=True)

    Predictions take 8.3 ms by default (``time_scale=0.001``), not 8.3 s.

``seedream_client``
    An open :class:`~seedream_async.AsyncSeedream` bound to ``seedream_sim``, with retries
    and polls scaled to the simulator's pace; an async fixture run by anyio's pytest plugin
    (mark the test ``@pytest.mark.anyio``; its ``anyio_backend`` picks the loop).

``seedream_blocking_client``
    The same as a blocking :class:`~seedream_async.Seedream`, for synchronous tests.

Everything is imported when a fixture is first used, so the plugin costs nothing (and
needs no extra) in suites that do not use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._clients._async import AsyncSeedream
    from ._clients._blocking import Seedream
    from .testing import Simulator

__all__ = [
    "pytest_configure",
    "seedream_blocking_client",
    "seedream_client",
    "seedream_sim",
]

# The simulator's pace in these fixtures: an 8.3 s edit takes 8.3 ms.
TIME_SCALE = 0.001


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``seedream_sim`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        "seedream_sim(**fields): configure the seedream_sim fixture's simulator "
        "(SimulatorConfig fields: faults=Faults(...), shapes=..., seed=..., time_scale=...)",
    )


def _settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    settings: dict[str, Any] = {"time_scale": TIME_SCALE}
    for marker in reversed(list(request.node.iter_markers("seedream_sim"))):
        if marker.args:
            raise pytest.UsageError(
                "@pytest.mark.seedream_sim takes SimulatorConfig fields as keywords only"
            )
        settings.update(marker.kwargs)
    param = getattr(request, "param", None)
    if param is not None:
        if not isinstance(param, dict):
            raise pytest.UsageError(
                "parametrize seedream_sim with dicts of SimulatorConfig fields, got "
                f"{type(param).__name__}"
            )
        settings.update(param)
    return settings


@pytest.fixture
def seedream_sim(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Simulator]:
    """A running simulator, configured by ``@pytest.mark.seedream_sim(...)`` or by indirect
    parametrisation; the environment points the library at it while it runs."""
    from ._base._constants import API_KEY_ENV, BASE_URL_ENV
    from .testing import SimulatorConfig, serve_in_thread

    settings = _settings(request)
    known = {field.name for field in dataclasses.fields(SimulatorConfig)}
    if unknown := sorted(set(settings) - known):
        raise pytest.UsageError(f"seedream_sim: unknown SimulatorConfig fields {unknown}")
    with serve_in_thread(**settings) as sim:
        monkeypatch.setenv(API_KEY_ENV, sim.api_key or "no-key")
        monkeypatch.setenv(BASE_URL_ENV, sim.base_url)
        yield sim


def _client_options(sim: Simulator) -> dict[str, Any]:
    from ._policies._polling import PollPolicy
    from ._policies._retry import RetryPolicy

    scale = sim.config.time_scale or TIME_SCALE
    return {
        "api_key": sim.api_key or "no-key",
        "base_url": sim.base_url,
        "retry": RetryPolicy(initial_delay=0.001, max_delay=0.05, max_retry_after=5.0),
        "poll": dataclasses.replace(PollPolicy().scaled(scale), deadline=60.0),
    }


@pytest.fixture
async def seedream_client(
    anyio_backend: object, seedream_sim: Simulator
) -> AsyncIterator[AsyncSeedream]:
    """An open ``AsyncSeedream`` bound to ``seedream_sim`` (mark the test ``anyio``)."""
    from ._clients._async import AsyncSeedream

    async with AsyncSeedream(**_client_options(seedream_sim)) as client:
        yield client


@pytest.fixture
def seedream_blocking_client(seedream_sim: Simulator) -> Iterator[Seedream]:
    """A blocking ``Seedream`` bound to ``seedream_sim``."""
    from ._clients._blocking import Seedream

    with Seedream(**_client_options(seedream_sim)) as client:
        yield client
