"""The simulated Atlas Cloud API: routes, predictions on a clock, and seeded faults.

A prediction's status is computed from timestamps on the server clock
(``anyio.current_time()``): nothing runs in the background, so a test that never polls
costs nothing and the simulator shuts down instantly.
"""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import hashlib
import heapq
import hmac
import json
import math
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import anyio

from .._base._constants import MAX_REQUEST_BYTES
from ._config import SimulatorConfig
from ._contract import ContractError, Edit, extension_for, input_problem, sniff, validate_edit
from ._http import Handler, Request, Response
from ._jpeg import make_jpeg
from ._ledger import Ledger, RedirectRecord, SubmitRecord, UploadRecord
from ._multipart import MultipartError, find_part
from ._png import make_png
from ._webhooks import EVENT, JWKS_PATH, WebhookSender

__all__ = ["App"]

_UPLOAD = "/api/v1/model/uploadMedia"
_SUBMIT = "/api/v1/model/generateImage"
_POLL = re.compile(r"^/api/v1/model/prediction/([^/]+)$")
_LEDGER = "/_sim/ledger"
# Atlas Cloud's Billing Public API (https://www.atlascloud.ai/docs/public-api/balance).
_BALANCE = "/public/v1/balance"
_OUTPUT = re.compile(r"^/outputs/([^/]+)/(\d+)\.(png|jpg)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Room for multipart boundaries and part headers on top of the file itself.
_MULTIPART_OVERHEAD = 64 * 1024
_JSON_LIMIT = 1024 * 1024
# Outputs "never" expire without output_ttl: a week.
_NO_TTL = 7 * 24 * 3600.0
_PROCESSED_CODES = frozenset({500, 502, 504})
_HTML = (
    b"<!doctype html><html><head><title>Welcome</title></head><body><h1>Sign in to continue"
    b"</h1><p>This network requires you to sign in.</p></body></html>"
)

_Route = Callable[[Request], Awaitable[Response | None]]


@dataclass(frozen=True, kw_only=True)
class _Prediction:
    id: str
    model: str
    created: float  # server clock
    done_at: float  # server clock
    created_wall: float  # unix time
    latency: float  # real seconds
    failed: bool
    failure_message: str
    max_images: int
    outputs: int  # how many images the model decided to return (<= max_images)
    base64_output: bool
    sync: bool
    fmt: str  # "jpeg" or "png": the request's output_format, else the simulator's shape


class _Fault(Exception):
    """Raised inside the app to answer with an injected or limit error."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _canonical_hash(body: Any) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@lru_cache(maxsize=512)
def _output_image(prediction_id: str, index: int, width: int, height: int, fmt: str) -> bytes:
    digest = hashlib.sha256(f"{prediction_id}/{index}".encode()).digest()
    seed = int.from_bytes(digest[:8], "big")
    label = f"seedream-sim {prediction_id} #{index}"
    if fmt == "jpeg":
        return make_jpeg(width, height, seed=seed, label=label)
    return make_png(width, height, seed=seed, label=label)


class App:
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
        self._fault_rng = random.Random(f"{config.seed}:faults")
        self._prediction_rng = random.Random(f"{config.seed}:predictions")
        self._id_rng = random.Random(f"{config.seed}:ids")
        # Its own stream, so turning hostility on leaves the faults' draws as they were.
        self._hostile_rng = random.Random(f"{config.seed}:hostile")
        # And the model's choice of how many images to return has its own stream too.
        self._count_rng = random.Random(f"{config.seed}:outputs")
        self._secret = hashlib.sha256(f"seedream-sim:{config.seed}".encode()).digest()
        self._predictions: dict[str, _Prediction] = {}
        # Finish times of the predictions still running: a min-heap, so counting them at a
        # submit costs O(log n) rather than a scan of every prediction ever made.
        self._finishing: list[float] = []
        self._files: dict[str, tuple[bytes, str]] = {}
        self._tat: dict[str, float] = {}  # GCRA theoretical arrival time per API key
        self._responses = 0
        self.webhooks = WebhookSender(lambda: self.config.webhooks, seed=config.seed)
        self._request_ids = 0
        self.api = Handler(body_limit=self._api_body_limit, handle=self._handle_api)
        self.storage = Handler(body_limit=lambda _request: 0, handle=self._handle_storage)
        self.catcher = Handler(body_limit=self._api_body_limit, handle=self._handle_catcher)

    # -- plumbing ------------------------------------------------------------------------

    def _json(self, status: int, payload: dict[str, Any], *, envelope: bool = True) -> Response:
        if envelope:
            mode = self.config.envelope
            self._responses += 1
            if mode == "code":
                payload = {"code": 200, "message": "success", "data": payload}
            elif mode == "data" or (mode == "mixed" and self._responses % 2):
                payload = {"data": payload}
        return Response(status=status, body=json.dumps(payload).encode())

    def _error(self, status: int, message: str, **extra: Any) -> Response:
        if self.config.shapes.error_body == "message":
            return self._json(status, {"message": message, "code": status, **extra}, envelope=False)
        body = {"code": status, "msg": message, "request_id": self._request_id(), "data": None}
        return self._json(status, {**body, **extra}, envelope=False)

    def _request_id(self) -> str:
        self._request_ids += 1
        return f"req_{self.config.seed:x}_{self._request_ids:08d}"

    def _with_request_id(self, response: Response) -> Response:
        """Every API answer carries ``X-Request-ID`` (the one in an error body, if any)."""
        rid = None
        if response.body.startswith(b"{") and response.status >= 400:
            try:
                rid = json.loads(response.body).get("request_id")
            except (ValueError, AttributeError):
                rid = None
        headers = (*response.headers, ("x-request-id", rid or self._request_id()))
        return dataclasses.replace(response, headers=headers)

    def _retry_headers(self, seconds: float | None) -> tuple[tuple[str, str], ...]:
        if seconds is None or not self.config.faults.send_retry_after:
            return ()
        fmt = self.config.faults.retry_after_format
        if fmt == "ms":
            return (("retry-after-ms", str(math.ceil(seconds * 1000))),)
        if fmt == "http-date":
            # HTTP dates have whole seconds: round up so the date is never earlier than asked.
            when = math.ceil(time.time() + max(seconds, 1.0))
            return (("retry-after", email.utils.formatdate(when, usegmt=True)),)
        text = f"{seconds:.3f}".rstrip("0").rstrip(".")
        return (("retry-after", text if text != "0" else "0.001"),)

    def _fault_response(self, fault: _Fault) -> Response:
        response = self._error(fault.status, fault.message)
        if fault.status == 429:
            response = Response(
                status=429, body=response.body, headers=self._retry_headers(fault.retry_after)
            )
        return response

    def _authorised(self, request: Request) -> bool:
        key = self.config.api_key
        if key is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {key}".encode())

    def _draw(self, probability: float) -> bool:
        return probability > 0 and self._fault_rng.random() < probability

    # -- hostile behaviour ------------------------------------------------------------------

    def _hostile(self, kind: str, endpoint: str) -> bool:
        hostile = self.config.hostile
        endpoints: frozenset[str] = getattr(hostile, kind)
        if endpoint not in endpoints or not (
            hostile.rate >= 1.0 or self._hostile_rng.random() < hostile.rate
        ):
            return False
        self.ledger.record_fault(f"hostile_{kind}")
        return True

    def _echo(self, request: Request) -> str:
        """What a careless server quotes back: the Authorization header it received."""
        if not self.config.hostile.echo_key:
            return ""
        return f" (request sent Authorization: {request.headers.get('authorization', '')})"

    def _hostile_before(self, endpoint: str, request: Request) -> Response | None:
        """Answers that replace the route: nothing is created or billed."""
        if self._hostile("redirect", endpoint):
            location = f"{self.catcher_url}{request.target}"
            body = json.dumps({"message": "moved", "location": location}).encode()
            return Response(status=307, body=body, headers=(("location", location),))
        if self._hostile("html", endpoint):
            return Response(status=200, body=_HTML, content_type="text/html; charset=utf-8")
        if self._hostile("error_envelope", endpoint):
            code = self.config.hostile.error_code
            message = f"request rejected (simulated error envelope){self._echo(request)}"
            envelope = {"code": code, "message": message, "data": None}
            return Response(status=200, body=json.dumps(envelope).encode())
        return None

    def _hostile_after(self, endpoint: str, request: Request, response: Response) -> Response:
        hostile = self.config.hostile
        if response.status >= 400 and hostile.echo_key and response.body.startswith(b"{"):
            payload = json.loads(response.body)
            name = "msg" if "msg" in payload else "message"
            payload[name] = f"{payload.get(name, 'error')}{self._echo(request)}"
            response = dataclasses.replace(response, body=json.dumps(payload).encode())
        if response.status == 200 and self._hostile("oversized", endpoint):
            response = dataclasses.replace(response, body=self._pad(response))
        if self._hostile("trickle", endpoint):
            response = dataclasses.replace(response, trickle=hostile.trickle_rate)
        return response

    def _pad(self, response: Response) -> bytes:
        size = self.config.hostile.oversized_bytes
        if not response.content_type.startswith("application/json"):
            return response.body + bytes(max(0, size - len(response.body)))
        payload = json.loads(response.body)
        inner = payload.get("data") if isinstance(payload.get("data"), dict) else payload
        inner["padding"] = ""
        room = max(0, size - len(json.dumps(payload)))
        inner["padding"] = "x" * room
        return json.dumps(payload).encode()

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
        if method == "GET" and _POLL.match(path):
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
        return None if response is None else self._with_request_id(response)

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
        except _Fault as fault:
            response = self._fault_response(fault)
        if response is None:
            return None
        return self._hostile_after(endpoint, request, response)

    def _injected(self, outcome: str) -> Response | None:
        if outcome == "drop":
            return None
        return self._error(int(outcome), f"simulated server error {outcome}")

    def _check_rate(self, request: Request) -> None:
        """Per-key rate limit with the Generic Cell Rate Algorithm (GCRA, ITU-T I.371;
        https://en.wikipedia.org/wiki/Generic_cell_rate_algorithm): a request conforms once
        the theoretical arrival time (TAT), less the burst tolerance, has come; then
        TAT += 1/rate. The tolerance lets ``burst`` requests through back to back."""
        faults = self.config.faults
        rate = faults.requests_per_second
        if rate is None:
            return
        burst = faults.requests_burst or max(1, math.floor(rate))
        tolerance = (burst - 1) / rate
        key = request.headers.get("authorization", "")
        now = anyio.current_time()
        tat = max(self._tat.get(key, now), now)
        if tat - tolerance > now:
            self.ledger.record_fault("rps_limit")
            wait = tat - tolerance - now
            raise _Fault(429, f"rate limit of {rate:g} requests per second exceeded", wait)
        self._tat[key] = tat + 1.0 / rate

    async def _inject(self, endpoint: str) -> str | None:
        """Draw the random faults for ``endpoint``: sleep when slow, raise an injected error,
        or return ``"drop"`` / the server error status for the caller to act on."""
        faults = self.config.faults
        if endpoint not in faults.endpoints:
            return None
        if self._draw(faults.slow):
            self.ledger.record_fault("slow")
            await anyio.sleep(faults.slow_seconds)
        if self._draw(faults.drop):
            self.ledger.record_fault("drop")
            return "drop"
        if self._draw(faults.rate_limit):
            self.ledger.record_fault("429")
            raise _Fault(429, "Too many requests (simulated)", faults.retry_after)
        if self._draw(faults.server_error):
            status = self._fault_rng.choice(faults.server_error_codes)
            self.ledger.record_fault(str(status))
            return str(status)
        return None

    async def _submit_with_faults(self, request: Request) -> Response | None:
        """Submit, with the ambiguous case: an error or a drop after the prediction was billed."""
        outcome = await self._inject("submit")
        if outcome is None:
            return await self._submit(request)
        status = 0 if outcome == "drop" else int(outcome)
        processed = (status == 0 or status in _PROCESSED_CODES) and self._draw(
            self.config.faults.processed_on_error
        )
        edit = self._validate(request) if processed else None
        if isinstance(edit, Edit):
            limit = self.config.faults.max_in_flight
            if limit is None or self._running(anyio.current_time()) < limit:
                created = self._create(request, edit, processed_before_error=True)
                if status == 0 and edit.sync_mode:
                    # A sync-mode submit holds its connection open while the prediction
                    # runs, so a drop lands somewhere in that wait, not at once.
                    await anyio.sleep(self._fault_rng.random() * created.latency)
        return self._injected(outcome)

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

    async def _upload(self, request: Request) -> Response:
        config = self.config
        try:
            part = find_part(request.headers.get("content-type", ""), request.body, "file")
        except MultipartError as err:
            return self._error(400, str(err))
        if part is None:
            return self._error(400, "multipart body has no part named 'file'", field="file")
        if len(part.data) > config.max_upload_bytes:
            return self._error(413, f"upload is larger than {config.max_upload_bytes} bytes")
        content_type = sniff(part.data)
        if content_type is None or content_type not in config.accepted_types:
            shown = content_type or ("an empty file" if not part.data else "not an image")
            accepted = ", ".join(sorted(config.accepted_types))
            return self._error(415, f"unsupported media: {shown}; accepted: {accepted}")
        digest = hashlib.sha256(part.data).hexdigest()
        name = _UNSAFE.sub("_", (part.filename or "").rsplit("/", 1)[-1]).strip("._")
        name = name or f"file{extension_for(content_type)}"
        path = f"/uploads/{digest[:16]}/{name}"
        self._files[path] = (part.data, content_type)
        url = f"{self.storage_url}{path}"
        self.ledger.record_upload(
            UploadRecord(sha256=digest, size=len(part.data), content_type=content_type, url=url)
        )
        shape = config.shapes.upload
        answer: dict[str, Any]
        if shape == "url":
            answer = {"url": url}
        elif shape == "filename":
            answer = {"download_url": url, "filename": name, "type": content_type}
            answer["size"] = len(part.data)
        else:
            answer = {"download_url": url, "file_name": name, "content_type": content_type}
            answer["size"] = len(part.data)
        return self._json(200, answer)

    def _validate(self, request: Request) -> Edit | Response:
        try:
            body = json.loads(request.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return self._error(400, "request body is not valid JSON")
        try:
            return validate_edit(body)
        except ContractError as err:
            return self._error(err.status, err.message, field=err.field)

    async def _submit(self, request: Request) -> Response | None:
        edit = self._validate(request)
        if isinstance(edit, Response):
            return edit
        limit = self.config.faults.max_in_flight
        now = anyio.current_time()
        if limit is not None and self._running(now) >= limit:
            self.ledger.record_fault("in_flight_limit")
            raise _Fault(
                429,
                f"{limit} predictions already running",
                self.config.faults.retry_after,
            )
        prediction = self._create(request, edit, processed_before_error=False)
        if edit.sync_mode:
            return await self._hold_sync(prediction, request)
        payload = {
            "id": self._id_value(prediction.id),
            "status": self.config.shapes.running[0],
            "model": prediction.model,
        }
        payload.update(self._stamp("created_at", prediction.created_wall))
        return self._json(200, payload)

    async def _hold_sync(self, prediction: _Prediction, request: Request) -> Response:
        """A sync-mode submit: answered when done, or 504 once the server's maximum wait
        passes (the prediction goes on; the 504 names it unless told not to)."""
        faults = self.config.faults
        wait = max(0.0, prediction.done_at - anyio.current_time())
        if faults.sync_max_wait is not None and wait > faults.sync_max_wait:
            await anyio.sleep(faults.sync_max_wait)
            self.ledger.record_fault("sync_timeout")
            data = {"id": self._id_value(prediction.id)} if faults.sync_timeout_id else None
            return self._error(504, "sync request exceeded the maximum wait", data=data)
        await anyio.sleep(wait)
        return self._json(200, self._describe(prediction, request, polls=0))

    def _running(self, now: float) -> int:
        while self._finishing and self._finishing[0] <= now:
            heapq.heappop(self._finishing)
        return len(self._finishing)

    def _new_id(self) -> str:
        if self.config.shapes.numeric_ids:
            # Numbers a JSON reader of any language keeps exact (below 2**53).
            return str(10**15 + self._id_rng.getrandbits(48))
        return f"pred_{self._id_rng.getrandbits(64):016x}"

    def _id_value(self, prediction_id: str) -> str | int:
        return int(prediction_id) if prediction_id.isdigit() else prediction_id

    def _stamp(self, name: str, unix: float) -> dict[str, Any]:
        mode = self.config.shapes.timestamps
        if mode == "missing":
            return {}
        value = {"iso": _iso(unix), "empty": "", "garbage": "soon-ish, give or take"}[mode]
        return {name: value}

    def _create(self, request: Request, edit: Edit, *, processed_before_error: bool) -> _Prediction:
        """Create and bill a prediction whose body was validated."""
        config = self.config
        body = json.loads(request.body)
        rng = self._prediction_rng
        base = rng.lognormvariate(math.log(config.latency_median), config.latency_sigma)
        predict_time = base * (1 + config.per_extra_image * (edit.max_images - 1))
        latency = predict_time * config.time_scale
        # A stored reference the model cannot take (cut short, a 20,000 px "bomb") is not
        # caught by the submit's validation: it is billed and fails, as on the real API.
        refused = self._reference_problem(edit.images)
        failed = refused is not None or self._draw(config.faults.prediction_failure)
        now = anyio.current_time()
        prediction = _Prediction(
            id=self._new_id(),
            model=edit.model,
            created=now,
            done_at=now + latency,
            created_wall=time.time(),
            latency=latency,
            failed=failed,
            failure_message=refused or config.faults.failure_message,
            max_images=edit.max_images,
            outputs=self._output_count(edit.max_images),
            base64_output=edit.base64_output,
            sync=edit.sync_mode,
            fmt=edit.output_format or config.shapes.output_format,
        )
        self._predictions[prediction.id] = prediction
        heapq.heappush(self._finishing, prediction.done_at)
        if failed:
            self.ledger.record_fault("failed_prediction")
        record = SubmitRecord(
            prediction_id=prediction.id,
            body_hash=_canonical_hash(body),
            prompt=edit.prompt,
            created_at=prediction.created,
            done_at=prediction.done_at,
            latency=latency,
            failed=failed,
            processed_before_error=processed_before_error,
            max_images=edit.max_images,
            unknown_fields=edit.unknown,
            model=edit.model,
            cost=edit.served.bill(images=prediction.outputs, failed=failed),
            outputs=prediction.outputs,
        )
        self.ledger.record_submission(record, in_flight=self._running(now))
        webhook_url = body.get("webhook_url") if isinstance(body, dict) else None
        if isinstance(webhook_url, str) and webhook_url.startswith(("http://", "https://")):
            self.webhooks.schedule(
                webhook_url,
                prediction.id,
                prediction.done_at,
                lambda: self._webhook_body(prediction, request),
            )
        return prediction

    def _reference_problem(self, images: tuple[str, ...]) -> str | None:
        for index, url in enumerate(images):
            stored = self._files.get(url.removeprefix(self.storage_url).split("?")[0])
            problem = input_problem(stored[0]) if stored is not None else None
            if problem is not None:
                return f"images[{index}]: {problem}"
        return None

    def _webhook_body(self, prediction: _Prediction, request: Request) -> dict[str, Any]:
        """The terminal delivery: the poll's result shape, wrapped as Atlas documents."""
        payload = self._describe(prediction, request, polls=0)
        body: dict[str, Any] = {
            "session_id": self._id_value(prediction.id),
            "event_type": EVENT,
            "status": "ERROR" if prediction.failed else "OK",
            "payload": payload,
        }
        if prediction.failed:
            body["error"] = payload.get("error")
        return body

    async def _jwks(self, request: Request) -> Response:
        return self._json(200, self.webhooks.jwks(), envelope=False)

    def _output_count(self, max_images: int) -> int:
        if self.config.shapes.output_count == "max" or max_images == 1:
            return max_images
        # The model decides: usually all, sometimes fewer (seeded).
        rng = self._count_rng
        return max_images if rng.random() < 0.5 else rng.randint(1, max_images)

    def _nsfw_flags(self, prediction: _Prediction) -> list[bool]:
        rate = self.config.faults.nsfw
        flags = []
        for index in range(prediction.outputs):
            digest = hashlib.sha256(f"nsfw/{self.config.seed}/{prediction.id}/{index}".encode())
            flags.append(rate > 0 and int.from_bytes(digest.digest()[:4], "big") < rate * 2**32)
        return flags

    def _describe(self, prediction: _Prediction, request: Request, *, polls: int) -> dict[str, Any]:
        now = anyio.current_time()
        shapes = self.config.shapes
        payload: dict[str, Any] = {
            "id": self._id_value(prediction.id),
            "status": shapes.running[polls % len(shapes.running)],
            "model": prediction.model,
            shapes.output_key: [],
            "metrics": {},
            "error": None,
        }
        payload.update(self._stamp("created_at", prediction.created_wall))
        if now < prediction.done_at:
            return payload
        self.ledger.record_terminal_seen(prediction.id, now)
        payload.update(self._stamp("completed_at", prediction.created_wall + prediction.latency))
        payload["metrics"] = {"predict_time": round(prediction.latency, 6)}
        if prediction.failed:
            error = f"{prediction.failure_message}{self._echo(request)}"
            payload.update(status=shapes.failed, error=error)
            if self.config.faults.failure_code is not None:
                payload["error_code"] = self.config.faults.failure_code
            return payload
        payload["status"] = shapes.done
        outputs = [self._output(prediction, i) for i in range(prediction.outputs)]
        payload[shapes.output_key] = self._shape_outputs(outputs, prediction.base64_output)
        payload["has_nsfw_contents"] = self._nsfw_flags(prediction)
        return payload

    def _shape_outputs(self, outputs: list[str], base64_output: bool) -> Any:
        shapes = self.config.shapes
        items: list[Any] = list(outputs)
        if shapes.output_items == "object" and not base64_output:
            items = [{"url": url} for url in outputs]
        if shapes.output_form == "string" and len(items) == 1:
            return items[0]
        return items

    def _image(self, prediction: _Prediction, index: int) -> bytes:
        return _output_image(prediction.id, index, *self.config.output_size, prediction.fmt)

    def _output(self, prediction: _Prediction, index: int) -> str:
        if prediction.base64_output:
            image = self._image(prediction, index)
            return base64.b64encode(image).decode("ascii")
        ttl = self.config.faults.output_ttl
        expires = f"{time.time() + (_NO_TTL if ttl is None else ttl):.3f}"
        signature = self._sign(prediction.id, index, expires)
        suffix = "jpg" if prediction.fmt == "jpeg" else "png"
        path = f"/outputs/{prediction.id}/{index}.{suffix}"
        return f"{self.storage_url}{path}?expires={expires}&sig={signature}"

    def _sign(self, prediction_id: str, index: int, expires: str) -> str:
        message = f"{prediction_id}/{index}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    async def _poll(self, request: Request) -> Response:
        match = _POLL.match(request.path)
        assert match is not None
        prediction = self._predictions.get(match[1])
        if prediction is None:
            return self._error(404, f"prediction {match[1]!r} not found")
        fresh = self.config.faults.fresh_not_found
        if fresh > 0 and anyio.current_time() - prediction.created < fresh:
            self.ledger.record_fault("fresh_not_found")
            return self._error(404, f"prediction {match[1]!r} not found")
        self.ledger.record_poll(prediction.id)
        polls = self.ledger.polls[prediction.id]
        return self._json(200, self._describe(prediction, request, polls=polls))

    # -- storage listener -----------------------------------------------------------------

    async def _handle_storage(self, request: Request) -> Response | None:
        if self.config.request_latency > 0:
            await anyio.sleep(self.config.request_latency)
        if "authorization" in request.headers:
            self.ledger.record_auth_on_storage()
        if request.method == "GET" and request.path.startswith("/uploads/"):
            endpoint = "upload_file"
        elif request.method == "GET" and _OUTPUT.match(request.path):
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
        except _Fault as fault:
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

    def _serve_output(self, request: Request) -> Response:
        match = _OUTPUT.match(request.path)
        assert match is not None
        prediction = self._predictions.get(match[1])
        index = int(match[2])
        now = anyio.current_time()
        if (
            prediction is None
            or prediction.failed
            or now < prediction.done_at
            or index >= prediction.outputs
        ):
            return self._error(404, f"no such object: {request.path}")
        expires, signature = request.query.get("expires", ""), request.query.get("sig", "")
        expected = self._sign(prediction.id, index, expires)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return self._error(403, "AccessDenied: Signature does not match")
        if time.time() > float(expires):
            self.ledger.record_fault("expired_output")
            status = self.config.faults.expired_status
            if status == 404:
                return self._error(404, f"no such object (expired): {request.path}")
            return self._error(status, "AccessDenied: Request has expired")
        image = self._image(prediction, index)
        kind = "image/jpeg" if match[3] == "jpg" else "image/png"
        return Response(status=200, body=image, content_type=kind)
