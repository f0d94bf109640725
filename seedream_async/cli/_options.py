"""Options several commands share, defined once: argument types, the batch options of
``run`` and ``work`` (argparse values become one :class:`BatchOptions` in
:func:`batch_options`), the journal target, logging, and the two consoles.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from .._base._constants import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL
from .._base._exceptions import ConfigurationError
from .._engine import BatchOptions
from .._engine._owners import DEFAULT_LEASE
from .._policies._polling import PollPolicy
from .._webhook._listen import parse_listen
from .._wire._pricing import PriceModel

if TYPE_CHECKING:
    from rich.console import Console

    from .._clients._async import AsyncSeedream

__all__ = [
    "BALANCE_HELP",
    "ENV_DSN",
    "EXIT_FAILED",
    "EXIT_CODES",
    "EXIT_INTERRUPTED",
    "EXIT_JOURNAL",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_batch_options",
    "add_logging",
    "add_manifest_defaults",
    "api_key",
    "batch_options",
    "configure_logging",
    "consoles",
    "interrupted",
    "is_dsn",
    "journal_target",
    "poll_policy",
    "positive_float",
    "positive_int",
    "webhook_listener",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_JOURNAL = 3  # the journal's disk or database failed: the last line says what to do
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it (SIGTERM: 143)

EXIT_CODES = """exit codes:
  0    every item succeeded (validate: the manifest is valid)
  1    some item did not succeed (validate: the manifest has problems)
  2    a usage or manifest error, or a fleet journal that is not a DSN; nothing was sent
  3    the journal's disk or database failed (full, read-only, deleted, down, a wrong
       DSN); the last line names the resource and what to do, and where any billed ids
       it could not take were saved (the next run reads them: fetched by id, not paid
       again)
  130  stopped by Ctrl-C (SIGINT); 143 stopped by SIGTERM: re-run the same command"""
ENV_DSN = "SEEDREAM_JOURNAL"
BALANCE_HELP = (
    "also read the account's balance (one GET to Atlas Cloud's Billing Public API, with "
    "the key) and show it beside the cost"
)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def is_dsn(target: object) -> bool:
    """Whether a journal target names a PostgreSQL journal."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def journal_target(text: str) -> Path | str:
    """An argparse type: a journal file (a path) or a ``postgresql://`` DSN (kept whole)."""
    return text if is_dsn(text) else Path(text)


def add_manifest_defaults(parser: argparse.ArgumentParser) -> None:
    """``--size``, ``--max-images`` and ``--model`` for rows that do not set them."""
    parser.add_argument("--size", default=None, metavar="W*H", help="for rows without a size")
    parser.add_argument(
        "--max-images", type=positive_int, default=None, help="for rows without max_images"
    )
    parser.add_argument(
        "--model",
        default=None,
        metavar="ID",
        help="for rows without a model (default: bytedance/seedream-v4.5/edit-sequential)",
    )


def add_batch_options(parser: argparse.ArgumentParser, *, concurrency: int = 64) -> None:
    """The options of a batch run, shared by ``run`` and ``work``; :func:`batch_options`
    turns them into a :class:`BatchOptions`."""
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=concurrency,
        help=f"predictions in flight at most (default: {concurrency}; with several workers "
        "on one API key, start from the key's total / workers)",
    )
    parser.add_argument("--rate", type=positive_float, default=None, help="submits per second")
    parser.add_argument(
        "--budget",
        type=positive_float,
        default=None,
        metavar="USD",
        help="stop submitting before the catalog's cost (every run and worker of its journal "
        "counted) would pass USD (default: no limit)",
    )
    parser.add_argument(
        "--price-per-image",
        type=positive_float,
        default=None,
        metavar="USD",
        help="bill USD per generated image (Atlas's skills repository and ModelArk) instead "
        "of $0.036 per execution (the model page); budgets hold max_images x USD per submit",
    )
    _add_journal(parser)
    _add_polling(parser)
    _add_webhooks(parser)
    _add_connection(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON object on stdout (the bar and notes go to stderr)",
    )


def _add_journal(parser: argparse.ArgumentParser) -> None:
    """What to do with the journal's earlier attempts, and how this run holds its items."""
    parser.add_argument(
        "--resubmit-ambiguous",
        action="store_true",
        help="send again items an earlier run may have paid for without an answer "
        "(each may then be paid for twice)",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="pay for a new attempt of items the API reported failed in an earlier run",
    )
    parser.add_argument(
        "--journal-wait",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help="how long a billed id the journal cannot take (disk full, database down) is "
        "retried while new submits wait; then it is saved to a sidecar file the next run "
        "reads (default: 30)",
    )
    parser.add_argument(
        "--lease",
        type=positive_float,
        default=DEFAULT_LEASE,
        metavar="SECONDS",
        help="how long a claim on a journal item lasts without this run's heartbeat: a "
        f"stopped run's items wait this long before another takes them over "
        f"(default: {DEFAULT_LEASE:g})",
    )


