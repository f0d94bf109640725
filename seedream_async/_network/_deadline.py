"""A deadline as a plain context manager: ``with Within(seconds):`` raises ``TimeoutError``.

``anyio.fail_after`` does the same inside a generator-based context manager; every request
enters two or three of these (connect, send, each read, the whole exchange), and the
generator's overhead showed in the client's CPU profile.
"""

from __future__ import annotations

from types import TracebackType

import anyio

__all__ = ["Within"]


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
        if scope is None:
            return
        scope.__exit__(exc_type, exc, tb)
        # Only its deadline cancels this scope: catching its own cancellation means time ran out.
        if scope.cancelled_caught:
            raise TimeoutError
