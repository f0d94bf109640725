"""Verify Atlas Cloud's signed webhook deliveries: a pure function over headers and bytes.

What Atlas Cloud documents (https://atlascloud.ai/docs/en/webhooks) and what a third-party
verifier reads (nodetool-ai's AtlasCloud webhook route; see docs/webhooks.md):

- ``X-AtlasCloud-Webhook-Event``: ``image.task.terminal`` (``video.``/``audio.`` for others);
- ``X-AtlasCloud-Webhook-Id``: the delivery's id, the same on every retry (dedupe on it);
- ``X-AtlasCloud-Webhook-Timestamp``: Unix seconds, part of the signed message;
- ``X-AtlasCloud-Webhook-Key-Id``: the ``kid`` of the JWKS key that signed it;
- ``X-AtlasCloud-Webhook-Signature-Ed25519``: base64url Ed25519 signature over
  ``<timestamp>.<raw body>`` (the exact bytes: verify before parsing JSON);
- keys: a JWKS of OKP/Ed25519 keys at ``https://api.atlascloud.ai/api/v1/webhooks/jwks.json``.

Every detail of the signing scheme lives in :class:`SigningScheme` (:data:`ATLAS_ED25519`),
so a different header, encoding or message layout is a change to one small object.
``cryptography`` (the ``webhooks`` extra) is imported only when a signature is checked.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._base._exceptions import ConfigurationError, WebhookVerificationError

__all__ = [
    "ATLAS_ED25519",
    "DEFAULT_TOLERANCE",
    "HEADER_EVENT",
    "HEADER_ID",
    "JWKS_PATH",
    "SigningScheme",
    "VerifiedWebhook",
    "WebhookKey",
    "parse_jwks",
    "verify_webhook",
]

HEADER_ID = "x-atlascloud-webhook-id"
HEADER_EVENT = "x-atlascloud-webhook-event"
JWKS_PATH = "/api/v1/webhooks/jwks.json"
DEFAULT_TOLERANCE = 300.0
"""Seconds a delivery's timestamp may differ from now (the third-party verifier's 5 min)."""

_MAX_HEADER = 512


def b64url_decode(value: str) -> bytes:
    """Decode base64url with or without padding; ValueError when it is not base64url."""
    if not value or not all(c.isalnum() or c in "-_=" for c in value):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as err:
        raise ValueError("not base64url") from err


def b64url_encode(data: bytes) -> str:
    """base64url without padding, as JWKs and Atlas's signatures are written."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class WebhookKey:
    """One public key a delivery may be signed with.

    Args:
        kid: its key id (``X-AtlasCloud-Webhook-Key-Id``).
        public: the raw 32-byte Ed25519 public key.
    """

    kid: str
    public: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.public) != 32:
            raise ConfigurationError(f"webhook key {self.kid!r} is not a 32-byte Ed25519 key")


def _ed25519_verify(public: bytes, signature: bytes, message: bytes) -> bool:
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "verifying webhooks needs the 'cryptography' package: "
            "pip install 'seedream-async[webhooks]'"
        ) from err
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _atlas_message(timestamp: str, body: bytes) -> bytes:
    return timestamp.encode("ascii") + b"." + body


@dataclass(frozen=True, kw_only=True)
class SigningScheme:
    """Where a delivery's signature lives and what it covers: the one place to change.

    Args:
        timestamp_header: carries Unix seconds, signed.
        key_id_header: names the key.
        signature_headers: carry the signature, the first present wins.
        signature_bytes: the decoded signature's length.
        message: builds the signed bytes from the timestamp and the raw body.
        verify: checks ``(public, signature, message)``.
    """

    timestamp_header: str = "x-atlascloud-webhook-timestamp"
    key_id_header: str = "x-atlascloud-webhook-key-id"
    signature_headers: tuple[str, ...] = ("x-atlascloud-webhook-signature-ed25519",)
    signature_bytes: int = 64
    message: Callable[[str, bytes], bytes] = _atlas_message
    verify: Callable[[bytes, bytes, bytes], bool] = _ed25519_verify


ATLAS_ED25519 = SigningScheme()
"""Atlas Cloud's scheme. The bare ``X-AtlasCloud-Webhook-Signature`` header is not read:
the third-party verifier reports it carries a legacy hex HMAC during a migration, which
this client never verifies as if it were Ed25519."""


