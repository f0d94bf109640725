"""The API's origin with our key: builds each API request and sends it through the driver.

Every API call (upload, submit, poll) is one :meth:`Endpoint.send`; the retrying is the
:class:`~seedream_async._network._driver.Driver`'s, the status-to-error mapping ``_errors.py``'s.

When the client made its HTTP client itself, each request goes straight to its transport
(``_transport.py``): ``httpx.AsyncClient.send`` adds cookie, auth, redirect and event-hook
layers the API's requests never use (redirects are followed here, same-origin only), and
they cost about as much CPU as the HTTP exchange itself. An HTTP client you pass is always
used whole, hooks and all.

Each attempt is bounded (``_bounded.py``): one overall deadline for the whole exchange, a
cap on the body, and no redirect off the API's origin (a request body and the key never go
to another host). An error ``code`` in a 200 body raises as that HTTP status would, inside
the attempt, so the driver retries or refuses it exactly as it does the status itself.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

import httpx

from .._base._constants import MAX_JSON_BYTES
from .._base._exceptions import MalformedResponse, scrub
from .._base._secret import Secret
from .._base._version import __version__
from .._policies._retry import RetryPolicy
from .._wire._envelope import envelope_error
from ._bounded import bounded, encoded, read_capped, same_origin, timed_out, too_large
from ._deadline import Steps
from ._driver import Driver, RefusedHook
from ._errors import status_error
from ._transport import Http11Transport
from ._upload import PreparedUpload, multipart_body

__all__ = ["Endpoint", "read_json"]

logger = logging.getLogger("seedream_async")

# Same-origin redirects an API call follows (a path moved); never one to another origin.
_MAX_REDIRECTS = 3
# Parsed URLs kept (a poll URL each for the predictions in flight, and a few more).
_URLS_KEPT = 4096
# GET requests kept to send again (a poll's, ~2.7 KB with its head), least recent dropped.
_GETS_KEPT = 1024
# What httpx's client asks for by default, asked for too when the transport is used directly.
_ACCEPT_ENCODING = "gzip, deflate"
# Headers that describe the body as it came over the wire, not as it is once decoded.
_WIRE_HEADERS = ("content-encoding", "content-length")


class _Answer(httpx.Response):
    """A response whose JSON body is parsed once: the envelope check and the caller both
    read it (a poll's answer is read about six times per prediction)."""

    _parsed: Any = None
    _has_parsed = False

    @classmethod
    def of(
        cls,
        status_code: int,
        headers: httpx.Headers | list[tuple[bytes, bytes]],
        body: bytes,
        request: httpx.Request,
        extensions: dict[str, Any] | None = None,
    ) -> _Answer:
        """The answer to ``request``, its (decoded) ``body`` already read.

        ``httpx.Response(content=...)`` would run the body through its decoder and chunker
        layers once more to "read" it (a tenth of a small answer's CPU); a stream of the
        same bytes, marked read, is what ``Response.read`` leaves behind.
        """
        answer = cls(
            status_code,
            headers=headers,
            stream=httpx.ByteStream(body),
            request=request,
            extensions=extensions,
        )
        answer._content = body
        answer.is_stream_consumed = True
        answer.is_closed = True
        return answer

    def json(self, **kwargs: Any) -> Any:
        if kwargs:
            return super().json(**kwargs)
        if not self._has_parsed:
            self._parsed = super().json()
            self._has_parsed = True
        return self._parsed


class Endpoint:
    """Sends authenticated requests to one API origin.

    Args:
        http: the HTTP client.
        base_url: the API's origin (and path prefix, if any).
        key: the API key; only ever revealed into a request's headers.
        driver: the retry driver every request goes through.
        deadline: seconds one attempt may take in all (connect, send, answer), or None.
        max_bytes: the largest answer body read.
        timeout: the per-request timeout; the HTTP client's when None.
        headers: extra headers sent with every request (never ``Authorization``).
        direct: the transport of ``http`` when the client made ``http`` itself: requests
            are handed to it directly, not through ``http.send``.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: httpx.URL,
        key: Secret,
        driver: Driver,
        *,
        deadline: float | None = None,
        max_bytes: int = MAX_JSON_BYTES,
        timeout: httpx.Timeout | None = None,
        headers: httpx.Headers | None = None,
        direct: Http11Transport | None = None,
    ):
        self._http = http
        self._direct = direct
        self._base_url = base_url
        self._key = key
        self._driver = driver
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.headers = headers or httpx.Headers()
        # True once the API has answered any request with success: until then a 401 or
        # 404 may well mean a wrong base URL (Atlas answers a wrong path with 401).
        self._answered = False
        # Parsed once: httpx validates a URL string character by character, and a poll's
        # URL is sent again every few seconds until its prediction ends.
        self._urls: dict[tuple[str, bool], httpx.URL] = {}
        self._gets: OrderedDict[tuple[str, bool], httpx.Request] = OrderedDict()
        self._fixed_headers: httpx.Headers | None = None

    def with_options(
        self, *, timeout: httpx.Timeout | None = None, headers: httpx.Headers | None = None
    ) -> Endpoint:
        """A copy on the same HTTP client (and pool) with another timeout, more headers."""
        merged = httpx.Headers(self.headers)
        merged.update(headers or {})
        return Endpoint(
            self._http,
            self._base_url,
            self._key,
            self._driver,
            deadline=self.deadline,
            max_bytes=self.max_bytes,
            timeout=timeout or self.timeout,
            headers=merged,
            direct=self._direct,
        )

    def scrub(self, text: str) -> str:
        """``text`` without the key or any bearer token (for server-provided text)."""
        return scrub(text, (self._key.reveal(),))

    def __repr__(self) -> str:
        return f"Endpoint({str(self._base_url)!r})"

    async def send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        operation: str,
        policy: RetryPolicy,
        idempotent: bool = True,
        json: Any = None,
        upload: PreparedUpload | None = None,
        max_upload_bytes: int = 0,
        on_refused: RefusedHook | None = None,
        keep_trying_for: float | None = None,
        max_bytes: int | None = None,
        read_timeout: float | None = None,
        from_origin: bool = False,
    ) -> httpx.Response:
        """Send one API request (retried by ``policy``) and return its successful response,
        its body read (at most ``max_bytes``, the endpoint's cap when None).

        ``read_timeout`` lengthens the client's read timeout, and the overall deadline, for
        this request (a sync-mode submit is answered only when its prediction is done).
        ``from_origin``: ``path`` is on the API's origin, not under the base URL's path.

        Raises:
            MalformedResponse: the answer is too large, or redirects off the API's origin.
            APIStatusError: an error status that is not retried (any more).
            TransportError: a transport failure that is not retried (any more).
            AmbiguousSubmission: a submit failed after it may have reached the server.
        """
        url = self._url(path, from_origin)
        timeout, deadline = self._timing(read_timeout)

        async def attempt() -> httpx.Response:
            headers = self._headers()
            content = None
            if upload is not None:
                part_headers, content = multipart_body(upload, max_bytes=max_upload_bytes)
                headers = httpx.Headers(headers)
                headers.update(part_headers)
            route = (path, from_origin)
            request = self._request(method, url, route, headers, json, content, timeout)
            response = await self._answer(request, what, max_bytes or self.max_bytes, deadline)
            return self._checked(response, what, method, url)

        return await self._driver.call(
            attempt,
            policy=policy,
            what=what,
            operation=operation,
            idempotent=idempotent,
            # An async byte stream can be read only once: its request is never sent again.
            one_shot=upload is not None and upload.stream is not None,
            on_refused=on_refused,
            keep_trying_for=keep_trying_for,
        )

    def _request(
        self,
        method: str,
        url: httpx.URL,
        route: tuple[str, bool],
        headers: httpx.Headers,
        json: Any,
        content: Any,
        timeout: httpx.Timeout,
    ) -> httpx.Request:
        """The request as ``http.send`` would get it (its defaults and timeout merged);
        ``route``: its path, and whether on the API's origin (see :meth:`send`)."""
        if self._direct is None:
            return self._http.build_request(
                method, url, headers=headers, json=json, content=content, timeout=timeout
            )
        plain = method == "GET" and json is None and content is None
        if plain and timeout is self._default_timeout() and headers is self._fixed_headers:
            # A GET is the same request every time it is sent (a poll, six times per
            # prediction): built once, and its HTTP/1.1 head with it (the transport's).
            gets = self._gets
            request = gets.get(route)
            if request is None:
                request = gets[route] = self._build(method, url, headers, None, None, timeout)
                if len(gets) > _GETS_KEPT:
                    gets.popitem(last=False)
            else:
                gets.move_to_end(route)
            return request
        return self._build(method, url, headers, json, content, timeout)

    def _build(
        self, method: str, url: httpx.URL, headers: httpx.Headers, json: Any, content: Any,
        timeout: httpx.Timeout,
    ) -> httpx.Request:  # fmt: skip
        extensions = {"timeout": timeout.as_dict()}
        return httpx.Request(
            method, url, headers=headers, json=json, content=content, extensions=extensions
        )

    def _default_timeout(self) -> httpx.Timeout:
        return self.timeout or self._http.timeout

    def _timing(self, read_timeout: float | None) -> tuple[httpx.Timeout, float | None]:
        """The request's timeout and overall deadline, lengthened to ``read_timeout``."""
        timeout = self._default_timeout()
        if read_timeout is not None and timeout.read is not None:
            timeout = httpx.Timeout(
                connect=timeout.connect,
                read=max(timeout.read, read_timeout),
                write=timeout.write,
                pool=timeout.pool,
            )
        deadline = self.deadline
        if read_timeout is not None and deadline is not None:
            deadline = max(deadline, read_timeout)
        return timeout, deadline

    def _url(self, path: str, from_origin: bool) -> httpx.URL:
        url = self._urls.get((path, from_origin))
        if url is None:
            prefix = "" if from_origin else self._base_url.path.rstrip("/")
            url = self._base_url.copy_with(path=prefix + path)
            if len(self._urls) >= _URLS_KEPT:
                self._urls.clear()
            self._urls[path, from_origin] = url
        return url

    def _headers(self) -> httpx.Headers:
        """Every request's headers (built once; never changed in place: copy to add)."""
        # httpx.Headers, not a dict: its repr masks Authorization, so a traceback that
        # records local variables (Sentry and the like) never shows the key.
        headers = self._fixed_headers
        if headers is None:
            headers = httpx.Headers(
                {"Accept": "application/json", "User-Agent": f"seedream-async/{__version__}"}
            )
            if self._direct is not None:  # what http.send would have added
                headers["Accept-Encoding"] = _ACCEPT_ENCODING
            headers.update(self.headers)
            headers["Authorization"] = f"Bearer {self._key.reveal()}"
            self._fixed_headers = headers
        return headers

    def _checked(
        self, response: httpx.Response, what: str, method: str, url: httpx.URL
    ) -> httpx.Response:
        """``response`` if it succeeded, in its status and in its envelope; else its error."""
        if not response.is_success:
            raise status_error(
                response,
                what=what,
                secrets=(self._key.reveal(),),
                note=self._first_contact(response.status_code, method, url),
            )
        self._answered = True
        try:
            body = response.json()
        except ValueError:
            body = None
        error = envelope_error(body, what=what, secrets=(self._key.reveal(),))
        if error is not None:
            raise error
        logger.debug("%s: HTTP %d", what, response.status_code)
        return response

    def _first_contact(self, status: int, method: str, url: httpx.URL) -> str:
        """What to check when the very first answers are 401/404: the URL as well as the key."""
        if self._answered or status not in (401, 404):
            return ""
        return (
            f" (called {method} {url}; no request has succeeded yet, and Atlas Cloud answers "
            "a wrong path with 401 too: check --base-url / ATLASCLOUD_BASE_URL, e.g. "
            "https://api.atlascloud.ai or https://api.atlascloud.ai/api/v1)"
        )

    async def _answer(
        self, request: httpx.Request, what: str, limit: int, seconds: float | None
    ) -> httpx.Response:
        """:meth:`_exchange` within ``seconds`` in all. Through the client's own transport,
        the overall deadline and the write and read timeouts are kept by one
        :class:`Steps` (one cancel scope); through a given HTTP client, by :func:`bounded`."""
        if self._direct is None:
            async with bounded(request, seconds):
                return await self._exchange(request, what, limit)
        steps = Steps(seconds)
        try:
            with steps:
                return await self._exchange(request, what, limit, steps)
        except TimeoutError:
            if not steps.expired:
                raise
            raise timed_out(request, steps) from None

    async def _read(
        self, request: httpx.Request, what: str, limit: int, steps: Steps | None
    ) -> tuple[httpx.Response, httpx.Request | None]:
        """The answer to ``request``, its body read (at most ``limit`` bytes, decoded), and
        the request a redirect answer points to (None for any other answer)."""
        if self._direct is None:
            response = await self._http.send(request, stream=True, follow_redirects=False)
            content = await read_capped(response, limit=limit, what=what)
            status = response.status_code
            answer = _Answer.of(status, _decoded(response.headers), content, request)
            return answer, (response.next_request if response.has_redirect_location else None)
        return await self._read_direct(self._direct, request, what, limit, steps)

    async def _read_direct(
        self,
        direct: Http11Transport,
        request: httpx.Request,
        what: str,
        limit: int,
        steps: Steps | None,
    ) -> tuple[httpx.Response, httpx.Request | None]:
        """:meth:`_read` through the client's own transport."""
        if self._http.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        fetched = await direct.fetch(request, limit, steps)
        if fetched.body is None:
            raise too_large(what, limit, fetched.over, fetched.status_code)
        headers: httpx.Headers | list[tuple[bytes, bytes]] = fetched.headers
        content = fetched.body
        # The transport gives names lowercased: a list, not httpx.Headers, unless decoded
        # (the answer builds its Headers from it once).
        if any(name == b"content-encoding" for name, _ in fetched.headers):
            headers = httpx.Headers(fetched.headers)
            if encoded(headers):
                stream = httpx.ByteStream(content)
                raw = httpx.Response(fetched.status_code, headers=headers, stream=stream)
                content = await read_capped(raw, limit=limit, what=what)
                headers = _decoded(headers)
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": fetched.reason}
        answer = _Answer.of(fetched.status_code, headers, content, request, extensions)
        if not answer.has_redirect_location:
            return answer, None
        # httpx's own rule (method, headers, body kept or dropped), as http.send applies it.
        return answer, self._http._build_redirect_request(request, answer)

    async def _exchange(
        self, request: httpx.Request, what: str, limit: int, steps: Steps | None = None
    ) -> httpx.Response:
        """Send ``request``, following only same-origin redirects, and read the answer."""
        for _ in range(_MAX_REDIRECTS + 1):
            response, target = await self._read(request, what, limit, steps)
            if target is None:
                return response
            if not same_origin(target.url, self._base_url):
                origin = f"{target.url.scheme}://{target.url.host}"
                if target.url.port:
                    origin += f":{target.url.port}"
                raise MalformedResponse(
                    f"{what}: the API redirected (HTTP {response.status_code}) to another "
                    f"origin, {origin}; not followed, so the request and its body stay with "
                    "the API",
                    status_code=response.status_code,
                )
            request = target
        raise MalformedResponse(
            f"{what}: more than {_MAX_REDIRECTS} redirects", status_code=response.status_code
        )


def _decoded(headers: httpx.Headers) -> httpx.Headers:
    """``headers`` of a body now held decoded: without what described its encoded form
    (kept, ``Content-Encoding: gzip`` would have httpx decode the body a second time)."""
    if not encoded(headers):
        return headers
    return httpx.Headers([(k, v) for k, v in headers.multi_items() if k not in _WIRE_HEADERS])


def read_json(response: httpx.Response, *, what: str) -> Any:
    """The response's JSON body; a body that is not JSON is the API's error."""
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        raise MalformedResponse(
            f"{what}: the API answered HTTP {response.status_code} with a body that is not "
            f"JSON ({kind})",
            status_code=response.status_code,
        ) from None
