"""A stop that keeps what it paid for, and a fatal account error that stops every submit.

When a batch is stopped (``break``, Ctrl-C or SIGTERM in the CLI, a cancelled scope),
nothing new is submitted, but a submit already on the wire may have been billed: its
answer carries the prediction id a resume needs. So every submit runs inside a *shielded*
cancel scope (a :class:`Wire`); on a stop, a wire still waiting for its turn is cancelled
at once, and one whose POST has left gets ``grace`` seconds (a deadline on its shielded
scope) to return its id, which is journaled. Past the grace the item is ambiguous.

A 401/403 (key wrong or revoked) or 402 (balance exhausted) answer to any request means
no submit of this batch can succeed: :meth:`StopControl.fatal` records the first one, and
every later submit is refused locally before it is sent.
"""

from __future__ import annotations

import logging

import anyio

from .._base._exceptions import APIStatusError

__all__ = ["StopControl", "Wire"]

logger = logging.getLogger("seedream_async")


class Wire:
    """One submit's shielded scope, and whether its POST may have left yet."""

    def __init__(self) -> None:
        self.scope = anyio.CancelScope(shield=True)
        self.sending = False
        self.cut = False  # cancelled by a stop before its POST could leave


class StopControl:
    """The batch's stop state, shared by the engine and the submitter.

    Args:
        grace: seconds a submit on the wire gets to return its id after a stop.
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.stopping = False
        self.account_error: APIStatusError | None = None
        self._wires: set[Wire] = set()

    def open(self) -> Wire:
        """A new wire, registered so that a stop reaches it; :meth:`close` it after."""
        wire = Wire()
        self._wires.add(wire)
        if self.stopping:
            wire.cut = True
            wire.scope.cancel()
        return wire

    def close(self, wire: Wire) -> None:
        """Forget ``wire`` (its submit is over)."""
        self._wires.discard(wire)

    def stop(self) -> None:
        """Nothing new is sent; submits on the wire get ``grace`` seconds for their ids."""
        self.stopping = True
        deadline = anyio.current_time() + self.grace
        for wire in self._wires:
            if wire.sending:
                wire.scope.deadline = min(wire.scope.deadline, deadline)
            else:
                wire.cut = True
                wire.scope.cancel()

    def hurry(self) -> None:
        """Stop now: submits on the wire get no more time (asked twice, say)."""
        self.grace = 0.0
        self.stop()

    def fatal(self, err: APIStatusError) -> None:
        """Record a fatal account error (the first one is logged, once)."""
        if self.account_error is None:
            self.account_error = err
            logger.error(
                "%s: no new submits for the rest of this batch; predictions already paid "
                "for are still polled. Fix the account, then run the batch again: it fetches "
                "them by id and submits the rest.",
                err,
            )

    def refused(self) -> APIStatusError | None:
        """The error a new submit gets locally, after a fatal account error (or None)."""
        err = self.account_error
        if err is None:
            return None
        return type(err)(
            f"not submitted: an earlier request of this batch failed with {err}",
            status_code=err.status_code,
            server_message=err.server_message,
        )
