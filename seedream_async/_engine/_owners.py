"""Run ids (claim owners) and whether a run on this machine is gone.

A claim names its owner as ``host:pid:hex``, so any journal can tell, without waiting for
a lease to run out, that a run on this same machine whose process no longer exists cannot
renew its claims: its items are taken over at once.
"""

from __future__ import annotations

import os
import socket

__all__ = ["DEFAULT_LEASE", "new_owner", "owner_gone"]

_HOST = socket.gethostname()

DEFAULT_LEASE = 30.0
"""Seconds a claim lasts without renewal; a run's heartbeat renews it every third of that."""


def new_owner() -> str:
    """A run id: host, process id and a random part (``host:pid:hex``)."""
    return f"{_HOST}:{os.getpid()}:{os.urandom(4).hex()}"


def owner_gone(owner: str | None) -> bool:
    """True when ``owner`` ran on this machine in a process that no longer exists."""
    if owner is None:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False
