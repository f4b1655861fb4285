"""Every input rule, once: fleet names, counts and the cap, texts and tasks, agent
IDs, params, mold sources, run options.

Each ``check_*`` function returns the value to use (stripped, normalized) or
raises :class:`~dalfleet.errors.InvalidArgumentError` with a message that names
the value (quoted with :func:`~dalfleet.errors.quote`) and says what would be valid.
The Python API, the CLI, the DAL binding and manifests all call these.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from dalfleet.defaults import MAX_AGENT_ID_CHARS, MAX_COUNT, MAX_NAME_CHARS, MAX_TASK_BYTES
from dalfleet.errors import InvalidArgumentError, MoldSourceError, quote

__all__ = [
    "NAME_PATTERN",
    "RESERVED_PARAMS",
    "check_agent_id",
    "check_base",
    "check_concurrency",
    "check_count",
    "check_existing_name",
    "check_mold_source",
    "check_name",
    "check_poll_interval",
    "check_revision",
    "check_size",
    "check_task",
    "check_text",
    "check_timeout",
    "parse_params",
]

NAME_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME_CHARS - 1}}}", re.ASCII)
#: Metadata keys that rendering a mold sets itself; a param may not replace them.
RESERVED_PARAMS: frozenset[str] = frozenset({"mold_name", "mold_version"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_KEY_CHARS = re.compile(r"[\s{}=]")


def check_text(value: str, what: str) -> str:
    """Check that ``value`` can be stored as UTF-8 (no lone surrogates, which Python
    makes of undecodable command-line bytes).

    Raises:
        InvalidArgumentError: the text is not valid Unicode.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"{what} {quote(value)} is not valid UTF-8 text") from None
    return value


def check_base(base: str | os.PathLike[str], *, must_exist: bool = True) -> Path:
    """``base`` (a project directory) as a path. The command line asks for an
    existing directory (a mistyped ``--base`` must not become a new project tree);
    the library accepts a directory still to be made (``must_exist=False``: it is
    created on the first write, as ``.dal/`` is), but never a file in its place.

    Raises:
        InvalidArgumentError: it is not a directory (or, with ``must_exist``, does
            not exist).
    """
    root = Path(base)
    if root.is_dir() or (not must_exist and not root.exists() and not root.is_symlink()):
        return root
    raise InvalidArgumentError(
        f"base directory {quote(os.fspath(base))} does not exist or is not a directory"
    )


