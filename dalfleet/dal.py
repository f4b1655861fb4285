"""The DAL namespace binding: the fleet functions as a DAL runtime sees them.

``call("fleet::create", ["w"])`` returns ``True``; ``list`` a list of names;
``show`` and ``health`` a map (``show`` of an absent fleet: ``None``);
``delete`` a bool; ``export`` the YAML text; every other function ``True``.
Values in and out are plain Python (str, int, bool, list, dict).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dalfleet import fleet as _fleet
from dalfleet.client import Client
from dalfleet.convert import fleet_map, health_map
from dalfleet.errors import ArgumentCountError, InvalidArgumentError, UnknownFunctionError, quote

__all__ = ["FUNCTIONS", "call", "fleet_map", "health_map"]

Value = Any


def _count(value: Value, what: str = "count") -> int:
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{what} must be a whole number, not {quote(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise InvalidArgumentError(f"{what} must be a whole number, not {quote(value)}")


def _params(value: Value) -> Mapping[str, object] | Sequence[str] | None:
    if value is None or isinstance(value, (dict, list)):
        return value
    raise InvalidArgumentError(
        f"params must be a map or a list of 'k=v' strings, not {quote(value)}"
    )


def _run(client: Client, args: Sequence[Value]) -> bool:
    client.run(args[0] if args else None)
    return True


# name -> (min args, max args, implementation taking a client and the args)
_Impl = Callable[[Client, Sequence[Value]], Value]
FUNCTIONS: dict[str, tuple[int, int, _Impl]] = {
    "create": (1, 1, lambda c, a: bool(c.create(a[0]))),
    "create_from_mold": (
        2,
        4,
        lambda c, a: bool(
            c.create_from_mold(
                a[0], a[1], _count(a[2]) if len(a) > 2 else 1, _params(a[3]) if len(a) > 3 else None
            )
        ),
    ),
    "add_from_mold": (
        3,
        4,
        lambda c, a: bool(
            c.add_from_mold(a[0], a[1], _count(a[2]), _params(a[3]) if len(a) > 3 else None)
        ),
    ),
    "add_member": (2, 2, lambda c, a: bool(c.add_member(a[0], a[1]))),
    "deploy": (2, 2, lambda c, a: bool(c.deploy(a[0], a[1]))),
    "list": (0, 0, lambda c, a: c.list()),
    "show": (1, 1, lambda c, a: (lambda f: fleet_map(f) if f else None)(c.show(a[0]))),
    "delete": (1, 1, lambda c, a: c.delete(a[0])),
    "scale": (2, 2, lambda c, a: bool(c.scale(a[0], _count(a[1], "scale size")))),
    "health": (1, 1, lambda c, a: health_map(c.health(a[0]))),
    "run": (0, 1, lambda c, a: _run(c, a)),
    "export": (0, 2, lambda c, a: c.export(a[0] if a else None, a[1] if len(a) > 1 else "k8s")),
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
        FleetError: whatever the underlying operation raises.
    """
    short = function.removeprefix("fleet::")
    entry = FUNCTIONS.get(short)
    if entry is None:
        known = ", ".join(f"fleet::{n}" for n in FUNCTIONS)
        raise UnknownFunctionError(f"unknown function '{function}' (known: {known})")
    low, high, impl = entry
    if not low <= len(args) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        raise ArgumentCountError(
            f"fleet::{short} takes {want} argument{'s' if high != 1 else ''}, got {len(args)}"
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
