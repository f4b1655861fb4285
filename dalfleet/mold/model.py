"""The parsed form of a mold, and the value rules shared by the parsers.

A :class:`Mold` is plain data: lifecycle hooks are kept as strings and are never
evaluated by dalfleet.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from dalfleet.errors import MoldError, quote

__all__ = [
    "AGENT_TYPES",
    "LIFECYCLE_HOOKS",
    "MAX_MOLD_SIZE",
    "RUST_WHITESPACE",
    "Mold",
    "agent_type_of",
    "memory_limit_bytes",
    "memory_problem",
    "normalize_agent_type",
    "reference_memory_bytes",
]

#: Largest mold accepted, in characters of text (or bytes of a file): 1 MiB.
MAX_MOLD_SIZE = 1024 * 1024

#: Built-in agent types, by lowercase spelling; ``custom:<name>`` is also valid.
AGENT_TYPES: dict[str, str] = {"ai": "AI", "system": "System", "worker": "Worker", "ide": "IDE"}

#: Lifecycle hook names, in the order the format documents them.
LIFECYCLE_HOOKS: tuple[str, ...] = ("on_create", "on_message", "on_evolve", "on_destroy")

_CUSTOM_PREFIX = "custom:"
#: The characters Rust's ``str::trim`` removes (Unicode ``White_Space``), which the
#: reference trims from lines and values. Python's ``str.strip`` also removes
#: U+001C..U+001F, which the reference keeps.
RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

# ASCII digits only: int() would also accept other scripts' digits; 18 digits keep int() cheap.
_MEMORY_RE = re.compile(r"\s*([0-9]{1,18})\s*([KMG](?:I?B)?|B)?\s*", re.IGNORECASE | re.ASCII)
_MEMORY_UNITS: dict[str, int] = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


@attrs.frozen
class Mold:
    """A template for agents, as read from a ``*.mold.dal`` (or legacy ``*.mold.json``) file.

    Fields hold what the reference implementation reads, as written: ``agent_type``
    is the type string of the mold (``Worker``, ``custom:MyBot``, or what a legacy
    JSON mold says, ``""`` when it says nothing); it is checked when agents are made
    (:func:`agent_type_of`). ``trust_level`` is shown to users only: an agent's trust
    always comes from the principal (the coordinator's setting), never from a mold.
    ``lifecycle`` maps ``on_create`` / ``on_message`` / ``on_evolve`` / ``on_destroy``
    to hook text, which is data handed to the coordinator and never evaluated.
    ``warnings`` lists what the reference would silently ignore (unknown keywords,
    repeated keys …), one message each.
    """

    name: str
    version: str = "1.0"
    agent_type: str = "AI"
    role: str = ""
    capabilities: list[str] = attrs.field(factory=list)
    skills: list[str] = attrs.field(factory=list)
    memory_limit: str | None = None
    learning: bool = False
    communication: bool = False
    coordination: bool = False
    trust_level: str | None = None
    parameters: dict[str, Any] = attrs.field(factory=dict)
    metadata: dict[str, Any] = attrs.field(factory=dict)
    lifecycle: dict[str, str] = attrs.field(factory=dict)
    path: str | None = None
    dependencies: list[str] = attrs.field(factory=list)
    warnings: tuple[str, ...] = ()


def normalize_agent_type(value: str) -> str | None:
    """Return the canonical spelling of an agent type, or None if it is not one.

    As the reference: the value is trimmed and matched case-insensitively against
    ``ai``, ``system``, ``worker``, ``ide``; anything starting ``custom:`` is a custom
    type, whose name is kept as written here (the reference lowercases it).
    Never raises.
    """
    text = value.strip(RUST_WHITESPACE)
    lowered = text.lower()
    if lowered in AGENT_TYPES:
        return AGENT_TYPES[lowered]
    if lowered.startswith(_CUSTOM_PREFIX):
        return _CUSTOM_PREFIX + text[len(_CUSTOM_PREFIX) :]
    return None


def agent_type_of(mold: Mold) -> str:
    """The canonical agent type of ``mold`` (``AI``, ``System``, ``Worker``, ``IDE``, ``custom:X``).

    Raises:
        MoldError: ``unknown agent type in mold: X``, the reference's message, when the
            mold's type is none of those (also an empty type from a legacy JSON mold).
    """
    agent_type = normalize_agent_type(mold.agent_type)
    if agent_type is None:
        where = f" ({mold.path})" if mold.path else ""
        raise MoldError(f"unknown agent type in mold: {_excerpt(mold.agent_type)}{where}")
    return agent_type


def memory_limit_bytes(value: str) -> int:
    """Convert a mold memory limit such as ``"256MB"`` to a number of bytes.

    Units are binary and case-insensitive: ``KB``/``K``/``KiB`` (1024), ``MB``/``M``/
    ``MiB`` (1024**2), ``GB``/``G``/``GiB`` (1024**3); a plain number (or ``B``
    suffix) is bytes. Whitespace between number and unit is allowed.

    Raises:
        MoldError: the value is not of that form, or is zero.
    """
    match = _MEMORY_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise MoldError(
            f"invalid memory_limit {quote(str(value), limit=60)}: expected a whole number with an "
            "optional unit KB, MB or GB (e.g. '256MB')"
        )
    number = int(match.group(1))
    if number == 0:
        raise MoldError(f"invalid memory_limit {quote(value, limit=60)}: must be greater than zero")
    unit = (match.group(2) or "").upper()[:1]
    return number * _MEMORY_UNITS[unit]


def reference_memory_bytes(value: str) -> int | None:
    """How many bytes the reference reads ``value`` as (None: empty, its default).

    The reference strips a trailing ``GB`` / ``MB`` / ``KB`` (any case) and reads the
    rest as a whole number, or as 2 when it cannot: ``"256M"`` and ``"lots"`` are 2
    bytes there (0 pages). Never raises.
    """
    text = value.strip(RUST_WHITESPACE).upper()
    if not text:
        return None
    number, unit = text, 1
    for suffix, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if text.endswith(suffix):
            number, unit = text, size
            while number.endswith(suffix):
                number = number[: -len(suffix)]
            break
    digits = number.strip(RUST_WHITESPACE).removeprefix("+")
    amount = int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 20 else 2
    return amount * unit


def memory_problem(value: str) -> str | None:
    """Why ``value`` is a poor memory limit, or None when both tools read it the same.

    Never raises.
    """
    try:
        size = memory_limit_bytes(value)
    except MoldError as exc:
        return f"{exc.message}; it is kept as written, and no memory limit is exported"
    if reference_memory_bytes(value) != size:
        return (
            f"memory_limit {quote(_excerpt(value.strip()))} means {size} bytes here, but the "
            "reference cannot read it (use KB, MB or GB, e.g. '256MB')"
        )
    return None


def _excerpt(text: str, limit: int = 60) -> str:
    """Shorten ``text`` for an error message, so a huge input gives a readable error."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