def check_name(name: object) -> str:
    """Check a new fleet name: 1–63 characters ``[A-Za-z0-9][A-Za-z0-9._-]*``.

    Raises:
        InvalidArgumentError: the name is not a string or breaks the rule.
    """
    if not isinstance(name, str):
        raise InvalidArgumentError(f"fleet name must be a string, not {type(name).__name__}")
    if not NAME_PATTERN.fullmatch(name):
        if not name:
            why = "it is empty"
        elif len(name) > MAX_NAME_CHARS:
            why = f"it is {len(name)} characters long"
        else:
            why = "it has a character not allowed"
        raise InvalidArgumentError(
            f"invalid fleet name {quote(name)} ({why}): use 1-{MAX_NAME_CHARS} letters, "
            "digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_existing_name(name: object) -> str:
    """Check the name of a fleet to look up. Looser than :func:`check_name`: files
    written by the reference may hold names we would not create.

    Raises:
        InvalidArgumentError: the name is not a string or not valid UTF-8.
    """
    if not isinstance(name, str):
        raise InvalidArgumentError(f"fleet name must be a string, not {type(name).__name__}")
    return check_text(name, "fleet name")


def _as_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{what} must be a whole number, not {quote(value)}")
    return value


def check_count(count: object, max_count: int = MAX_COUNT) -> int:
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


def check_size(size: object, max_count: int = MAX_COUNT, *, current: int | None = None) -> int:
    """Check a fleet size to scale to: ``0 <= size <= max_count``; with ``current``
    (the fleet's size now), shrinking is allowed even above the cap.

    Raises:
        InvalidArgumentError: not an int, negative, or above the cap (and above ``current``).
    """
    n = _as_int(size, "scale size")
    if n < 0:
        raise InvalidArgumentError(f"scale size must be >= 0 (got {n})")
    if n > max_count and (current is None or n > current):
        raise InvalidArgumentError(
            f"scale size {n} is too large: fleet size is capped at {max_count}"
        )
    return n


def check_growth(name: str, have: int, adding: int, max_count: int = MAX_COUNT) -> None:
    """Check that a fleet of ``have`` members may take ``adding`` more: the cap
    applies to the fleet's size, however the members come.

    Raises:
        InvalidArgumentError: the fleet would be larger than ``max_count``.
    """
    if have + adding > max_count:
        raise InvalidArgumentError(
            f"fleet {quote(name)} has {have} members; {adding} more would exceed the "
            f"cap: fleet size is capped at {max_count}"
        )


def check_task(task: object) -> str:
    """Check a task for ``deploy`` and return it stripped.

    Raises:
        InvalidArgumentError: not a string, blank (``deploy task cannot be empty``),
            not valid UTF-8, or longer than :data:`~dalfleet.defaults.MAX_TASK_BYTES`.
    """
    if not isinstance(task, str):
        raise InvalidArgumentError(f"deploy task must be a string, not {type(task).__name__}")
    text = check_text(task.strip(), "deploy task")
    if not text:
        raise InvalidArgumentError("deploy task cannot be empty")
    size = len(text.encode("utf-8"))
    if size > MAX_TASK_BYTES:
        raise InvalidArgumentError(
            f"deploy task is too long: {size} bytes (the limit is {MAX_TASK_BYTES})"
        )
    return text


def check_agent_id(agent_id: object) -> str:
    """Check an agent ID for ``add_member`` and return it stripped.

    Raises:
        InvalidArgumentError: not a string, blank, too long or containing control characters.
    """
    if not isinstance(agent_id, str):
        raise InvalidArgumentError(f"agent id must be a string, not {type(agent_id).__name__}")
    text = check_text(agent_id.strip(), "agent id")
    if not text:
        raise InvalidArgumentError("agent id cannot be empty")
    if _CONTROL.search(text) or len(text) > MAX_AGENT_ID_CHARS:
        raise InvalidArgumentError(
            f"invalid agent id {quote(text)}: use at most {MAX_AGENT_ID_CHARS} printable characters"
        )
    return text


def check_mold_source(source: object) -> str:
    """Check a mold source (a ``str`` or any ``os.PathLike``) and return it as text,
    exactly as given (it is recorded as the fleet's ``mold_source``).

    Raises:
        MoldSourceError: blank, or not a string or path (an InvalidArgumentError and
            a MoldError); not valid UTF-8.
    """
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise MoldSourceError(
            f"mold source must be a path or a mold name, not {type(source).__name__}"
        )
    if not source.strip():
        raise MoldSourceError("mold source is empty: give a mold file path or a mold name")
    try:
        return check_text(source, "mold source")
    except InvalidArgumentError as exc:
        raise MoldSourceError(exc.message) from None


def check_revision(revision: object) -> int | None:
    """Check a revision number to roll back to (``None``: the previous one).

    Raises:
        InvalidArgumentError: not a whole number.
    """
    if revision is None:
        return None
    return _as_int(revision, "revision")


def check_concurrency(concurrency: object) -> int:
    """Check how many handlers may run at once: a whole number ``>= 1``.

    Raises:
        InvalidArgumentError: not an int, or below 1.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidArgumentError(f"concurrency must be >= 1 (got {quote(concurrency)})")
    return concurrency


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(f"{what} must be a number of seconds, not {quote(value)}")
    if math.isnan(value) or value <= 0:
        raise InvalidArgumentError(f"{what} must be > 0 seconds (got {quote(value)})")
    return float(value)


def check_timeout(timeout: object) -> float | None:
    """Check a handler timeout: ``None`` (no limit) or a number of seconds ``> 0``.

    Raises:
        InvalidArgumentError: not a number, NaN, or not above 0.
    """
    return None if timeout is None else _seconds(timeout, "timeout")


def check_poll_interval(interval: object) -> float:
    """Check a worker's poll interval: a number of seconds ``> 0``.

    Raises:
        InvalidArgumentError: not a number, NaN, or not above 0.
    """
    return _seconds(interval, "poll interval")


def _check_key(key: str, item: str) -> str:
    if not key:
        raise InvalidArgumentError(f"invalid param {quote(item)}: the key is empty")
    if _BAD_KEY_CHARS.search(key):
        raise InvalidArgumentError(
            f"invalid param {quote(item)}: the key must not contain whitespace, '{{', '}}' or '='"
        )
    return key


def parse_params(
    params: Mapping[str, object] | Iterable[str] | None,
) -> dict[str, str] | None:
    """Normalize create-time params to a ``{key: value}`` dict of strings.

    ``None`` gives ``None``. A mapping gives ``{str(k): str(v)}``. An iterable of
    ``"KEY=VALUE"`` strings is split on the first ``=``; the key is trimmed, the
    value kept as written (it may be empty); a later duplicate key wins. Keys must
    be non-empty and contain no whitespace, ``{``, ``}`` or ``=``.

    Raises:
        InvalidArgumentError: a bare string instead of a list of pairs, an item
            that is not a string, an item without ``=``, an invalid key, or text
            that is not valid UTF-8.
    """
    if params is None:
        return None
    if isinstance(params, (str, bytes)):
        raise InvalidArgumentError(
            f"invalid params {quote(params)}: expected KEY=VALUE pairs (a list), not one string"
        )
    result: dict[str, str] = {}
    if isinstance(params, Mapping):
        for key, value in params.items():
            result[_check_key(str(key), f"{key}={value}")] = check_text(
                str(value), f"param {quote(key)} value"
            )
        return result
    try:
        items = list(params)
    except TypeError:
        raise InvalidArgumentError(
            f"invalid params of type {type(params).__name__}: expected KEY=VALUE pairs"
        ) from None
    for item in items:
        if not isinstance(item, str):
            raise InvalidArgumentError(
                f"invalid param {quote(repr(item))}: expected a KEY=VALUE string, "
                f"not {type(item).__name__}"
            )
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgumentError(f"invalid param {quote(item)}: expected KEY=VALUE")
        result[_check_key(key.strip(), item)] = value
    for key, value in result.items():
        check_text(key, "param")
        check_text(value, f"param {quote(key)} value")
    return result
