"""The low-level async client: upload, submit, poll, download, each with the retry policy."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, Unpack

import anyio
import httpx

from .._base._constants import (
    DEFAULT_MODEL,
    MAX_INPUT_SIDE,
    MAX_JSON_BYTES,
    MAX_OUTPUT_BYTES,
    MAX_UPLOAD_BYTES,
)
from .._base._exceptions import (
    AmbiguousSubmission,
    APIStatusError,
    BadRequestError,
    DeadlineExceeded,
    InvalidInput,
    MalformedResponse,
    PredictionFailed,
    SeedreamError,
)
from .._base._observe import Callbacks, Observer, Observers
from .._engine import BatchOptions, BatchOptionsDict, BatchResult, BatchRun, Items
from .._media._inputs import is_data_uri
from .._network._download import stream_to_file, write_base64
from .._network._driver import Driver, RefusedHook
from .._network._endpoint import Endpoint, read_json
from .._network._upload import (
    DEFAULT_ACCEPTED_TYPES,
    ImageSource,
    PreparedUpload,
    UploadRules,
    check_data_uri,
    inline_uri,
    inlines,
    inspect_source,
)
from .._policies._polling import Completion, PollPolicy, as_completion, poll_delays
from .._policies._retry import RetryPolicy
from .._webhook._completion import Webhooks, submit_and_wait
from .._webhook._receiver import JwksKeys
from .._webhook._signature import JWKS_PATH
from .._wire._balance import BALANCE_PATH, Balance, read_balance
from .._wire._parsing import ImageRef, Prediction, UploadedMedia, read_prediction, read_upload
from .._wire._pricing import PriceModel
from .._wire._raw import RawResponse, RawResponses
from .._wire._requests import EditRequest, build_request, check_params, is_url
from ._options import Order, PerCallOptions, in_input_order, recording_keys
from ._settings import (
    DEFAULT_REQUEST_DEADLINE,
    DEFAULT_TIMEOUT,
    check_limits,
    own_http,
    price_set,
    resolve_api_key,
    resolve_base_url,
)

__all__ = ["AsyncSeedream"]

# The longest a sync-mode submit holds its connection for an answer. Atlas Cloud ends a
# sync request that passes its own maximum wait with 504 (the prediction goes on), so a
# longer wait on our side is never honoured: the 504 (or this) comes first, then the
# prediction is polled by id when the answer names it.
_SYNC_WAIT = 300.0
# How long a just-submitted prediction may answer 404/400 to a poll before that is believed
# (Atlas's ComfyUI client waits up to 30 s for a new prediction to be known).
NOT_FOUND_GRACE = 30.0

_UPLOAD = "/api/v1/model/uploadMedia"
_SUBMIT = "/api/v1/model/generateImage"
_PREDICTION = "/api/v1/model/prediction/{id}"


def _with_request_id(prediction: Prediction, response: httpx.Response) -> Prediction:
    """``prediction`` carrying the answer's ``X-Request-ID`` (when its body had none)."""
    header = response.headers.get("x-request-id", "").strip()
    if prediction.request_id or not header:
        return prediction
    return prediction.model_copy(update={"request_id": header[:200]})


def _sync_timeout(err: AmbiguousSubmission) -> Prediction | None:
    """The prediction a sync-mode 504 names, still running, or None.

    Atlas Cloud answers a sync request that outlasts its maximum wait with 504 while the
    prediction goes on: when the answer carries the prediction's id it is polled like any
    other; without one, the submit stays ambiguous (paid or not, we cannot tell).
    """
    cause = err.__cause__
    if not isinstance(cause, APIStatusError) or cause.status_code != 504 or not cause.data:
        return None
    found = cause.data.get("id")
    if not isinstance(found, str | int) or isinstance(found, bool) or not str(found):
        return None
    return Prediction(id=str(found), request_id=cause.request_id)


def _not_found_yet(err: APIStatusError, started: float, grace: float) -> bool:
    """A 404/400 to the poll of a prediction not yet seen, within the grace period."""
    return err.status_code in (400, 404) and anyio.current_time() - started < grace


