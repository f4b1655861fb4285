"""Find a mold file from a source string, and read it.

Resolution only looks at the places listed in :func:`resolve_mold` and never
writes anything.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import pathlib

import attrs

from dalfleet.errors import MoldError, MoldNotFoundError, quote
from dalfleet.mold.model import MAX_MOLD_SIZE, Mold
from dalfleet.mold.parse import parse_mold
from dalfleet.rules import check_mold_source

__all__ = ["load_mold", "read_mold_file", "resolve_mold", "sample_mold_path"]

_SUFFIXES: tuple[str, ...] = (".mold.dal", ".mold.json")
_SAMPLE = "worker.mold.dal"


def resolve_mold(source: str | os.PathLike[str], base: str | os.PathLike[str]) -> pathlib.Path:
    """Return the mold file that ``source`` names, looked up against ``base``.

    The first hit wins: (1) ``source`` as an absolute path to an existing file;
    (2) ``base/source``; (3) ``base/source.mold.dal``; (4) ``base/source.mold.json``;
    (5) every ``*.mold.dal`` then ``*.mold.json`` file (sorted by name) in ``base``,
    ``base/mold`` and ``base/mold/samples``, in that order, whose stem (the file name
    without ``.mold.dal`` / ``.mold.json``) or whose mold name equals ``source``.
    Files that fail to parse are skipped in step 5. A directory is never a hit.

    Raises:
        MoldSourceError: ``source`` is empty or blank (a MoldError).
        MoldNotFoundError: nothing matched; the message lists what was tried.
    """
    source = check_mold_source(source).strip()
    base_path = pathlib.Path(base)
    tried: list[str] = []
    directories: list[pathlib.Path] = []

    candidates: list[pathlib.Path] = []
    if _is_absolute(source):
        candidates.append(pathlib.Path(source))
    candidates += [base_path / source, *(base_path / (source + s) for s in _SUFFIXES)]
    # An absolute source makes base/source the same path as step 1; try it once.
    for candidate in dict.fromkeys(candidates):
        if _is_file(candidate):
            return candidate
        if _is_dir(candidate):
            directories.append(candidate)
        tried.append(str(candidate))

    search_dirs = [base_path, base_path / "mold", base_path / "mold" / "samples"]
    for directory in search_dirs:
        for path in _mold_files(directory):
            if _stem(path.name) == source or _mold_name(path) == source:
                return path

    # Name the base once and everything else relative to it: the message stays one short line.
    def shown(path: pathlib.Path) -> str:
        try:
            return str(path.relative_to(base_path))
        except ValueError:
            return str(path)

    message = (
        f"mold {quote(source)} not found in {base_path}: tried "
        + ", ".join(shown(pathlib.Path(t)) for t in tried)
        + f", and molds named {quote(source)} in ., mold/, mold/samples/"
    )
    if directories:
        message += " (" + ", ".join(f"{shown(d)} is a directory" for d in directories) + ")"
    raise MoldNotFoundError(message)


def read_mold_file(path: str | os.PathLike[str]) -> str:
    """Read a mold file as UTF-8 text (at most 1 MiB).

    Raises:
        MoldError: the path is a directory, cannot be read, is larger than 1 MiB
            or is not valid UTF-8; the message names the path.
    """
    path = pathlib.Path(path)
    if _is_dir(path):
        raise MoldError(f"mold path {path} is a directory, not a file")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_MOLD_SIZE + 1)
    except OSError as exc:
        raise MoldError(f"cannot read mold file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        # Raised by the OS layer for a path with an embedded NUL.
        raise MoldError(f"cannot read mold file {quote(str(path))}: {exc}") from None
    if len(data) > MAX_MOLD_SIZE:
        raise MoldError(f"mold file {path} is larger than the limit of {MAX_MOLD_SIZE} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MoldError(
            f"mold file {path} is not valid UTF-8 (bad byte at offset {exc.start})"
        ) from None


def load_mold(source: str | os.PathLike[str], base: str | os.PathLike[str]) -> Mold:
    """Resolve ``source`` against ``base`` (see :func:`resolve_mold`), read and parse it.

    The returned mold's ``path`` is the file it was read from.

    Raises:
        MoldNotFoundError: the source did not resolve to a file.
        MoldError: the source is empty, or the file cannot be read (directory,
            unreadable, too large, not UTF-8) or is not a valid mold.
    """
    path = resolve_mold(source, base)
    mold = parse_mold(read_mold_file(path), source=str(path))
    return attrs.evolve(mold, path=str(path))


def sample_mold_path() -> pathlib.Path:
    """Return the path of the packaged sample Worker mold (``dalfleet/samples/worker.mold.dal``).

    Raises:
        MoldError: the installation does not have the sample as a file on disk.
    """
    resource: object = None
    with contextlib.suppress(ImportError, TypeError, ValueError, AttributeError, OSError):
        resource = importlib.resources.files("dalfleet") / "samples" / _SAMPLE
    if isinstance(resource, pathlib.Path) and resource.is_file():
        return resource
    # Namespace-package readers (and zip imports) do not give a Path; the file sits beside us.
    beside = pathlib.Path(__file__).resolve().parent.parent / "samples" / _SAMPLE
    if beside.is_file():
        return beside
    raise MoldError(f"the packaged sample mold {_SAMPLE} is missing from this installation")


def _stem(file_name: str) -> str | None:
    for suffix in _SUFFIXES:
        if file_name.endswith(suffix):
            return file_name[: -len(suffix)]
    return None


def _mold_files(directory: pathlib.Path) -> list[pathlib.Path]:
    """The mold files of one directory: ``*.mold.dal`` first, then ``*.mold.json``, by name."""
    try:
        names = sorted(entry.name for entry in os.scandir(directory))
    except (OSError, ValueError):
        return []
    ordered = [n for s in _SUFFIXES for n in names if n.endswith(s)]
    return [directory / n for n in ordered if _is_file(directory / n)]


def _mold_name(path: pathlib.Path) -> str | None:
    """The name inside a mold file, or None when it cannot be read or parsed."""
    try:
        return parse_mold(read_mold_file(path), source=str(path)).name
    except MoldError:
        return None


def _is_absolute(source: str) -> bool:
    try:
        return pathlib.Path(source).is_absolute()
    except ValueError:
        return False


def _is_file(path: pathlib.Path) -> bool:
    # Path.is_file() lets ValueError through on some versions (embedded NUL).
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _is_dir(path: pathlib.Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False
