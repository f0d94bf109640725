"""The async client, :class:`AsyncSeedream`: its settings, its lifecycle, and the calls that
put the operations together (``edit``, ``edit_batch``, ``edit_all``, ``balance``).

The operations themselves, each with the retry policy, come from its bases: uploads and
downloads from :class:`~._transfers.ImageTransfers`, submitting and polling from
:class:`~._predictions.PredictionCalls`; the constructor's settings are resolved in
``_settings.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, Unpack

import anyio
import httpx

from .._base._constants import DEFAULT_MODEL, MAX_JSON_BYTES, MAX_OUTPUT_BYTES, MAX_UPLOAD_BYTES
from .._base._exceptions import InvalidInput, PredictionFailed
from .._base._observe import Callbacks, Observer, Observers
from .._engine import BatchOptions, BatchOptionsDict, BatchResult, BatchRun, Items
from .._network._driver import Driver
from .._network._endpoint import Endpoint, read_json
from .._network._upload import DEFAULT_ACCEPTED_TYPES
from .._policies._polling import Completion, PollPolicy, as_completion
from .._policies._retry import RetryPolicy
from .._webhook._completion import Webhooks, submit_and_wait
from .._webhook._receiver import JwksKeys
from .._webhook._signature import JWKS_PATH
from .._wire._balance import BALANCE_PATH, Balance, read_balance
from .._wire._parsing import ImageRef, Prediction
from .._wire._pricing import PriceModel
from .._wire._raw import RawResponses
from .._wire._requests import build_request, check_params
from ._options import Order, in_input_order, recording_keys
from ._predictions import PredictionCalls
from ._settings import (
    DEFAULT_REQUEST_DEADLINE,
    DEFAULT_TIMEOUT,
    check_limits,
    http_client_for,
    price_set,
    resolve_api_key,
    resolve_base_url,
)
from ._transfers import ImageTransfers

__all__ = ["AsyncSeedream"]


class AsyncSeedream(PredictionCalls, ImageTransfers):
    """An async client for Seedream v4.5 Edit Sequential on Atlas Cloud.

    Use it as an async context manager; it closes what it opened (never a
    ``http_client`` you passed in)::

        async with AsyncSeedream() as client:
            prediction = await client.edit("Put it on marble", ["shoe.png"])

    Args:
        api_key: the API key; ``ATLASCLOUD_API_KEY`` from the environment when None.
        base_url: the API's origin; ``ATLASCLOUD_BASE_URL`` or Atlas Cloud's when None.
        http_client: your own ``httpx.AsyncClient``; it is not closed for you. Without
            one the client makes its own on a lean HTTP/1.1 transport (HTTPS verified with
            certifi's roots), or on httpx's own when the environment names a proxy; pass
            one for HTTP/2, client certificates or a proxy given in code.
        timeout: per-request timeout in seconds (or an ``httpx.Timeout``), not the time
            a prediction may take (see ``poll.deadline``).
        max_connections: requests in flight at once (one connection each), when the
            client makes its own HTTP client.
        retry: the retry policy for failed requests.
        poll: how predictions are polled.
        max_upload_bytes: the largest reference image accepted (checked before upload).
        accepted_types: the MIME types accepted for reference images (sniffed from bytes):
            the six the API takes (JPEG, PNG, WEBP, BMP, TIFF, GIF) by default.
        inline_max_bytes: send local reference images up to this many bytes inside the
            request as ``data:`` URIs instead of uploading them, saving a round trip per
            image (off when None). The cost: the submit body grows by 4/3 of each image
            (and a submit is not retried once it may have reached the server), and the
            API answers 413 to a body over 50 MB (refused locally before sending); an
            image shared by many items is sent with every one of them, where an upload
            is made once, and a batch's journal records each request with its images.
            Worth it for a few small images per item.
        price_per_execution: US dollars per submitted prediction, for every model; None
            (the default) prices each model by its own rule in the table of models.
        price: how the API bills (a :class:`PriceModel`), for budgets and cost figures, for
            every model: ``PriceModel.per_generated_image(0.04)``, say. None (the default)
            prices each model by its own rule (``PriceModel.for_model``): $0.036 per run
            for v4.5 edit-sequential, $0.032 per image for v5.0-lite, ...
        request_deadline: seconds one request may take in all (connect, send, the whole
            answer), however slowly a server trickles it; None for no overall deadline.
            A poll or download past it is retried; a submit past it is ambiguous.
        max_response_bytes: the largest API answer read (1 MiB); larger ones raise
            :class:`MalformedResponse`. Answers with ``enable_base64_output`` may also carry
            ``max_output_bytes`` per image.
        max_output_bytes: the largest output file downloaded (64 MiB).
        rng: the random source for jitter (seed it for reproducible tests).
        on_result: called with each batch result as it is made (every batch).
        on_retry: called with ``(what, attempt, delay, error)`` before a retry's wait.
        on_refused: called with ``(error, wait)`` when the API refused a submit (429, 503):
            not billed, it is queued again.
        observers: more :class:`Observer` objects, such as
            ``seedream_async.otel.OpenTelemetryObserver()`` (the ``otel`` extra).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | httpx.URL | None = None,
        http_client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_connections: int = 128,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        accepted_types: Collection[str] = DEFAULT_ACCEPTED_TYPES,
        inline_max_bytes: int | None = None,
        price_per_execution: float | None = None,
        price: PriceModel | None = None,
        request_deadline: float | None = DEFAULT_REQUEST_DEADLINE,
        max_response_bytes: int = MAX_JSON_BYTES,
        max_output_bytes: int = MAX_OUTPUT_BYTES,
        rng: random.Random | None = None,
        on_result: Callable[[BatchResult], object] | None = None,
        on_retry: Callable[[str, int, float, BaseException], object] | None = None,
        on_refused: Callable[[BaseException, float], object] | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self._key = resolve_api_key(api_key)
        self.base_url = resolve_base_url(base_url)
        self.retry = retry or RetryPolicy()
        self.poll = poll or PollPolicy()
        self.max_upload_bytes = max_upload_bytes
        self.accepted_types = frozenset(accepted_types)
        check_limits(inline_max_bytes, max_upload_bytes, request_deadline,
                      max_response_bytes, max_output_bytes)  # fmt: skip
        self.inline_max_bytes = inline_max_bytes
        self._price_override = price_set(price, price_per_execution)
        self.price = self._price_override or PriceModel.for_model(DEFAULT_MODEL) or PriceModel()
        """The price of the default model (or the one you set for every model)."""
        self.price_per_execution = self.price.per_execution
        self.request_deadline = request_deadline
        self.max_output_bytes = max_output_bytes
        # Ids submitted with enable_base64_output: their answers carry images, so their
        # polls may be as large as the images (and no larger).
        self._base64: dict[str, int] = {}
        self.rng = rng or random.Random()
        self._driver = Driver(rng=self.rng)
        callbacks = Callbacks(on_result=on_result, on_retry=on_retry, on_refused=on_refused)
        self.observer = Observers([callbacks, *observers] if callbacks else observers)
        """Told what happens (see :class:`Observer`); add to ``observer.observers``."""
        self._driver.observer = self.observer
        self.gate = self._driver.gate
        self.requests = self._driver.requests
        """Requests sent, by operation (``upload``, ``submit``, ``poll``, ``download``)."""
        self._owns_http = http_client is None
        self._http, direct = http_client_for(http_client, timeout, max_connections)
        self._endpoint = Endpoint(
            self._http, self.base_url, self._key, self._driver,
            deadline=request_deadline, max_bytes=max_response_bytes, direct=direct,
        )  # fmt: skip
        self._task_group: anyio.abc.TaskGroup | None = None
        self._raw = RawResponses()
        self._webhooks: Webhooks | None = None

    def __repr__(self) -> str:
        return f"AsyncSeedream(base_url={str(self.base_url)!r}, api_key='**********')"

    def price_for(self, model: str) -> PriceModel:
        """How a prediction of ``model`` is billed: the ``price`` you set, else the
        model's own rule from the table, else (an unknown model) the default model's."""
        if self._price_override is not None:
            return self._price_override
        return PriceModel.for_model(model) or self.price

    async def __aenter__(self) -> Self:
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group, self._task_group = self._task_group, None
        try:
            if task_group is not None:
                # Batches whose iterator was abandoned still run here: stop them. The body's
                # own exception is not handed to the group, so it propagates as itself
                # rather than wrapped in an ExceptionGroup.
                task_group.cancel_scope.cancel()
                await task_group.__aexit__(None, None, None)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client, if this client made it."""
        if self._owns_http:
            await self._http.aclose()

    @property
    def webhooks(self) -> Webhooks:
        """The webhook receiver for ``completion="webhook"``: mount ``webhooks.app`` or
        start ``webhooks.listen(...)``. Created on first use, trusting the key set at
        ``<base_url>/api/v1/webhooks/jwks.json``; assign a :class:`Webhooks` to change it."""
        if self._webhooks is None:
            jwks = str(self.base_url.copy_with(path=JWKS_PATH, query=None))
            self._webhooks = Webhooks(JwksKeys(jwks, http=self._http))
        return self._webhooks

    @webhooks.setter
    def webhooks(self, value: Webhooks) -> None:
        self._webhooks = value

    @property
    def rate_limited_at(self) -> float:
        """When the API last answered 429, on the event loop's clock (``-inf`` if never)."""
        return self.gate.paused_at

    # -- operations: upload, upload_images and download are ImageTransfers' (_transfers.py),
    # submit, get_prediction and wait PredictionCalls' (_predictions.py) -------------------

    async def balance(self) -> Balance:
        """The account's balance, from Atlas Cloud's Billing Public API
        (``GET /public/v1/balance`` on the API's origin; the key needs balance read
        permission: a personal account's owner, or a team's Admin or Finance role)."""
        what = "balance"
        response = await self._endpoint.send(
            "GET", BALANCE_PATH, what=what, operation=what, policy=self.retry, from_origin=True
        )
        return read_balance(read_json(response, what=what))

    async def edit(
        self,
        prompt: str,
        images: Sequence[ImageRef],
        *,
        completion: Completion | str = Completion.POLL,
        webhook_url: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> Prediction:
        """Upload local images, submit one edit, wait for it, and return the done prediction.

        Every parameter is checked before anything is uploaded or paid for.

        Args:
            prompt: what to do.
            images: 1 to 10 reference images: URLs, paths or bytes.
            completion: ``"poll"`` (the default), ``"sync"``: ask the API to answer
                when the prediction is done, or ``"webhook"``: have it POST the result to
                ``webhook_url``, received by :attr:`webhooks` (see :class:`Completion`).
            webhook_url: the public URL that reaches :attr:`webhooks` (webhook only).
            extra_headers: headers added to its API requests (uploads, submit, polls).
            **params: ``size``, ``max_images``, ``seed``, ``enable_base64_output`` ...
        """
        if extra_headers:
            clone = self._per_call(extra_headers)
            return await clone.edit(
                prompt, images, completion=completion, webhook_url=webhook_url, **params
            )
        mode = as_completion(completion)
        if mode is Completion.SYNC:
            params["enable_sync_mode"] = True
        if (mode is Completion.WEBHOOK) != (webhook_url is not None):
            raise InvalidInput(
                'completion="webhook" and webhook_url=... go together', field="webhook_url"
            )
        check_params(prompt=prompt, images=images, **params)
        urls = await self.upload_images(
            images, check_limits=params.get("check_limits", True) is not False
        )
        request = build_request(prompt=prompt, images=urls, **params)
        if webhook_url is not None:
            return await submit_and_wait(self, self.webhooks, request, webhook_url)
        prediction = await self.submit(request)
        if prediction.terminal:  # sync mode, or a very fast model
            if prediction.failed:
                raise PredictionFailed.of(prediction.id, prediction.error, prediction.error_code)
            return prediction
        return await self.wait(prediction.id)

    def edit_batch(
        self,
        items: Items,
        *,
        extra_headers: Mapping[str, str] | None = None,
        **options: Unpack[BatchOptionsDict],
    ) -> BatchRun:
        """Edit a whole catalog; iterate the run for results as they finish.

        ::

            async with AsyncSeedream() as client:
                async for result in client.edit_batch(items, concurrency=64, out_dir="edited"):
                    print(result.key, result.status, result.files)

        Args:
            items: :class:`EditItem` objects or mappings with the same fields, from any
                iterable or async iterable; read lazily, so a generator of any length works.
            **options: the fields of :class:`BatchOptions`: ``concurrency``, ``rate``,
                ``out_dir``, ``journal``, ``budget``, ``on_progress``, ...
            extra_headers: headers added to the batch's API requests.
        """
        if extra_headers:
            return self._per_call(extra_headers).edit_batch(items, **options)
        return BatchRun(self, items, BatchOptions(**options), background=self._background)

    def _background(self) -> anyio.abc.TaskGroup | None:
        return self._task_group

    async def edit_all(
        self,
        items: Items,
        *,
        order: Order = "completion",
        extra_headers: Mapping[str, str] | None = None,
        **options: Unpack[BatchOptionsDict],
    ) -> list[BatchResult]:
        """Run :meth:`edit_batch` to the end and return every result.

        Args:
            items: as for :meth:`edit_batch`.
            order: ``"completion"`` (as they finish) or ``"input"`` (the items' order,
                as ``asyncio.gather`` keeps it).
            extra_headers: headers added to the batch's API requests.
            **options: as for :meth:`edit_batch`.
        """
        if order not in ("completion", "input"):
            raise InvalidInput(
                f"order must be 'completion' or 'input', got {order!r}", field="order"
            )
        keys: list[Any] = []
        if order == "input":
            items = recording_keys(items, keys)
        async with self.edit_batch(items, extra_headers=extra_headers, **options) as run:
            results = [result async for result in run]
        return in_input_order(results, keys) if order == "input" else results
