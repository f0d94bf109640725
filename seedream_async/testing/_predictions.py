"""Predictions on the server clock: submit, bill, describe, poll, and serve the outputs.

A prediction's status is computed from timestamps on the server clock
(``anyio.current_time()``): nothing runs in the background.
A base of :class:`~seedream_async.testing._app.App`; its state is set in ``App.__init__``.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import json
import math
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import anyio

from ._contract import ContractError, Edit, validate_edit
from ._faults import Fault, FaultInjection
from ._http import Request, Response
from ._jpeg import make_jpeg
from ._ledger import SubmitRecord
from ._png import make_png
from ._storage import FileStore
from ._webhooks import EVENT, WebhookSender

__all__ = ["OUTPUT_PATH", "POLL_PATH", "Predictions"]

POLL_PATH = re.compile(r"^/api/v1/model/prediction/([^/]+)$")
OUTPUT_PATH = re.compile(r"^/outputs/([^/]+)/(\d+)\.(png|jpg)$")
# Outputs "never" expire without output_ttl: a week.
_NO_TTL = 7 * 24 * 3600.0
_PROCESSED_CODES = frozenset({500, 502, 504})


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


class Predictions(FaultInjection, FileStore):
    """The predictions made so far, and the routes that make, describe and serve them."""

    webhooks: WebhookSender
    _prediction_rng: random.Random
    _id_rng: random.Random
    # The model's choice of how many images to return has its own stream.
    _count_rng: random.Random
    _secret: bytes  # signs the output URLs
    _predictions: dict[str, _Prediction]
    # Finish times of the predictions still running: a min-heap, so counting them at a
    # submit costs O(log n) rather than a scan of every prediction ever made.
    _finishing: list[float]

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
            raise Fault(
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
        match = POLL_PATH.match(request.path)
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

    def _serve_output(self, request: Request) -> Response:
        match = OUTPUT_PATH.match(request.path)
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
