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
    "Mold",
    "memory_limit_bytes",
    "normalize_agent_type",
]

#: Largest mold accepted, in characters of text (or bytes of a file): 1 MiB.
MAX_MOLD_SIZE = 1024 * 1024

#: Built-in agent types, by lowercase spelling; ``custom:<name>`` is also valid.
AGENT_TYPES: dict[str, str] = {"ai": "AI", "system": "System", "worker": "Worker", "ide": "IDE"}

#: Lifecycle hook names, in the order the format documents them.
LIFECYCLE_HOOKS: tuple[str, ...] = ("on_create", "on_message", "on_evolve", "on_destroy")

_CUSTOM_PREFIX = "custom:"

# ASCII digits only: int() would also accept other scripts' digits; 18 digits keep int() cheap.
_MEMORY_RE = re.compile(r"\s*([0-9]{1,18})\s*([KMG](?:I?B)?|B)?\s*", re.IGNORECASE | re.ASCII)
_MEMORY_UNITS: dict[str, int] = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


@attrs.frozen
class Mold:
    """A template for agents, as read from a ``*.mold.dal`` (or legacy ``*.mold.json``) file.

    ``agent_type`` is normalized (``AI``, ``System``, ``Worker``, ``IDE`` or
    ``custom:<name>``). ``trust_level`` is shown to users only: an agent's trust
    always comes from the principal (the coordinator's setting), never from a mold.
    ``lifecycle`` maps ``on_create`` / ``on_message`` / ``on_evolve`` / ``on_destroy``
    to hook text, which is data handed to the coordinator and never evaluated.
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


def normalize_agent_type(value: str) -> str | None:
    """Return the canonical spelling of an agent type, or None if it is not one.

    Built-in types match case-insensitively; ``custom:<name>`` keeps ``<name>`` as
    written (trimmed) and needs it to be non-empty. Never raises.
    """
    text = value.strip()
    lowered = text.lower()
    if lowered in AGENT_TYPES:
        return AGENT_TYPES[lowered]
    if lowered.startswith(_CUSTOM_PREFIX):
        custom = text[len(_CUSTOM_PREFIX) :].strip()
        if custom:
            return _CUSTOM_PREFIX + custom
    return None


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


def _excerpt(text: str, limit: int = 60) -> str:
    """Shorten ``text`` for an error message, so a huge input gives a readable error."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
