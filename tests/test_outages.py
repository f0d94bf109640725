"""Outages under a run: the API going dark after the run reached it, and a journal that
refuses billed ids (down, full) until the run ends. Each ends with a plain re-run and the
invariants: nothing paid twice, no billed id lost, every key once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from _helpers import FAST_POLL, FAST_RETRY, simulated
from _infra import catalog, paid_twice
from anyio.abc import SocketAttribute

from seedream_async import AsyncSeedream, JournalUnavailable, ResultStatus, SQLiteJournal
from seedream_async._engine._unrecorded import sidecar_for

pytestmark = pytest.mark.anyio


class DarkProxy:
    """A TCP proxy in front of the simulator's API that can go dark: its listener closed
    (new connections refused) and every open connection cut, then lit again on the same
    port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._scope: anyio.CancelScope | None = None

    async def light(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        with anyio.CancelScope() as scope:
            self._scope = scope
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
            self.port = listener.extra(SocketAttribute.local_port)
            task_status.started()
            async with listener:
                await listener.serve(self._forward)

    def dark(self) -> None:
        assert self._scope is not None
        self._scope.cancel()

    async def _forward(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            try:
                server = await anyio.connect_tcp("127.0.0.1", self.target_port)
            except OSError:
                return
            async with server, anyio.create_task_group() as group:
                group.start_soon(_pump, client, server, group.cancel_scope)
                group.start_soon(_pump, server, client, group.cancel_scope)


async def _pump(
    source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, scope: anyio.CancelScope
) -> None:
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
        async for chunk in source:
            await sink.send(chunk)
    scope.cancel()


async def test_an_api_outage_is_waited_out_not_failed_in_bulk(tmp_path: Path) -> None:
    """The API refuses every connection for a while after the run reached it: submits wait
    with backoff (nothing sent is billed), polls are retried; when it is back the batch
    finishes. No item fails, nothing is paid twice; a submit cut mid-flight may be
    ambiguous, and is then never sent again."""
    items = catalog(16, "dark")
    journal = tmp_path / "journal.sqlite"
    async with simulated(time_scale=0.02) as (sim, _):
        proxy = DarkProxy(int(sim.base_url.rsplit(":", 1)[1]))
        async with anyio.create_task_group() as group:
            await group.start(proxy.light)
            options: dict[str, Any] = {"retry": FAST_RETRY, "poll": FAST_POLL}
            base_url = f"http://127.0.0.1:{proxy.port}"
            dark_at: list[int] = []
            async with AsyncSeedream(api_key=sim.api_key, base_url=base_url, **options) as client:

                async def outage() -> None:
                    while sim.ledger.executions < 4:  # noqa: ASYNC110
                        await anyio.sleep(0.005)
                    proxy.dark()
                    dark_at.append(sim.ledger.executions)
                    await anyio.sleep(1.5)
                    await group.start(proxy.light)

                group.start_soon(outage)
                results = await client.edit_all(
                    items, journal=journal, out_dir=tmp_path / "out", concurrency=4
                )
                again = await client.edit_all(items, journal=journal, out_dir=tmp_path / "out")
            group.cancel_scope.cancel()
    assert dark_at, "the API went dark"
    assert dark_at[0] < len(items), "the outage came while items were left"
    statuses = _statuses(results)
    ambiguous = statuses.get(ResultStatus.AMBIGUOUS, 0)
    assert statuses.get(ResultStatus.FAILED, 0) == 0, statuses
    assert statuses.get(ResultStatus.NOT_SUBMITTED, 0) == 0, statuses
    assert sorted(r.key for r in again) == sorted(i.key for i in items), "every key once"
    assert paid_twice(sim) == 0
    assert sim.ledger.executions <= len(items)
    assert sim.ledger.executions >= len(items) - ambiguous, "every unbilled item done"
    print(
        f"\nFIGURES API dark 1.5s: items={len(items)} executions={sim.ledger.executions} "
        f"paid_twice={paid_twice(sim)} stranded=0 ambiguous={ambiguous}"
    )


def _statuses(results: Sequence[Any]) -> dict[ResultStatus, int]:
    counts: dict[ResultStatus, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return counts


class RefusingJournal:
    """An SQLite journal whose disk "fails" for billed ids: ``submitted`` and ``record_id``
    raise :class:`JournalUnavailable` (as a full disk or a downed server would)."""

    def __init__(self, inner: SQLiteJournal) -> None:
        self.inner = inner
        self.path = inner.path

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def submitted(self, *args: Any, **kwargs: Any) -> None:
        raise JournalUnavailable(str(self.path), "its disk is full", "free space")

    async def record_id(self, *args: Any, **kwargs: Any) -> bool:
        raise JournalUnavailable(str(self.path), "its disk is full", "free space")


async def test_billed_ids_the_journal_refuses_go_to_a_sidecar_the_next_run_reads(
    tmp_path: Path,
) -> None:
    """Every billed id the journal refuses stays in memory, new submits stop, the run ends
    with the ids in a sidecar beside the journal (BatchRun.unrecorded says where); the next
    run writes them in and fetches those items by id: nothing is paid twice."""
    items = catalog(12, "sidecar")
    path = tmp_path / "journal.sqlite"
    async with simulated() as (sim, client):
        async with await SQLiteJournal.open(path) as inner:
            refusing = RefusingJournal(inner)
            async with client.edit_batch(
                items,
                journal=refusing,
                concurrency=3,
                journal_wait=0.2,  # type: ignore[arg-type]
            ) as run:
                first = [result async for result in run]
            unwritten = run.unrecorded
        billed = sim.ledger.executions
        assert unwritten is not None
        assert unwritten.path == sidecar_for(path, None)
        assert unwritten.count == billed, "every billed id kept"
        assert billed <= 3, "new submits stopped at once (only those on the wire went)"
        assert sum(r.status is ResultStatus.NOT_SUBMITTED for r in first) >= len(items) - 3
        assert unwritten.path.exists()

        second = await client.edit_all(items, journal=path)
        assert all(r.status is ResultStatus.SUCCEEDED for r in second)
        assert sum(r.from_journal for r in second) == billed, "fetched by id, not resubmitted"
        assert not unwritten.path.exists(), "the sidecar is taken in and removed"
    assert paid_twice(sim) == 0
    assert sim.ledger.executions == len(items)


@pytest.mark.parametrize("jump", [3600.0, -3600.0], ids=["forward", "backward"])
async def test_a_wall_clock_jump_costs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jump: float
) -> None:
    """The wall clock jumps an hour mid-run (the journal's leases are on it): forward, every
    lease looks expired, so the run renews its own before each paid attempt; backward,
    they look long. Either way every item is done once."""
    import time

    from seedream_async._engine import _sqlite

    items = catalog(12, f"clock{int(jump)}")
    offset = {"by": 0.0}
    monkeypatch.setattr(_sqlite, "wall_clock", lambda: time.time() + offset["by"])
    async with simulated() as (sim, client):
        results = []
        async with client.edit_batch(
            items, journal=tmp_path / "journal.sqlite", concurrency=3
        ) as run:
            async for result in run:
                results.append(result)
                if len(results) == 3:
                    offset["by"] = jump
    assert all(r.status is ResultStatus.SUCCEEDED for r in results), _statuses(results)
    assert paid_twice(sim) == 0
    assert sim.ledger.executions == len(items)
