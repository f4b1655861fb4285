"""Find a mold file from a source, and read it.

Resolution is the reference implementation's (``resolve_mold_path``), step for
step, so both tools pick the same file in every layout; only when nothing
matches do the molds bundled with dalfleet answer by name. It only reads the
places it lists and never writes anything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import stat

import attrs

from dalfleet.defaults import LOGGER_NAME
from dalfleet.errors import MoldError, MoldNotFoundError, MoldSourceError, quote
from dalfleet.mold.model import MAX_MOLD_SIZE, RUST_WHITESPACE, Mold, agent_type_of
from dalfleet.mold.parse import parse_mold
from dalfleet.rules import check_mold_source

__all__ = [
    "MOLD_SUFFIXES",
    "is_mold_file_name",
    "list_local_molds",
    "load_mold",
    "read_mold_file",
    "resolve_mold",
    "sample_mold_path",
    "samples_dir",
    "validate_mold",
]

logger = logging.getLogger(f"{LOGGER_NAME}.mold")

#: The file name endings of molds: canonical first, then legacy.
MOLD_SUFFIXES: tuple[str, ...] = (".mold.dal", ".mold.json")
_SAMPLE = "worker.mold.dal"
_SEARCH_DIRS: tuple[tuple[str, ...], ...] = ((), ("mold",), ("mold", "samples"))


def is_mold_file_name(path: str | os.PathLike[str]) -> bool:
    """True when the file name ends with ``.mold.dal`` or ``.mold.json``. Never raises."""
    return os.fspath(path).endswith(MOLD_SUFFIXES)


def list_local_molds(base: str | os.PathLike[str]) -> list[pathlib.Path]:
    """The mold files under ``base``, in the reference's order (``dal agent mold list``).

    Regular files (or links to them) named ``*.mold.dal`` or ``*.mold.json`` in
    ``base``, ``base/mold`` and ``base/mold/samples``; every ``.mold.dal`` first,
    then every ``.mold.json``, each group sorted by full path compared component
    by component (so ``mold/x.mold.dal`` comes before ``mold-b.mold.dal``). Never raises.
    """
    base_path = pathlib.Path(base)
    found: list[pathlib.Path] = []
    for parts in _SEARCH_DIRS:
        directory = base_path.joinpath(*parts)
        try:
            names = [entry.name for entry in os.scandir(directory)]
        except (OSError, ValueError):
            continue
        for name in names:
            # The reference skips names that are not valid UTF-8.
            if name.endswith(MOLD_SUFFIXES) and _is_utf8(name):
                path = directory / name
                if _is_file(path):
                    found.append(path)

    def order(path: pathlib.Path) -> tuple[bool, tuple[bytes, ...]]:
        return (not path.name.endswith(".mold.dal"), tuple(os.fsencode(p) for p in path.parts))

    return sorted(found, key=order)


def resolve_mold(
    source: str | os.PathLike[str],
    base: str | os.PathLike[str],
    *,
    confine: bool = False,
) -> pathlib.Path:
    """Return the mold file that ``source`` names, looked up against ``base``.

    The reference's steps, in order; the first hit wins: (1) ``source`` as an
    absolute path that exists; (2) ``base/source``; (3) ``base/source.mold.dal``;
    (4) ``base/source.mold.json``; (5) the files of :func:`list_local_molds`, in
    that order, whose stem (``x`` for ``x.mold.dal``) or whose mold name equals
    ``source``. **[beyond]** (6) a mold bundled with dalfleet (:func:`samples_dir`)
    with that stem or name, so ``"worker"`` works in an empty directory.

    ``confine=True`` is for a source that did not come from the user (a manifest, a
    stored fleet): the file found, with symlinks and ``..`` resolved, must lie inside
    ``base`` or the bundled samples; files elsewhere are not even searched.

    Raises:
        MoldError: ``source`` is empty or an ``ipfs://`` source; the path found is
            not a regular file (the reference would fail to read it too); with
            ``confine``, the file lies outside ``base``.
        MoldNotFoundError: nothing matched; the message lists what was tried.
    """
    text = _source_text(source)
    base_path = pathlib.Path(base)
    roots = _roots(base_path) if confine else None

    candidates: list[pathlib.Path] = []
    if _is_absolute(text):
        candidates.append(pathlib.Path(text))
    candidates += [base_path / text, *(base_path / (text + s) for s in MOLD_SUFFIXES)]
    for candidate in candidates:
        if _exists(candidate):
            return _checked(candidate, text, roots)

    for path in list_local_molds(base_path):
        if roots is not None and not _inside(path, roots):
            continue
        if _stem(path.name) == text or _mold_name(path) == text:
            return _checked(path, text, roots)

    samples = samples_dir()
    if samples is not None:
        for path in list_local_molds(samples):
            if _stem(path.name) == text or _mold_name(path) == text:
                return path

    def shown(path: pathlib.Path) -> str:
        try:
            return str(path.relative_to(base_path)) or "."
        except ValueError:
            return str(path)

    tried = list(dict.fromkeys(shown(c) for c in candidates))
    raise MoldNotFoundError(
        f"mold {quote(text)} not found in {base_path}: tried "
        + ", ".join(tried)
        + f", molds named {quote(text)} in ., mold/, mold/samples/, and the bundled samples"
    )


def read_mold_file(path: str | os.PathLike[str]) -> str:
    """Read a mold file as UTF-8 text (at most 1 MiB).

    Raises:
        MoldError: the path is a directory or another non-regular file (a FIFO is
            never opened), cannot be read, is larger than 1 MiB or is not valid
            UTF-8; the message names the path and never quotes the file.
    """
    path = pathlib.Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise MoldError(f"cannot read mold file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        # Raised by the OS layer for a path with an embedded NUL.
        raise MoldError(f"cannot read mold file {quote(str(path))}: {exc}") from None
    if stat.S_ISDIR(mode):
        raise MoldError(f"mold path {path} is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise MoldError(f"mold path {path} is not a regular file")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_MOLD_SIZE + 1)
    except OSError as exc:
        raise MoldError(f"cannot read mold file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_MOLD_SIZE:
        raise MoldError(f"mold file {path} is larger than the limit of {MAX_MOLD_SIZE} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MoldError(
            f"mold file {path} is not valid UTF-8 (bad byte at offset {exc.start})"
        ) from None


def load_mold(
    source: str | os.PathLike[str],
    base: str | os.PathLike[str],
    *,
    confine: bool = False,
    strict: bool = False,
) -> Mold:
    """Resolve ``source`` against ``base`` (see :func:`resolve_mold`), read and parse it.

    The returned mold's ``path`` is the file it was read from. Its warnings (what
    the reference would silently ignore) are logged on the ``dalfleet.mold`` logger.
    A file whose name does not end in ``.mold.dal`` / ``.mold.json`` is never quoted
    in a message: a mistyped path cannot print a secret.

    Raises:
        MoldNotFoundError: the source did not resolve to a file.
        MoldError: the source is empty, lies outside ``base`` (with ``confine``), or
            the file cannot be read (directory, unreadable, too large, not UTF-8) or
            is not a valid mold; with ``strict``, also a mold with warnings.
    """
    path = resolve_mold(source, base, confine=confine)
    mold = _parse_file(path, strict=strict)
    for warning in mold.warnings:
        # The path is quoted: a file name could hold a terminal escape sequence.
        logger.warning("mold %s: %s", quote(str(path), 200), warning)
    return attrs.evolve(mold, path=str(path))


def validate_mold(path: str | os.PathLike[str], *, strict: bool = False) -> Mold:
    """Read and check the mold file at ``path`` (``dalfleet mold validate``).

    The mold must parse and name a known agent type (agents could not be made from
    it otherwise). ``strict=True`` also refuses a mold with warnings — what the
    reference would silently ignore — so a mold reads the same in both tools.

    Raises:
        MoldError: the file cannot be read, is not a mold, has an unknown agent
            type, or (with ``strict``) has a warning; the message says which.
    """
    mold = attrs.evolve(_parse_file(pathlib.Path(path), strict=strict), path=os.fspath(path))
    agent_type_of(mold)
    return mold


def _parse_file(path: pathlib.Path, *, strict: bool) -> Mold:
    """Read and parse the mold at ``path``; a file not named like a mold is never quoted."""
    text = read_mold_file(path)
    if is_mold_file_name(path):
        return parse_mold(text, source=str(path), strict=strict)
    try:
        mold = parse_mold(text, source=str(path), strict=strict)
    except MoldError:
        raise MoldError(
            f"{path} is not a mold: it does not parse as one (its content is not shown "
            "because its name does not end in .mold.dal or .mold.json)"
        ) from None
    if mold.warnings:
        count = len(mold.warnings)
        mold = attrs.evolve(mold, warnings=(f"{count} line(s) ignored (content not shown)",))
    return mold


def samples_dir() -> pathlib.Path | None:
    """The directory of the molds bundled with dalfleet, or None if it is missing. Never raises."""
    with contextlib.suppress(MoldError):
        return sample_mold_path().parent
    return None


def sample_mold_path() -> pathlib.Path:
    """Return the path of the packaged sample Worker mold (``dalfleet/samples/worker.mold.dal``).

    It also answers to the name ``worker`` wherever no local mold does.

    Raises:
        MoldError: the installation does not have the sample as a file on disk.
    """
    # Imported here: importlib.resources loads tempfile and shutil, which nothing
    # else on the path of a command that uses no sample needs.
    import importlib.resources

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


# --------------------------------------------------------------------------- internals


def _source_text(source: object) -> str:
    # The reference trims the source (Unicode whitespace) before resolving it.
    text = check_mold_source(source).strip(RUST_WHITESPACE)
    if not text:
        raise MoldSourceError("mold source is empty: give a mold file path or a mold name")
    if text.startswith("ipfs://"):
        raise MoldError(
            f"mold source {quote(text)}: IPFS sources are not supported by dalfleet; "
            "download the mold and give its path"
        )
    return text


def _checked(path: pathlib.Path, source: str, roots: list[pathlib.Path] | None) -> pathlib.Path:
    """``path`` if it may be used: inside the roots (when confined) and not a directory."""
    if roots is not None and not _inside(path, roots):
        raise MoldError(
            f"mold source {quote(source)} resolves to {path}, outside the project directory; "
            "a mold named by a manifest or a stored fleet must stay inside it"
        )
    if not _is_file(path):
        kind = "a directory" if _is_dir(path) else "not a regular file"
        raise MoldNotFoundError(f"mold source {quote(source)} resolves to {path}, which is {kind}")
    return path


def _roots(base: pathlib.Path) -> list[pathlib.Path]:
    roots = [_real(base)]
    samples = samples_dir()
    if samples is not None:
        roots.append(_real(samples))
    return roots


def _inside(path: pathlib.Path, roots: list[pathlib.Path]) -> bool:
    real = _real(path)
    return any(real == root or root in real.parents for root in roots)


def _real(path: pathlib.Path) -> pathlib.Path:
    try:
        return pathlib.Path(os.path.realpath(path))
    except (OSError, ValueError):
        return path.absolute()


def _stem(file_name: str) -> str:
    """The reference's stem: the name without its last extension, then without ``.mold``."""
    stem = file_name.rsplit(".", 1)[0] if "." in file_name.lstrip(".") else file_name
    while stem.endswith(".mold"):
        stem = stem[: -len(".mold")]
    return stem


def _mold_name(path: pathlib.Path) -> str | None:
    """The name inside a mold file, or None when it cannot be read or parsed.

    A file starting with a byte-order mark has no name here: the reference cannot
    parse it, so it never matches there either (the same file wins in both tools).
    """
    try:
        text = read_mold_file(path)
        return None if text.startswith("\ufeff") else parse_mold(text, source=str(path)).name
    except MoldError:
        return None


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_absolute(source: str) -> bool:
    try:
        return pathlib.Path(source).is_absolute()
    except ValueError:
        return False


def _exists(path: pathlib.Path) -> bool:
    # Path.exists() lets ValueError through on some versions (embedded NUL).
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _is_file(path: pathlib.Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _is_dir(path: pathlib.Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False
