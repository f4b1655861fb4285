"""One exception hierarchy for everything dalfleet raises.

Every error is a :class:`FleetError`; the specific classes also subclass the
builtin that fits (``LookupError`` for "not found", ``ValueError`` for bad
arguments, ``OSError`` for the store), so callers can catch either.

:func:`quote` is the one way a value is shown inside a message.
"""

from __future__ import annotations

from collections.abc import Iterable

from dalfleet.defaults import QUOTE_LIMIT

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
    "MoldSourceError",
    "StoreError",
    "UnknownFunctionError",
    "closest_name",
    "fleet_exists",
    "fleet_not_found",
    "quote",
]


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """How a value appears in a message: ``'text'`` on one line.

    Strings are quoted; control characters, lone surrogates and quotes are
    escaped (as ``repr`` does), so nothing user-typed reaches a terminal as an
    escape sequence or forges a line. Values longer than ``limit`` characters are
    shortened with ``…``. Other values are shown by their ``repr``, escaped and
    shortened the same way.

    Never raises (a ``repr`` that raises gives ``<TYPE>``).
    """
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: max(limit - 1, 0)] + "…"
        if text.isprintable() and "'" not in text:
            return f"'{text}'"
        return repr(text)
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the error being reported
        return f"<{type(value).__name__}>"
    if not text.isprintable():
        text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


class FleetError(Exception):
    """Base class of every error raised by dalfleet."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class FleetNotFoundError(FleetError, LookupError):
    """A named fleet does not exist.

    ``suggestion`` is the existing fleet name closest to the one asked for (the
    message then ends with ``; did you mean 'NAME'?``), or None.
    """

    def __init__(self, message: str, *, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.suggestion = suggestion


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


class MoldSourceError(InvalidArgumentError, MoldError):
    """A mold source is blank or not a string or path (both a bad argument and a mold error)."""


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


def closest_name(name: str, known: Iterable[str]) -> str | None:
    """The name in ``known`` closest to ``name`` (a likely typo of it), or None when
    none is close or ``name`` is itself known. Never raises."""
    import difflib

    names = sorted(n for n in known if isinstance(n, str))
    if name in names:
        return None
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return close[0] if close else None


def fleet_not_found(name: str, known: Iterable[str] = ()) -> FleetNotFoundError:
    """The one ``fleet 'NAME' not found`` error (returned, not raised).

    With ``known`` (the fleet names that do exist), a close one is suggested:
    ``fleet 'wokers' not found; did you mean 'workers'?``, and set as the error's
    ``suggestion``. Never raises.
    """
    suggestion = closest_name(name, known)
    message = f"fleet {quote(name)} not found"
    if suggestion is not None:
        message += f"; did you mean {quote(suggestion)}?"
    return FleetNotFoundError(message, suggestion=suggestion)


def fleet_exists(name: str) -> FleetExistsError:
    """The one ``fleet 'NAME' already exists`` error (returned, not raised). Never raises."""
    return FleetExistsError(f"fleet {quote(name)} already exists")
