"""The simulated Atlas Cloud API: routes, predictions on a clock, and seeded faults.

A prediction's status is computed from timestamps on the server clock
(``anyio.current_time()``): nothing runs in the background, so a test that never polls
costs nothing and the simulator shuts down instantly.
"""

from __future__ import annotations

import base64
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

from .._constants import DEFAULT_MODEL
from .._exceptions import InvalidInput
from .._models import EditRequest, build_request
from .._sniff import SNIFF_BYTES, extension_for, sniff_image_type
from ._config import SimulatorConfig
from ._http import Handler, Request, Response
from ._ledger import Ledger, SubmitRecord, UploadRecord
from ._multipart import MultipartError, find_part
from ._png import make_png

__all__ = ["App"]

_UPLOAD = "/api/v1/model/uploadMedia"
_SUBMIT = "/api/v1/model/generateImage"
_POLL = re.compile(r"^/api/v1/model/prediction/([^/]+)$")
_LEDGER = "/_sim/ledger"
_OUTPUT = re.compile(r"^/outputs/([^/]+)/(\d+)\.png$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Room for multipart boundaries and part headers on top of the file itself.
_MULTIPART_OVERHEAD = 64 * 1024
_JSON_LIMIT = 1024 * 1024
# Outputs "never" expire without output_ttl: a week.
_NO_TTL = 7 * 24 * 3600.0
_PROCESSED_CODES = frozenset({500, 502, 504})

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
    base64_output: bool


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
def _output_png(prediction_id: str, index: int, width: int, height: int) -> bytes:
    digest = hashlib.sha256(f"{prediction_id}/{index}".encode()).digest()
    seed = int.from_bytes(digest[:8], "big")
    return make_png(width, height, seed=seed, label=f"seedream-sim {prediction_id} #{index}")


class App:
    """The simulator's state and routes, served by two listeners (API and storage).

    Args:
        config: the starting configuration (replace :attr:`config` to change it live).
        ledger: where to record what happens.
        base_url: the API origin, for messages.
        storage_url: the storage origin, used in the URLs handed out.
    """

    def __init__(
        self, config: SimulatorConfig, *, ledger: Ledger, base_url: str, storage_url: str
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.base_url = base_url
        self.storage_url = storage_url
        self._fault_rng = random.Random(f"{config.seed}:faults")
        self._prediction_rng = random.Random(f"{config.seed}:predictions")
        self._id_rng = random.Random(f"{config.seed}:ids")
        self._secret = hashlib.sha256(f"seedream-sim:{config.seed}".encode()).digest()
        self._predictions: dict[str, _Prediction] = {}
        # Finish times of the predictions still running: a min-heap, so counting them at a
        # submit costs O(log n) rather than a scan of every prediction ever made.
        self._finishing: list[float] = []
        self._files: dict[str, tuple[bytes, str]] = {}
        self._tat: dict[str, float] = {}  # GCRA theoretical arrival time per API key
        self._responses = 0
        self.api = Handler(body_limit=self._api_body_limit, handle=self._handle_api)
        self.storage = Handler(body_limit=lambda _request: 0, handle=self._handle_storage)

    # -- plumbing ------------------------------------------------------------------------

    def _json(self, status: int, payload: dict[str, Any], *, envelope: bool = True) -> Response:
        if envelope:
            mode = self.config.envelope
            self._responses += 1
            if mode == "data" or (mode == "mixed" and self._responses % 2):
                payload = {"data": payload}
        return Response(status=status, body=json.dumps(payload).encode())

    def _error(self, status: int, message: str, **extra: Any) -> Response:
        return self._json(status, {"message": message, "code": status, **extra}, envelope=False)

    def _retry_headers(self, seconds: float | None) -> tuple[tuple[str, str], ...]:
        if seconds is None:
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

    # -- API listener ---------------------------------------------------------------------

    def _api_body_limit(self, request: Request) -> int:
        if request.path == _UPLOAD:
            return self.config.max_upload_bytes + _MULTIPART_OVERHEAD
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
        return "unknown", None

    async def _handle_api(self, request: Request) -> Response | None:
        config = self.config
        if config.request_latency > 0:
            await anyio.sleep(config.request_latency)
        endpoint, route = self._route(request)
        self.ledger.record_request(endpoint)
        if route is None:
            return self._error(404, f"no route for {request.method} {request.path}")
        if not self._authorised(request):
            return self._error(401, "Missing or invalid API key")
        if request.body_too_large:
            return self._error(413, f"upload is larger than {config.max_upload_bytes} bytes")
        if endpoint == "ledger":
            return await route(request)
        try:
            self._check_rate(request)
            if endpoint == "submit":
                return await self._submit_with_faults(request)
            outcome = await self._inject(endpoint)
            if outcome is not None:
                return self._injected(outcome)
            return await route(request)
        except _Fault as fault:
            return self._fault_response(fault)

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
        if isinstance(edit, EditRequest):
            limit = self.config.faults.max_in_flight
            if limit is None or self._running(anyio.current_time()) < limit:
                created = self._create(request, processed_before_error=True)
                if status == 0 and edit.enable_sync_mode:
                    # A sync-mode submit holds its connection open while the prediction
                    # runs, so a drop lands somewhere in that wait, not at once.
                    await anyio.sleep(self._fault_rng.random() * created.latency)
        return self._injected(outcome)

    async def _ledger_route(self, request: Request) -> Response:
        return self._json(200, self.ledger.snapshot(), envelope=False)

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
        content_type = sniff_image_type(part.data[:SNIFF_BYTES]) if part.data else None
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
        return self._json(
            200,
            {
                "download_url": url,
                "file_name": name,
                "content_type": content_type,
                "size": len(part.data),
            },
        )

    def _validate(self, request: Request) -> EditRequest | Response:
        try:
            body = json.loads(request.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return self._error(400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return self._error(400, "request body must be a JSON object")
        if "model" not in body:
            return self._error(422, "model: Field required", field="model")
        try:
            edit = build_request(**body)
        except InvalidInput as err:
            return self._error(422, err.message, field=err.field)
        if edit.model != DEFAULT_MODEL:
            message = f"model: this endpoint serves {DEFAULT_MODEL!r} only, not {edit.model!r}"
            return self._error(422, message, field="model")
        return edit

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
        prediction = self._create(request, processed_before_error=False)
        if edit.enable_sync_mode:
            await anyio.sleep(max(0.0, prediction.done_at - anyio.current_time()))
            return self._json(200, self._describe(prediction))
        return self._json(
            200,
            {
                "id": prediction.id,
                "status": "processing",
                "model": prediction.model,
                "created_at": _iso(prediction.created_wall),
            },
        )

    def _running(self, now: float) -> int:
        while self._finishing and self._finishing[0] <= now:
            heapq.heappop(self._finishing)
        return len(self._finishing)

    def _create(self, request: Request, *, processed_before_error: bool) -> _Prediction:
        """Create and bill a prediction whose body was validated."""
        config = self.config
        body = json.loads(request.body)
        fields: dict[str, Any] = body
        max_images = fields.get("max_images", 1)
        max_images = max_images if isinstance(max_images, int) and max_images > 0 else 1
        rng = self._prediction_rng
        base = rng.lognormvariate(math.log(config.latency_median), config.latency_sigma)
        predict_time = base * (1 + config.per_extra_image * (max_images - 1))
        latency = predict_time * config.time_scale
        failed = self._draw(config.faults.prediction_failure)
        now = anyio.current_time()
        prediction = _Prediction(
            id=f"pred_{self._id_rng.getrandbits(64):016x}",
            model=str(fields.get("model", DEFAULT_MODEL)),
            created=now,
            done_at=now + latency,
            created_wall=time.time(),
            latency=latency,
            failed=failed,
            failure_message=config.faults.failure_message,
            max_images=max_images,
            base64_output=fields.get("enable_base64_output") is True,
        )
        self._predictions[prediction.id] = prediction
        heapq.heappush(self._finishing, prediction.done_at)
        if failed:
            self.ledger.record_fault("failed_prediction")
        record = SubmitRecord(
            prediction_id=prediction.id,
            body_hash=_canonical_hash(body),
            prompt=str(fields.get("prompt", "")),
            created_at=prediction.created,
            done_at=prediction.done_at,
            latency=latency,
            failed=failed,
            processed_before_error=processed_before_error,
        )
        self.ledger.record_submission(record, in_flight=self._running(now))
        return prediction

    def _describe(self, prediction: _Prediction) -> dict[str, Any]:
        now = anyio.current_time()
        payload: dict[str, Any] = {
            "id": prediction.id,
            "status": "processing",
            "model": prediction.model,
            "outputs": [],
            "metrics": {},
            "created_at": _iso(prediction.created_wall),
            "completed_at": None,
            "error": None,
        }
        if now < prediction.done_at:
            return payload
        self.ledger.record_terminal_seen(prediction.id, now)
        payload["completed_at"] = _iso(prediction.created_wall + prediction.latency)
        payload["metrics"] = {"predict_time": round(prediction.latency, 6)}
        if prediction.failed:
            payload.update(status="failed", error=prediction.failure_message)
            return payload
        payload["status"] = "completed"
        payload["outputs"] = [self._output(prediction, i) for i in range(prediction.max_images)]
        return payload

    def _output(self, prediction: _Prediction, index: int) -> str:
        if prediction.base64_output:
            png = _output_png(prediction.id, index, *self.config.output_size)
            return base64.b64encode(png).decode("ascii")
        ttl = self.config.faults.output_ttl
        expires = f"{time.time() + (_NO_TTL if ttl is None else ttl):.3f}"
        signature = self._sign(prediction.id, index, expires)
        path = f"/outputs/{prediction.id}/{index}.png"
        return f"{self.storage_url}{path}?expires={expires}&sig={signature}"

    def _sign(self, prediction_id: str, index: int, expires: str) -> str:
        message = f"{prediction_id}/{index}.png:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    async def _poll(self, request: Request) -> Response:
        match = _POLL.match(request.path)
        assert match is not None
        prediction = self._predictions.get(match[1])
        if prediction is None:
            return self._error(404, f"prediction {match[1]!r} not found")
        self.ledger.record_poll(prediction.id)
        return self._json(200, self._describe(prediction))

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
        try:
            outcome = await self._inject(endpoint)
        except _Fault as fault:
            return self._fault_response(fault)
        if outcome is not None:
            return self._injected(outcome)
        if endpoint == "upload_file":
            stored = self._files.get(request.path)
            if stored is None:
                return self._error(404, f"no such object: {request.path}")
            return Response(status=200, body=stored[0], content_type=stored[1])
        return self._serve_output(request)

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
            or index >= prediction.max_images
        ):
            return self._error(404, f"no such object: {request.path}")
        expires, signature = request.query.get("expires", ""), request.query.get("sig", "")
        expected = self._sign(prediction.id, index, expires)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return self._error(403, "AccessDenied: Signature does not match")
        if time.time() > float(expires):
            self.ledger.record_fault("expired_output")
            return self._error(403, "AccessDenied: Request has expired")
        png = _output_png(prediction.id, index, *self.config.output_size)
        return Response(status=200, body=png, content_type="image/png")
