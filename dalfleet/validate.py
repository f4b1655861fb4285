"""Argument checks shared by every front end (one concept, one place)."""

from __future__ import annotations

import re

from dalfleet.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_MAX_COUNT",
    "MAX_TASK_BYTES",
    "NAME_PATTERN",
    "show_value",
    "validate_agent_id",
    "validate_count",
    "validate_name",
    "validate_size",
    "validate_task",
    "validate_text",
]

DEFAULT_MAX_COUNT = 1000
# Tasks travel in env vars, CLI arguments and manifests; 64 KiB is generous for a
# task description and keeps every one of those places working.
MAX_TASK_BYTES = 64 * 1024
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def show_value(value: object, limit: int = 70) -> str:
    """``'value'`` for messages: one line, quoted, shortened when long.

    Never raises for strings; for other values, only what their ``repr`` raises.
    """
    if not isinstance(value, str):
        return repr(value)
    text = value if len(value) <= limit else value[: limit - 1] + "…"
    if not text.isprintable() or "'" in text:
        return repr(text)
    return f"'{text}'"


def validate_text(value: str, what: str) -> str:
    """Check that ``value`` can be stored as UTF-8 (no lone surrogates, which Python
    makes of undecodable command-line bytes).

    Raises:
        InvalidArgumentError: the text is not valid Unicode.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(
            f"{what} {show_value(value.encode('utf-8', 'backslashreplace').decode('ascii'))} "
            "is not valid UTF-8 text"
        ) from None
    return value


def validate_name(name: object) -> str:
    """Check a new fleet name: 1–63 characters ``[A-Za-z0-9][A-Za-z0-9._-]*``.

    Raises:
        InvalidArgumentError: the name is not a string or breaks the rule.
    """
    if not isinstance(name, str):
        raise InvalidArgumentError(f"fleet name must be a string, not {type(name).__name__}")
    if not NAME_PATTERN.fullmatch(name):
        why = (
            "it is empty"
            if not name
            else (
                f"it is {len(name)} characters long"
                if len(name) > 63
                else "it has a character not allowed"
            )
        )
        raise InvalidArgumentError(
            f"invalid fleet name {show_value(name)} ({why}): use 1-63 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    return name


def _as_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{what} must be a whole number, not {show_value(value)}")
    return value


def validate_count(count: object, max_count: int = DEFAULT_MAX_COUNT) -> int:
    """Check a number of agents to spawn: ``1 <= count <= max_count``.

    Raises:
        InvalidArgumentError: not an int, below 1, or above the cap.
    """
    n = _as_int(count, "count")
    if n < 1:
        raise InvalidArgumentError(f"count must be >= 1 (got {n})")
    if n > max_count:
        raise InvalidArgumentError(f"count {n} is too large: fleet size is capped at {max_count}")
    return n


def validate_size(size: object, max_count: int = DEFAULT_MAX_COUNT) -> int:
    """Check a scale target: ``0 <= size <= max_count``.

    Raises:
        InvalidArgumentError: not an int, negative, or above the cap.
    """
    n = _as_int(size, "scale size")
    if n < 0:
        raise InvalidArgumentError(f"scale size must be >= 0 (got {n})")
    if n > max_count:
        raise InvalidArgumentError(
            f"scale size {n} is too large: fleet size is capped at {max_count}"
        )
    return n


def validate_task(task: object) -> str:
    """Check a task for ``deploy`` and return it stripped.

    Raises:
        InvalidArgumentError: not a string, blank (``deploy task cannot be empty``),
            or longer than :data:`MAX_TASK_BYTES` in UTF-8.
    """
    if not isinstance(task, str):
        raise InvalidArgumentError(f"deploy task must be a string, not {type(task).__name__}")
    text = validate_text(task.strip(), "deploy task")
    if not text:
        raise InvalidArgumentError("deploy task cannot be empty")
    size = len(text.encode("utf-8"))
    if size > MAX_TASK_BYTES:
        raise InvalidArgumentError(
            f"deploy task is too long: {size} bytes (the limit is {MAX_TASK_BYTES})"
        )
    return text


def validate_agent_id(agent_id: object) -> str:
    """Check an agent ID for ``add_member`` and return it stripped.

    Raises:
        InvalidArgumentError: not a string, blank, or containing control characters.
    """
    if not isinstance(agent_id, str):
        raise InvalidArgumentError(f"agent id must be a string, not {type(agent_id).__name__}")
    text = validate_text(agent_id.strip(), "agent id")
    if not text:
        raise InvalidArgumentError("agent id cannot be empty")
    if _CONTROL.search(text) or len(text) > 256:
        raise InvalidArgumentError(
            f"invalid agent id {show_value(text)}: use at most 256 printable characters"
        )
    return text
