"""Per-call options: ``client.with_options(...)``, ``extra_headers=``, and results in input
order (``edit_all(..., order="input")``).

A copy made by ``with_options`` is light: it shares the original's HTTP client (and so its
connection pool), its retry driver (the 429 pause and the request counters: the limits are
the key's, not the copy's), its background task group and its raw answers. Only the
settings differ. Closing a copy never closes the pool; close the client it came from.
"""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Literal, Self

import anyio.abc
import httpx

from .._base._exceptions import ConfigurationError
from .._engine import BatchResult, Items
from .._network._endpoint import Endpoint
from .._policies._polling import PollPolicy
from .._policies._retry import RetryPolicy

__all__ = ["Order", "PerCallOptions", "in_input_order", "recording_keys"]

Order = Literal["completion", "input"]
"""How ``edit_all`` returns its results: as they finish, or in the order of the items."""

# Headers the client owns: a per-call header may not replace them.
_RESERVED = frozenset({"authorization", "content-type", "content-length", "host"})
# RFC 9110 5.1 and 5.5: a name is a token; a value may not hold CR, LF or NUL (a line
# break would end the header and start another: header injection).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BREAKS = re.compile(r"[\r\n\x00]")


def checked_headers(headers: Mapping[str, str] | None) -> httpx.Headers:
    """``headers`` as httpx headers, refusing those the client must set itself."""
    result = httpx.Headers(headers or {})
    if reserved := sorted(name for name in result if name.lower() in _RESERVED):
        raise ConfigurationError(
            f"headers may not set {', '.join(reserved)}: the client sets them (the API key "
            "goes in api_key=...)"
        )
    for name, value in (headers or {}).items():
        if not _TOKEN.fullmatch(name):
            raise ConfigurationError(f"header name {name!r} is not a valid HTTP header name")
        if _BREAKS.search(value):
            raise ConfigurationError(
                f"header {name!r}: its value holds a line break or NUL, which HTTP cannot "
                "carry (it would start another header)"
            )
    return result


class PerCallOptions:
    """What :class:`AsyncSeedream` gets from this module: ``with_options`` and the
    per-call copy behind ``extra_headers``."""

    retry: RetryPolicy
    poll: PollPolicy
    _endpoint: Endpoint
    _owns_http: bool
    _background: Callable[[], anyio.abc.TaskGroup | None]

    def with_options(
        self,
        *,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Self:
        """A copy of this client with other settings, sharing its connection pool::

            patient = client.with_options(timeout=120, retry=RetryPolicy(max_attempts=10))
            await patient.edit(prompt, images)

        Args:
            timeout: the per-request timeout in seconds (or an ``httpx.Timeout``), for API
                requests and downloads alike.
            retry: the retry policy.
            poll: the polling policy (and per-prediction deadline).
            headers: headers added to every API request (on top of this client's own);
                not sent to the storage host, and never ``Authorization``.

        Unset arguments keep this client's settings.
        """
        clone = copy.copy(self)
        clone.retry = retry or self.retry
        clone.poll = poll or self.poll
        clone._owns_http = False  # the pool is the original's to close
        clone._background = self._background  # batches run in the original's group
        clone._endpoint = self._endpoint.with_options(
            timeout=httpx.Timeout(timeout) if isinstance(timeout, int | float) else timeout,
            headers=checked_headers(headers),
        )
        return clone

    def _per_call(self, extra_headers: Mapping[str, str] | None) -> Self:
        """This client, or a copy sending ``extra_headers`` too."""
        return self.with_options(headers=extra_headers) if extra_headers else self


def _key_of(item: Any) -> Any:
    if isinstance(item, Mapping):
        return item.get("key")
    return getattr(item, "key", None)


def recording_keys(items: Items, keys: list[Any]) -> Items:
    """``items``, read lazily as before, appending each item's key to ``keys`` as it is read."""
    if isinstance(items, AsyncIterable):

        async def read_async() -> AsyncIterator[Any]:
            async for item in items:
                keys.append(_key_of(item))
                yield item

        return read_async()

    def read() -> Iterator[Any]:
        for item in items:
            keys.append(_key_of(item))
            yield item

    return read()


def in_input_order(results: list[BatchResult], keys: list[Any]) -> list[BatchResult]:
    """``results`` sorted by their item's place in the input (a stable sort: results whose
    key was not among the items, or repeated, keep their completion order, last)."""
    place: dict[Any, int] = {}
    for index, key in enumerate(keys):
        place.setdefault(key, index)
    return sorted(results, key=lambda result: place.get(result.key, len(keys)))
