"""A new mold file from the reference's template (``dal agent mold create NAME``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from dalfleet.errors import InvalidArgumentError, MoldError
from dalfleet.errors import quote as show_value

__all__ = ["scaffold_mold", "scaffold_text"]

# The reference's template, line for line (src/mold/mod.rs, scaffold_mold).
_TEMPLATE = """mold "{name}" "1.0"
agent
  type AI
  role ""
  capabilities
  skills "development" "creative" "office" "home"
  memory_limit "256MB"
  learning true
  communication true
  coordination true
"""


def scaffold_text(name: str) -> str:
    """The text of a new mold named ``name``: the reference's template, with the name
    quoted (``"`` and ``\\`` escaped, which the reference forgets).

    Raises:
        InvalidArgumentError: the name is empty, or holds a control character.
    """
    _check(name)
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return _TEMPLATE.format(name=quoted)


def scaffold_mold(name: str, directory: str | os.PathLike[str]) -> Path:
    """Write ``<directory>/<name>.mold.dal`` from the template; return its path.

    Unlike the reference, an existing file is never overwritten.

    Raises:
        InvalidArgumentError: the name is empty, holds a control character or a path
            separator, or starts with a dot.
        MoldError: the file exists already, or cannot be written.
    """
    _check(name)
    if "/" in name or "\\" in name or name.startswith(".") or (os.sep in name):
        raise InvalidArgumentError(
            f"invalid mold name {show_value(name)}: it names a file, so no '/', '\\' or leading '.'"
        )
    path = Path(directory) / f"{name}.mold.dal"
    data = scaffold_text(name).encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise MoldError(f"{path} already exists; not overwritten") from None
    except OSError as exc:
        raise MoldError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise MoldError(f"cannot write {path}: {exc.strerror}") from None
    return path


def _check(name: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgumentError("the mold name is required (a non-empty string)")
    if not name.isprintable():
        raise InvalidArgumentError(f"invalid mold name {show_value(name)}: control characters")
