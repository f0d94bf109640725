"""CPU to read one poll answer: the envelope check an answer gets on arrival, then
:func:`read_prediction`, for a running answer and for a completed one.

    python -m benchmarks.parse_cost [--n 20000] [--repeats 7]

Every prediction is polled about six times, so a big batch reads tens of thousands of
these. The figure is the best of ``--repeats`` runs of ``--n`` reads each, in process CPU
time (a busy neighbour on a shared machine then adds less noise than to wall time).
Compare two checkouts by running this with each on ``PYTHONPATH``, alternately.
"""

from __future__ import annotations

import argparse
import time
import timeit
from typing import Any

from seedream_async._wire._envelope import envelope_error
from seedream_async._wire._parsing import read_prediction

__all__ = ["main"]

_ID = "pred_0123456789abcdef"
_MODEL = "bytedance/seedream-v4.5/edit-sequential"
_CDN = f"https://cdn.example.com/o/{_ID}"
RUNNING: dict[str, Any] = {
    "code": 200,
    "message": "",
    "data": {
        "id": _ID,
        "status": "processing",
        "outputs": [],
        "created_at": "2026-03-01T12:00:00.123456Z",
        "model": _MODEL,
    },
}
COMPLETED: dict[str, Any] = {
    "code": 200,
    "message": "",
    "data": {
        "id": _ID,
        "status": "completed",
        "outputs": [f"{_CDN}/0.png", f"{_CDN}/1.png"],
        "has_nsfw_contents": [False, False],
        "metrics": {"predict_time": 7.82},
        "created_at": "2026-03-01T12:00:00.123456Z",
        "completed_at": "2026-03-01T12:00:08.5Z",
        "model": _MODEL,
        "error": "",
        "error_code": 0,
    },
}
_SECRETS = ("sk-benchmark-0123456789",)


def _read(body: dict[str, Any]) -> None:
    what = f"poll of {_ID}"
    envelope_error(body, what=what, secrets=_SECRETS)  # the endpoint's check on arrival
    read_prediction(
        body,
        what=what,
        prediction_id=_ID,
        status_code=200,
        secrets=_SECRETS,
        request_id="req-benchmark",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parse_cost", description=__doc__)
    parser.add_argument("--n", type=int, default=20000, help="reads per run")
    parser.add_argument("--repeats", type=int, default=7, help="runs; the best is printed")
    args = parser.parse_args(argv)
    for name, body in (("running", RUNNING), ("completed", COMPLETED)):
        timer = timeit.Timer(lambda body=body: _read(body), timer=time.process_time)
        best = min(timer.repeat(number=args.n, repeat=args.repeats)) / args.n
        print(f"{name:10s} {best * 1e6:6.2f} us CPU per answer read")


if __name__ == "__main__":
    main()
