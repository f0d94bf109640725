"""A simulated Atlas Cloud API for tests and benchmarks: a real HTTP/1.1 server on anyio
and h11 that runs inside your event loop (asyncio or trio), with seeded faults and a
ledger of everything it billed.

Usage::

    import httpx
    from seedream_async.testing import Faults, serve

    async with serve(time_scale=0.001, seed=1, faults=Faults(rate_limit=0.2)) as sim:
        headers = {"Authorization": f"Bearer {sim.api_key}"}
        async with httpx.AsyncClient(base_url=sim.base_url, headers=headers) as http:
            ...  # upload, submit, poll as the API contract says
        assert sim.ledger.duplicate_submissions == 0

Or standalone: ``python -m seedream_async.testing --port 8787``.
"""

from __future__ import annotations

from ._config import Faults, Hostile, Shapes, SimulatorConfig
from ._ledger import Ledger
from ._png import make_png
from ._server import Simulator, serve
from ._threaded import serve_in_thread
from ._webhooks import WebhookAttempt, WebhookFaults

__all__ = [
    "Faults",
    "Hostile",
    "Ledger",
    "Shapes",
    "Simulator",
    "SimulatorConfig",
    "WebhookAttempt",
    "WebhookFaults",
    "make_png",
    "serve",
    "serve_in_thread",
]
