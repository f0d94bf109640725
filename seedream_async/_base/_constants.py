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
    "INPUT_TYPES",
    "MAX_ASPECT_RATIO",
    "MAX_GENERATED_IMAGES",
    "MAX_INPUT_SIDE",
    "MAX_JSON_BYTES",
    "MAX_OUTPUT_BYTES",
    "MAX_PIXELS",
    "MAX_PROMPT_CHARS",
    "MAX_REFERENCE_IMAGES",
    "MAX_REQUEST_BYTES",
    "MAX_TOTAL_IMAGES",
    "MAX_UPLOAD_BYTES",
    "MIN_ASPECT_RATIO",
    "MIN_PIXELS",
    "PRICE_PER_EXECUTION",
    "PRICE_PER_IMAGE",
]

DEFAULT_BASE_URL = "https://api.atlascloud.ai"
API_KEY_ENV = "ATLASCLOUD_API_KEY"
BASE_URL_ENV = "ATLASCLOUD_BASE_URL"
DEFAULT_MODEL = "bytedance/seedream-v4.5/edit-sequential"

# US dollars billed per submitted prediction, whatever its outcome (the contract's price).
PRICE_PER_EXECUTION = 0.036
# Some Atlas Cloud models bill per generated image instead; no default price is known for
# them, so per-image pricing is opt-in (``PriceModel(per_image=...)``) and 0.0 here.
PRICE_PER_IMAGE = 0.0

MAX_PROMPT_CHARS = 4_000
# The edit-sequential endpoint takes 1..10 references (the bare model takes 14 elsewhere).
MAX_REFERENCE_IMAGES = 10
MAX_GENERATED_IMAGES = 15
# References plus generated images in one sequence.
MAX_TOTAL_IMAGES = 15

# Seedream 4.5's output size rule is by total pixels and aspect ratio, not per side.
# Source: ByteDance's ModelArk documentation for Seedream 4.5 (as mirrored by resellers):
# total pixels from 2560x1440 up to 4096x4096, aspect ratio (width / height) in [1/16, 16].
# Seedream 4.0's floor was lower (1280x720), so a per-side 1024..4096 rule is wrong for 4.5
# both ways: it accepts 1024*1024 (below the floor) and refuses 4704*3520 (a valid 4K size).
MIN_PIXELS = 2_560 * 1_440  # 3,686,400
MAX_PIXELS = 4_096 * 4_096  # 16,777,216
MIN_ASPECT_RATIO = 1 / 16
MAX_ASPECT_RATIO = 16.0
DEFAULT_SIZE = "2048*2048"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024

# Reference images, per ByteDance ModelArk's Seedream input rules (mirrored at
# https://docs.myrouter.ai/docs/models/reference-seedream-4.0): these six formats, at most
# MAX_UPLOAD_BYTES, at most 6000 px a side, aspect ratio (width / height) in [1/16, 16]
# (the same bounds as the output's), and ``data:image/<fmt>;base64,...`` in place of a URL.
INPUT_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif"}
)
MAX_INPUT_SIDE = 6_000
# Atlas Cloud answers 413 to a request body over 50 MB (its errors page): inlined images
# (data URIs) count towards it.
MAX_REQUEST_BYTES = 50 * 1024 * 1024

# Caps on what the server may send back. An API JSON body: a prediction is a few hundred
# bytes, so 1 MiB is generous (answers with base64 outputs are the exception: they may
# carry up to MAX_OUTPUT_BYTES per image). One output file: a 4096x4096 RGBA image is
# 64 MiB uncompressed, so no honest PNG/JPEG/WEBP of v4.5's sizes is larger.
MAX_JSON_BYTES = 1024 * 1024
MAX_OUTPUT_BYTES = 64 * 1024 * 1024
