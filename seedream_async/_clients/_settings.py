"""The client's settings as its constructor resolves them: the key, the API's root, the
limits checked, the price set for every model, and the client's own HTTP client.

:class:`AsyncSeedream` calls these once, in ``__init__``; each is a small pure step so the
constructor reads as a list of what it sets.
"""

from __future__ import annotations

import http.cookiejar
import os
import urllib.request
from typing import Any

import httpx

from .._base._constants import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL
from .._base._exceptions import ConfigurationError
from .._base._secret import Secret
from .._network._transport import Http11Transport
from .._wire._pricing import PriceModel

__all__ = [
    "DEFAULT_REQUEST_DEADLINE",
    "DEFAULT_TIMEOUT",
    "api_root",
    "check_limits",
    "http_client_for",
    "price_set",
    "resolve_api_key",
    "resolve_base_url",
]

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0, pool=None)
# One request's whole exchange, however slowly the bytes trickle in: long enough for a
# 10 MB upload or a 64 MB output on a slow link, short enough that a stalled one ends.
DEFAULT_REQUEST_DEADLINE = 300.0

_API_PREFIX = "/api/v1"


def api_root(path: str) -> str:
    """The base URL's path without a trailing slash or the API's own ``/api/v1`` prefix.

    Atlas Cloud's docs and its MCP server write the base as ``https://api.atlascloud.ai/api/v1``;
    the request paths already carry ``/api/v1``, so a base ending in it would call
    ``/api/v1/api/v1/...`` (which Atlas answers with 401, as if the key were wrong).
    """
    path = path.rstrip("/")
    if path.endswith(_API_PREFIX):
        path = path[: -len(_API_PREFIX)].rstrip("/")
    return path or "/"


def resolve_api_key(api_key: str | None) -> Secret:
    """The key given, else the environment's, kept as a :class:`Secret`."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    if not key or not key.strip():
        raise ConfigurationError(
            f"no API key: pass api_key=... or set the {API_KEY_ENV} environment variable"
        )
    return Secret(key.strip())


def resolve_base_url(base_url: str | httpx.URL | None) -> httpx.URL:
    """The API's root: the URL given, else the environment's, else Atlas Cloud's."""
    url = httpx.URL(str(base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL))
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"base_url must be an http(s) URL, got {str(url)!r}")
    return url.copy_with(path=api_root(url.path))


def price_set(price: PriceModel | None, per_execution: float | None) -> PriceModel | None:
    """The price the user set for every model (``price``, or ``price_per_execution``)."""
    if price is None and per_execution is not None:
        return PriceModel(per_execution=per_execution, per_image=0.0)
    return price


def http_client_for(
    given: httpx.AsyncClient | None, timeout: float | httpx.Timeout, max_connections: int
) -> tuple[httpx.AsyncClient, Http11Transport | None]:
    """The HTTP client to use, and the transport the API's requests are handed to directly
    (see ``_endpoint``), or None to send them through the HTTP client.

    ``given`` (the user's) is used whole, hooks and all: (``given``, None). Otherwise the
    client's own, on its own HTTP/1.1 transport (see ``_transport``); with a proxy set in
    the environment (``HTTPS_PROXY``, ``ALL_PROXY``...), httpx's own transport instead (and
    None): it honours those variables, and ours speaks only straight to hosts.
    """
    if given is not None:
        return given, None
    if _environment_proxies():
        limits = httpx.Limits(max_connections=max_connections)
        return httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=True), None
    transport = Http11Transport(max_connections=max_connections)
    http = httpx.AsyncClient(
        timeout=timeout, transport=transport, follow_redirects=True, cookies=_NoCookies()
    )
    return http, transport


class _NoCookies(http.cookiejar.CookieJar):
    """A jar that keeps nothing: the API authenticates by key, and storing the cookies of
    every answer (httpx does, through ``http.cookiejar``) cost a tenth of a poll's CPU."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None


def _environment_proxies() -> bool:
    """Whether the environment names an HTTP(S) proxy (the variables httpx reads)."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def check_limits(
    inline_max_bytes: int | None,
    max_upload_bytes: int,
    request_deadline: float | None,
    max_response_bytes: int,
    max_output_bytes: int,
) -> None:
    """Refuse size and time limits that cannot work, before anything is sent."""
    if inline_max_bytes is not None and not 0 < inline_max_bytes <= max_upload_bytes:
        raise ConfigurationError(
            f"inline_max_bytes must be 1..max_upload_bytes ({max_upload_bytes}) or None, "
            f"got {inline_max_bytes}"
        )
    if request_deadline is not None and not request_deadline > 0:
        raise ConfigurationError(f"request_deadline must be positive, got {request_deadline}")
    if max_response_bytes < 1 or max_output_bytes < 1:
        raise ConfigurationError("max_response_bytes and max_output_bytes must be positive")
