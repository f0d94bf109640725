"""An API key that cannot leak by accident: its repr and str are redacted."""

from __future__ import annotations

__all__ = ["Secret"]


class Secret:
    """Holds a secret string; only :meth:`reveal` gives it back.

    Args:
        value: the secret.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one header that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not picklable")
