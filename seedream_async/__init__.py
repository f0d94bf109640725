"""seedream-async: bulk image editing with Seedream v4.5 Edit Sequential on Atlas Cloud."""

from __future__ import annotations

from ._client import AsyncSeedream
from ._constants import DEFAULT_BASE_URL, DEFAULT_MODEL, PRICE_PER_EXECUTION
from ._engine import (
    BatchOptions,
    BatchProgress,
    BatchResult,
    BatchRun,
    EditItem,
    Journal,
    JournalEntry,
    JournalState,
    JournalStore,
    ResultStatus,
    Timings,
)
from ._exceptions import (
    AmbiguousSubmission,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    BudgetExceeded,
    ConfigurationError,
    DeadlineExceeded,
    InsufficientBalance,
    InvalidImage,
    InvalidInput,
    JournalError,
    OutputExpired,
    OutputInvalid,
    PredictionFailed,
    RateLimitError,
    SeedreamError,
    ServerError,
    TransportError,
)
from ._models import EditRequest, Metrics, Prediction, PredictionStatus, UploadedMedia
from ._polling import PollPolicy
from ._retry import RetryPolicy
from ._version import __version__

__all__ = [
    "APIStatusError",
    "AmbiguousSubmission",
    "AsyncSeedream",
    "AuthenticationError",
    "BadRequestError",
    "BatchOptions",
    "BatchProgress",
    "BatchResult",
    "BatchRun",
    "BudgetExceeded",
    "ConfigurationError",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "DeadlineExceeded",
    "EditItem",
    "EditRequest",
    "InsufficientBalance",
    "InvalidImage",
    "InvalidInput",
    "Journal",
    "JournalEntry",
    "JournalError",
    "JournalState",
    "JournalStore",
    "Metrics",
    "OutputExpired",
    "OutputInvalid",
    "PRICE_PER_EXECUTION",
    "PollPolicy",
    "Prediction",
    "PredictionFailed",
    "PredictionStatus",
    "RateLimitError",
    "ResultStatus",
    "RetryPolicy",
    "SeedreamError",
    "ServerError",
    "Timings",
    "TransportError",
    "UploadedMedia",
    "__version__",
]
