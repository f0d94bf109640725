"""The simulator's knobs: frozen dataclasses for the server, its faults, the response shapes
it serves, and hostile behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .._base._constants import MAX_UPLOAD_BYTES
from ._webhooks import WebhookFaults

__all__ = ["ENDPOINTS", "Faults", "Hostile", "Shapes", "SimulatorConfig"]

# The endpoint names random faults can target (``Faults.endpoints``).
ENDPOINTS = frozenset({"upload", "submit", "poll", "output", "upload_file"})


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Seeded fault injection. Probabilities are in 0..1 and drawn per request.

    Args:
        rate_limit: probability of answering 429.
        retry_after: the wait sent with injected and limit 429s, in real seconds; None sends
            no header.
        retry_after_format: ``"seconds"`` (``Retry-After: 0.05``), ``"http-date"`` (an
            IMF-fixdate rounded up to whole seconds, at least 1 s away) or ``"ms"``
            (``retry-after-ms: 50``).
        server_error: probability of answering one of ``server_error_codes``.
        server_error_codes: the 5xx statuses to draw from.
        drop: probability of closing the connection without any response.
        slow: probability of delaying the response by ``slow_seconds``.
        slow_seconds: real seconds a slow response is held.
        prediction_failure: probability that a prediction ends ``failed``.
        failure_message: the ``error`` of a failed prediction.
        output_ttl: real seconds an output URL stays valid after a poll handed it out;
            None means they do not expire. Expired URLs get 403 ``AccessDenied``.
        requests_per_second: per-API-key limit over all API requests (GCRA); None is no limit.
        requests_burst: how many requests may arrive back to back under that limit; None
            allows one second's worth, as a token bucket refilled per second would.
        max_in_flight: a submit arriving while this many predictions run gets 429; None is
            no limit.
        endpoints: which endpoints (``upload``, ``submit``, ``poll``, ``output``,
            ``upload_file``) the random faults (rate_limit, server_error, drop, slow) hit.
        processed_on_error: on submit, the probability that a 500/502/504 or a drop happens
            after the prediction was created and billed. 429 and 503 are never billed.
        send_retry_after: send ``retry_after`` with 429s. Off by default: Atlas Cloud's
            errors page says its media endpoints send no ``Retry-After``.
        failure_code: the ``error_code`` a failed prediction carries (Atlas Cloud's 1039:
            content moderation); None sends none.
        nsfw: the probability that each output is flagged in ``has_nsfw_contents``.
        expired_status: what an expired output URL answers: 404 as Atlas Cloud's
            data-retention page says (403 ``AccessDenied`` is the S3-style variant).
        fresh_not_found: real seconds a just-created prediction answers 404 to polls
            (a store that does not know it everywhere yet).
        sync_max_wait: real seconds a sync-mode submit is held at most; a prediction
            still running then is answered 504 (it goes on). None holds it until done.
        sync_timeout_id: that 504 names the prediction in its ``data.id``.
    """

    rate_limit: float = 0.0
    retry_after: float | None = 1.0
    send_retry_after: bool = False
    retry_after_format: Literal["seconds", "http-date", "ms"] = "seconds"
    server_error: float = 0.0
    server_error_codes: tuple[int, ...] = (500, 502, 503, 504)
    drop: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 1.0
    prediction_failure: float = 0.0
    failure_message: str = "The model could not complete this edit (simulated failure)"
    output_ttl: float | None = None
    requests_per_second: float | None = None
    requests_burst: int | None = None
    max_in_flight: int | None = None
    endpoints: frozenset[str] = frozenset({"upload", "submit", "poll", "output"})
    processed_on_error: float = 0.5
    failure_code: int | None = None
    nsfw: float = 0.0
    expired_status: int = 404
    fresh_not_found: float = 0.0
    sync_max_wait: float | None = None
    sync_timeout_id: bool = True

    def __post_init__(self) -> None:
        for name in ("rate_limit", "server_error", "drop", "slow", "prediction_failure"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Faults.{name} must be within 0..1, got {value!r}")
        if not 0.0 <= self.processed_on_error <= 1.0:
            raise ValueError("Faults.processed_on_error must be within 0..1")
        if unknown := self.endpoints - ENDPOINTS:
            raise ValueError(f"Faults.endpoints has unknown names: {sorted(unknown)}")
        if self.requests_burst is not None and self.requests_burst < 1:
            raise ValueError("Faults.requests_burst must be at least 1")
        if self.server_error and not self.server_error_codes:
            raise ValueError("Faults.server_error_codes is empty")
        if not 0.0 <= self.nsfw <= 1.0:
            raise ValueError("Faults.nsfw must be within 0..1")
        if self.expired_status not in (403, 404, 410):
            raise ValueError("Faults.expired_status must be 403, 404 or 410")


_TIMESTAMPS = ("iso", "missing", "empty", "garbage")
_UPLOADS = ("file_name", "filename", "url")


@dataclass(frozen=True, kw_only=True)
class Shapes:
    """Which of the API's documented response variants the simulator serves.

    The defaults are the contract's main example. Each knob serves one variant that Atlas
    Cloud's first-party clients (its MCP server, ComfyUI nodes, skills) are known to read.

    Args:
        output_key: the field outputs come in, ``"outputs"`` or ``"output"``.
        output_form: ``"list"``, or ``"string"`` (a lone output as a bare string; several
            stay a list, so nothing is lost).
        output_items: ``"string"`` (URLs), or ``"object"`` (``{"url": ...}``); base64
            outputs stay bare strings either way.
        numeric_ids: prediction ids as JSON numbers.
        timestamps: ``"iso"``, ``"missing"`` (keys left out), ``"empty"`` (``""``) or
            ``"garbage"`` (an unparseable string).
        upload: the upload answer: ``"file_name"`` ({download_url, file_name, content_type,
            size}), ``"filename"`` ({download_url, filename, type, size}) or ``"url"`` ({url}).
        running: the statuses a running prediction reports, one per poll in turn (the
            first one in the submit answer); an unknown one reads as still running.
        done: the status of a completed prediction (``completed``, ``succeeded``, or an
            unknown string to show a client waiting for it until its deadline).
        failed: the status of a failed prediction (``failed``, ``error``, ``canceled``,
            ``cancelled``, ``timeout``, ``expired``).
        output_count: ``"model"``: the model decides how many images a sequential edit
            returns, 1 to ``max_images`` (seeded per prediction), as the docs say; ``"max"``
            always returns ``max_images``.
        output_format: ``"jpeg"`` (ModelArk returns JPEG) or ``"png"``.
        error_body: ``"atlas"``: ``{"code", "msg", "request_id", "data"}`` as Atlas
            Cloud's errors page shows; ``"message"``: ``{"message", "code"}``.
        unknown_path_status: what a request to an unknown path gets: 401, as Atlas Cloud's
            gateway authenticates before it routes; 404 for a plain server.
        compression: ``"gzip"``: JSON answers are gzip-compressed whenever the request's
            ``Accept-Encoding`` allows it, as a CDN in front of an API compresses them
            (Atlas Cloud's docs say nothing of it either way); ``"none"``: never.
    """

    output_key: Literal["outputs", "output"] = "outputs"
    output_form: Literal["list", "string"] = "list"
    output_items: Literal["string", "object"] = "string"
    numeric_ids: bool = False
    timestamps: Literal["iso", "missing", "empty", "garbage"] = "iso"
    upload: Literal["file_name", "filename", "url"] = "file_name"
    running: tuple[str, ...] = ("processing",)
    done: str = "completed"
    failed: str = "failed"
    # The documented behaviour (docs/fidelity.md); "max"/"png" are the old simulator's.
    output_count: Literal["model", "max"] = "model"
    output_format: Literal["jpeg", "png"] = "jpeg"
    error_body: Literal["atlas", "message"] = "atlas"
    unknown_path_status: int = 401
    compression: Literal["none", "gzip"] = "none"

    def __post_init__(self) -> None:
        if self.timestamps not in _TIMESTAMPS:
            raise ValueError(f"Shapes.timestamps must be one of {_TIMESTAMPS}")
        if self.upload not in _UPLOADS:
            raise ValueError(f"Shapes.upload must be one of {_UPLOADS}")
        if not self.running:
            raise ValueError("Shapes.running needs at least one status")
        if self.compression not in ("none", "gzip"):
            raise ValueError("Shapes.compression must be 'none' or 'gzip'")


@dataclass(frozen=True, kw_only=True)
class Hostile:
    """A server that misbehaves. Each behaviour names the endpoints it hits (``upload``,
    ``submit``, ``poll``, ``output``, ``upload_file``), and hits each request to them
    with probability ``rate`` (seeded).

    Args:
        error_envelope: answer HTTP 200 with ``{"code": error_code, "message": ...,
            "data": null}``. A submit so answered is not created, not billed.
        error_code: the ``code`` in those bodies.
        trickle: send the body at ``trickle_rate`` bytes per real second.
        trickle_rate: bytes per second for ``trickle``.
        oversized: pad the answer to ``oversized_bytes``: valid JSON with a long field on
            API routes (a submit is created and billed first), a file with trailing bytes
            on storage routes.
        oversized_bytes: the padded size.
        redirect: answer 307 to the same path on the "catcher", another port on 127.0.0.1
            that records what it received (``Ledger.redirected``) and answers 404. A
            redirected submit is not created, not billed.
        html: answer 200 ``text/html`` (a captive portal, a storage error page). A submit
            so answered is not billed.
        echo_key: error messages (HTTP errors, error envelopes, failed predictions'
            ``error``) quote the request's ``Authorization`` header back.
        rate: the probability each behaviour above hits a request to its endpoints.
    """

    error_envelope: frozenset[str] = frozenset()
    error_code: int = 400
    trickle: frozenset[str] = frozenset()
    trickle_rate: float = 50.0
    oversized: frozenset[str] = frozenset()
    oversized_bytes: int = 2 * 1024 * 1024
    redirect: frozenset[str] = frozenset()
    html: frozenset[str] = frozenset()
    echo_key: bool = False
    rate: float = 1.0

    def __post_init__(self) -> None:
        for name in ("error_envelope", "trickle", "oversized", "redirect", "html"):
            if unknown := getattr(self, name) - ENDPOINTS:
                raise ValueError(f"Hostile.{name} has unknown endpoints: {sorted(unknown)}")
        if self.error_envelope - {"upload", "submit", "poll"}:
            raise ValueError("Hostile.error_envelope applies to upload, submit and poll only")
        if not 400 <= self.error_code <= 599:
            raise ValueError("Hostile.error_code must be a 4xx or 5xx code")
        if self.trickle_rate <= 0 or self.oversized_bytes < 1:
            raise ValueError("Hostile.trickle_rate and oversized_bytes must be positive")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("Hostile.rate must be within 0..1")


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """How the simulated Atlas Cloud API behaves.

    Args:
        api_key: the bearer key API routes require (401 otherwise); None disables auth.
        seed: seeds every random draw; the same seed and request order draw the same.
        time_scale: multiplies prediction latency only (0.001 turns 8.3 s into 8.3 ms).
        latency_median: median of the lognormal ``predict_time``, in API seconds.
        latency_sigma: sigma of that lognormal.
        per_extra_image: each generated image beyond the first adds this fraction of the
            drawn latency, so an edit-sequential run grows with ``max_images``.
        request_latency: real seconds added to every response.
        max_upload_bytes: uploads above this get 413.
        accepted_types: the sniffed MIME types an upload may have (415 otherwise).
        output_size: width and height of the generated output PNGs. Small on purpose: a real
            2048x2048 PNG takes too long to encode in pure Python.
        envelope: ``"data"`` wraps bodies in ``{"data": ...}``, ``"flat"`` sends the bare
            object, ``"code"`` wraps them in ``{"code": 200, "message": "success", "data":
            ...}``, ``"mixed"`` alternates data and flat per response.
        faults: the injected faults.
        shapes: which documented response variants to serve.
        hostile: misbehaviour to inject.
        balance: the account's balance in US dollars when the simulator starts; what it
            bills is taken off it, and ``GET /public/v1/balance`` reports the rest. None
            answers that route 403 (a key without balance read permission).
        webhooks: how webhook deliveries (to submits with ``webhook_url``) misbehave.
    """

    api_key: str | None = "sim-key"
    seed: int = 0
    time_scale: float = 1.0
    latency_median: float = 8.3
    latency_sigma: float = 0.3
    per_extra_image: float = 0.5
    request_latency: float = 0.0
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    accepted_types: frozenset[str] = frozenset(
        {"image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif"}
    )
    output_size: tuple[int, int] = (64, 64)
    envelope: Literal["data", "flat", "code", "mixed"] = "data"
    faults: Faults = field(default_factory=Faults)
    shapes: Shapes = field(default_factory=Shapes)
    hostile: Hostile = field(default_factory=Hostile)
    balance: float | None = 100.0
    webhooks: WebhookFaults = field(default_factory=WebhookFaults)

    def __post_init__(self) -> None:
        if self.time_scale < 0 or self.latency_median <= 0 or self.latency_sigma < 0:
            raise ValueError("time_scale, latency_median and latency_sigma must be positive")
        if self.envelope not in ("data", "flat", "code", "mixed"):
            raise ValueError(
                f"envelope must be 'data', 'flat', 'code' or 'mixed', got {self.envelope!r}"
            )
        if min(self.output_size) < 1:
            raise ValueError("output_size must be at least 1x1")