class AsyncSeedream(PerCallOptions):
    """An async client for Seedream v4.5 Edit Sequential on Atlas Cloud.

    Use it as an async context manager; it closes what it opened (never a
    ``http_client`` you passed in)::

        async with AsyncSeedream() as client:
            prediction = await client.edit("Put it on marble", ["shoe.png"])

    Args:
        api_key: the API key; ``ATLASCLOUD_API_KEY`` from the environment when None.
        base_url: the API's origin; ``ATLASCLOUD_BASE_URL`` or Atlas Cloud's when None.
        http_client: your own ``httpx.AsyncClient``; it is not closed for you.
        timeout: per-request timeout in seconds (or an ``httpx.Timeout``), not the time
            a prediction may take (see ``poll.deadline``).
        max_connections: the connection pool's size, when the client makes its own.
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
        self._http = http_client or own_http(timeout, max_connections)
        self._endpoint = Endpoint(
            self._http, self.base_url, self._key, self._driver,
            deadline=request_deadline, max_bytes=max_response_bytes,
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

    # -- the one place requests are sent ------------------------------------------------

    @property
    def upload_rules(self) -> UploadRules:
        """What a reference image must be before it is uploaded."""
        return UploadRules(
            max_bytes=self.max_upload_bytes,
            accepted=self.accepted_types,
            inline_max_bytes=self.inline_max_bytes,
        )

    @property
    def rate_limited_at(self) -> float:
        """When the API last answered 429, on the event loop's clock (``-inf`` if never)."""
        return self.gate.paused_at

    # -- operations ----------------------------------------------------------------------

    async def upload(
        self,
        source: ImageSource,
        *,
        file_name: str | None = None,
        check_limits: bool = True,
        extra_headers: Mapping[str, str] | None = None,
    ) -> UploadedMedia:
        """Upload one reference image, streamed from disk, and return where it is stored.

        Before any request, the type is sniffed from the bytes, the size checked, the
        sides read from the header (at most 6000 px, aspect ratio 1/16 to 16) and the
        file's structure walked (a file cut short is refused); an async stream's
        integrity cannot be checked before it is sent. :class:`~seedream_async.InvalidImage`
        says what is wrong.

        Args:
            source: a path, the image's bytes, or an async iterable of bytes (sent once,
                never retried, since it cannot be read twice).
            file_name: the name to store it under; the path's name when None.
            check_limits: False skips the sides and aspect ratio (type, size and
                integrity are still checked).
            extra_headers: headers added to this request.
        """
        if extra_headers:
            clone = self._per_call(extra_headers)
            return await clone.upload(source, file_name=file_name, check_limits=check_limits)
        prepared = await inspect_source(
            source,
            file_name=file_name,
            max_bytes=self.max_upload_bytes,
            accepted=self.accepted_types,
            max_side=MAX_INPUT_SIDE if check_limits else None,
        )
        return await self.upload_prepared(prepared)

    async def upload_prepared(
        self, prepared: PreparedUpload, *, keep_trying_for: float | None = None
    ) -> UploadedMedia:
        """Upload a source already checked by ``inspect_source`` or ``probe_file``.

        Args:
            prepared: the checked source.
            keep_trying_for: seconds to go on after the retry policy gave up on a passing
                failure (429, 5xx, connection), backing off between rounds; None does not.
        """
        response = await self._endpoint.send(
            "POST",
            _UPLOAD,
            what=f"upload of {prepared.file_name}",
            operation="upload",
            policy=self.retry,
            upload=prepared,
            max_upload_bytes=self.max_upload_bytes,
            keep_trying_for=keep_trying_for,
        )
        what = f"upload of {prepared.file_name}"
        return read_upload(
            read_json(response, what=what),
            what=what,
            status_code=response.status_code,
            secrets=(self._key.reveal(),),
        )

    async def submit(
        self,
        request: EditRequest,
        *,
        retry: RetryPolicy | None = None,
        on_refused: RefusedHook | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Prediction:
        """Submit a prediction (billed once it reaches the server) and return it, running.

        Args:
            request: the validated request.
            retry: a retry policy for this call; the client's when None.
            on_refused: takes over a 429 or 503 (the server did not take the submit)
                instead of the retry policy: called with the error and the seconds the
                server asked for, it returns to send again or raises to give up.
            extra_headers: headers added to this request.

        With ``enable_sync_mode`` the API answers once the prediction is done, so the read
        timeout is stretched to the poll policy's deadline for this request.

        Raises:
            AmbiguousSubmission: the request may have reached the server but no readable
                answer came back (a connection dropped during a sync-mode wait too); it is
                not sent again.
            APIStatusError: the API refused it (an error status, or an error ``code`` in a
                200 body); nothing was billed.
        """
        if extra_headers:
            clone = self._per_call(extra_headers)
            return await clone.submit(request, retry=retry, on_refused=on_refused)
        images = request.max_images if request.enable_base64_output else 0
        response: httpx.Response | None = None
        try:
            response = await self._post_submit(request, retry, on_refused, images)
            prediction = _with_request_id(
                read_prediction(
                    read_json(response, what="submit"), what="submit", secrets=(self._key.reveal(),)
                ),
                response,
            )
        except AmbiguousSubmission as err:
            going_on = _sync_timeout(err) if request.enable_sync_mode else None
            if going_on is None:
                raise
            prediction = going_on
        except MalformedResponse as err:
            if err.status_code // 100 == 3:
                raise  # a redirect we did not follow: nothing reached the API's handler
            raise AmbiguousSubmission(
                f"{err.message}; it may have been billed, so it is not sent again"
            ) from err
        if images:
            self._base64[prediction.id] = images
        if response is not None:  # None: a sync 504 that named the prediction still running
            secrets = (self._key.reveal(),)
            self._raw.record(prediction.id, response, operation="submit", secrets=secrets)
        self.observer.answered("submit", prediction.id, prediction.status, prediction.request_id)
        return prediction

    async def _post_submit(
        self,
        request: EditRequest,
        retry: RetryPolicy | None,
        on_refused: RefusedHook | None,
        images: int,
    ) -> httpx.Response:
        """The submit's POST, never sent twice once it may have reached the server; a
        sync-mode submit's read waits up to the poll policy's deadline (at most 300 s)."""
        sync_wait = min(self.poll.deadline or _SYNC_WAIT, _SYNC_WAIT)
        return await self._endpoint.send(
            "POST",
            _SUBMIT,
            what="submit",
            operation="submit",
            policy=retry or self.retry,
            idempotent=False,
            json=request.to_payload(),
            on_refused=on_refused,
            max_bytes=self._answer_cap(images),
            read_timeout=sync_wait if request.enable_sync_mode else None,
        )

    async def get_prediction(
        self, prediction_id: str, *, extra_headers: Mapping[str, str] | None = None
    ) -> Prediction:
        """Fetch a prediction's current state (``extra_headers``: added to this request)."""
        if extra_headers:
            return await self._per_call(extra_headers).get_prediction(prediction_id)
        if not prediction_id or "/" in prediction_id:
            raise InvalidInput(f"not a prediction id: {prediction_id!r}", field="id")
        what = f"poll of {prediction_id}"
        response = await self._endpoint.send(
            "GET",
            _PREDICTION.format(id=prediction_id),
            what=what,
            operation="poll",
            policy=self.retry,
            max_bytes=self._answer_cap(self._base64.get(prediction_id, 0)),
        )
        prediction = _with_request_id(
            read_prediction(
                read_json(response, what=what),
                what=what,
                prediction_id=prediction_id,
                status_code=response.status_code,
                secrets=(self._key.reveal(),),
            ),
            response,
        )
        if prediction.terminal:
            self._base64.pop(prediction_id, None)
        self._raw.record(prediction_id, response, operation="poll", secrets=(self._key.reveal(),))
        self.observer.answered(
            "poll", prediction_id, prediction.status, response.headers.get("x-request-id")
        )
        return prediction

    async def balance(self) -> Balance:
        """The account's balance, from Atlas Cloud's Billing Public API
        (``GET /public/v1/balance`` on the API's origin; the key needs balance read
        permission: a personal account's owner, or a team's Admin or Finance role)."""
        what = "balance"
        response = await self._endpoint.send(
            "GET", BALANCE_PATH, what=what, operation=what, policy=self.retry, from_origin=True
        )
        return read_balance(read_json(response, what=what))

    def last_response(self, prediction: Prediction | str) -> RawResponse | None:
        """The last API answer about a prediction (its submit's, or its latest poll's):
        status, headers (``X-Request-ID``: ``.request_id``) and body. None when this client
        has not seen it (the last 1024 predictions are kept)."""
        return self._raw.get(prediction if isinstance(prediction, str) else prediction.id)

    def _answer_cap(self, base64_images: int) -> int:
        # Base64 is 4/3 of the bytes it encodes.
        return self._endpoint.max_bytes + base64_images * (self.max_output_bytes * 4 // 3 + 4)

    async def wait(
        self,
        prediction_id: str,
        *,
        poll: PollPolicy | None = None,
        deadline: float | None = None,
        not_found_grace: float = NOT_FOUND_GRACE,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Prediction:
        """Poll one prediction with backoff until it is done, and return it.

        Args:
            prediction_id: the id ``submit`` returned.
            poll: the polling policy; the client's when None.
            deadline: seconds to wait in all; the policy's ``deadline`` when None. It bounds
                every poll too: a poll (and its retries) still running at the deadline is
                cancelled.
            not_found_grace: seconds a prediction not yet seen may answer 404 or 400 (a
                just-submitted one is not known everywhere at once) before that is raised.
            deadline: seconds to wait in all; the policy's ``deadline`` when None.
            extra_headers: headers added to its polls.

        Raises:
            PredictionFailed: the prediction failed; carries its id and the server's error
                (:class:`ContentModerationError` for a moderation refusal).
            DeadlineExceeded: it was still running at the deadline.
        """
        if extra_headers:
            clone = self._per_call(extra_headers)
            return await clone.wait(prediction_id, poll=poll, deadline=deadline)
        policy = poll or self.poll
        limit = deadline if deadline is not None else policy.deadline
        started = anyio.current_time()
        seen = False
        with anyio.move_on_after(limit if limit is not None else float("inf")):
            for delay in poll_delays(policy, rng=self.rng):
                await anyio.sleep(delay)
                try:
                    prediction = await self.get_prediction(prediction_id)
                except BadRequestError as err:
                    if seen or not _not_found_yet(err, started, not_found_grace):
                        raise
                    continue
                seen = True
                if prediction.failed:
                    raise PredictionFailed.of(
                        prediction_id, prediction.error, prediction.error_code
                    )
                if prediction.done:
                    return prediction
        raise DeadlineExceeded(prediction_id, limit if limit is not None else float("inf"))

    async def upload_images(
        self, images: Sequence[ImageRef], *, check_limits: bool = True
    ) -> list[str]:
        """Check every image and upload the local ones at once; return each as it goes in
        the request: a URL, or a ``data:`` URI (given, or inlined under
        ``inline_max_bytes``). ``check_limits=False`` skips the sides and aspect ratio."""
        urls: list[str] = [""] * len(images)
        errors: list[SeedreamError] = []
        rules = self.upload_rules

        async def one(index: int, image: ImageRef, scope: anyio.CancelScope) -> None:
            try:
                if is_data_uri(image):
                    assert isinstance(image, str)
                    await check_data_uri(image, rules, check_limits=check_limits)
                    urls[index] = image
                    return
                prepared = await inspect_source(
                    image,
                    file_name=None,
                    max_bytes=rules.max_bytes,
                    accepted=rules.accepted,
                    max_side=rules.max_side if check_limits else None,
                )
                if inlines(prepared, rules):
                    urls[index] = await inline_uri(prepared)
                else:
                    urls[index] = (await self.upload_prepared(prepared)).download_url
            except SeedreamError as err:  # raised as itself below, not in an ExceptionGroup
                errors.append(err)
                scope.cancel()

        async with anyio.create_task_group() as group:
            for index, image in enumerate(images):
                if is_url(image):
                    urls[index] = str(image)
                else:
                    group.start_soon(one, index, image, group.cancel_scope)
        if errors:
            raise errors[0]
        return urls

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

    async def download(self, url: str, dest: str | os.PathLike[str]) -> Path:
        """Stream one output to ``dest``, atomically: a temporary name, renamed when complete.

        The API key is never sent with it: outputs live on a storage host. Transport
        errors and 5xx are retried by the retry policy. If ``dest`` has no suffix, one is
        added from the image's sniffed type.

        Raises:
            OutputExpired: the signed URL has expired; fetch the prediction again for fresh ones.
        """
        if not is_url(url):
            raise InvalidInput(f"not an http(s) output URL: {url[:60]!r}", field="url")
        shown = url.split("?")[0]
        # 408, 429 and 5xx from the storage host are retried like any idempotent GET,
        # honouring its Retry-After; 404 and the like are raised. Not gated: the storage
        # host's limits are not the API key's.
        return await self._driver.call(
            lambda: stream_to_file(
                self._http,
                url,
                Path(dest),
                max_bytes=self.max_output_bytes,
                deadline=self.request_deadline,
                http_timeout=self._endpoint.timeout,
            ),
            policy=self.retry,
            what=f"download of {shown}",
            operation="download",
            gated=False,
        )

    async def save_output(self, output: str, dest: str | os.PathLike[str]) -> Path:
        """Save one output, a URL (downloaded) or a base64 image (decoded), to ``dest``."""
        if is_url(output):
            return await self.download(output, dest)
        return await write_base64(output, Path(dest))
