"""Webhook completion against polling: polls per prediction, makespan against ideal, and
ambiguous items in a fault soak (issue 20).

    python -m benchmarks.webhook_completion            # ~1-2 minutes on 2 cores
    python -m benchmarks.webhook_completion --n 300 --soak-n 300 --output out.json

Each contender runs ``edit_batch`` with a fresh SQLite journal against a fresh simulator
(in this process: the figures here are counts and ratios, not CPU time):

* ``poll``: the default completion (the adaptive poll scheduler, default policy);
* ``webhook``: ``completion="webhook"``, the client's receiver listening on 127.0.0.1, the
  late fallback poll behind it.

Clean run: no faults. Polls per prediction from the simulator's ledger; makespan from the
first submit to the last result; ideal is Graham's greedy schedule of the ledger's own
latencies on ``concurrency`` slots (``_figures.ideal_makespan``).

Fault soak: the submit endpoint drops connections and answers 5xx, most of them after the
prediction was created and billed (the answer lost, the money spent); polls fail too; the
webhook sender loses, duplicates and reorders some deliveries. Counted per contender:
delivered, ambiguous (billed, no id, never delivered), executions and paid twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

from seedream_async import AsyncSeedream, PollPolicy, RetryPolicy
from seedream_async.testing import Faults, WebhookFaults, serve

from ._figures import ideal_makespan

SOAK_FAULTS = Faults(
    drop=0.08,
    server_error=0.05,
    server_error_codes=(500, 502, 504),
    processed_on_error=0.8,
    endpoints=frozenset({"submit", "poll"}),
)
SOAK_WEBHOOKS = WebhookFaults(lost=0.05, duplicated=0.1, reordered=0.2, delay_seconds=0.3)


async def _one(
    contender: str,
    *,
    n: int,
    concurrency: int,
    time_scale: float,
    seed: int,
    soak: bool,
    journal: bool = True,
) -> dict[str, Any]:
    default = PollPolicy()
    policy = dataclasses.replace(default.scaled(time_scale), deadline=default.deadline)
    faults = SOAK_FAULTS if soak else Faults()
    hooks = SOAK_WEBHOOKS if soak else WebhookFaults()
    retry = RetryPolicy(initial_delay=0.01, max_delay=0.2, max_attempts=8)
    items = [
        {"key": f"k{i:05d}", "prompt": f"edit {i}", "images": [f"https://e.com/{i}.png"]}
        for i in range(n)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            serve(time_scale=time_scale, seed=seed, faults=faults, webhooks=hooks) as sim,
            AsyncSeedream(
                api_key=sim.api_key, base_url=sim.base_url, poll=policy, retry=retry
            ) as client,
            client.webhooks.listen() as hook,
        ):
            where = Path(tmp) / "j" if journal else None
            options: dict[str, Any] = {"concurrency": concurrency, "journal": where}
            if contender == "webhook":
                options.update(completion="webhook", webhook_url=hook.url)
            started = time.perf_counter()
            results = await client.edit_all(items, **options)
            makespan = time.perf_counter() - started
            ledger = sim.ledger
            statuses = Counter(r.status.value for r in results)
            ideal = ideal_makespan(ledger.latencies(), concurrency)
            return {
                "contender": contender,
                "soak": soak,
                "journal": journal,
                "n": n,
                "statuses": dict(statuses),
                "ambiguous": statuses.get("ambiguous", 0),
                "delivered": statuses.get("succeeded", 0),
                "executions": ledger.executions,
                "paid_twice": ledger.duplicate_submissions,
                "polls": ledger.total_polls,
                "polls_per_prediction": round(ledger.polls_per_prediction, 3),
                "makespan_s": round(makespan, 3),
                "ideal_s": round(ideal, 3),
                "x_ideal": round(makespan / ideal, 3) if ideal else None,
                "webhook_attempts": len(sim.webhooks.attempts),
            }


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| run | contender | journal | N | delivered | ambiguous | executions | paid twice | "
        "polls/pred | makespan s | x ideal |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {'fault soak' if r['soak'] else 'clean'} | {r['contender']} | "
            f"{'SQLite' if r['journal'] else 'none'} | {r['n']} | "
            f"{r['delivered']} | {r['ambiguous']} | {r['executions']} | {r['paid_twice']} | "
            f"{r['polls_per_prediction']:.2f} | {r['makespan_s']:.2f} | {r['x_ideal']} |"
        )
    return "\n".join(lines)


async def _main(ns: argparse.Namespace) -> None:
    rows = []
    runs = [(False, ns.n, True), (False, ns.n, False), (True, ns.soak_n, True)]
    for soak, n, journal in runs:
        for contender in ("poll", "webhook"):
            row = await _one(
                contender, n=n, concurrency=ns.concurrency, time_scale=ns.time_scale,
                seed=ns.seed, soak=soak, journal=journal,
            )  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(_table(rows))
    if ns.output:
        settings = {k: v for k, v in vars(ns).items() if k != "output"}
        Path(ns.output).write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="items in the clean run")
    parser.add_argument("--soak-n", type=int, default=400, help="items in the fault soak")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", default=None, help="write the rows as JSON here")
    anyio.run(_main, parser.parse_args())


if __name__ == "__main__":
    main()