@dataclass(frozen=True, kw_only=True)
class VerifiedWebhook:
    """A delivery whose signature and timestamp checked out.

    Attributes:
        webhook_id: ``X-AtlasCloud-Webhook-Id``: the same on every retry of one delivery.
        event: ``X-AtlasCloud-Webhook-Event`` (``image.task.terminal``), or ``""``.
        timestamp: the signed Unix time.
        key_id: the key that signed it.
        body: the decoded JSON body.
    """

    webhook_id: str
    event: str
    timestamp: int
    key_id: str
    body: dict[str, Any] = field(repr=False)


def parse_jwks(document: bytes | str | Mapping[str, Any]) -> tuple[WebhookKey, ...]:
    """Read the Ed25519 keys of a JWKS document (``{"keys": [...]}``).

    Keys of other types are skipped (a set may also publish keys this client cannot use);
    a key with no ``kid`` is skipped too, since deliveries name their key.

    Raises:
        WebhookVerificationError: the document is not a JWKS or holds no usable key
            (``reason="no_keys"``).
    """
    try:
        data = json.loads(document) if isinstance(document, bytes | str) else document
        entries = data["keys"]
    except (ValueError, TypeError, KeyError):
        entries = None
    if not isinstance(entries, list):
        raise WebhookVerificationError(
            'the webhook key set is not a JWKS document ({"keys": [...]})', reason="no_keys"
        )
    keys: list[WebhookKey] = []
    for entry in entries:
        if not isinstance(entry, Mapping) or entry.get("kty") != "OKP":
            continue
        kid, x = entry.get("kid"), entry.get("x")
        if entry.get("crv") != "Ed25519" or not isinstance(kid, str) or not isinstance(x, str):
            continue
        try:
            public = b64url_decode(x)
        except ValueError:
            continue
        if len(public) == 32:
            keys.append(WebhookKey(kid, public))
    if not keys:
        raise WebhookVerificationError(
            "the webhook key set holds no OKP/Ed25519 key with a kid", reason="no_keys"
        )
    return tuple(keys)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            # Signed values are compared byte for byte: no trimming, no control characters.
            if not value or len(value) > _MAX_HEADER or not value.isprintable() or " " in value:
                return None
            return value
    return None


def _fail(message: str, reason: str) -> WebhookVerificationError:
    return WebhookVerificationError(f"webhook rejected: {message}", reason=reason)


def _timestamp(value: str, tolerance: float, now: float) -> int:
    if not value.isdecimal() or len(value) > 12:
        raise _fail("the timestamp is not Unix seconds", "malformed")
    stamp = int(value)
    if abs(now - stamp) > tolerance:
        raise _fail(
            f"the timestamp is {now - stamp:+.0f} s from now, outside the {tolerance:g} s "
            "tolerance (a replay, or a clock far off)",
            "stale",
        )
    return stamp


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    keys: Iterable[WebhookKey],
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
    scheme: SigningScheme = ATLAS_ED25519,
) -> VerifiedWebhook:
    """Check one delivery and return it decoded; raise if anything is off.

    Args:
        headers: the request's headers (any case).
        body: the raw body, exactly as received.
        keys: the trusted keys; several at once while a key rotates.
        tolerance: seconds the signed timestamp may differ from ``now`` (replay window).
        now: the current Unix time; ``time.time()`` when None.
        scheme: where the signature lives and what it covers.

    Raises:
        WebhookVerificationError: ``reason`` says why (see the class).
    """
    webhook_id = _header(headers, HEADER_ID)
    stamp_text = _header(headers, scheme.timestamp_header)
    kid = _header(headers, scheme.key_id_header)
    signature_text = next(
        (v for name in scheme.signature_headers if (v := _header(headers, name))), None
    )
    if not (webhook_id and stamp_text and kid and signature_text):
        raise _fail("an X-AtlasCloud-Webhook-* header is missing or unreadable", "missing_header")
    stamp = _timestamp(stamp_text, tolerance, time.time() if now is None else now)
    try:
        signature = b64url_decode(signature_text)
    except ValueError:
        signature = b""
    if len(signature) != scheme.signature_bytes:
        raise _fail("the signature is not a base64url Ed25519 signature", "malformed")
    candidates = [key for key in keys if key.kid == kid]
    if not candidates:
        raise _fail(f"key id {kid!r} is not in the trusted key set", "unknown_key")
    message = scheme.message(stamp_text, body)
    if not any(scheme.verify(key.public, signature, message) for key in candidates):
        raise _fail(f"the signature does not match key {kid!r}", "bad_signature")
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict):
        raise _fail("the signed body is not a JSON object", "malformed")
    return VerifiedWebhook(
        webhook_id=webhook_id,
        event=_header(headers, HEADER_EVENT) or "",
        timestamp=stamp,
        key_id=kid,
        body=decoded,
    )
