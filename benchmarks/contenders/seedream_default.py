"""seedream-async with its default settings, time-based ones scaled by the time scale.

``--preset thrifty|fast`` runs it with the poll policy's thrifty (3 polls a prediction) or
fast (12) preset instead of the default (6); ``--poll-rate-scale`` multiplies the batch's
``poll_rate`` cap (the fast preset asks more polls a second than the default cap allows).
``--completion sync`` submits in sync mode (no polls); ``--completion webhook`` has the
simulator POST each result to the client's own receiver on 127.0.0.1 (``client.webhooks
.listen()``), with polling only as the late fallback.

Scaled: the :class:`PollPolicy` poll durations (``PollPolicy().scaled(ts)``: first poll,
interval, max interval) and the ``poll_rate`` cap (default polls per second divided by
``ts``). Not scaled: the per-prediction ``deadline`` (a safety net, not a tuning knob:
scaled to 90 ms at tiny time scales it fails items that merely queue), and the retry
policy, whose waits follow the server's ``Retry-After`` (real seconds).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import Counter

import anyio

from seedream_async import AsyncSeedream, BatchOptions, EditItem, PollPolicy, ResultStatus

from .._workload import item_specs, max_images_of
from ._common import Meter, Tally, parse_args, report, spec_of


async def _run(ns: argparse.Namespace) -> None:
    spec = spec_of(ns)
    presets = {"default": PollPolicy, "thrifty": PollPolicy.thrifty, "fast": PollPolicy.fast}
    default = presets[ns.preset]()
    policy = dataclasses.replace(default.scaled(ns.time_scale), deadline=default.deadline)
    default_rate = BatchOptions().poll_rate
    poll_rate = None if default_rate is None else default_rate * ns.poll_rate_scale / ns.time_scale
    meter, tally = Meter(), Tally()
    statuses: Counter[str] = Counter()
    items = (
        EditItem(key=key, prompt=prompt, images=images, max_images=max_images_of(spec, index))
        for index, (key, prompt, images) in enumerate(item_specs(spec))
    )
    async with (
        AsyncSeedream(ns.key, base_url=ns.base_url, poll=policy) as client,
        client.webhooks.listen() as hook,
    ):
        hooks = {"webhook_url": hook.url} if ns.completion == "webhook" else {}
        meter.start()
        async for result in client.edit_batch(
            items, concurrency=ns.concurrency, poll=policy, poll_rate=poll_rate,
            completion=ns.completion, **hooks,
        ):  # fmt: skip
            statuses[result.status.value] += 1
            if result.status is ResultStatus.SUCCEEDED:
                tally.succeeded += 1
            else:
                tally.fail(result.error or result.status.value)
        meter.stop()
        requests = dict(client.requests)
    report(
        meter, tally, n=spec.n, client_requests=requests, poll_rate=poll_rate,
        statuses=dict(statuses),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", choices=("default", "thrifty", "fast"), default="default")
    parser.add_argument("--poll-rate-scale", type=float, default=1.0)
    parser.add_argument("--completion", choices=("poll", "sync", "webhook"), default="poll")
    anyio.run(_run, parse_args(__doc__ or "", parser))


if __name__ == "__main__":
    main()
