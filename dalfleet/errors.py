"""One exception hierarchy for everything dalfleet raises.

Every error is a :class:`FleetError`; the specific classes also subclass the
builtin that fits (``LookupError`` for "not found", ``ValueError`` for bad
arguments, ``OSError`` for the store), so callers can catch either.
"""

from __future__ import annotations

__all__ = [
    "ArgumentCountError",
    "CoordinatorError",
    "CorruptStoreError",
    "DispatchError",
    "FleetError",
    "FleetExistsError",
    "FleetNotFoundError",
    "HandlerError",
    "InvalidArgumentError",
    "MoldError",
    "MoldNotFoundError",
    "StoreError",
    "UnknownFunctionError",
]


class FleetError(Exception):
    """Base class of every error raised by dalfleet."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class FleetNotFoundError(FleetError, LookupError):
    """A named fleet does not exist."""


class FleetExistsError(FleetError, ValueError):
    """A fleet with that name already exists."""


class InvalidArgumentError(FleetError, ValueError):
    """An argument (name, count, task, param, format …) is not valid."""


class ArgumentCountError(InvalidArgumentError, TypeError):
    """A DAL namespace function was called with the wrong number of arguments."""


class UnknownFunctionError(FleetError, LookupError):
    """A DAL namespace function does not exist."""


class MoldError(FleetError, ValueError):
    """A mold could not be parsed or rendered."""


class MoldNotFoundError(MoldError, LookupError):
    """A mold source did not resolve to a file."""


class StoreError(FleetError, OSError):
    """The fleet store could not be read or written."""

    def __init__(self, message: str) -> None:
        # OSError's own __init__ would treat two arguments as (errno, strerror).
        FleetError.__init__(self, message)


class CorruptStoreError(StoreError):
    """The fleet file exists but is not a valid fleet file; it is never overwritten."""


class CoordinatorError(FleetError, RuntimeError):
    """The coordinator (where agents live) failed."""


class DispatchError(CoordinatorError):
    """A task could not be dispatched."""


class HandlerError(InvalidArgumentError):
    """A task handler could not be loaded (bad ``module:function`` string)."""
