"""What the simulator saw: uploads, billed submissions, polls, faults. Tests read it to
prove a client never pays twice, never leaks its key and polls sparingly."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

from .._base._constants import DEFAULT_MODEL, PRICE_PER_EXECUTION

__all__ = ["Ledger", "RedirectRecord", "SubmitRecord", "UploadRecord"]


@dataclass(frozen=True, kw_only=True)
class UploadRecord:
    """One accepted upload.

    Args:
        sha256: hex digest of the file's bytes.
        size: bytes.
        content_type: the sniffed MIME type.
        url: the download URL handed back.
    """

    sha256: str
    size: int
    content_type: str
    url: str


@dataclass(frozen=True, kw_only=True)
class SubmitRecord:
    """One created, billed prediction.

    Args:
        prediction_id: the id handed out.
        body_hash: sha256 of the request body's canonical JSON (same hash = paid twice).
        prompt: the prompt.
        created_at: server clock (``anyio.current_time()``) at creation.
        done_at: server clock at which it finishes.
        latency: its predict time in real seconds (already scaled).
        failed: whether it ends ``failed``.
        processed_before_error: the client got an error or a dropped connection for it,
            although it was created and billed.
        max_images: the images it generates (when it does not fail).
        unknown_fields: body fields the contract does not name (sent via an extra_body).
        model: the model id it ran.
        cost: US dollars billed for it, by its model's rule (per run, or per image
            generated: nothing for a failed one).
        outputs: the images the model decided to return (at most ``max_images``).
    """

    prediction_id: str
    body_hash: str
    prompt: str
    created_at: float
    done_at: float
    latency: float
    failed: bool
    processed_before_error: bool = False
    max_images: int = 1
    unknown_fields: tuple[str, ...] = ()
    model: str = DEFAULT_MODEL
    cost: float = PRICE_PER_EXECUTION
    outputs: int = 1


@dataclass(frozen=True, kw_only=True)
class RedirectRecord:
    """A request that followed a hostile redirect to the catcher (another origin).

    Args:
        method: its method.
        path: its path.
        authorization: it carried an ``Authorization`` header (the key left the API).
        body_bytes: the size of the body it carried (a submit or an upload left the API).
    """

    method: str
    path: str
    authorization: bool
    body_bytes: int


class Ledger:
    """The simulator's live record. Read the attributes; the server writes them.

    Attributes:
        uploads: accepted uploads, in order.
        submissions: created (billed) predictions, in order.
        polls: answered polls per prediction id.
        requests: requests per endpoint (``upload``, ``submit``, ``poll``, ``output``,
            ``upload_file``, ``ledger``, ``unknown``).
        faults: injected faults by kind (``429``, ``500``.. ``504``, ``drop``, ``slow``,
            ``rps_limit``, ``in_flight_limit``, ``failed_prediction``, ``expired_output``).
        max_in_flight: the most predictions running at once, on the server clock.
        auth_on_storage: storage requests that carried an ``Authorization`` header.
        redirected: requests that arrived at the catcher, another origin a hostile 307
            pointed to.
        headers: ``(endpoint, headers)`` of the last 1000 API requests, names lower-case,
            ``Authorization`` left out.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.uploads: list[UploadRecord] = []
        self.submissions: list[SubmitRecord] = []
        self.polls: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.max_in_flight = 0
        self.auth_on_storage = 0
        self.redirected: list[RedirectRecord] = []
        self._detected: dict[str, float] = {}
        self.headers: deque[tuple[str, dict[str, str]]] = deque(maxlen=1000)

    # -- written by the server ------------------------------------------------------------

    def record_request(self, endpoint: str) -> None:
        with self._lock:
            self.requests[endpoint] += 1

    def record_headers(self, endpoint: str, headers: dict[str, str]) -> None:
        kept = {name: value for name, value in headers.items() if name != "authorization"}
        with self._lock:
            self.headers.append((endpoint, kept))

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def record_upload(self, record: UploadRecord) -> None:
        with self._lock:
            self.uploads.append(record)

    def record_submission(self, record: SubmitRecord, *, in_flight: int) -> None:
        with self._lock:
            self.submissions.append(record)
            self.max_in_flight = max(self.max_in_flight, in_flight)

    def record_poll(self, prediction_id: str) -> None:
        with self._lock:
            self.polls[prediction_id] += 1

    def record_terminal_seen(self, prediction_id: str, at: float) -> None:
        """Note the server-clock time a response first reported the prediction terminal."""
        with self._lock:
            self._detected.setdefault(prediction_id, at)

    def record_auth_on_storage(self) -> None:
        with self._lock:
            self.auth_on_storage += 1

    def record_redirect(self, record: RedirectRecord) -> None:
        with self._lock:
            self.redirected.append(record)

    # -- read by tests and benchmarks -----------------------------------------------------

    def upload_count(self, sha256: str) -> int:
        """How many times the file with this sha256 was uploaded."""
        return sum(1 for upload in self.uploads if upload.sha256 == sha256)

    @property
    def distinct_uploads(self) -> int:
        """How many different files were uploaded."""
        return len({upload.sha256 for upload in self.uploads})

    @property
    def executions(self) -> int:
        """Billed predictions."""
        return len(self.submissions)

    @property
    def cost(self) -> float:
        """US dollars billed, each prediction by its model's price rule."""
        return round(sum(record.cost for record in self.submissions), 6)

    def cost_by_model(self) -> dict[str, float]:
        """US dollars billed per model id."""
        totals: dict[str, float] = {}
        for record in self.submissions:
            totals[record.model] = totals.get(record.model, 0.0) + record.cost
        return {model: round(total, 6) for model, total in totals.items()}

    @property
    def images_generated(self) -> int:
        """Images the billed predictions that did not fail returned (for per-image prices:
        what a per-image bill counts)."""
        return sum(record.outputs for record in self.submissions if not record.failed)

    @property
    def duplicate_submissions(self) -> int:
        """Billed submissions whose body was already billed before: the same request paid twice."""
        seen: set[str] = set()
        duplicates = 0
        for record in self.submissions:
            if record.body_hash in seen:
                duplicates += 1
            seen.add(record.body_hash)
        return duplicates

    @property
    def total_polls(self) -> int:
        """Answered polls over all predictions."""
        return sum(self.polls.values())

    @property
    def polls_per_prediction(self) -> float:
        """Answered polls per billed prediction (0.0 when none was billed)."""
        return self.total_polls / self.executions if self.executions else 0.0

    def latencies(self) -> list[float]:
        """Each billed prediction's predict time, in real seconds."""
        return [record.latency for record in self.submissions]

    def detection_lags(self) -> list[float]:
        """For each prediction a response reported terminal: seconds from done to first seen."""
        with self._lock:
            detected = dict(self._detected)
        return [
            max(0.0, detected[record.prediction_id] - record.done_at)
            for record in self.submissions
            if record.prediction_id in detected
        ]

    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable summary of everything above."""
        with self._lock:
            uploads = [asdict(upload) for upload in self.uploads]
            redirected = [asdict(record) for record in self.redirected]
            submissions = [asdict(record) for record in self.submissions]
            polls = dict(self.polls)
            requests = dict(self.requests)
            faults = dict(self.faults)
        return {
            "executions": self.executions,
            "images_generated": self.images_generated,
            "cost": self.cost,
            "duplicate_submissions": self.duplicate_submissions,
            "distinct_uploads": self.distinct_uploads,
            "total_polls": self.total_polls,
            "polls_per_prediction": self.polls_per_prediction,
            "max_in_flight": self.max_in_flight,
            "auth_on_storage": self.auth_on_storage,
            "redirected": redirected,
            "requests": requests,
            "faults": faults,
            "polls": polls,
            "latencies": self.latencies(),
            "detection_lags": self.detection_lags(),
            "uploads": uploads,
            "submissions": submissions,
        }
