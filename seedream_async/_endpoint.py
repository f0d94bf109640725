"""The API's origin with our key: builds each API request and sends it through the driver.

Every API call (upload, submit, poll) is one :meth:`Endpoint.send`; the retrying is the
:class:`~seedream_async._driver.Driver`'s, the status-to-error mapping ``_http.py``'s.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from ._driver import Driver, RefusedHook
from ._exceptions import APIStatusError
from ._http import status_error
from ._retry import RetryPolicy
from ._secret import Secret
from ._upload import PreparedUpload, multipart_body
from ._version import __version__

__all__ = ["Endpoint", "read_json"]

logger = logging.getLogger("seedream_async")


class Endpoint:
    """Sends authenticated requests to one API origin.

    Args:
        http: the HTTP client.
        base_url: the API's origin (and path prefix, if any).
        key: the API key; only ever revealed into a request's headers.
        driver: the retry driver every request goes through.
    """

    def __init__(self, http: httpx.AsyncClient, base_url: httpx.URL, key: Secret, driver: Driver):
        self._http = http
        self._base_url = base_url
        self._key = key
        self._driver = driver

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
        read_timeout: float | None = None,
    ) -> httpx.Response:
        """Send one API request (retried by ``policy``) and return its successful response.

        ``read_timeout`` lengthens the client's read timeout for this request (a sync-mode
        submit is answered only when its prediction is done).

        Raises:
            APIStatusError: an error status that is not retried (any more).
            TransportError: a transport failure that is not retried (any more).
            AmbiguousSubmission: a submit failed after it may have reached the server.
        """
        url = self._base_url.copy_with(path=self._base_url.path.rstrip("/") + path)
        timeout = self._http.timeout
        if read_timeout is not None and timeout.read is not None:
            timeout = httpx.Timeout(
                connect=timeout.connect,
                read=max(timeout.read, read_timeout),
                write=timeout.write,
                pool=timeout.pool,
            )

        async def attempt() -> httpx.Response:
            # httpx.Headers, not a dict: its repr masks Authorization, so a traceback
            # that records local variables (Sentry and the like) never shows the key.
            headers = httpx.Headers(
                {
                    "Authorization": f"Bearer {self._key.reveal()}",
                    "Accept": "application/json",
                    "User-Agent": f"seedream-async/{__version__}",
                }
            )
            content = None
            if upload is not None:
                part_headers, content = multipart_body(upload, max_bytes=max_upload_bytes)
                headers.update(part_headers)
            request = self._http.build_request(
                method, url, headers=headers, json=json, content=content, timeout=timeout
            )
            response = await self._http.send(request)
            if not response.is_success:
                raise status_error(response, what=what)
            logger.debug("%s: HTTP %d", what, response.status_code)
            return response

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


def read_json(response: httpx.Response, *, what: str) -> Any:
    """The response's JSON body; a body that is not JSON is the API's error."""
    try:
        return response.json()
    except ValueError:
        raise APIStatusError(
            f"{what}: the API answered HTTP {response.status_code} with a body that is not JSON",
            status_code=response.status_code,
        ) from None
