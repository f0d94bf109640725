"""Submitting and polling predictions: what :class:`AsyncSeedream` gets from this module.

``submit`` sends the one request that costs money, never twice once it may have reached the
server; ``get_prediction`` reads a prediction's state, ``wait`` polls it with backoff until
it is done (a just-submitted one may be unknown for a while), and ``last_response`` keeps
each prediction's last answer.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import anyio
import httpx

from .._base._exceptions import (
    AmbiguousSubmission,
    APIStatusError,
    BadRequestError,
    DeadlineExceeded,
    InvalidInput,
    MalformedResponse,
    PredictionFailed,
)
from .._base._observe import Observers
from .._base._secret import Secret
from .._network._driver import RefusedHook
from .._network._endpoint import read_json
from .._policies._polling import PollPolicy, poll_delays
from .._policies._retry import RetryPolicy
from .._wire._parsing import Prediction, read_prediction
from .._wire._raw import RawResponse, RawResponses
from .._wire._requests import EditRequest
from ._options import PerCallOptions

__all__ = ["NOT_FOUND_GRACE", "PredictionCalls"]

# The longest a sync-mode submit holds its connection for an answer. Atlas Cloud ends a
# sync request that passes its own maximum wait with 504 (the prediction goes on), so a
# longer wait on our side is never honoured: the 504 (or this) comes first, then the
# prediction is polled by id when the answer names it.
_SYNC_WAIT = 300.0
# How long a just-submitted prediction may answer 404/400 to a poll before that is believed
# (Atlas's ComfyUI client waits up to 30 s for a new prediction to be known).
NOT_FOUND_GRACE = 30.0

_SUBMIT = "/api/v1/model/generateImage"
_PREDICTION = "/api/v1/model/prediction/{id}"


def _request_id(response: httpx.Response) -> str | None:
    """The answer's ``X-Request-ID`` (a prediction carries it when its body names none)."""
    return _cleaned_request_id(response.headers.get("x-request-id"))


def _cleaned_request_id(header: str | None) -> str | None:
    """An ``X-Request-ID`` value as a prediction keeps it: stripped, at most 200
    characters, None when empty."""
    return (header or "").strip()[:200] or None


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


class PredictionCalls(PerCallOptions):
    """Submit, poll and wait: the prediction calls of :class:`AsyncSeedream`."""

    _key: Secret
    _raw: RawResponses
    # Ids submitted with enable_base64_output, and how many images their answers carry.
    _base64: dict[str, int]
    max_output_bytes: int
    rng: random.Random
    observer: Observers

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
            prediction = read_prediction(
                read_json(response, what="submit"),
                what="submit",
                secrets=(self._key.reveal(),),
                request_id=_request_id(response),
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
        header = response.headers.get("x-request-id")
        prediction = read_prediction(
            read_json(response, what=what),
            what=what,
            prediction_id=prediction_id,
            status_code=response.status_code,
            secrets=(self._key.reveal(),),
            request_id=_cleaned_request_id(header),
        )
        if prediction.terminal:
            self._base64.pop(prediction_id, None)
        self._raw.record(prediction_id, response, operation="poll", secrets=(self._key.reveal(),))
        self.observer.answered("poll", prediction_id, prediction.status, header)
        return prediction

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
