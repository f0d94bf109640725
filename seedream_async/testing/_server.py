"""Run the simulator inside the caller's event loop: ``async with serve() as sim: ...``."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from ._app import App
from ._config import SimulatorConfig
from ._http import Handler, serve_connection
from ._ledger import Ledger

__all__ = ["Simulator", "serve"]

_HOST = "127.0.0.1"


class Simulator:
    """A running simulator, as yielded by :func:`serve`.

    Attributes:
        base_url: the API origin, ``http://127.0.0.1:PORT``.
        storage_url: the storage origin (uploads and outputs), a different port on purpose,
            so tests can prove a client never sends its API key there.
        catcher_url: the origin hostile redirects point to; what it receives is recorded
            in ``ledger.redirected``.
        ledger: the live :class:`Ledger`.
        webhooks: the webhook sender: its ``attempts`` and its key set (``jwks()``).
    """

    def __init__(self, app: App) -> None:
        self._app = app
        self.base_url = app.base_url
        self.storage_url = app.storage_url
        self.catcher_url = app.catcher_url
        self.ledger = app.ledger
        self.webhooks = app.webhooks

    @property
    def config(self) -> SimulatorConfig:
        """The configuration in force."""
        return self._app.config

    @property
    def api_key(self) -> str | None:
        """The bearer key the API requires, or None when auth is off."""
        return self._app.config.api_key

    def configure(self, **changes: Any) -> SimulatorConfig:
        """Replace configuration fields at runtime (``dataclasses.replace``) and return the result.

        Args:
            changes: :class:`SimulatorConfig` fields, for example ``faults=Faults(drop=0.5)``.
                ``seed`` only takes effect at start.
        """
        self._app.config = dataclasses.replace(self._app.config, **changes)
        return self._app.config

    def __repr__(self) -> str:
        return f"<Simulator {self.base_url} storage {self.storage_url}>"


async def _listen(listener: anyio.abc.Listener[Any], handler: Handler) -> None:
    await listener.serve(partial(serve_connection, handler=handler))


def _origin(listener: anyio.abc.Listener[Any]) -> str:
    return f"http://{_HOST}:{listener.extra(SocketAttribute.local_port)}"


@asynccontextmanager
async def serve(
    config: SimulatorConfig | None = None,
    *,
    port: int = 0,
    storage_port: int = 0,
    **overrides: Any,
) -> AsyncIterator[Simulator]:
    """Start the simulator on 127.0.0.1 in the current event loop; stop it on exit.

    Args:
        config: the configuration; defaults to ``SimulatorConfig()``.
        port: the API port (0 picks a free one).
        storage_port: the storage port (0 picks a free one).
        overrides: :class:`SimulatorConfig` fields replacing those of ``config``.
    """
    config = dataclasses.replace(config or SimulatorConfig(), **overrides)
    api_listener = await anyio.create_tcp_listener(local_host=_HOST, local_port=port)
    async with api_listener:
        storage_listener = await anyio.create_tcp_listener(
            local_host=_HOST, local_port=storage_port
        )
        catcher_listener = await anyio.create_tcp_listener(local_host=_HOST, local_port=0)
        async with storage_listener, catcher_listener:
            app = App(
                config,
                ledger=Ledger(),
                base_url=_origin(api_listener),
                storage_url=_origin(storage_listener),
                catcher_url=_origin(catcher_listener),
            )
            try:
                async with anyio.create_task_group() as tg:
                    await tg.start(app.webhooks.run)
                    tg.start_soon(_listen, api_listener, app.api)
                    tg.start_soon(_listen, storage_listener, app.storage)
                    tg.start_soon(_listen, catcher_listener, app.catcher)
                    try:
                        yield Simulator(app)
                    finally:
                        tg.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                # Only the caller's own exception can land here (the listeners never raise):
                # hand it back as raised rather than wrapped in the task group's group.
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
