"""The simulator on an event loop of its own, in a thread: for synchronous code and tests
(the blocking :class:`~seedream_async.Seedream` client, a Django test case), and for tests
on any async backend, since its loop is never the test's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from anyio.from_thread import start_blocking_portal

from ._config import SimulatorConfig
from ._server import Simulator, serve

__all__ = ["serve_in_thread"]


@contextmanager
def serve_in_thread(
    config: SimulatorConfig | None = None,
    *,
    backend: Literal["asyncio", "trio"] = "asyncio",
    **overrides: Any,
) -> Iterator[Simulator]:
    """Start the simulator on 127.0.0.1 in a thread of its own; stop it on exit::

        with serve_in_thread(time_scale=0.001) as sim:
            with Seedream(sim.api_key, base_url=sim.base_url) as client:
                client.edit("On marble", ["shoe.png"])

    Args:
        config: the configuration; defaults to ``SimulatorConfig()``.
        backend: the event loop it runs on.
        overrides: :class:`SimulatorConfig` fields replacing those of ``config``.

    ``sim.configure(...)`` and ``sim.ledger`` work from the calling thread.
    """
    with (
        start_blocking_portal(backend) as portal,
        portal.wrap_async_context_manager(serve(config, **overrides)) as sim,
    ):
        yield sim
