"""``_base._threads.off_loop``: a file's probe on a worker thread, on both backends."""

from __future__ import annotations

import threading

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from seedream_async._base._threads import off_loop

pytestmark = pytest.mark.anyio


async def test_the_work_runs_on_another_thread_and_its_result_or_error_comes_back() -> None:
    assert await off_loop(threading.get_ident) != threading.get_ident()

    def broken() -> int:
        raise ZeroDivisionError("from the thread")

    with pytest.raises(ZeroDivisionError, match="from the thread"):
        await off_loop(broken)


async def test_the_loop_runs_while_the_work_blocks() -> None:
    release = threading.Event()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        for _ in range(3):
            ticks += 1
            await anyio.lowlevel.checkpoint()
        release.set()

    def blocked() -> bool:
        return release.wait(10)

    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        assert await off_loop(blocked)
    assert ticks == 3


async def test_a_cancelled_caller_leaves_without_waiting_for_the_read() -> None:
    release, finished = threading.Event(), threading.Event()

    def slow_read() -> int:
        release.wait(10)
        finished.set()
        return 1

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:

            async def caller() -> None:
                await off_loop(slow_read)

            group.start_soon(caller)
            await anyio.sleep(0.05)
            scope.cancel()
    assert scope.cancelled_caught
    assert not finished.is_set(), "the caller left while the read was still going"
    release.set()
    assert await anyio.to_thread.run_sync(finished.wait, 10)
