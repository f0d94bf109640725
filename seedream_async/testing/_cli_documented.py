"""Command-line flags for the simulator's documented-behaviour knobs (issue 18).

Two groups: what Atlas Cloud's docs say the API does (:class:`Faults` fields: 429s without
``Retry-After``, moderation codes, NSFW flags, expiry, a new prediction's 404s, the sync
wait) and the response shapes (:class:`Shapes` fields: output count and format, error
bodies, unknown paths). Each default is the config's own, so the CLI never drifts from the
library. See ``docs/fidelity.md`` for each behaviour's source.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._config import Faults, Shapes

__all__ = ["add_documented_arguments", "documented_faults", "documented_shapes"]


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "off", "") else int(text)


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "off", "") else float(text)


def add_documented_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``documented behaviour`` and ``response shapes`` groups to ``parser``."""
    faults, shapes = Faults(), Shapes()
    group = parser.add_argument_group(
        "documented behaviour", "what Atlas Cloud's docs say the API does (docs/fidelity.md)"
    )
    group.add_argument(
        "--send-retry-after",
        action=argparse.BooleanOptionalAction,
        default=faults.send_retry_after,
        help="send --retry-after with 429s; the docs say media endpoints send none "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--failure-code",
        type=_optional_int,
        default=faults.failure_code,
        metavar="CODE|none",
        help="error_code of a failed prediction, e.g. 1039 (content moderation) "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--nsfw",
        type=float,
        default=faults.nsfw,
        metavar="P",
        help="probability each output is flagged in has_nsfw_contents (default: %(default)s)",
    )
    group.add_argument(
        "--expired-status",
        type=int,
        choices=(403, 404, 410),
        default=faults.expired_status,
        help="what an expired output URL answers (default: %(default)s, as documented)",
    )
    group.add_argument(
        "--fresh-not-found",
        type=float,
        default=faults.fresh_not_found,
        metavar="SECONDS",
        help="a new prediction answers 404 to polls this long (default: %(default)s)",
    )
    group.add_argument(
        "--sync-max-wait",
        type=_optional_float,
        default=faults.sync_max_wait,
        metavar="SECONDS|none",
        help="a sync-mode submit still running after this gets 504 (default: hold until done)",
    )
    group.add_argument(
        "--sync-timeout-id",
        action=argparse.BooleanOptionalAction,
        default=faults.sync_timeout_id,
        help="that 504 names the prediction in data.id (default: %(default)s)",
    )
    _add_shapes(parser, shapes)


def _add_shapes(parser: argparse.ArgumentParser, shapes: Shapes) -> None:
    group = parser.add_argument_group("response shapes")
    group.add_argument(
        "--output-count",
        choices=("model", "max"),
        default=shapes.output_count,
        help="'model': 1..max_images outputs as the model decides; 'max': always max_images "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--output-format",
        choices=("jpeg", "png"),
        default=shapes.output_format,
        help="format of the generated outputs (default: %(default)s)",
    )
    group.add_argument(
        "--error-body",
        choices=("atlas", "message"),
        default=shapes.error_body,
        help='\'atlas\': {"code", "msg", "request_id", "data"}; \'message\': {"message", '
        '"code"} (default: %(default)s)',
    )
    group.add_argument(
        "--unknown-path-status",
        type=int,
        default=shapes.unknown_path_status,
        help="what a request to an unknown path gets (default: %(default)s)",
    )
    group.add_argument(
        "--compression",
        choices=("none", "gzip"),
        default=shapes.compression,
        help="'gzip': compress JSON answers when the client accepts it, as a CDN does "
        "(default: %(default)s)",
    )


def documented_faults(ns: argparse.Namespace) -> dict[str, Any]:
    """The :class:`Faults` fields those flags set, as keyword arguments."""
    return {
        "send_retry_after": ns.send_retry_after,
        "failure_code": ns.failure_code,
        "nsfw": ns.nsfw,
        "expired_status": ns.expired_status,
        "fresh_not_found": ns.fresh_not_found,
        "sync_max_wait": ns.sync_max_wait,
        "sync_timeout_id": ns.sync_timeout_id,
    }


def documented_shapes(ns: argparse.Namespace) -> Shapes:
    """The :class:`Shapes` those flags describe (other fields at their defaults)."""
    return Shapes(
        output_count=ns.output_count,
        output_format=ns.output_format,
        error_body=ns.error_body,
        unknown_path_status=ns.unknown_path_status,
        compression=ns.compression,
    )
