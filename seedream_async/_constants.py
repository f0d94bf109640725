"""The contract's numbers, kept in one place so a change of limits is a one-line edit.

Sources: ``shared/api-contract.md`` (Atlas Cloud's page for
``bytedance/seedream-v4.5/edit-sequential`` and the sibling hosts' schema).
"""

from __future__ import annotations

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "DEFAULT_SIZE",
    "MAX_GENERATED_IMAGES",
    "MAX_PROMPT_CHARS",
    "MAX_REFERENCE_IMAGES",
    "MAX_SIDE",
    "MAX_TOTAL_IMAGES",
    "MAX_UPLOAD_BYTES",
    "MIN_SIDE",
    "PRICE_PER_EXECUTION",
]

DEFAULT_BASE_URL = "https://api.atlascloud.ai"
API_KEY_ENV = "ATLASCLOUD_API_KEY"
BASE_URL_ENV = "ATLASCLOUD_BASE_URL"
DEFAULT_MODEL = "bytedance/seedream-v4.5/edit-sequential"

# US dollars billed per submitted prediction, whatever its outcome.
PRICE_PER_EXECUTION = 0.036

MAX_PROMPT_CHARS = 4_000
# The edit-sequential endpoint takes 1..10 references (the bare model takes 14 elsewhere).
MAX_REFERENCE_IMAGES = 10
MAX_GENERATED_IMAGES = 15
# References plus generated images in one sequence.
MAX_TOTAL_IMAGES = 15
MIN_SIDE = 1_024
MAX_SIDE = 4_096
DEFAULT_SIZE = "2048*2048"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
