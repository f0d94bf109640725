"""A deadline as a plain context manager: ``with Within(seconds):`` raises ``TimeoutError``.

``anyio.fail_after`` does the same inside a generator-based context manager; every request
enters two or three of these (connect, send, each read, the whole exchange), and the
generator's overhead showed in the client's CPU profile.
"""

from __future__ import annotations

import math
from types import TracebackType

import anyio

from .._base._clock import loop_clock

__all__ = ["Steps", "Within"]

# A step's deadline later than the current one by at most this share of its timeout
# leaves the current one (see Steps).
_KEPT_WITHIN = 0.01


class Within:
    """``anyio.fail_after(seconds)`` (``None``: no limit) as a plain class."""

    __slots__ = ("_scope",)

    def __init__(self, seconds: float | None) -> None:
        self._scope = (
            None if seconds is None else anyio.CancelScope(deadline=anyio.current_time() + seconds)
        )

    def __enter__(self) -> None:
        if self._scope is not None:
            self._scope.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        scope = self._scope
        if scope is not None and _left(scope, exc_type, exc, tb):
            raise TimeoutError


def _left(
    scope: anyio.CancelScope,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> bool:
    """Exit ``scope``; True when its deadline ran out (only its deadline cancels it, so
    catching its own cancellation means time ran out)."""
    scope.__exit__(exc_type, exc, tb)
    return scope.cancelled_caught


class Steps:
    """One cancel scope for a whole exchange, its deadline the nearer of an overall one
    (``seconds`` from now, or none) and the timeout of the step running now.

    A request sends, then reads once or twice: a scope per step (``Within``) enters,
    schedules a timer, cancels it and exits three or four times a request. This one is
    entered once, and each step only moves its deadline. Whoever owns it enters it, the
    steps call :meth:`step`, and on a timeout the owner's ``with`` raises
    ``TimeoutError``; :attr:`name` (the step that ran) and :attr:`overall` (the overall
    deadline had passed) say which limit it was, :attr:`expired` that it was this one.

    Moving a deadline cancels a timer and schedules another, so it moves only when it
    must: none is set until the first step (a step that may wait, for a free connection
    or to connect, takes ``seconds=None``: the overall deadline), and a step whose
    deadline falls later than the current one by at most 1% of its timeout keeps the
    current one. A request's read step, right after its send, then costs nothing; a
    step may end that much early, never late.
    """

    __slots__ = ("_now", "_scope", "_until", "expired", "limit", "name", "seconds")

    def __init__(self, seconds: float | None) -> None:
        self._now = loop_clock()
        self.limit = seconds
        """The overall deadline, in seconds from the start (None: none)."""
        self._until = math.inf if seconds is None else self._now() + seconds
        self._scope = anyio.CancelScope()
        self.name = ""
        self.seconds: float | None = None
        self.expired = False
        """Its deadline ended the exchange (its ``with`` raised ``TimeoutError``)."""

    @property
    def overall(self) -> bool:
        """The overall deadline has passed."""
        return self._now() >= self._until

    def step(self, name: str, seconds: float | None) -> None:
        """Start step ``name``, which may take ``seconds`` (None: up to the overall
        deadline)."""
        self.name, self.seconds = name, seconds
        deadline = self._until if seconds is None else min(self._until, self._now() + seconds)
        current = self._scope.deadline
        if deadline < current or deadline > current + _KEPT_WITHIN * (seconds or 0.0):
            self._scope.deadline = deadline

    def __enter__(self) -> Steps:
        self._scope.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if _left(self._scope, exc_type, exc, tb):
            self.expired = True
            raise TimeoutError
