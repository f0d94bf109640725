"""How the simulator words its answers: the JSON envelope, error bodies, request ids.

A base of :class:`~seedream_async.testing._app.App`; its state is set in ``App.__init__``.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from typing import Any

from ._config import SimulatorConfig
from ._http import Request, Response
from ._ledger import Ledger

__all__ = ["Replies"]


class Replies:
    """JSON bodies in the configured envelope, both error shapes, and ``X-Request-ID``."""

    config: SimulatorConfig
    ledger: Ledger
    _responses: int  # answers enveloped so far ("mixed" alternates on it)
    _request_ids: int

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

    def _compressed(self, request: Request, response: Response) -> Response:
        """``response`` gzip-compressed, when the knob says so and the client accepts gzip."""
        if self.config.shapes.compression != "gzip" or not response.body:
            return response
        accepted = request.headers.get("accept-encoding", "")
        if "gzip" not in {part.split(";")[0].strip() for part in accepted.split(",")}:
            return response
        headers = (*response.headers, ("content-encoding", "gzip"))
        body = gzip.compress(response.body, mtime=0)
        return dataclasses.replace(response, body=body, headers=headers)
