"""The webhook receiver: an ASGI app that mounts in FastAPI or Starlette.

Per delivery (one POST): read the raw body (1 MiB at most), find the signing key, verify
(:func:`verify_webhook`), check the URL's attempt token when a secret is set, drop a
duplicate ``X-AtlasCloud-Webhook-Id``, :meth:`DeliverySink.record` it, wake the waiters,
and only then answer 200. Answers:

- 200: recorded now, or a duplicate of one recorded before (nothing changes twice);
- 400 malformed, 401 forged/stale/unknown key, 403 a token this secret did not make,
  405 not a POST, 413 too large: the delivery changed nothing; the sender should not retry;
- 503: the keys could not be fetched or the sink refused it: nothing recorded, retry.

``app.mount("/hooks/atlas", receiver)`` in FastAPI, or give it to
:func:`serve_webhooks` to listen without a web framework.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any, Protocol

import anyio
import httpx

from .._base._exceptions import WebhookVerificationError
from ._delivery import Delivery, DeliveryHub, DeliverySink, read_delivery
from ._signature import (
    ATLAS_ED25519,
    DEFAULT_TOLERANCE,
    SigningScheme,
    WebhookKey,
    parse_jwks,
    verify_webhook,
)
from ._token import WebhookTarget, parse_token, token_from_url

__all__ = ["JwksKeys", "KeySource", "StaticKeys", "WebhookReceiver"]

logger = logging.getLogger("seedream_async.webhooks")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_BODY = 1024 * 1024
_SEEN = 100_000  # webhook ids remembered for dedupe in this process
_STATUS = {
    "missing_header": 400,
    "malformed": 400,
    "stale": 401,
    "unknown_key": 401,
    "bad_signature": 401,
    "bad_token": 403,
    "no_keys": 503,
}


class KeySource(Protocol):
    """Gives the keys a delivery signed with ``kid`` may be checked against."""

    async def keys(self, kid: str) -> Sequence[WebhookKey]:
        """The trusted keys; may refresh when ``kid`` is not among them."""
        ...


class StaticKeys:
    """A fixed key set (several keys while one rotates)."""

    def __init__(self, keys: Sequence[WebhookKey]) -> None:
        self._keys = tuple(keys)

    async def keys(self, kid: str) -> Sequence[WebhookKey]:
        """The fixed set, whatever ``kid``."""
        return self._keys


class JwksKeys:
    """Keys fetched from a JWKS URL, cached, re-fetched when an unknown ``kid`` appears
    (a rotation) at most once per ``cooldown`` seconds, so forged key ids cannot make the
    receiver hammer the key server.

    Args:
        url: the JWKS URL (Atlas: ``https://api.atlascloud.ai/api/v1/webhooks/jwks.json``).
        http: the client to fetch with; a short-lived one when None. No API key is sent.
        ttl: seconds a fetched set is trusted before it is fetched again.
        cooldown: the least seconds between two fetches an unknown key id provokes.
    """

    def __init__(
        self,
        url: str,
        *,
        http: httpx.AsyncClient | None = None,
        ttl: float = 3600.0,
        cooldown: float = 60.0,
    ) -> None:
        self.url = url
        self._http = http
        self._ttl = ttl
        self._cooldown = cooldown
        self._keys: tuple[WebhookKey, ...] = ()
        self._fetched = float("-inf")
        self._rotation_fetched = float("-inf")
        self._lock: anyio.Lock | None = None

    async def _fetch(self) -> None:
        if self._http is not None:
            response = await self._http.get(self.url, headers={"accept": "application/json"})
        else:
            async with httpx.AsyncClient(timeout=10.0) as http:
                response = await http.get(self.url, headers={"accept": "application/json"})
        response.raise_for_status()
        self._keys = parse_jwks(response.content)
        self._fetched = time.monotonic()

    async def keys(self, kid: str) -> Sequence[WebhookKey]:
        """The cached set; fetched first when stale, or when ``kid`` is new to it."""
        self._lock = self._lock or anyio.Lock()
        async with self._lock:
            now = time.monotonic()
            rotated = (
                bool(self._keys)
                and all(key.kid != kid for key in self._keys)
                and now - self._rotation_fetched > self._cooldown
            )
            if now - self._fetched > self._ttl or rotated:
                if rotated:  # only fetches a caller can provoke count against the cooldown
                    self._rotation_fetched = now
                try:
                    await self._fetch()
                except (httpx.HTTPError, WebhookVerificationError) as err:
                    if not self._keys:
                        raise WebhookVerificationError(
                            f"the webhook key set at {self.url} could not be read: {err}",
                            reason="no_keys",
                        ) from None
            return self._keys


def _answer(status: int, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"status": status, "message": message}).encode()


class WebhookReceiver:
    """An ASGI app receiving Atlas Cloud's terminal deliveries.

    Args:
        keys: the trusted keys: a :class:`KeySource` (:class:`JwksKeys`) or a sequence.
        sink: where deliveries are recorded before the 2xx; a :class:`MemorySink` for one
            process, the journal in a batch.
        hub: woken after each recorded delivery; one of its own when None.
        secret: the local token secret; when set, a URL token is required and checked
            (deliveries for attempts this secret did not make get 403).
        tolerance: seconds a signed timestamp may be off (replay window).
        scheme: the signing scheme.
        clock: the current Unix time (tests).

    Attributes:
        rejected: rejections so far, by reason.
    """

    def __init__(
        self,
        keys: KeySource | Sequence[WebhookKey],
        sink: DeliverySink,
        *,
        hub: DeliveryHub | None = None,
        secret: bytes | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        scheme: SigningScheme = ATLAS_ED25519,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys: KeySource = StaticKeys(keys) if isinstance(keys, Sequence) else keys
        self.sink = sink
        self.hub = hub or DeliveryHub()
        self.secret = secret
        self.tolerance = tolerance
        self.scheme = scheme
        self.clock = clock
        self.rejected: dict[str, int] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point (``http`` scopes; ``lifespan`` is acknowledged)."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope.get("method") != "POST":
            status, body = _answer(405, "webhooks are POSTed")
        else:
            raw = await _read_body(receive, MAX_BODY)
            if raw is None:
                status, body = _answer(413, f"a delivery is at most {MAX_BODY} bytes")
            else:
                headers = {
                    k.decode("latin-1").lower(): v.decode("latin-1")
                    for k, v in scope.get("headers", [])
                }
                query = scope.get("query_string", b"").decode("latin-1")
                status, body = await self.handle(headers, raw, query)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def handle(self, headers: Mapping[str, str], raw: bytes, query: str) -> tuple[int, bytes]:
        """Verify, dedupe and record one delivery; return the status and body to answer."""
        try:
            delivery = await self._verify(headers, raw, query)
        except WebhookVerificationError as err:
            self.rejected[err.reason] = self.rejected.get(err.reason, 0) + 1
            logger.warning("%s", err)
            return _answer(_STATUS.get(err.reason, 400), str(err))
        if delivery.webhook_id in self._seen:
            return _answer(200, "duplicate; recorded before")
        try:
            await self.sink.record(delivery)
        except Exception as err:  # the sender retries; nothing was answered 2xx
            logger.exception("recording webhook %s failed", delivery.webhook_id)
            return _answer(503, f"not recorded ({type(err).__name__}); retry")
        self._seen[delivery.webhook_id] = None
        while len(self._seen) > _SEEN:
            self._seen.popitem(last=False)
        self.hub.publish(delivery)
        return _answer(200, "recorded")

    async def _verify(self, headers: Mapping[str, str], raw: bytes, query: str) -> Delivery:
        kid = next((v for k, v in headers.items() if k == self.scheme.key_id_header), "")
        keys = await self.keys.keys(kid)
        verified = verify_webhook(
            headers, raw, keys, self.tolerance, now=self.clock(), scheme=self.scheme
        )
        target: WebhookTarget | None = None
        token = token_from_url(query)
        if self.secret is not None:
            target = parse_token(self.secret, token or "")
        return read_delivery(verified, raw=raw, target=target)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
