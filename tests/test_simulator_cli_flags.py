"""The simulator's command line reaches every documented-behaviour knob (issue 18): each
flag lands in the :class:`SimulatorConfig` it builds, and no flag's default differs from
the library's."""

from __future__ import annotations

import argparse

from seedream_async.testing import Faults, Shapes, SimulatorConfig
from seedream_async.testing._cli import add_arguments, config_from_args


def _config(*argv: str) -> SimulatorConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)))


def test_documented_flags_reach_the_config() -> None:
    """Every new flag sets its Faults or Shapes field."""
    config = _config(
        "--send-retry-after",
        "--failure-code=1039",
        "--nsfw=0.25",
        "--expired-status=410",
        "--fresh-not-found=2.5",
        "--sync-max-wait=30",
        "--no-sync-timeout-id",
        "--output-count=model",
        "--output-format=jpeg",
        "--error-body=message",
        "--unknown-path-status=404",
        "--compression=gzip",
    )
    faults, shapes = config.faults, config.shapes
    assert faults.send_retry_after is True
    assert faults.failure_code == 1039
    assert faults.nsfw == 0.25
    assert faults.expired_status == 410
    assert faults.fresh_not_found == 2.5
    assert faults.sync_max_wait == 30.0
    assert faults.sync_timeout_id is False
    assert (shapes.output_count, shapes.output_format) == ("model", "jpeg")
    assert (shapes.error_body, shapes.unknown_path_status) == ("message", 404)
    assert shapes.compression == "gzip"


def test_flag_defaults_are_the_library_defaults() -> None:
    """With no flags, the documented knobs are exactly the config's defaults."""
    config = _config()
    assert config.shapes == Shapes()
    defaults = Faults()
    for name in (
        "send_retry_after",
        "failure_code",
        "nsfw",
        "expired_status",
        "fresh_not_found",
        "sync_max_wait",
        "sync_timeout_id",
    ):
        assert getattr(config.faults, name) == getattr(defaults, name), name
    assert _config("--failure-code=none", "--sync-max-wait=none").faults.failure_code is None
