"""seedream-async with its default settings, time-based ones scaled by the time scale.

``--economy`` runs it with the poll policy tuned for fewer requests instead
(``learned_first=0.6, learned_spacing=0.3``), to show the other end of the trade-off.

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
    default = PollPolicy(learned_first=0.6, learned_spacing=0.3) if ns.economy else PollPolicy()
    policy = dataclasses.replace(default.scaled(ns.time_scale), deadline=default.deadline)
    default_rate = BatchOptions().poll_rate
    poll_rate = None if default_rate is None else default_rate / ns.time_scale
    meter, tally = Meter(), Tally()
    statuses: Counter[str] = Counter()
    items = (
        EditItem(key=key, prompt=prompt, images=images, max_images=max_images_of(spec, index))
        for index, (key, prompt, images) in enumerate(item_specs(spec))
    )
    async with AsyncSeedream(ns.key, base_url=ns.base_url, poll=policy) as client:
        meter.start()
        async for result in client.edit_batch(
            items, concurrency=ns.concurrency, poll=policy, poll_rate=poll_rate
        ):
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
    parser.add_argument("--economy", action="store_true", help="poll for fewer requests")
    anyio.run(_run, parse_args(__doc__ or "", parser))


if __name__ == "__main__":
    main()