def _add_polling(parser: argparse.ArgumentParser) -> None:
    defaults = PollPolicy()
    parser.add_argument(
        "--first-poll",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="wait before a prediction's first status poll before durations are learned "
        f"(default: {defaults.first_poll:g}; a batch assumes edits take 4x this)",
    )
    parser.add_argument(
        "--poll-interval",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help=f"first wait between status polls, growing after (default: {defaults.interval:g})",
    )
    parser.add_argument(
        "--polls",
        type=positive_float,
        default=None,
        metavar="N",
        help="status polls to spend per prediction on average: fewer save requests, more "
        f"finish the batch sooner (thrifty 3, default {defaults.polls:g}, fast 12)",
    )
    parser.add_argument(
        "--typical",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="a one-image edit's duration to assume until durations are learned "
        f"(default: {defaults.prior_duration:g}, or 4x --first-poll)",
    )


def _listen_address(text: str) -> tuple[str, int]:
    try:
        return parse_listen(text)
    except ConfigurationError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_webhooks(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--webhook-url",
        default=None,
        metavar="PUBLIC",
        help="complete predictions by webhook: the public URL that reaches a receiver "
        "(this process's --webhook-listen, or another worker's on the same journal); "
        "deliveries are recorded in the journal, and a submit whose answer was lost is "
        "recovered from its delivery; a late, sparing poll stays as the fallback",
    )
    parser.add_argument(
        "--webhook-listen",
        type=_listen_address,
        default=None,
        metavar="HOST:PORT",
        help="serve the webhook receiver on HOST:PORT while the batch runs (with "
        "--webhook-url; a PostgreSQL fleet sets SEEDREAM_WEBHOOK_SECRET on every worker)",
    )


def webhook_listener(
    client: AsyncSeedream, listen: tuple[str, int] | None
) -> AbstractAsyncContextManager[object]:
    """The receiver served on ``--webhook-listen`` while the block runs (nothing without)."""
    if listen is None:
        return nullcontext()
    return client.webhooks.listen(*listen)


def _add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        default=None,
        help=f"the API's origin, e.g. a simulator's http://127.0.0.1:8787 (default: "
        f"${BASE_URL_ENV}, else {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--api-key-env",
        default=API_KEY_ENV,
        metavar="NAME",
        help=f"environment variable holding the API key (default: {API_KEY_ENV})",
    )


def poll_policy(ns: argparse.Namespace) -> PollPolicy | None:
    """The polling options given, over the defaults; None when none was given."""
    changes = {
        name: value
        for name, value in (
            ("first_poll", ns.first_poll),
            ("interval", ns.poll_interval),
            ("polls", ns.polls),
            ("typical", ns.typical),
        )
        if value is not None
    }
    return dataclasses.replace(PollPolicy(), **changes) if changes else None


def batch_options(ns: argparse.Namespace) -> BatchOptions:
    """The batch options :func:`add_batch_options` defined, as given: argparse's values
    become the library's :class:`BatchOptions` here, once. The command adds what is its own
    (the journal, the output folder, a progress callback)."""
    if ns.webhook_listen is not None and not ns.webhook_url:
        raise SystemExit(
            "error: --webhook-listen needs --webhook-url: the public URL that reaches it"
        )
    return BatchOptions(
        concurrency=ns.concurrency,
        rate=ns.rate,
        budget=ns.budget,
        resubmit_ambiguous=ns.resubmit_ambiguous,
        retry_failed=ns.retry_failed,
        poll=poll_policy(ns),
        lease=ns.lease,
        journal_wait=ns.journal_wait,
        completion="webhook" if ns.webhook_url else "poll",
        webhook_url=ns.webhook_url,
    )


def price_model(ns: argparse.Namespace) -> PriceModel | None:
    """``--price-per-image``: bill per generated image; None keeps the client's default
    (per execution)."""
    per_image: float | None = ns.price_per_image
    return None if per_image is None else PriceModel.per_generated_image(per_image)


def api_key(ns: argparse.Namespace) -> str:
    """The API key from the environment variable ``--api-key-env`` names ("" if unset)."""
    return os.environ.get(ns.api_key_env, "").strip()


def add_logging(parser: argparse.ArgumentParser) -> None:
    """``-v`` / ``--log-level``: the library's log on stderr."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log retries and waits (-v), and every request (-vv)",
    )
    group.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        type=str.upper,
        default=None,
        help="the library's log level (-v is INFO, -vv DEBUG; default: WARNING)",
    )


def configure_logging(ns: argparse.Namespace, errors: Console) -> None:
    """Send the library's log to stderr, drawn above the progress bar."""
    import logging

    from rich.logging import RichHandler

    level = ns.log_level or {0: "WARNING", 1: "INFO"}.get(ns.verbose, "DEBUG")
    handler = RichHandler(console=errors, show_path=False, markup=False, log_time_format="%X")
    logger = logging.getLogger("seedream_async")
    logger.addHandler(handler)
    logger.setLevel(level)


def consoles() -> tuple[Console, Console]:
    """stdout's and stderr's consoles."""
    from rich.console import Console

    return (
        Console(soft_wrap=True, highlight=False),
        Console(stderr=True, soft_wrap=True, highlight=False),
    )


def interrupted(errors: Console, message: str) -> int:
    """Say what Ctrl-C left behind; the exit code of an interrupted command."""
    errors.print(f"\nInterrupted. {message}")
    return EXIT_INTERRUPTED
