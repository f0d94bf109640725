"""The naive pattern: one item after another with ``requests`` (upload, submit, poll).

A ``requests.Session`` keeps the connection alive; each prediction is polled after a
fixed ``time.sleep`` of 1 s (times the time scale). A 429 is waited out (``Retry-After``)
and sent again. The harness runs it on a few items and extrapolates.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests

from .._workload import item_specs, max_images_of
from ._common import Meter, Tally, parse_args, report, spec_of

MODEL = "bytedance/seedream-v4.5/edit-sequential"
POLL_SECONDS = 1.0


def _data(response: requests.Response) -> Any:
    body = response.json()
    return body.get("data", body)


def _send(session: requests.Session, method: str, url: str, **kwargs: Any) -> Any:
    while True:
        response = session.request(method, url, timeout=60, **kwargs)
        if response.status_code == 429:
            time.sleep(float(response.headers.get("retry-after", "1")))
            continue
        response.raise_for_status()
        return _data(response)


def main() -> None:
    ns = parse_args(__doc__ or "")
    spec = spec_of(ns)
    base = ns.base_url
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {ns.key}"
    meter, tally = Meter(), Tally()
    meter.start()
    for index, (_key, prompt, images) in enumerate(item_specs(spec)):
        try:
            urls = []
            for image in images:
                path = Path(image)
                files = {"file": (path.name, path.read_bytes(), "image/png")}
                uploaded = _send(session, "POST", f"{base}/api/v1/model/uploadMedia", files=files)
                urls.append(uploaded["download_url"])
            body = {
                "model": MODEL, "prompt": prompt, "images": urls,
                "max_images": max_images_of(spec, index),
            }  # fmt: skip
            prediction = _send(session, "POST", f"{base}/api/v1/model/generateImage", json=body)
            while prediction["status"] not in ("completed", "succeeded", "failed"):
                time.sleep(POLL_SECONDS * ns.time_scale)
                prediction = _send(
                    session, "GET", f"{base}/api/v1/model/prediction/{prediction['id']}"
                )
            if prediction["status"] == "failed":
                tally.fail("prediction failed")
            else:
                tally.succeeded += 1
        except requests.RequestException as err:
            tally.fail(err)
    meter.stop()
    report(meter, tally, n=spec.n)


if __name__ == "__main__":
    main()
