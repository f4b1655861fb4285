"""The principal's trust level: what agents made from molds are trusted with.

Trust never comes from a mold. As in the reference (its ``[agent.sh]`` shell
configuration), it is read from ``dal.toml`` then ``agent.toml`` in the project
directory (the later file wins), and the environment variable
``DAL_AGENT_SHELL_TRUST`` overrides both.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import stat
from collections.abc import Mapping
from typing import Any

from dalfleet.defaults import DEFAULT_TRUST_LEVEL
from dalfleet.mold.model import RUST_WHITESPACE

__all__ = ["DEFAULT_TRUST_LEVEL", "TRUST_ENV", "TRUST_LEVELS", "principal_trust_level"]

#: The environment variable that overrides the configuration files.
TRUST_ENV = "DAL_AGENT_SHELL_TRUST"
#: The levels the reference knows; any other text means ``sandboxed``.
TRUST_LEVELS: tuple[str, ...] = ("off", "sandboxed", "confirmed", "trusted")

_CONFIG_FILES = ("dal.toml", "agent.toml")


def _toml_module() -> Any:
    """``tomllib`` (Python 3.11+) or the ``tomli`` backport, or None without either."""
    for name in ("tomllib", "tomli"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


_MAX_CONFIG_SIZE = 1024 * 1024


def principal_trust_level(
    base: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The trust level of agents spawned for the project in ``base`` (default: the cwd).

    Read as the reference reads it: start from ``sandboxed``; a ``dal.toml`` and then
    an ``agent.toml`` in ``base`` that has an ``[agent.sh]`` table (or else a ``[sh]``
    table) sets the level to that table's ``trust`` (``sandboxed`` when it has none);
    ``DAL_AGENT_SHELL_TRUST`` in ``environ`` (default: ``os.environ``), when set,
    overrides both. A value is trimmed and lowercased; ``off``, ``confirmed`` and
    ``trusted`` are kept, anything else means ``sandboxed``. A file that is missing,
    unreadable or not valid TOML is skipped (on Python 3.10 without ``tomli``, the
    files are not read). Never raises.
    """
    directory = pathlib.Path(os.getcwd() if base is None else base)
    level = DEFAULT_TRUST_LEVEL
    for name in _CONFIG_FILES:
        table = _shell_table(_read_toml(directory / name))
        if table is not None:
            trust = table.get("trust")
            level = _level(trust) if isinstance(trust, str) else DEFAULT_TRUST_LEVEL
    env = os.environ if environ is None else environ
    value = env.get(TRUST_ENV)
    if isinstance(value, str) and _is_text(value):
        level = _level(value)
    return level


def _level(value: str) -> str:
    lowered = value.strip(RUST_WHITESPACE).lower()
    return lowered if lowered in TRUST_LEVELS else DEFAULT_TRUST_LEVEL


def _shell_table(document: dict[str, Any] | None) -> dict[str, Any] | None:
    """``[agent.sh]`` of a TOML document, else ``[sh]``, else None."""
    if document is None:
        return None
    agent = document.get("agent")
    if isinstance(agent, dict) and isinstance(agent.get("sh"), dict):
        table: dict[str, Any] = agent["sh"]
        return table
    shell = document.get("sh")
    return shell if isinstance(shell, dict) else None


def _read_toml(path: pathlib.Path) -> dict[str, Any] | None:
    try:
        info = path.stat()
        # Only a regular file is read: a FIFO planted there must not hang a command.
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_CONFIG_SIZE:
            return None
        with path.open("rb") as handle:
            data = handle.read(_MAX_CONFIG_SIZE + 1)
        toml = _toml_module()
        if toml is None:
            return None
        document = toml.loads(data.decode("utf-8"))
        return document if isinstance(document, dict) else None
    except (OSError, ValueError, RecursionError):
        # UnicodeDecodeError and tomllib.TOMLDecodeError are ValueErrors.
        return None


def _is_text(value: str) -> bool:
    """False for an environment value that was not valid UTF-8 (the reference ignores it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
