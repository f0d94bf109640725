"""The simulated Atlas Cloud API: its listeners and routes.

A prediction's status is computed from timestamps on the server clock
(``anyio.current_time()``): nothing runs in the background, so a test that never polls
costs nothing and the simulator shuts down instantly.

The app is assembled from one base per idea: :mod:`._replies` (answer shapes),
:mod:`._faults` (seeded faults, rate limits, hostility), :mod:`._storage` (uploaded files)
and :mod:`._predictions` (predictions and their outputs); this module routes requests.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Awaitable, Callable

import anyio

from .._base._constants import MAX_REQUEST_BYTES
from ._config import SimulatorConfig
from ._faults import Fault
from ._http import Handler, Request, Response
from ._ledger import Ledger, RedirectRecord
from ._predictions import OUTPUT_PATH, POLL_PATH, Predictions
from ._webhooks import JWKS_PATH, WebhookSender

__all__ = ["App"]

_UPLOAD = "/api/v1/model/uploadMedia"
_SUBMIT = "/api/v1/model/generateImage"
_LEDGER = "/_sim/ledger"
# Atlas Cloud's Billing Public API (https://www.atlascloud.ai/docs/public-api/balance).
_BALANCE = "/public/v1/balance"
# Room for multipart boundaries and part headers on top of the file itself.
_MULTIPART_OVERHEAD = 64 * 1024
_JSON_LIMIT = 1024 * 1024

_Route = Callable[[Request], Awaitable[Response | None]]


class App(Predictions):
    """The simulator's state and routes, served by two listeners (API and storage).

    Args:
        config: the starting configuration (replace :attr:`config` to change it live).
        ledger: where to record what happens.
        base_url: the API origin, for messages.
        storage_url: the storage origin, used in the URLs handed out.
        catcher_url: another origin that hostile redirects point to; it records what it
            receives and answers 404.
    """

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        ledger: Ledger,
        base_url: str,
        storage_url: str,
        catcher_url: str = "http://127.0.0.1:9",
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.base_url = base_url
        self.storage_url = storage_url
        self.catcher_url = catcher_url
        # Each random choice has its own seeded stream (see the bases for which is which), so
        # turning one knob on leaves the others' draws as they were.
        self._fault_rng = random.Random(f"{config.seed}:faults")
        self._prediction_rng = random.Random(f"{config.seed}:predictions")
        self._id_rng = random.Random(f"{config.seed}:ids")
        self._hostile_rng = random.Random(f"{config.seed}:hostile")
        self._count_rng = random.Random(f"{config.seed}:outputs")
        self._secret = hashlib.sha256(f"seedream-sim:{config.seed}".encode()).digest()
        self._predictions = {}
        self._finishing = []
        self._files = {}
        self._tat = {}
        self._responses = 0
        self.webhooks = WebhookSender(lambda: self.config.webhooks, seed=config.seed)
        self._request_ids = 0
        self.api = Handler(body_limit=self._api_body_limit, handle=self._handle_api)
        self.storage = Handler(body_limit=lambda _request: 0, handle=self._handle_storage)
        self.catcher = Handler(body_limit=self._api_body_limit, handle=self._handle_catcher)

    def _authorised(self, request: Request) -> bool:
        key = self.config.api_key
        if key is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {key}".encode())

    async def _handle_catcher(self, request: Request) -> Response:
        self.ledger.record_redirect(
            RedirectRecord(
                method=request.method,
                path=request.path,
                authorization="authorization" in request.headers,
                body_bytes=len(request.body),
            )
        )
        return self._error(404, "redirect target: nothing here (the request was recorded)")

    # -- API listener ---------------------------------------------------------------------

    def _api_body_limit(self, request: Request) -> int:
        if request.path == _UPLOAD:
            return self.config.max_upload_bytes + _MULTIPART_OVERHEAD
        if request.path == _SUBMIT:  # images may be inlined as data URIs: 50 MB, as documented
            return MAX_REQUEST_BYTES
        return _JSON_LIMIT

    def _route(self, request: Request) -> tuple[str, _Route | None]:
        method, path = request.method, request.path
        if method == "POST" and path == _UPLOAD:
            return "upload", self._upload
        if method == "POST" and path == _SUBMIT:
            return "submit", self._submit
        if method == "GET" and POLL_PATH.match(path):
            return "poll", self._poll
        if method == "GET" and path == _LEDGER:
            return "ledger", self._ledger_route
        if method == "GET" and path == _BALANCE:
            return "balance", self._balance
        if method == "GET" and path == JWKS_PATH:
            return "jwks", self._jwks
        return "unknown", None

    async def _handle_api(self, request: Request) -> Response | None:
        response = await self._answer_api(request)
        if response is None:
            return None
        return self._compressed(request, self._with_request_id(response))

    async def _answer_api(self, request: Request) -> Response | None:
        config = self.config
        if config.request_latency > 0:
            await anyio.sleep(config.request_latency)
        endpoint, route = self._route(request)
        self.ledger.record_request(endpoint)
        self.ledger.record_headers(endpoint, request.headers)
        if route is None:
            status = config.shapes.unknown_path_status
            return self._error(status, f"no route for {request.method} {request.path}")
        if endpoint == "jwks":  # public, as Atlas's key set is
            return await route(request)
        if not self._authorised(request):
            return self._hostile_after(
                endpoint, request, self._error(401, "Missing or invalid API key")
            )
        if request.body_too_large:
            return self._error(413, f"upload is larger than {config.max_upload_bytes} bytes")
        if endpoint == "ledger":
            return await route(request)
        hostile = self._hostile_before(endpoint, request)
        if hostile is not None:
            return self._hostile_after(endpoint, request, hostile)
        try:
            self._check_rate(request)
            if endpoint == "submit":
                response = await self._submit_with_faults(request)
            else:
                outcome = await self._inject(endpoint)
                response = self._injected(outcome) if outcome is not None else await route(request)
        except Fault as fault:
            response = self._fault_response(fault)
        if response is None:
            return None
        return self._hostile_after(endpoint, request, response)

    async def _ledger_route(self, request: Request) -> Response:
        return self._json(200, self.ledger.snapshot(), envelope=False)

    async def _balance(self, request: Request) -> Response:
        """Atlas Cloud's Billing Public API ``GET /public/v1/balance``: the configured
        balance less what the ledger billed, as six-decimal USD strings."""
        if self.config.balance is None:
            return self._error(403, "this API key may not read the account balance")
        available = max(self.config.balance - self.ledger.cost, 0.0)

        def money(value: float) -> dict[str, str]:
            return {"value": f"{value:.6f}", "currency": "usd"}

        body = {
            "object": "balance",
            "scope": "account",
            "account": {"id": "acc_sim", "name": "Simulator", "type": "personal"},
            "available": money(available),
            "cash": money(available),
            "bonus": money(0.0),
            "frozen": money(0.0),
        }
        return self._json(200, body, envelope=False)

    async def _jwks(self, request: Request) -> Response:
        return self._json(200, self.webhooks.jwks(), envelope=False)

    # -- storage listener -----------------------------------------------------------------

    async def _handle_storage(self, request: Request) -> Response | None:
        if self.config.request_latency > 0:
            await anyio.sleep(self.config.request_latency)
        if "authorization" in request.headers:
            self.ledger.record_auth_on_storage()
        if request.method == "GET" and request.path.startswith("/uploads/"):
            endpoint = "upload_file"
        elif request.method == "GET" and OUTPUT_PATH.match(request.path):
            endpoint = "output"
        else:
            self.ledger.record_request("unknown")
            return self._error(404, f"no such object: {request.path}")
        self.ledger.record_request(endpoint)
        hostile = self._hostile_before(endpoint, request)
        if hostile is not None:
            return self._hostile_after(endpoint, request, hostile)
        try:
            outcome = await self._inject(endpoint)
        except Fault as fault:
            return self._hostile_after(endpoint, request, self._fault_response(fault))
        if outcome is not None:
            response = self._injected(outcome)
        elif endpoint == "upload_file":
            stored = self._files.get(request.path)
            if stored is None:
                response = self._error(404, f"no such object: {request.path}")
            else:
                response = Response(status=200, body=stored[0], content_type=stored[1])
        else:
            response = self._serve_output(request)
        if response is None:
            return None
        return self._hostile_after(endpoint, request, response)
