"""The commands of ``seedream-async``, one module each, each with ``register(subparsers)``
(the parser of its command, whose ``handler`` default runs it). ``cli/__init__.py`` only
assembles them, in the order ``--help`` lists them."""

from __future__ import annotations

from . import demo, load, review, run, simulate, status, validate, work

__all__ = ["COMMANDS"]

COMMANDS = (run, validate, status, review, demo, simulate, load, work)
