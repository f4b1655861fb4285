"""Files ``dalfleet init`` writes for a user to start from: the sample mold and a
sample manifest. (``mold create`` and ``mold list`` are the mold package's
:func:`~dalfleet.mold.scaffold_mold` and :func:`~dalfleet.mold.list_local_molds`.)

Nothing here ever overwrites: a file is written to a temporary name and linked
into place, which fails if the name exists, so a crash leaves either no file or a
whole one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["SAMPLE_MANIFEST", "write_samples"]

SAMPLE_MANIFEST = """\
# A sample manifest: 'dalfleet apply -f fleets.yaml' makes the fleets match it
# ('--dry-run' shows the changes first). 'worker' is mold/worker.mold.dal.
fleets:
  workers:
    mold: worker
    count: 2
    task: Process daily logs
"""


def write_samples(base: Path) -> list[Path]:
    """Write the packaged sample mold to ``base/mold/worker.mold.dal`` and
    :data:`SAMPLE_MANIFEST` to ``base/fleets.yaml``; return the paths written
    (relative to ``base`` when ``base`` is the current directory). A file that
    already holds exactly the sample is left alone and not returned.

    Raises:
        FleetExistsError: either file already exists with other content (nothing
            is written).
        MoldError: the installation has no sample mold.
        StoreError: a file cannot be written (nothing is left behind).
    """
    from dalfleet.mold import sample_mold_path

    sample = sample_mold_path().read_text(encoding="utf-8")
    targets = [(Path("mold") / "worker.mold.dal", sample), (Path("fleets.yaml"), SAMPLE_MANIFEST)]
    # Files that already hold exactly the sample are kept as they are (init twice is
    # harmless); any other file there is the user's, and nothing is written.
    targets = [(relative, text) for relative, text in targets if not _holds(base / relative, text)]
    _refuse_existing([base / relative for relative, _ in targets])
    made_dir = False
    written: list[Path] = []
    try:
        if not (base / "mold").is_dir():
            (base / "mold").mkdir()
            made_dir = True
        for relative, text in targets:
            _create(base / relative, text)
            written.append(base / relative)
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        if made_dir:
            with contextlib.suppress(OSError):
                (base / "mold").rmdir()
        raise
    return [_shown(path, base) for path in written]


def _holds(path: Path, text: str) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and path.read_bytes() == text.encode()
    except OSError:
        return False


def _shown(path: Path, base: Path) -> Path:
    with contextlib.suppress(ValueError, OSError):
        if base.resolve() == Path.cwd().resolve():
            return path.relative_to(base)
    return path


def _refuse_existing(paths: list[Path]) -> None:
    from dalfleet.errors import FleetExistsError

    existing = [str(path) for path in paths if os.path.lexists(path)]
    if existing:
        raise FleetExistsError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
            "not overwriting (move it away first)"
        )


def _create(path: Path, text: str) -> None:
    """Create ``path`` with ``text``, whole or not at all; never replace a file."""
    from dalfleet.errors import FleetExistsError, StoreError

    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.link(tmp, path)  # fails if the name exists: no overwrite, even in a race
    except FileExistsError:
        raise FleetExistsError(f"{path} already exists; not overwriting") from None
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
