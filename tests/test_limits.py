from __future__ import annotations

import anyio
import pytest

from seedream_async._policies._limits import AdaptiveLimit, PauseGate, RateLimiter

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- RateLimiter (GCRA) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "burst", "waits"),
    [
        pytest.param(10.0, 1, [0.0, 0.1, 0.2, 0.3], id="no-burst"),
        pytest.param(10.0, 3, [0.0, 0.0, 0.0, 0.1, 0.2], id="burst-3"),
        pytest.param(2.0, 2, [0.0, 0.0, 0.5, 1.0], id="slow-burst-2"),
    ],
)
def test_gcra_back_to_back(rate: float, burst: int, waits: list[float]) -> None:
    """Requests at the same instant get a burst free, then one slot every 1/rate."""
    limiter = RateLimiter(rate, burst=burst, clock=FakeClock())
    assert [limiter.reserve(0.0) for _ in waits] == pytest.approx(waits)


def test_gcra_spaced_arrivals_never_wait() -> None:
    """Arrivals already spaced 1/rate apart are never delayed."""
    limiter = RateLimiter(10.0, clock=FakeClock())
    assert [limiter.reserve(t / 10) for t in range(20)] == pytest.approx([0.0] * 20, abs=1e-9)


def test_gcra_idle_restores_burst() -> None:
    """After an idle spell the full burst is available again, and no more than it."""
    limiter = RateLimiter(10.0, burst=3, clock=FakeClock())
    for _ in range(10):
        limiter.reserve(0.0)
    assert [limiter.reserve(100.0) for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.1])


def test_gcra_long_run_rate() -> None:
    """Over many back-to-back requests the average rate is the configured one."""
    limiter = RateLimiter(50.0, burst=5, clock=FakeClock())
    waits = [limiter.reserve(0.0) for _ in range(105)]
    assert waits[-1] == pytest.approx(100 / 50.0)


@pytest.mark.parametrize(
    "kwargs",
    [pytest.param({"rate": 0.0}, id="zero-rate"), pytest.param({"rate": 1.0, "burst": 0}, id="b0")],
)
def test_gcra_rejects_nonsense(kwargs: dict[str, float]) -> None:
    """A rate limiter that could never admit anything is refused."""
    with pytest.raises(ValueError, match=r"."):
        RateLimiter(**kwargs)  # type: ignore[arg-type]


async def test_gcra_acquire_spaces_real_requests() -> None:
    """acquire() actually sleeps: 11 acquisitions at 500/s take at least 20 ms."""
    limiter = RateLimiter(500.0)
    start = anyio.current_time()
    for _ in range(11):
        await limiter.acquire()
    assert anyio.current_time() - start >= 0.019


# -- AdaptiveLimit (AIMD) ---------------------------------------------------------------


def test_aimd_halves_once_per_cooldown() -> None:
    """A burst of 429s halves the limit once; after the cooldown the next one halves again."""
    clock = FakeClock()
    limit = AdaptiveLimit(16, clock=clock)
    for _ in range(10):
        limit.congested(cooldown=1.0)
    assert limit.limit == 8
    clock.now = 0.99
    limit.congested(cooldown=1.0)
    assert limit.limit == 8
    clock.now = 1.0
    limit.congested(cooldown=1.0)
    assert limit.limit == 4


def test_aimd_never_below_minimum() -> None:
    """Repeated congestion stops at the minimum."""
    clock = FakeClock()
    limit = AdaptiveLimit(16, minimum=3, clock=clock)
    for step in range(20):
        clock.now = float(step * 10)
        limit.congested()
    assert limit.limit == 3


def test_aimd_returns_fast_then_grows_additively() -> None:
    """After a decrease the limit returns one slot per success to 90% of where congestion
    struck, then grows by about one slot per window of successes, up to its maximum."""
    limit = AdaptiveLimit(32, clock=FakeClock())
    limit.congested()
    assert limit.limit == 16
    for _ in range(13):
        limit.succeeded()
    assert limit.limit == 29  # 16 + 13: fast return to 0.9 * 32 = 28.8
    for _ in range(20):
        limit.succeeded()
    assert limit.limit == 29  # past it, ~1/limit per success: one slot per window
    for _ in range(10):
        limit.succeeded()
    assert limit.limit == 30
    for _ in range(500):
        limit.succeeded()
    assert limit.limit == 32


