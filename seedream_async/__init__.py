"""seedream-async: bulk image editing and generation with the Seedream family on Atlas Cloud
(v4.5 Edit Sequential by default; v4 to v5.0-lite, edit, sequential and text-to-image)."""

from __future__ import annotations

from ._balance import Balance
from ._blocking import BlockingBatch, Seedream
from ._client import AsyncSeedream
from ._constants import DEFAULT_BASE_URL, DEFAULT_MODEL, PRICE_PER_EXECUTION
from ._engine import (
    BatchOptions,
    BatchProgress,
    BatchResult,
    BatchRun,
    EditItem,
    Job,
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
    APIUnreachable,
    AuthenticationError,
    BadRequestError,
    BudgetExceeded,
    ConfigurationError,
    DeadlineExceeded,
    InsufficientBalance,
    InvalidImage,
    InvalidInput,
    JournalError,
    MalformedResponse,
    OutputExpired,
    OutputInvalid,
    PredictionFailed,
    RateLimitError,
    SeedreamError,
    ServerError,
    TransportError,
)
from ._family import MODELS, Billing, ModelKind, ModelSpec, SizeRule, UnknownModelWarning
from ._models import (
    EditRequest,
    Metrics,
    Prediction,
    PredictionStatus,
    PriceModel,
    UploadedMedia,
)
from ._observe import Observer
from ._polling import Completion, PollPolicy
from ._raw import RawResponse
from ._retry import RetryPolicy
from ._version import __version__

__all__ = [
    "APIStatusError",
    "APIUnreachable",
    "AmbiguousSubmission",
    "AsyncSeedream",
    "AuthenticationError",
    "BadRequestError",
    "Balance",
    "BatchOptions",
    "BatchProgress",
    "BatchResult",
    "BatchRun",
    "Billing",
    "BlockingBatch",
    "BudgetExceeded",
    "Completion",
    "ConfigurationError",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "DeadlineExceeded",
    "EditItem",
    "EditRequest",
    "InsufficientBalance",
    "InvalidImage",
    "InvalidInput",
    "Job",
    "Journal",
    "JournalEntry",
    "JournalError",
    "JournalState",
    "JournalStore",
    "MODELS",
    "MalformedResponse",
    "Metrics",
    "ModelKind",
    "ModelSpec",
    "Observer",
    "OutputExpired",
    "OutputInvalid",
    "PRICE_PER_EXECUTION",
    "PollPolicy",
    "Prediction",
    "PredictionFailed",
    "PredictionStatus",
    "PriceModel",
    "RateLimitError",
    "RawResponse",
    "ResultStatus",
    "RetryPolicy",
    "Seedream",
    "SeedreamError",
    "ServerError",
    "SizeRule",
    "Timings",
    "TransportError",
    "UnknownModelWarning",
    "UploadedMedia",
    "__version__",
]
