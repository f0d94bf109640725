"""The pure parts of webhooks: signature verification, JWKS parsing, attempt tokens and
their secret, and the fallback poll policy. No network."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from seedream_async import PollPolicy, SeedreamError, WebhookVerificationError
from seedream_async._webhook._completion import fallback_policy
from seedream_async._webhook._signature import WebhookKey, b64url_encode, parse_jwks, verify_webhook
from seedream_async._webhook._token import (
    SECRET_ENV,
    WebhookTarget,
    load_secret,
    make_token,
    parse_token,
    token_from_url,
    webhook_url_with_token,
)

NOW = 1_800_000_000
BODY = json.dumps(
    {
        "session_id": "pred_1",
        "event_type": "image.task.terminal",
        "status": "OK",
        "payload": {"id": "pred_1", "status": "completed", "outputs": ["https://x/1.png"]},
    }
).encode()


def keypair(kid: str) -> tuple[Ed25519PrivateKey, WebhookKey]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, WebhookKey(kid, public)


def signed(
    private: Ed25519PrivateKey, kid: str, body: bytes = BODY, stamp: int = NOW
) -> dict[str, str]:
    signature = private.sign(f"{stamp}.".encode() + body)
    return {
        "X-AtlasCloud-Webhook-Id": "wh_1",
        "X-AtlasCloud-Webhook-Event": "image.task.terminal",
        "X-AtlasCloud-Webhook-Timestamp": str(stamp),
        "X-AtlasCloud-Webhook-Key-Id": kid,
        "X-AtlasCloud-Webhook-Signature-Ed25519": b64url_encode(signature),
    }


def test_a_genuine_delivery_verifies_and_decodes() -> None:
    """A delivery signed over ``<timestamp>.<raw body>`` by a trusted key passes."""
    private, key = keypair("k1")
    verified = verify_webhook(signed(private, "k1"), BODY, [key], now=NOW + 10)
    assert verified.webhook_id == "wh_1"
    assert verified.event == "image.task.terminal"
    assert verified.body["session_id"] == "pred_1"


def test_rotation_several_keys_each_verifies_its_own() -> None:
    """While a key rotates, deliveries signed by the old and the new key both pass."""
    old, old_key = keypair("old")
    new, new_key = keypair("new")
    keys = [old_key, new_key]
    assert verify_webhook(signed(old, "old"), BODY, keys, now=NOW).key_id == "old"
    assert verify_webhook(signed(new, "new"), BODY, keys, now=NOW).key_id == "new"


def _reason(headers: dict[str, str], body: bytes, keys: list[WebhookKey], now: float) -> str:
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(headers, body, keys, 300, now=now)
    assert isinstance(caught.value, SeedreamError)
    return caught.value.reason


def test_forged_replayed_wrong_key_and_malformed_are_refused() -> None:
    """Each way a delivery can be bad is refused with a reason naming it."""
    private, key = keypair("k1")
    forger, _ = keypair("k1")
    good = signed(private, "k1")
    assert _reason(signed(forger, "k1"), BODY, [key], NOW) == "bad_signature"
    assert _reason(good, BODY.replace(b"completed", b"failed!!!"), [key], NOW) == "bad_signature"
    assert _reason(good, BODY, [key], NOW + 301) == "stale"
    assert _reason(good, BODY, [key], NOW - 301) == "stale"
    assert _reason(signed(private, "k2"), BODY, [key], NOW) == "unknown_key"
    missing = {k: v for k, v in good.items() if not k.endswith("Id")}
    assert _reason(missing, BODY, [key], NOW) == "missing_header"
    bad_sig = {**good, "X-AtlasCloud-Webhook-Signature-Ed25519": "abc"}
    assert _reason(bad_sig, BODY, [key], NOW) == "malformed"
    bad_stamp = {**good, "X-AtlasCloud-Webhook-Timestamp": "soon"}
    assert _reason(bad_stamp, BODY, [key], NOW) == "malformed"
    not_json = b"not json"
    assert _reason(signed(private, "k1", not_json), not_json, [key], NOW) == "malformed"


def test_parse_jwks_keeps_ed25519_keys_only() -> None:
    """A JWKS's OKP/Ed25519 keys with a kid are read; other keys are skipped."""
    _, key = keypair("k1")
    document = {
        "keys": [
            {"kty": "RSA", "kid": "r", "n": "x", "e": "AQAB"},
            {"kty": "OKP", "crv": "X25519", "kid": "x", "x": b64url_encode(key.public)},
            {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(key.public)},  # no kid
            {"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": b64url_encode(key.public)},
        ]
    }
    assert parse_jwks(json.dumps(document)) == (key,)
    for bad in (b"[]", b"{}", b"nope", json.dumps({"keys": document["keys"][:1]})):
        with pytest.raises(WebhookVerificationError) as caught:
            parse_jwks(bad)
        assert caught.value.reason == "no_keys"


def test_tokens_round_trip_and_cannot_be_forged() -> None:
    """A token names its attempt; another secret, an edit, or garbage is refused."""
    secret, other = os.urandom(32), os.urandom(32)
    token = make_token(secret, "item/é 1", 3)
    assert parse_token(secret, token) == WebhookTarget("item/é 1", 3)
    assert make_token(secret, "a", 1) != make_token(secret, "a", 2)
    payload, mac = token.split(".")
    forged_payload = b64url_encode(json.dumps(["other", 3]).encode())
    for bad in (f"{forged_payload}.{mac}", f"{payload}.{mac[:-2]}AA", "", "x", "a.b.c"):
        with pytest.raises(WebhookVerificationError):
            parse_token(secret, bad)
    with pytest.raises(WebhookVerificationError):
        parse_token(other, token)


def test_token_rides_in_the_webhook_url_query() -> None:
    """The token is added to the URL's query (other parameters kept) and read back."""
    url = webhook_url_with_token("https://h.example/hooks?a=1", "T.K")
    assert url.startswith("https://h.example/hooks?a=1&sdt=")
    assert token_from_url(url.partition("?")[2]) == "T.K"


def test_secret_survives_a_restart_beside_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The secret file is created once (0600) and read back by the next run; the
    environment variable wins over it."""
    monkeypatch.delenv(SECRET_ENV, raising=False)
    path = tmp_path / "run.journal.webhook-secret"
    first = load_secret(path)
    assert load_secret(path) == first
    assert path.stat().st_mode & 0o077 == 0
    assert load_secret() != load_secret()  # no path: a process-only secret
    monkeypatch.setenv(SECRET_ENV, "ab" * 32)
    assert load_secret(path) == bytes.fromhex("ab" * 32)


def test_fallback_polling_starts_late_and_spends_little() -> None:
    """The fallback's first poll comes well after the typical duration."""
    policy = PollPolicy(typical=8.0)
    fallback = fallback_policy(policy)
    assert fallback.first_poll >= 4 * 8.0
    assert fallback.interval >= 8.0


def test_the_crypto_and_listener_dependencies_load_only_when_used() -> None:
    """``import seedream_async`` (and the simulator) work without the webhooks extra:
    ``cryptography`` is imported only when a signature is checked or made."""
    import subprocess
    import sys

    code = (
        "import sys, seedream_async, seedream_async.testing; "
        "assert 'cryptography' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