async def test_aimd_holders_never_exceed_limit() -> None:
    """Many concurrent acquirers never hold more slots than the limit, and do reach it."""
    limit = AdaptiveLimit(5)
    holding = 0
    peak = 0

    async def worker() -> None:
        nonlocal holding, peak
        await limit.acquire()
        try:
            holding += 1
            peak = max(peak, holding)
            assert holding <= limit.limit
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
        finally:
            holding -= 1
            limit.release()

    async with anyio.create_task_group() as group:
        for _ in range(60):
            group.start_soon(worker)
    assert peak == 5
    assert limit.peak_in_use == 5
    assert limit.in_use == 0


async def test_aimd_congestion_shrinks_admissions() -> None:
    """After a halving, new holders are admitted only up to the smaller limit."""
    limit = AdaptiveLimit(8)
    limit.congested()
    holding = 0
    peak = 0

    async def worker() -> None:
        nonlocal holding, peak
        await limit.acquire()
        try:
            holding += 1
            peak = max(peak, holding)
            await anyio.sleep(0.001)
        finally:
            holding -= 1
            limit.release()

    async with anyio.create_task_group() as group:
        for _ in range(30):
            group.start_soon(worker)
    assert peak == 4


async def test_aimd_growth_wakes_waiters() -> None:
    """A success that raises the limit lets a waiter in without anyone releasing."""
    limit = AdaptiveLimit(2, clock=FakeClock())
    limit.congested()
    await limit.acquire()
    entered = anyio.Event()

    async def waiter() -> None:
        await limit.acquire()
        entered.set()

    async with anyio.create_task_group() as group:
        group.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert not entered.is_set()
        limit.succeeded()  # 1 -> 2
        with anyio.fail_after(1):
            await entered.wait()
    assert limit.in_use == 2


async def test_aimd_cancelled_waiter_does_not_leak() -> None:
    """A waiter cancelled before it got a slot leaves in_use untouched and the queue clean."""
    limit = AdaptiveLimit(1)
    await limit.acquire()
    async with anyio.create_task_group() as group:
        with anyio.CancelScope() as scope:
            group.start_soon(limit.acquire)  # will wait forever
            await anyio.wait_all_tasks_blocked()
            group.cancel_scope.cancel()
        assert not scope.cancelled_caught
    assert limit.in_use == 1
    limit.release()
    assert limit.in_use == 0
    with anyio.fail_after(1):
        await limit.acquire()
    assert limit.in_use == 1


async def test_aimd_woken_then_cancelled_hands_slot_on() -> None:
    """A waiter woken and cancelled in the same breath gives its slot back."""
    limit = AdaptiveLimit(1)
    await limit.acquire()

    async def waiter() -> None:
        await limit.acquire()
        try:
            await anyio.sleep_forever()
        finally:
            limit.release()

    async with anyio.create_task_group() as group:
        group.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        limit.release()  # wakes the waiter, slot passed to it
        group.cancel_scope.cancel()  # ... which is cancelled before it runs
    assert limit.in_use == 0


async def test_aimd_cancelled_on_fast_path_does_not_leak() -> None:
    """Acquiring inside an already-cancelled scope takes no slot."""
    limit = AdaptiveLimit(2)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await limit.acquire()
        limit.release()  # not reached
    assert limit.in_use == 0


# -- PauseGate --------------------------------------------------------------------------


async def test_gate_open_returns_at_once() -> None:
    """An unpaused gate does not wait."""
    gate = PauseGate()
    with anyio.fail_after(0.5):
        await gate.wait()


async def test_gate_holds_for_the_pause() -> None:
    """A paused gate holds callers until the pause ends."""
    gate = PauseGate()
    start = anyio.current_time()
    gate.pause(0.03)
    await gate.wait()
    assert anyio.current_time() - start >= 0.03


async def test_gate_longer_pause_extends_waiters() -> None:
    """A pause set while callers wait pushes their end further; a shorter one does not."""
    gate = PauseGate()
    start = anyio.current_time()
    gate.pause(0.01)
    released: list[float] = []

    async def waiter() -> None:
        await gate.wait()
        released.append(anyio.current_time() - start)

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(waiter)
        await anyio.sleep(0.002)
        gate.pause(0.04)
        gate.pause(0.001)
    assert len(released) == 3
    assert min(released) >= 0.04


def test_gate_with_fake_clock() -> None:
    """A shorter pause never cuts a longer one short; the end is measured on the given clock."""
    clock = FakeClock(100.0)
    gate = PauseGate(clock=clock)
    gate.pause(5.0)
    gate.pause(2.0)
    assert gate._until == 105.0
