"""The opaque per-attempt token each submit's ``webhook_url`` carries.

A token names one submit attempt (an item's key and its attempt number) and is
authenticated with a local secret (HMAC-SHA256, RFC 2104), so a delivery maps to its
attempt even when the submit's answer (the prediction id) was lost, and nobody without the
secret can make one up. The token rides in the URL's query (``?sdt=<token>``), which Atlas
Cloud posts back to unchanged.

The secret must outlive a crash, or a re-run could not map the deliveries of the attempts
it did not see answered. :func:`load_secret` keeps it beside the journal
(``<journal>.webhook-secret``, mode 0600, created once, written atomically), or takes it
from ``SEEDREAM_WEBHOOK_SECRET`` (hex or base64url, at least 32 bytes) for a fleet whose
workers must read each other's tokens.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._base._exceptions import ConfigurationError, WebhookVerificationError
from ._signature import b64url_decode, b64url_encode

__all__ = [
    "SECRET_ENV",
    "TOKEN_PARAM",
    "WebhookTarget",
    "load_secret",
    "make_token",
    "parse_token",
    "token_from_url",
    "webhook_url_with_token",
]

SECRET_ENV = "SEEDREAM_WEBHOOK_SECRET"
TOKEN_PARAM = "sdt"
_MIN_SECRET = 32
_DOMAIN = b"seedream-async webhook token v1\x00"  # binds the MAC to this one use
_MAC_BYTES = 32
_MAX_TOKEN = 1024


@dataclass(frozen=True)
class WebhookTarget:
    """What a token names: one submit attempt.

    Args:
        key: the item's key (any string; a single ``edit`` uses a random one).
        attempt: the attempt number, from 1.
    """

    key: str
    attempt: int


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _DOMAIN + payload, hashlib.sha256).digest()


def _check_secret(secret: bytes) -> None:
    if len(secret) < _MIN_SECRET:
        raise ConfigurationError(f"the webhook secret must be at least {_MIN_SECRET} bytes")


def make_token(secret: bytes, key: str, attempt: int) -> str:
    """The token for one attempt: ``<payload>.<mac>``, both base64url.

    Args:
        secret: the local secret (see :func:`load_secret`).
        key: the item's key.
        attempt: the attempt number, from 1.
    """
    _check_secret(secret)
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    payload = json.dumps([key, attempt], separators=(",", ":"), ensure_ascii=False).encode()
    return f"{b64url_encode(payload)}.{b64url_encode(_mac(secret, payload))}"


def parse_token(secret: bytes, token: str) -> WebhookTarget:
    """The attempt a token names, after checking its MAC in constant time.

    Raises:
        WebhookVerificationError: ``reason="bad_token"``: not a token this secret made.
    """
    _check_secret(secret)
    bad = WebhookVerificationError(
        "webhook rejected: its URL token was not made with this secret", reason="bad_token"
    )
    if not token or len(token) > _MAX_TOKEN or token.count(".") != 1:
        raise bad
    payload_text, mac_text = token.split(".")
    try:
        payload, mac = b64url_decode(payload_text), b64url_decode(mac_text)
    except ValueError:
        raise bad from None
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise bad
    try:
        key, attempt = json.loads(payload)
    except (ValueError, TypeError):
        raise bad from None
    if not isinstance(key, str) or not isinstance(attempt, int) or attempt < 1:
        raise bad
    return WebhookTarget(key, attempt)


def webhook_url_with_token(base_url: str, token: str) -> str:
    """``base_url`` with the token added to its query (other parameters kept)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"webhook_url must be an http(s) URL, got {base_url!r}")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != TOKEN_PARAM]
    query.append((TOKEN_PARAM, token))
    return urlunsplit(parts._replace(query=urlencode(query)))


def token_from_url(query_string: str) -> str | None:
    """The token in a request's raw query string, or None."""
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        if name == TOKEN_PARAM:
            return value
    return None


def _decode_secret(text: str) -> bytes:
    text = text.strip()
    try:
        return bytes.fromhex(text)
    except ValueError:
        pass
    try:
        return b64url_decode(text)
    except ValueError:
        raise ConfigurationError(f"{SECRET_ENV} must be hex or base64url") from None


def load_secret(path: str | os.PathLike[str] | None = None) -> bytes:
    """The local secret tokens are made with: the environment's, the file's, or a new one.

    Args:
        path: where it is kept (the journal's path plus ``.webhook-secret``); created with
            a fresh random secret (mode 0600) when missing. None without the environment
            variable gives a secret for this process only: deliveries of its attempts
            cannot be mapped after a restart.
    """
    if env := os.environ.get(SECRET_ENV):
        secret = _decode_secret(env)
        _check_secret(secret)
        return secret
    if path is None:
        return secrets.token_bytes(_MIN_SECRET)
    target = Path(path)
    with contextlib.suppress(FileNotFoundError):
        secret = _decode_secret(target.read_text(encoding="ascii"))
        _check_secret(secret)
        return secret
    fresh = secrets.token_bytes(_MIN_SECRET)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(fresh.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        # link, not rename: when two processes race, the first secret wins for both.
        os.link(temp, target)
    except FileExistsError:
        return load_secret(target)
    finally:
        temp.unlink(missing_ok=True)
    return fresh
