"""seedream-async: bulk image editing with Seedream v4.5 Edit Sequential on Atlas Cloud."""

from __future__ import annotations

from ._constants import DEFAULT_BASE_URL, DEFAULT_MODEL, PRICE_PER_EXECUTION
from ._exceptions import (
    AmbiguousSubmission,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    BudgetExceeded,
    ConfigurationError,
    DeadlineExceeded,
    InvalidImage,
    InvalidInput,
    JournalError,
    OutputExpired,
    PredictionFailed,
    RateLimitError,
    SeedreamError,
    ServerError,
    TransportError,
)
from ._models import EditRequest, Metrics, Prediction, PredictionStatus, UploadedMedia
from ._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "PRICE_PER_EXECUTION",
    "APIStatusError",
    "AmbiguousSubmission",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceeded",
    "ConfigurationError",
    "DeadlineExceeded",
    "EditRequest",
    "InvalidImage",
    "InvalidInput",
    "JournalError",
    "Metrics",
    "OutputExpired",
    "Prediction",
    "PredictionFailed",
    "PredictionStatus",
    "RateLimitError",
    "SeedreamError",
    "ServerError",
    "TransportError",
    "UploadedMedia",
    "__version__",
]
