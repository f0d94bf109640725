"""Seeded faults and hostile behaviour: which request fails, how, and with what headers.

Random injected errors, drops and slow answers; the per-key rate limit (GCRA); the
hostile server's redirects, HTML pages, error envelopes, oversized and trickled bodies.
A base of :class:`~seedream_async.testing._app.App`; its state is set in ``App.__init__``.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import math
import random
import time

import anyio

from ._http import Request, Response
from ._replies import Replies

__all__ = ["Fault", "FaultInjection"]

_HTML = (
    b"<!doctype html><html><head><title>Welcome</title></head><body><h1>Sign in to continue"
    b"</h1><p>This network requires you to sign in.</p></body></html>"
)


class Fault(Exception):
    """Raised inside the app to answer with an injected or limit error."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class FaultInjection(Replies):
    """The fault and hostility decisions, each drawn from its own seeded stream."""

    catcher_url: str
    _fault_rng: random.Random
    # Its own stream, so turning hostility on leaves the faults' draws as they were.
    _hostile_rng: random.Random
    _tat: dict[str, float]  # GCRA theoretical arrival time per API key

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

    def _fault_response(self, fault: Fault) -> Response:
        response = self._error(fault.status, fault.message)
        if fault.status == 429:
            response = Response(
                status=429, body=response.body, headers=self._retry_headers(fault.retry_after)
            )
        return response

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
            raise Fault(429, f"rate limit of {rate:g} requests per second exceeded", wait)
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
            raise Fault(429, "Too many requests (simulated)", faults.retry_after)
        if self._draw(faults.server_error):
            status = self._fault_rng.choice(faults.server_error_codes)
            self.ledger.record_fault(str(status))
            return str(status)
        return None
