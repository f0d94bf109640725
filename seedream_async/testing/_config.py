"""The simulator's knobs: one frozen dataclass for the server, one for its faults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .._constants import MAX_UPLOAD_BYTES

__all__ = ["ENDPOINTS", "Faults", "SimulatorConfig"]

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
    """

    rate_limit: float = 0.0
    retry_after: float | None = 1.0
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
            object, ``"mixed"`` alternates per response.
        faults: the injected faults.
    """

    api_key: str | None = "sim-key"
    seed: int = 0
    time_scale: float = 1.0
    latency_median: float = 8.3
    latency_sigma: float = 0.3
    per_extra_image: float = 0.5
    request_latency: float = 0.0
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    accepted_types: frozenset[str] = frozenset({"image/png", "image/jpeg", "image/webp"})
    output_size: tuple[int, int] = (64, 64)
    envelope: Literal["data", "flat", "mixed"] = "data"
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        if self.time_scale < 0 or self.latency_median <= 0 or self.latency_sigma < 0:
            raise ValueError("time_scale, latency_median and latency_sigma must be positive")
        if self.envelope not in ("data", "flat", "mixed"):
            raise ValueError(f"envelope must be 'data', 'flat' or 'mixed', got {self.envelope!r}")
        if min(self.output_size) < 1:
            raise ValueError("output_size must be at least 1x1")
