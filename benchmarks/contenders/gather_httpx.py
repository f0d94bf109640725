"""What users write instead: ``asyncio.gather`` over every item, a ``Semaphore(64)``,
one ``httpx.AsyncClient``, and fixed-interval polling.

The interval (0.5 s, 1 s or 2 s: those of popular SDKs, and the seed's own example's
2 s; 0.1 s too), times the time scale.
Each item uploads its own images (no dedupe), submits, then polls until done. A 429 is
waited out (``Retry-After``) and sent again, so nothing is lost to the rate limit.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import httpx

from .._workload import item_specs, max_images_of
from ._common import Meter, Tally, parse_args, report, spec_of

MODEL = "bytedance/seedream-v4.5/edit-sequential"
MAX_ATTEMPTS = 100


async def _send(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
    for _ in range(MAX_ATTEMPTS):
        response = await client.request(method, url, **kwargs)
        if response.status_code == 429:
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
            continue
        response.raise_for_status()
        body = response.json()
        return body.get("data", body)
    raise RuntimeError(f"still rate limited after {MAX_ATTEMPTS} attempts")


async def _one(
    client: httpx.AsyncClient,
    semaphore: asyncio.Semaphore,
    interval: float,
    prompt: str,
    images: list[str],
    max_images: int,
) -> bool:
    async with semaphore:
        urls = []
        for image in images:
            path = Path(image)
            files = {"file": (path.name, path.read_bytes(), "image/png")}
            uploaded = await _send(client, "POST", "/api/v1/model/uploadMedia", files=files)
            urls.append(uploaded["download_url"])
        body = {"model": MODEL, "prompt": prompt, "images": urls, "max_images": max_images}
        prediction = await _send(client, "POST", "/api/v1/model/generateImage", json=body)
        while prediction["status"] not in ("completed", "succeeded", "failed"):
            await asyncio.sleep(interval)
            prediction = await _send(client, "GET", f"/api/v1/model/prediction/{prediction['id']}")
        return bool(prediction["status"] != "failed")


async def _run(ns: argparse.Namespace) -> None:
    spec = spec_of(ns)
    interval = ns.interval * ns.time_scale
    meter, tally = Meter(), Tally()
    async with httpx.AsyncClient(
        base_url=ns.base_url,
        headers={"Authorization": f"Bearer {ns.key}"},
        timeout=60.0,
    ) as client:
        semaphore = asyncio.Semaphore(ns.concurrency)
        meter.start()
        outcomes = await asyncio.gather(
            *(
                _one(client, semaphore, interval, prompt, images, max_images_of(spec, index))
                for index, (_key, prompt, images) in enumerate(item_specs(spec))
            ),
            return_exceptions=True,
        )
        meter.stop()
    for outcome in outcomes:
        if outcome is True:
            tally.succeeded += 1
        else:
            tally.fail(outcome if isinstance(outcome, BaseException) else "prediction failed")
    report(meter, tally, n=spec.n, interval_s=interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval", type=float, required=True, help="API seconds")
    asyncio.run(_run(parse_args(__doc__ or "", parser)))


if __name__ == "__main__":
    main()
