"""Command-line knobs for the standalone simulator, reusable by the project CLI."""

from __future__ import annotations

import argparse
import sys

import anyio

from ._cli_documented import add_documented_arguments, documented_faults, documented_shapes
from ._config import ENDPOINTS, Faults, SimulatorConfig
from ._server import serve

__all__ = ["add_arguments", "config_from_args", "main", "run_forever", "serve_from_args"]


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().replace("*", "x").partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"expected WxH, got {text!r}")
    return int(width), int(height)


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "off", "") else float(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options (ports, :class:`SimulatorConfig` and :class:`Faults`).

    Args:
        parser: the parser (or sub-parser) to extend.
    """
    defaults, faults = SimulatorConfig(), Faults()
    server = parser.add_argument_group("simulator")
    _add_server(server, defaults)
    _add_latency(server, defaults)
    _add_shape(server, defaults)
    inject = parser.add_argument_group("faults", "probabilities P are 0..1, drawn per request")
    _add_faults(inject, faults)
    _add_limits(inject, faults)
    add_documented_arguments(parser)


def _add_server(server: argparse._ArgumentGroup, defaults: SimulatorConfig) -> None:
    server.add_argument(
        "--port", type=int, default=8787, help="API port; 0 picks a free one (default: 8787)"
    )
    server.add_argument(
        "--storage-port",
        type=int,
        default=0,
        help="port of the storage host serving uploads and outputs (default: 0, any free one)",
    )
    server.add_argument(
        "--api-key",
        default=defaults.api_key,
        help="the bearer key every API request must carry, else 401 (default: %(default)s)",
    )
    server.add_argument("--no-auth", action="store_true", help="accept requests without a key")


def _add_latency(server: argparse._ArgumentGroup, defaults: SimulatorConfig) -> None:
    server.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="seeds every random draw: same seed and request order, same run "
        "(default: %(default)s)",
    )
    server.add_argument(
        "--time-scale",
        type=float,
        default=defaults.time_scale,
        help="multiplies prediction latency only; 0.001 turns 8.3 s into 8.3 ms "
        "(default: %(default)s)",
    )
    server.add_argument(
        "--latency-median",
        type=float,
        default=defaults.latency_median,
        metavar="SECONDS",
        help="median predict_time of the lognormal latency, in API seconds (default: %(default)s)",
    )
    server.add_argument(
        "--latency-sigma",
        type=float,
        default=defaults.latency_sigma,
        help="sigma of that lognormal; 0 makes every prediction take the median "
        "(default: %(default)s)",
    )
    server.add_argument(
        "--per-extra-image",
        type=float,
        default=defaults.per_extra_image,
        metavar="FRACTION",
        help="each generated image beyond the first adds this fraction of the latency "
        "(default: %(default)s)",
    )
    server.add_argument(
        "--request-latency",
        type=float,
        default=defaults.request_latency,
        metavar="SECONDS",
        help="real seconds added to every response (default: %(default)s)",
    )


def _add_shape(server: argparse._ArgumentGroup, defaults: SimulatorConfig) -> None:
    server.add_argument(
        "--max-upload-bytes",
        type=int,
        default=defaults.max_upload_bytes,
        help="uploads above this get 413 (default: %(default)s)",
    )
    server.add_argument(
        "--output-size",
        type=_size,
        default=defaults.output_size,
        metavar="WxH",
        help="size of the generated output PNGs, small on purpose (default: 64x64)",
    )
    server.add_argument(
        "--envelope",
        choices=("data", "flat", "code", "mixed"),
        default=defaults.envelope,
        help='response bodies wrapped in {"data": ...}, bare, in {"code": 200, "message", '
        '"data"}, or alternating data and bare (default: %(default)s)',
    )


def _add_faults(inject: argparse._ArgumentGroup, faults: Faults) -> None:
    inject.add_argument(
        "--rate-limit",
        type=float,
        default=faults.rate_limit,
        metavar="P",
        help="answer 429 Too Many Requests (default: %(default)s)",
    )
    inject.add_argument(
        "--retry-after",
        type=_optional_float,
        default=faults.retry_after,
        metavar="SECONDS|none",
        help="the wait sent with every 429; none sends no header (default: %(default)s)",
    )
    inject.add_argument(
        "--retry-after-format",
        choices=("seconds", "http-date", "ms"),
        default=faults.retry_after_format,
        help="Retry-After in seconds, as an HTTP date, or as retry-after-ms (default: %(default)s)",
    )
    inject.add_argument(
        "--server-error",
        type=float,
        default=faults.server_error,
        metavar="P",
        help="answer 500, 502, 503 or 504 (default: %(default)s)",
    )
    inject.add_argument(
        "--drop",
        type=float,
        default=faults.drop,
        metavar="P",
        help="close the connection without a response (default: %(default)s)",
    )
    inject.add_argument(
        "--slow",
        type=float,
        default=faults.slow,
        metavar="P",
        help="hold the response for --slow-seconds (default: %(default)s)",
    )
    inject.add_argument(
        "--slow-seconds",
        type=float,
        default=faults.slow_seconds,
        metavar="SECONDS",
        help="real seconds a slow response is held (default: %(default)s)",
    )
    inject.add_argument(
        "--prediction-failure",
        type=float,
        default=faults.prediction_failure,
        metavar="P",
        help="a prediction ends 'failed' (still billed) (default: %(default)s)",
    )


def _add_limits(inject: argparse._ArgumentGroup, faults: Faults) -> None:
    inject.add_argument(
        "--output-ttl",
        type=_optional_float,
        default=None,
        metavar="SECONDS",
        help="output URLs expire (403) this long after a poll handed them out (default: never)",
    )
    inject.add_argument(
        "--rps",
        type=_optional_float,
        default=None,
        help="requests per second allowed per API key, 429 above (default: no limit)",
    )
    inject.add_argument(
        "--rps-burst",
        type=int,
        default=None,
        help="requests allowed back to back under --rps (default: one second's worth)",
    )
    inject.add_argument(
        "--max-in-flight",
        type=int,
        default=None,
        metavar="N",
        help="a submit while N predictions run gets 429 (default: no limit)",
    )
    inject.add_argument(
        "--fault-endpoints",
        default=",".join(sorted(faults.endpoints)),
        help="endpoints the random faults hit, comma-separated, from "
        f"{','.join(sorted(ENDPOINTS))} (default: %(default)s)",
    )
    inject.add_argument(
        "--processed-on-error",
        type=float,
        default=faults.processed_on_error,
        metavar="P",
        help="on submit, a 500/502/504 or a drop comes after the prediction was billed "
        "(default: %(default)s)",
    )


def config_from_args(ns: argparse.Namespace) -> SimulatorConfig:
    """Build a :class:`SimulatorConfig` from arguments parsed with :func:`add_arguments`.

    Args:
        ns: the parsed namespace.
    """
    endpoints = frozenset(name.strip() for name in ns.fault_endpoints.split(",") if name.strip())
    faults = Faults(
        rate_limit=ns.rate_limit,
        retry_after=ns.retry_after,
        retry_after_format=ns.retry_after_format,
        server_error=ns.server_error,
        drop=ns.drop,
        slow=ns.slow,
        slow_seconds=ns.slow_seconds,
        prediction_failure=ns.prediction_failure,
        output_ttl=ns.output_ttl,
        requests_per_second=ns.rps,
        requests_burst=ns.rps_burst,
        max_in_flight=ns.max_in_flight,
        endpoints=endpoints,
        processed_on_error=ns.processed_on_error,
        **documented_faults(ns),
    )
    return SimulatorConfig(
        api_key=None if ns.no_auth else ns.api_key,
        seed=ns.seed,
        time_scale=ns.time_scale,
        latency_median=ns.latency_median,
        latency_sigma=ns.latency_sigma,
        per_extra_image=ns.per_extra_image,
        request_latency=ns.request_latency,
        max_upload_bytes=ns.max_upload_bytes,
        output_size=ns.output_size,
        envelope=ns.envelope,
        faults=faults,
        shapes=documented_shapes(ns),
    )


async def run_forever(config: SimulatorConfig, port: int, storage_port: int) -> None:
    """Serve until cancelled, after printing the one line harnesses parse.

    Args:
        config: the configuration.
        port: the API port (0: any free port).
        storage_port: the storage port (0: any free port).
    """
    async with serve(config, port=port, storage_port=storage_port) as sim:
        print(
            f"seedream-sim listening on {sim.base_url} storage {sim.storage_url} "
            f"key {sim.api_key or '-'}",
            flush=True,
        )
        await anyio.sleep_forever()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m seedream_async.testing``."""
    parser = argparse.ArgumentParser(
        prog="python -m seedream_async.testing",
        description="Run the simulated Atlas Cloud API (Seedream v4.5 edit-sequential).",
    )
    add_arguments(parser)
    return serve_from_args(parser.parse_args(argv), parser)


def serve_from_args(ns: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Serve with the options :func:`add_arguments` parsed, until Ctrl-C; return 0.

    Args:
        ns: the parsed options.
        parser: the parser, to report a bad combination of options.
    """
    try:
        config = config_from_args(ns)
    except ValueError as err:
        parser.error(str(err))
    try:
        anyio.run(run_forever, config, ns.port, ns.storage_port)
    except KeyboardInterrupt:
        print("seedream-sim stopped", file=sys.stderr)
    return 0
