"""The DAL namespace binding: the fleet functions as a DAL runtime sees them.

Arities, return values and errors are the reference runtime's
(``call_fleet_function``): ``create``, ``create_from_mold`` (3 or 4 arguments),
``add_from_mold`` (3 or 4), ``add_member``, ``deploy`` and ``scale`` return
``True``; ``list`` the names; ``show`` a map (an absent fleet is an error);
``health`` a map; ``delete`` a bool. **[beyond]** ``run`` (0 or 1 argument)
returns ``True`` and ``export`` (0 to 2) the YAML text; the reference has neither.
Values in and out are plain Python (str, int, float, bool, None, list, dict),
converted as the reference converts DAL values.
"""

from __future__ import annotations

import decimal
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dalfleet import fleet as _fleet
from dalfleet.client import Client
from dalfleet.convert import fleet_map, health_map
from dalfleet.errors import (
    ArgumentCountError,
    InvalidArgumentError,
    UnknownFunctionError,
    fleet_not_found,
    quote,
)

__all__ = ["FUNCTIONS", "call", "fleet_map", "health_map"]

Value = Any

_I64 = (-(2**63), 2**63 - 1)
_INT_TEXT = re.compile(r"[+-]?[0-9]+", re.ASCII)


def _text(value: Value) -> str:
    """A DAL value as a string, as the reference's ``value_to_string``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if value is None:
        return "null"
    raise InvalidArgumentError(f"cannot convert {type(value).__name__} to a string")


def _float_text(value: float) -> str:
    # Rust prints floats without a trailing ".0" and without an exponent.
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    # The shortest digits that read back the same (as Rust), written out positionally.
    text = format(decimal.Decimal(repr(value)), "f")
    return text[:-2] if text.endswith(".0") else text


def _int(value: Value) -> int:
    """A DAL value as a whole number, as the reference's ``value_to_int``."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        # Rust's `as i64`: truncation toward zero, NaN is 0, out of range saturates.
        if math.isnan(value):
            return 0
        return max(_I64[0], min(_I64[1], int(value) if math.isfinite(value) else _I64[value > 0]))
    if isinstance(value, str):
        if _INT_TEXT.fullmatch(value) and _I64[0] <= int(value) <= _I64[1]:
            return int(value)
        raise InvalidArgumentError(f"cannot convert string {quote(value)} to a whole number")
    raise InvalidArgumentError(f"cannot convert {type(value).__name__} to a whole number")


def _params(args: Sequence[Value]) -> Mapping[str, object] | Sequence[str] | None:
    """The optional 4th argument: a map keeps its string values (as the reference); other
    values are ignored, except **[beyond]** a list of ``"k=v"`` strings."""
    if len(args) < 4:
        return None
    value = args[3]
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items() if isinstance(v, str)}
    if isinstance(value, list):
        return value
    return None


def _show(client: Client, args: Sequence[Value]) -> dict[str, Value]:
    name = _text(args[0])
    found = client.show(name)
    if found is None:
        raise fleet_not_found(name)
    return fleet_map(found)


def _health(client: Client, args: Sequence[Value]) -> dict[str, Value]:
    return {k: v for k, v in health_map(client.health(_text(args[0]))).items() if v is not None}


def _run(client: Client, args: Sequence[Value]) -> bool:
    client.run(_text(args[0]) if args else None)
    return True


def _export(client: Client, args: Sequence[Value]) -> str:
    name = _text(args[0]) if args and args[0] is not None else None
    return client.export(name, _text(args[1]) if len(args) > 1 else "k8s")


# name -> (min args, max args, implementation taking a client and the args)
_Impl = Callable[[Client, Sequence[Value]], Value]
FUNCTIONS: dict[str, tuple[int, int, _Impl]] = {
    "create": (1, 1, lambda c, a: bool(c.create(_text(a[0])))),
    "create_from_mold": (
        3,
        4,
        lambda c, a: bool(c.create_from_mold(_text(a[0]), _text(a[1]), _int(a[2]), _params(a))),
    ),
    "list": (0, 0, lambda c, a: c.list()),
    "show": (1, 1, _show),
    "scale": (2, 2, lambda c, a: bool(c.scale(_text(a[0]), _int(a[1])))),
    "delete": (1, 1, lambda c, a: c.delete(_text(a[0]))),
    "deploy": (2, 2, lambda c, a: bool(c.deploy(_text(a[0]), _text(a[1])))),
    "add_from_mold": (
        3,
        4,
        lambda c, a: bool(c.add_from_mold(_text(a[0]), _text(a[1]), _int(a[2]), _params(a))),
    ),
    "add_member": (2, 2, lambda c, a: bool(c.add_member(_text(a[0]), _text(a[1])))),
    "health": (1, 1, _health),
    "run": (0, 1, _run),
    "export": (0, 2, _export),
}


def call(
    function: str,
    args: Sequence[Value] = (),
    client: Client | None = None,
    *,
    base: str | os.PathLike[str] | None = None,
) -> Value:
    """Call ``fleet::FUNCTION`` with DAL values.

    The context is ``client`` if given, else the project directory ``base`` if
    given, else the current default context (as ``base=None`` in :mod:`dalfleet.fleet`).

    Raises:
        UnknownFunctionError: no such function in the fleet namespace.
        ArgumentCountError: wrong number of arguments.
        InvalidArgumentError: an argument cannot be converted (a list where a string
            is expected, text that is not a whole number where a count is).
        FleetNotFoundError: ``show`` (and the others) of a fleet that does not exist.
        FleetError: whatever the underlying operation raises.
    """
    short = function.removeprefix("fleet::")
    entry = FUNCTIONS.get(short)
    if entry is None:
        known = ", ".join(f"fleet::{n}" for n in FUNCTIONS)
        raise UnknownFunctionError(f"unknown function {quote(function)} (known: {known})")
    low, high, impl = entry
    if not low <= len(args) <= high:
        want = (
            str(low)
            if low == high
            else f"{low} or {high}"
            if high == low + 1
            else f"{low} to {high}"
        )
        raise ArgumentCountError(
            f"argument count mismatch: fleet::{short} expects {want} "
            f"argument{'s' if high != 1 else ''}, got {len(args)}"
        )
    if client is not None:
        return impl(client, list(args))
    if base is not None:
        with Client.for_base(base) as scoped:
            return impl(scoped, list(args))
    chosen = _fleet._scoped.get() or _fleet._configured
    if chosen is not None:
        return impl(chosen, list(args))
    with Client.for_base(None) as fresh:
        return impl(fresh, list(args))
