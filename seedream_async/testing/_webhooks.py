"""The simulator's webhook deliveries: signed like Atlas Cloud's, with faults.

When a submit carries ``webhook_url``, one terminal delivery per prediction is POSTed there
once the prediction is done, as Atlas Cloud documents (https://atlascloud.ai/docs/en/webhooks):

- headers ``X-AtlasCloud-Webhook-Event: image.task.terminal``, ``-Id`` (one per prediction,
  the same on every retry and duplicate), ``-Timestamp`` (Unix seconds, fresh per attempt),
  ``-Key-Id`` and ``-Signature-Ed25519`` (base64url Ed25519 over ``<timestamp>.<raw body>``);
- body ``{"session_id", "event_type", "status": "OK"|"ERROR", "payload": <the poll's
  result shape>}`` (``"error"`` beside it on ERROR);
- the key set as a JWKS at ``GET /api/v1/webhooks/jwks.json`` (no API key needed).

Retries (the docs read here are silent on the schedule, so the simulator documents its own):
a connection error, a timeout, a 408, a 429 or a 5xx is retried after each of
``retry_delays`` (real seconds) in turn, then given up; any other answer ends the delivery
(a 4xx means the receiver refused it for good: re-sending the same bytes cannot help).

This module signs with ``cryptography`` directly (imported on first use, so the simulator
runs without it while no submit asks for a webhook); it never imports the client's verifier.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import httpx

__all__ = ["WebhookAttempt", "WebhookFaults", "WebhookSender"]

JWKS_PATH = "/api/v1/webhooks/jwks.json"
EVENT = "image.task.terminal"


@dataclass(frozen=True, kw_only=True)
class WebhookFaults:
    """How the simulator's webhook deliveries misbehave; probabilities drawn per delivery.

    Args:
        enabled: send deliveries to submits that carry ``webhook_url``.
        lost: the delivery is never sent.
        duplicated: the delivery is sent twice (same id), ``delay_seconds`` apart.
        delayed: the delivery waits ``delay_seconds`` after the prediction is done.
        reordered: the delivery waits a random 0..``delay_seconds``, so deliveries arrive
            out of the order their predictions finished.
        bad_signature: the first attempt is signed with a key not in the key set (same key
            id): a forgery the receiver must refuse.
        stale_timestamp: the first attempt carries a timestamp ``stale_seconds`` old.
        stale_seconds: how old a stale timestamp is.
        delay_seconds: real seconds for ``delayed``, ``reordered`` and ``duplicated``.
        retry_delays: real seconds before each retry of a failed attempt.
        attempt_timeout: real seconds one attempt may take.
        key_id: the signing key's id in the JWKS.
    """

    enabled: bool = True
    lost: float = 0.0
    duplicated: float = 0.0
    delayed: float = 0.0
    reordered: float = 0.0
    bad_signature: float = 0.0
    stale_timestamp: float = 0.0
    stale_seconds: float = 3600.0
    delay_seconds: float = 0.2
    retry_delays: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
    attempt_timeout: float = 10.0
    key_id: str = "sim-ed25519-1"

    def __post_init__(self) -> None:
        for name in (
            "lost",
            "duplicated",
            "delayed",
            "reordered",
            "bad_signature",
            "stale_timestamp",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"WebhookFaults.{name} must be within 0..1")
        if self.delay_seconds < 0 or any(d < 0 for d in self.retry_delays):
            raise ValueError("WebhookFaults delays must not be negative")


@dataclass(frozen=True)
class WebhookAttempt:
    """One POST the simulator made (or a delivery it lost on purpose).

    Attributes:
        prediction_id: the prediction delivered.
        webhook_id: the delivery's id.
        attempt: 1 for the first POST of a copy, then each retry.
        status: the receiver's HTTP status; None when it could not be reached or ``lost``.
        fault: the fault applied (``lost``, ``bad_signature``, ``stale_timestamp``,
            ``duplicate``), or ``""``.
    """

    prediction_id: str
    webhook_id: str
    attempt: int
    status: int | None
    fault: str = ""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


@dataclass
class _Keys:
    seed: int
    key_id: str
    _private: Any = field(default=None, repr=False)
    _forger: Any = field(default=None, repr=False)

    def _load(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        def derive(label: str) -> Any:
            raw = hashlib.sha256(f"seedream-sim-webhook:{self.seed}:{label}".encode()).digest()
            return Ed25519PrivateKey.from_private_bytes(raw)

        self._private = derive(self.key_id)
        self._forger = derive(f"forger:{self.key_id}")

    def sign(self, message: bytes, *, forged: bool = False) -> str:
        if self._private is None:
            self._load()
        return _b64url((self._forger if forged else self._private).sign(message))

    def jwks(self) -> dict[str, Any]:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        if self._private is None:
            self._load()
        public = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        key = {"kty": "OKP", "crv": "Ed25519", "kid": self.key_id, "alg": "EdDSA", "use": "sig"}
        return {"keys": [{**key, "x": _b64url(public)}]}


class WebhookSender:
    """Sends the simulator's deliveries in the background of :func:`serve`.

    Attributes:
        attempts: every POST made (and every delivery lost on purpose), in order.
    """

    def __init__(self, faults: Callable[[], WebhookFaults], *, seed: int) -> None:
        self._faults = faults
        self._rng = random.Random(f"{seed}:webhooks")
        self._seed = seed
        self._keys: dict[str, _Keys] = {}
        self.attempts: list[WebhookAttempt] = []
        self._group: anyio.abc.TaskGroup | None = None
        self._http: httpx.AsyncClient | None = None

    def _keyring(self) -> _Keys:
        kid = self._faults().key_id
        return self._keys.setdefault(kid, _Keys(self._seed, kid))

    def jwks(self) -> dict[str, Any]:
        """The public key set, as served at ``/api/v1/webhooks/jwks.json``."""
        return self._keyring().jwks()

    def acknowledged(self, prediction_id: str) -> bool:
        """Whether a receiver answered 2xx to a delivery of this prediction."""
        return any(
            a.prediction_id == prediction_id and a.status is not None and a.status // 100 == 2
            for a in self.attempts
        )

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Run the sender until cancelled (``serve`` starts it)."""
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as http:
            self._http = http
            try:
                async with anyio.create_task_group() as group:
                    self._group = group
                    task_status.started()
                    await anyio.sleep_forever()
            finally:
                self._group = self._http = None

    def schedule(
        self, url: str, prediction_id: str, done_at: float, body: Callable[[], dict[str, Any]]
    ) -> None:
        """Deliver the prediction to ``url`` once it is done (``done_at``, server clock).

        Args:
            url: the submit's ``webhook_url``.
            prediction_id: the prediction.
            done_at: when it is done, on ``anyio.current_time()``.
            body: builds the delivery's JSON body (called when it is done).
        """
        faults = self._faults()
        if not faults.enabled or self._group is None:
            return
        draw = self._rng.random
        webhook_id = f"wh_{self._rng.getrandbits(64):016x}"
        if draw() < faults.lost:
            self.attempts.append(WebhookAttempt(prediction_id, webhook_id, 0, None, "lost"))
            return
        wait = max(0.0, done_at - anyio.current_time())
        if draw() < faults.delayed:
            wait += faults.delay_seconds
        if draw() < faults.reordered:
            wait += self._rng.uniform(0.0, faults.delay_seconds)
        first = ""
        if draw() < faults.bad_signature:
            first = "bad_signature"
        elif draw() < faults.stale_timestamp:
            first = "stale_timestamp"
        copy = _Copy(url, prediction_id, webhook_id, body, first)
        self._group.start_soon(self._deliver, copy, wait)
        if draw() < faults.duplicated:
            again = _Copy(url, prediction_id, webhook_id, body, "duplicate")
            self._group.start_soon(self._deliver, again, wait + faults.delay_seconds)

    async def _deliver(self, copy: _Copy, wait: float) -> None:
        await anyio.sleep(wait)
        payload = json.dumps(copy.body(), separators=(",", ":")).encode()
        faults = self._faults()
        delays = (*faults.retry_delays, None)
        for attempt, delay in enumerate(delays, start=1):
            fault = copy.fault if attempt == 1 else ""
            status = await self._post(copy, payload, fault, faults)
            self.attempts.append(
                WebhookAttempt(copy.prediction_id, copy.webhook_id, attempt, status, fault)
            )
            if status is not None and status not in (408, 429) and status < 500:
                return  # 2xx: delivered; another 4xx: refused for good
            if delay is None:
                return
            await anyio.sleep(delay)

    async def _post(
        self, copy: _Copy, payload: bytes, fault: str, faults: WebhookFaults
    ) -> int | None:
        assert self._http is not None
        now = time.time()
        stamp = str(int(now - faults.stale_seconds if fault == "stale_timestamp" else now))
        keys = self._keyring()
        headers = {
            "content-type": "application/json",
            "x-atlascloud-webhook-id": copy.webhook_id,
            "x-atlascloud-webhook-event": EVENT,
            "x-atlascloud-webhook-timestamp": stamp,
            "x-atlascloud-webhook-key-id": keys.key_id,
            "x-atlascloud-webhook-signature-ed25519": keys.sign(
                stamp.encode() + b"." + payload, forged=fault == "bad_signature"
            ),
        }
        try:
            with anyio.fail_after(faults.attempt_timeout):
                response = await self._http.post(copy.url, content=payload, headers=headers)
        except (httpx.HTTPError, TimeoutError):
            return None
        return response.status_code


@dataclass(frozen=True)
class _Copy:
    url: str
    prediction_id: str
    webhook_id: str
    body: Callable[[], dict[str, Any]]
    fault: str
