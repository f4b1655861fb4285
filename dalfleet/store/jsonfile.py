"""The fleet file ``<base>/.dal/fleets.json``, safe for many writers.

Every change is a read-modify-write under an exclusive lock and lands with an
atomic replace (temp file, fsync, rename, fsync of the directory), so concurrent
processes lose no update and a writer killed at any instant leaves the old or
the new file. A file that does not parse is reported as a corrupt store and is
never overwritten.

The lock is ``flock`` on ``fleets.json.lock`` (kept for older dalfleet versions
sharing the directory) *and* on the ``.dal`` directory itself: a lock file
deleted while a writer holds it lets a second process lock a new file, but not
the directory, so no update is lost. A lock left by a killed process never
blocks anyone: the kernel drops it with the process.

Deployment history lives in a side file, ``.dal/fleet_history.json`` (fleet
name → revisions), because the reference rewrites ``fleets.json`` with its own
keys only. Within one transaction the side file is replaced first and
``fleets.json`` second, so a crash between the two leaves both loadable, with at
worst a revision recorded for a deployment that did not land. Revisions of a
fleet that is no longer in ``fleets.json`` are dropped at the next write (a new
fleet of that name starts a new history). Older versions kept history in each
entry under ``dalfleet_history``; such entries are read and moved to the side
file at the next write.

Paths in ``.dal/`` are opened without following symbolic links and without
blocking; a symlink, FIFO, device or directory where dalfleet expects its own
regular file is refused with a StoreError, and no file is ever created at a
link's target.

Nothing is written that this module would refuse to read: both files are
checked against ``max_bytes`` before anything is replaced, and each fleet's
history is bounded in bytes as well as in count.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import stat
import sys
import threading
import time
import warnings
from collections.abc import Iterator, MutableMapping
from json import JSONDecodeError
from json.encoder import encode_basestring
from pathlib import Path

from dalfleet.errors import CorruptStoreError, StoreError
from dalfleet.errors import quote as show_value
from dalfleet.store import _jsonio

# The converter (cattrs) and the models (attrs) are imported where fleets are built
# or written, not with this module: :meth:`JsonFileStore.listing` (``dalfleet
# list``) reads the file without them, and they are most of a short command's
# start-up time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dalfleet.models import Fleet, Revision

    # (fleet file content key, history bytes, fleets (built on first use), raw entries,
    # whether the fleet file holds a float - which orjson would spell differently)
    _Parsed = tuple[bytes, bytes | None, "_Fleets", dict[str, Any], bool]

__all__ = [
    "DEFAULT_MAX_BYTES",
    "HISTORY_FILE",
    "HISTORY_MAX_BYTES",
    "MAX_BYTES_ENV",
    "FleetFileWarning",
    "JsonFileStore",
    "fleet_file_path",
    "fsync_dir",
    "history_file_path",
    "locked_file",
    "read_own_file",
    "replace_file",
]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# A way out for a file written by another tool past the limit: raise it for one command.
MAX_BYTES_ENV = "DALFLEET_MAX_FILE_BYTES"
HISTORY_FILE = "fleet_history.json"
# Per fleet, newest revisions first: 16 deployments of the largest task (64 KiB of
# text that escapes to 6 bytes a character) or 50 ordinary ones, whichever is less.
HISTORY_MAX_BYTES = 1024 * 1024
_TMP_SUFFIX = ".tmp"
_LOCK_POLL = 0.005
# Up to this size the cache keeps the file's bytes; above, a digest (no second copy of a
# large file stays in memory).
_CACHE_RAW_BYTES = 4 * 1024 * 1024
# path -> the last parse in this process (see _Parsed); keyed by content, never stale.
_PARSED: dict[str, _Parsed] = {}
_PARSED_DROPPED_AT_EXIT: list[bool] = []
_PARSED_KEEP = 8  # bases remembered; a notebook touching many projects stays small
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# lock path -> thread holding a transaction on it in this process.
_HELD: dict[str, int] = {}


class FleetFileWarning(UserWarning):
    """A fleet file entry dalfleet accepts but would not write itself.

    Raised as a warning (never an exception) for a file written by another tool
    with a duplicate member ID, or an entry whose key differs from its ``name``.
    """


def _remember(key: str, parsed: _Parsed) -> None:
    if not _PARSED_DROPPED_AT_EXIT:
        # Dropped before the interpreter's last collection, which would otherwise walk
        # every entry of a large file on the way out (about 5 ms at 1,000 fleets).
        atexit.register(_PARSED.clear)
        _PARSED_DROPPED_AT_EXIT.append(True)
    _PARSED.pop(key, None)
    _PARSED[key] = parsed
    while len(_PARSED) > _PARSED_KEEP:
        del _PARSED[next(iter(_PARSED))]


def _content_key(chunks: list[bytes]) -> bytes:
    """What identifies a fleet file's content in the parse cache."""
    if sum(map(len, chunks)) <= _CACHE_RAW_BYTES:
        return b"".join(chunks)  # JSON text; a digest key starts with "#", never JSON
    import hashlib  # only for large files

    digest = hashlib.blake2b(digest_size=32)
    for chunk in chunks:
        digest.update(chunk)
    return b"#" + digest.digest()


def fleet_file_path(base: str | os.PathLike[str]) -> Path:
    """``<base>/.dal/fleets.json`` (nothing is touched on disk). Never raises."""
    return Path(base) / ".dal" / "fleets.json"


def history_file_path(base: str | os.PathLike[str]) -> Path:
    """``<base>/.dal/fleet_history.json`` (nothing is touched on disk). Never raises."""
    return Path(base) / ".dal" / HISTORY_FILE


def _default_max_bytes() -> int:
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    return DEFAULT_MAX_BYTES


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _link_reason(path: Path) -> str:
    """Why a symlink at ``path`` is refused, saying what it points at."""
    try:
        target = show_value(os.readlink(path), 200)
    except OSError:
        return "it is a symbolic link"
    try:
        mode = os.stat(path).st_mode
        where = "a regular file" if stat.S_ISREG(mode) else f"which is {_kind(mode)}"
    except FileNotFoundError:
        where = "which does not exist"
    except OSError as exc:
        where = f"which cannot be resolved ({exc.strerror})"
    return (
        f"it is a symbolic link to {target}, {where}; dalfleet uses only its own "
        "regular files in .dal/ and never follows links there"
    )


def _open_own_file(path: Path, flags: int, what: str) -> int | None:
    """Open ``path`` as dalfleet's own regular file; ``None`` if it does not exist.

    Never follows a symlink, never blocks on a FIFO or device.

    Raises:
        StoreError: a symlink, directory, FIFO, device or other non-regular file
            is there, or the open fails.
    """
    try:
        fd = os.open(path, flags | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC, 0o666)
    except FileNotFoundError:
        if os.path.islink(path):
            raise StoreError(f"cannot use {what} {path}: {_link_reason(path)}") from None
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) or os.path.islink(path):
            raise StoreError(f"cannot use {what} {path}: {_link_reason(path)}") from None
        if exc.errno == errno.EISDIR:
            raise StoreError(f"cannot use {what} {path}: it is a directory") from None
        if exc.errno == errno.ENXIO:  # a FIFO with no reader, opened for writing
            raise StoreError(f"cannot use {what} {path}: it is a FIFO (named pipe)") from None
        raise StoreError(f"cannot use {what} {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise StoreError(f"cannot use {what} {path}: it is {_kind(mode)}")
        if _O_NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_own_file(path: Path, what: str, max_bytes: int) -> bytes | None:
    """The bytes of dalfleet's own regular file at ``path``; ``None`` if absent.

    Raises:
        StoreError: not a regular file, unreadable, or larger than ``max_bytes``.
    """
    fd = _open_own_file(path, os.O_RDONLY, what)
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise StoreError(
                f"{what} {path} is too large ({size} bytes; the limit is {max_bytes}, "
                f"raised by {MAX_BYTES_ENV})"
            )
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, max(size, 1 << 16)))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        if isinstance(exc, StoreError):
            raise
        reason = "it is a directory" if exc.errno == errno.EISDIR else exc.strerror
        raise StoreError(f"cannot read {what} {path}: {reason}") from None
    finally:
        os.close(fd)
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(raw) > max_bytes:  # it grew while we read
        raise StoreError(f"{what} {path} is too large (the limit is {max_bytes} bytes)")
    return raw


class JsonFileStore:
    """Fleets in the reference's JSON fleet file, history in a side file beside it.

    Args:
        base: the project directory; the file is ``<base>/.dal/fleets.json``.
        lock_timeout: seconds to wait for the lock before raising StoreError.
        max_bytes: a larger file is refused (StoreError) rather than read, and a
            change that would make either file larger is refused before
            anything is written. Defaults to 64 MiB, or the
            ``DALFLEET_MAX_FILE_BYTES`` environment variable when set.
    """

    def __init__(
        self,
        base: str | os.PathLike[str],
        *,
        lock_timeout: float = 60.0,
        max_bytes: int | None = None,
    ) -> None:
        self.base = Path(base)
        self.path = fleet_file_path(self.base)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.history_path = self.path.with_name(HISTORY_FILE)
        self.lock_timeout = lock_timeout
        self.max_bytes = _default_max_bytes() if max_bytes is None else max_bytes

    @property
    def location(self) -> str:
        """The fleet file's path."""
        return str(self.path)

    def __repr__(self) -> str:
        return f"JsonFileStore({str(self.path)!r})"

    # -- reading -----------------------------------------------------------------

    def _corrupt(self, path: Path, why: str) -> CorruptStoreError:
        if path == self.history_path:
            # The way out: fleets never depend on their history.
            return CorruptStoreError(
                f"corrupt history file {path}: {why} (remove it to drop the deployment history)"
            )
        return CorruptStoreError(f"corrupt fleet file {path}: {why}")

    def _decode(self, raw: bytes, path: Path) -> tuple[Any, bool]:
        try:
            data, floats = _jsonio.loads(raw)
        except UnicodeDecodeError:
            raise self._corrupt(path, "not UTF-8 text") from None
        except JSONDecodeError as exc:
            raise self._corrupt(
                path, f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        except RecursionError:
            raise self._corrupt(path, "nested too deeply") from None
        except ValueError as exc:  # NaN/Infinity, duplicate keys, integers too long to convert
            raise self._corrupt(path, str(exc)) from None
        # Most files hold no backslash: a one-byte search is a memchr (0.03 ms on 3.8 MB),
        # each three-byte search took 2 ms.
        if b"\\" in raw and (b"\\ud" in raw or b"\\uD" in raw):
            # \ud800-style escapes may decode to lone surrogates, which no UTF-8 file can hold.
            try:
                _jsonio.pretty(data).encode("utf-8")
            except UnicodeEncodeError:
                raise self._corrupt(path, "a string holds a lone surrogate escape") from None
        if not isinstance(data, dict):
            raise self._corrupt(
                path, f"expected a JSON object of fleets, not {type(data).__name__}"
            )
        return data, floats

    def _parse(self, raw: bytes, history_raw: bytes | None) -> _Parsed:
        data, floats = self._decode(raw, self.path)
        side: dict[str, Any] = {}
        if history_raw is not None:
            side = self._decode(history_raw, self.history_path)[0]
        fleets = _Fleets(self, data, side)
        for key, entry in data.items():
            revisions = side.get(key)
            # A plain entry (most are) is built when first asked for: a deploy builds one
            # fleet of a thousand. Any other is built now, so that its error is raised,
            # or its fix warned about, by every command that reads the file.
            if not _plain_shape(entry, key) or (
                revisions is not None and not _plain_revisions(revisions)
            ):
                fleets.get(key)
        return _content_key([raw]), history_raw, fleets, data, floats

    def _build(self, key: str, entry: Any, revisions: Any) -> Fleet:
        """The fleet of fleet-file entry ``entry`` stored under ``key``, with ``revisions``
        from the history file (None: none there). Internal to the store.

        Most entries are as dalfleet writes them and are built as they are. An entry
        _lenient would fix (another name, a duplicate ID) is one the converter
        refuses, so only a refused entry is fixed, warned about and built again - with
        the same result and warnings as fixing every entry.

        Raises:
            CorruptStoreError: the entry or its revisions do not have the file's shape.
        """
        from dalfleet.convert import HISTORY_KEY, FleetFormatError, structure_fleet

        try:
            if isinstance(entry, dict):
                whole = entry if revisions is None else {**entry, HISTORY_KEY: revisions}
                return structure_fleet(whole, key)
        except FleetFormatError:
            pass
        fixed = _lenient(entry, key, self.path)
        if revisions is not None:
            fixed = {**fixed, HISTORY_KEY: revisions}
        try:
            return structure_fleet(fixed, key)
        except FleetFormatError as exc:
            where = self.history_path if revisions is not None else self.path
            why = str(exc).replace(HISTORY_KEY, "history") if revisions is not None else exc
            raise self._corrupt(where, str(why)) from None

    def _load_parsed(self) -> _Parsed | None:
        raw = read_own_file(self.path, "fleet file", self.max_bytes)
        if raw is None:
            return None
        history_raw = read_own_file(self.history_path, "history file", self.max_bytes)
        # Same bytes, same fleets: reuse the last parse (Fleet objects are immutable).
        key = str(self.path)
        hit = _PARSED.get(key)
        if hit is not None and hit[0] == _content_key([raw]) and hit[1] == history_raw:
            return hit
        parsed = self._parse(raw, history_raw)
        _remember(key, parsed)
        return parsed

    def load(self) -> dict[str, Fleet]:
        """Every fleet in the file, by name, with its history; ``{}`` when there is no file.

        Reads without the lock: writers replace the files atomically, so a reader
        always sees whole files. A duplicate member ID or an entry whose key
        differs from its ``name`` (as another tool may write) loads with a
        :class:`FleetFileWarning`: the fleet is named by its key and keeps each
        ID once, and the entry is written back unchanged while untouched.

        Raises:
            CorruptStoreError: a file does not parse or has the wrong shape.
            StoreError: a file cannot be read (a directory, a symlink, a FIFO,
                permissions, too large).
        """
        parsed = self._load_parsed()
        return {} if parsed is None else parsed[2].all()

    def get(self, name: str) -> Fleet | None:
        """The fleet of that name, or None; as :meth:`load` reads it, but building
        that fleet only (the others' entries are checked, not built).

        Raises:
            CorruptStoreError, StoreError: as for :meth:`load`.
        """
        parsed = self._load_parsed()
        return None if parsed is None else parsed[2].get(name)

    def listing(self) -> dict[str, dict[str, Any]] | None:
        """Every fleet's entry as the file holds it, for listing without building
        fleets (``dalfleet list`` imports neither the models nor the converter); None
        when the files hold anything :meth:`load` would check, fix or refuse.

        An entry is returned only when :meth:`load` would build its fleet from it
        unchanged and without a warning: ``member_ids`` a list of distinct strings,
        ``mold_source``, ``last_deployed_task`` and ``last_deployed_at`` strings or
        null, the key equal to its ``name``, ``last_create_params`` strings, and its
        revisions in the history file plain records. Anything else - a number where
        a string belongs, a duplicate ID, a legacy history key, any doubt - gives
        None, and the caller uses :meth:`load`, so every error, warning and
        conversion stays the converter's. Keys dalfleet does not know are left in.

        Raises:
            CorruptStoreError: a file is not JSON of the expected kind (the same
                error :meth:`load` raises).
            StoreError: a file cannot be read (as for :meth:`load`).
        """
        raw = read_own_file(self.path, "fleet file", self.max_bytes)
        if raw is None:
            return {}
        history_raw = read_own_file(self.history_path, "history file", self.max_bytes)
        data = self._decode(raw, self.path)[0]
        side: dict[str, Any] = {}
        if history_raw is not None:
            side = self._decode(history_raw, self.history_path)[0]
        for key, entry in data.items():
            if not _plain_entry(entry, key):
                return None
            revisions = side.get(key)
            if revisions is not None and not _plain_revisions(revisions):
                return None
        entries: dict[str, dict[str, Any]] = data
        return entries

    # -- writing -----------------------------------------------------------------

    def _ensure_dir(self) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise StoreError(f"cannot create {directory}: a file is in the way") from None
        except OSError as exc:
            raise StoreError(f"cannot create {directory}: {exc.strerror}") from None
        if not directory.is_dir():
            raise StoreError(f"cannot create {directory}: a file is in the way")

    def _remove_stale_temps(self) -> None:
        # Under the lock no live writer has a temp file open: any left is from a killed one.
        prefixes = (f".{self.path.name}.", f".{HISTORY_FILE}.")
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.path.parent):
                if entry.name.startswith(prefixes) and entry.name.endswith(_TMP_SUFFIX):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

    def _encode_fleets(
        self, fleets: _Working, loaded: _Parsed | None
    ) -> tuple[list[bytes], dict[str, Any], bool]:
        """The fleet file's chunks, its entries, and whether they hold a float.

        Raises:
            StoreError: see :meth:`_encode_object`.
        """
        from dalfleet.convert import HISTORY_KEY, unstructure_fleet

        old_entries = loaded[3] if loaded is not None else {}
        floats = loaded[4] if loaded is not None else False
        entries: dict[str, Any] = {}
        for name in fleets:
            fleet = fleets.assigned(name)
            if fleet is None:
                # Untouched: exactly what was read (a reference entry with a duplicate ID or
                # another name stays as it was), less the history that now lives beside it.
                entry = old_entries[name]
                if isinstance(entry, dict) and HISTORY_KEY in entry:
                    entry = {k: v for k, v in entry.items() if k != HISTORY_KEY}
            else:
                entry = unstructure_fleet(fleet)
                entry.pop(HISTORY_KEY, None)
                floats = floats or _jsonio.has_float(entry)
            entries[name] = entry
        chunks = self._encode_object(entries, self.path, "fleet file", floats=floats)
        return chunks, entries, floats

    def _encode_object(
        self, data: dict[str, Any], path: Path, what: str, *, floats: bool = True
    ) -> list[bytes]:
        """``json.dumps(data, indent=2, ensure_ascii=False) + "\\n"`` as UTF-8 chunks,
        one a key, size-checked (a large file is never held twice in memory).

        Raises:
            StoreError: a value is not JSON data (NaN, a lone surrogate), or the
                file would be larger than ``max_bytes``.
        """
        chunks: list[bytes] = []
        size = 0
        sep = "{\n  "
        try:
            whole = None if floats else _jsonio.fast_bytes(data, check_floats=False)
            if whole is not None:
                data = {}  # written in one piece below
                chunks.append(whole)
                size = len(whole)
            for key, value in data.items():
                # Key and value apart: a large value is never copied into a second string.
                chunks.append((sep + encode_basestring(key) + ": ").encode())
                chunks.append(_jsonio.pretty_bytes(value, 1))
                size += len(chunks[-2]) + len(chunks[-1])
                if size > self.max_bytes:
                    break
                sep = ",\n  "
        except (ValueError, TypeError) as exc:  # NaN, a lone surrogate, not JSON data
            raise StoreError(f"cannot write {what} {path}: {exc}; nothing was changed") from None
        if whole is not None:
            chunks.append(b"\n")
        else:
            chunks.append(b"\n}\n" if chunks else b"{}\n")
        size += len(chunks[-1])
        if size > self.max_bytes:
            complete = whole is not None or len(chunks) == 2 * len(data) + 1
            shown = f"{size}" if complete else f"more than {size}"
            raise StoreError(
                f"cannot write {what} {path}: it would be {shown} bytes, over the "
                f"limit of {self.max_bytes}; nothing was changed"
            )
        return chunks

    def _encode_history(self, fleets: _Working) -> tuple[bytes, bool]:
        """The side file for ``fleets``, and whether any history had to be cut to fit.

        Raises:
            StoreError: it cannot be encoded, or is over ``max_bytes`` even with one
                revision a fleet.
        """
        from dalfleet.convert import revision_data

        trimmed = False
        texts: dict[str, list[str]] = {}
        sizes: dict[str, list[int]] = {}
        for name in fleets:
            history = fleets.history(name)
            if not history:
                continue
            kept: list[str] = []
            lengths: list[int] = []
            total = 0
            for revision in reversed(history):  # newest first, within the byte bound
                text = _jsonio.pretty(revision_data(revision), 2)
                size = len(text.encode("utf-8", "surrogatepass")) + 6
                if kept and total + size > HISTORY_MAX_BYTES:
                    break
                kept.append(text)
                lengths.append(size)
                total += size
            trimmed = trimmed or len(kept) < len(history)
            kept.reverse()
            lengths.reverse()
            texts[name] = kept
            sizes[name] = lengths
        # Over the file limit even so: keep each fleet's newest revision only.
        overhead = sum(len(n.encode("utf-8", "surrogatepass")) + 16 for n in texts)
        if overhead + sum(sum(s) for s in sizes.values()) > self.max_bytes:
            texts = {name: kept[-1:] for name, kept in texts.items()}
            trimmed = True
        body = {name: "[\n    " + ",\n    ".join(kept) + "\n  ]" for name, kept in texts.items()}
        try:
            text = (
                "{\n  "
                + ",\n  ".join(encode_basestring(k) + ": " + v for k, v in body.items())
                + "\n}\n"
                if body
                else "{}\n"
            )
            payload = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise StoreError(
                f"cannot write history file {self.history_path}: {exc}; nothing was changed"
            ) from None
        if len(payload) > self.max_bytes:
            raise StoreError(
                f"cannot write history file {self.history_path}: it would be {len(payload)} "
                f"bytes, over the limit of {self.max_bytes}; nothing was changed"
            )
        return payload, trimmed

    def _replace(self, path: Path, payload: list[bytes], what: str) -> None:
        replace_file(path, payload, what)

    def _history_changed(self, fleets: _Working, loaded: _Parsed | None) -> bool:
        from dalfleet.convert import HISTORY_KEY

        if loaded is None or loaded[1] is None:
            # No side file yet: write one when there is history, or history to migrate.
            return any(fleets.history(name) for name in fleets)
        if fleets.renamed() or any(
            isinstance(entry, dict) and HISTORY_KEY in entry for entry in loaded[3].values()
        ):
            return True
        old = loaded[2]
        return any(
            fleet.history is not getattr(old.get(name), "history", None)
            for name, fleet in fleets.changes()
        )

    def _write(self, fleets: _Working, loaded: _Parsed | None) -> None:
        payload, entries, floats = self._encode_fleets(fleets, loaded)
        old_history = loaded[1] if loaded is not None else None
        history_payload = old_history
        trimmed = False
        if self._history_changed(fleets, loaded):
            history_payload, trimmed = self._encode_history(fleets)
        if history_payload is not None and history_payload != old_history:
            # First the side file: a crash before the fleet file lands leaves a revision
            # too many, never a deployment without its revision.
            self._replace(self.history_path, [history_payload], "history file")
        self._replace(self.path, payload, "fleet file")
        fsync_dir(self.path.parent)
        if trimmed:  # the files hold less history than these fleets: parse them next time
            _PARSED.pop(str(self.path), None)
        else:  # exactly what parsing the new files gives; saves that parse
            key = _content_key(payload)
            parsed = (key, history_payload, fleets.result(entries), entries, floats)
            _remember(str(self.path), parsed)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        deadline = time.monotonic() + self.lock_timeout
        with locked_file(self.lock_path, self.lock_timeout, deadline=deadline):
            if _fcntl is None:  # pragma: no cover - Windows: a directory cannot be locked
                yield
                return
            try:
                dir_fd = os.open(self.path.parent, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
            except OSError as exc:
                raise StoreError(f"cannot lock {self.path.parent}: {exc.strerror}") from None
            try:
                # The directory cannot be deleted under us while it holds the fleet file:
                # it is the lock that survives a deleted lock file.
                _lock_fd(dir_fd, deadline, self.path.parent, self.lock_timeout)
                yield
            finally:
                os.close(dir_fd)  # closing drops the lock

    @contextlib.contextmanager
    def transaction(self) -> Iterator[MutableMapping[str, Fleet]]:
        """Lock, read, yield the fleets to change, write them back atomically if changed.

        Nothing is written if the block raises or changes nothing. The block runs
        under the lock: a caller that must also change another store (agents in a
        coordinator) does so inside the block before it returns, undoing its own
        change if the block then fails, or after the block once the files landed.

        Raises:
            StoreError: the lock cannot be taken in time; a file cannot be read or
                written; a symlink, FIFO or device is where a file should be; or the
                change would make a file larger than ``max_bytes`` (nothing is written).
            CorruptStoreError: a file does not parse (it is left as it is).
        """
        held = str(self.lock_path)
        if _HELD.get(held) == threading.get_ident():
            # flock is per open file: a nested lock would wait for ourselves until timeout.
            raise StoreError(f"a transaction on {self.path} is already open in this thread")
        if self.path.is_dir():
            raise StoreError(f"cannot read fleet file {self.path}: it is a directory")
        self._ensure_dir()
        with self._locked():
            _HELD[held] = threading.get_ident()
            try:
                self._remove_stale_temps()
                loaded = self._load_parsed()
                working = _Working(self, None if loaded is None else loaded[2])
                yield working
                if working.changed():
                    self._write(working, loaded)
            finally:
                del _HELD[held]

    def close(self) -> None:
        """Nothing stays open between calls (each read or transaction opens and
        closes the file). Never raises."""


class _Fleets:
    """The fleets of one parse of the files, each built when first asked for, then kept.

    Shared through the parse cache: fleets are immutable, and what a transaction
    changes is kept apart in its :class:`_Working`.
    """

    __slots__ = ("_built", "_entries", "_side", "_store")

    def __init__(
        self,
        store: JsonFileStore,
        entries: dict[str, Any],
        side: dict[str, Any],
        built: dict[str, Fleet] | None = None,
    ) -> None:
        self._store = store
        self._entries = entries
        self._side = side
        self._built: dict[str, Fleet] = {} if built is None else built

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def get(self, name: str) -> Fleet | None:
        """The fleet, built now if it was not yet; None if there is none of that name.

        Raises:
            CorruptStoreError: its entry does not have the file's shape.
        """
        fleet = self._built.get(name)
        if fleet is None and name in self._entries:
            built = self._store._build(name, self._entries[name], self._side.get(name))
            # Two threads may build it at once: both get the one kept (a transaction
            # tells a fleet it read from one it assigned by identity).
            fleet = self._built.setdefault(name, built)
        return fleet

    def built(self, name: str) -> Fleet | None:
        """The fleet if it has been built, without building it. Never raises."""
        return self._built.get(name)

    def all(self) -> dict[str, Fleet]:
        """Every fleet, by name, in the file's order (a new dict).

        Raises:
            CorruptStoreError: an entry does not have the file's shape.
        """
        return {name: self.get(name) for name in self._entries}  # type: ignore[misc]

    def history(self, name: str) -> tuple[Revision, ...]:
        """The fleet's revisions, without building an unbuilt fleet (its entry and
        revisions were checked plain at parse time).

        Raises:
            CorruptStoreError: as for :meth:`get`.
        """
        fleet = self._built.get(name)
        if fleet is not None:
            return fleet.history
        revisions = self._side.get(name)
        if revisions is None:
            return ()
        from dalfleet.convert import structure_history

        return structure_history(revisions)


class _Working(MutableMapping[str, "Fleet"]):
    """The mapping a transaction's block changes: reads build only the fleets asked
    for; what the block assigns or deletes is kept apart from the parse."""

    def __init__(self, store: JsonFileStore, base: _Fleets | None) -> None:
        self._store = store
        self._base = base
        self._names: dict[str, None] = {} if base is None else dict.fromkeys(base)
        self._assigned: dict[str, Fleet] = {}

    def __getitem__(self, name: str) -> Fleet:
        fleet = self._assigned.get(name)
        if fleet is None and name in self._names and self._base is not None:
            fleet = self._base.get(name)
        if fleet is None:
            raise KeyError(name)
        return fleet

    def __setitem__(self, name: str, fleet: Fleet) -> None:
        self._names[name] = None
        self._assigned[name] = fleet

    def __delitem__(self, name: str) -> None:
        del self._names[name]
        self._assigned.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._names  # without building the fleet, as Mapping's would

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"<fleets of {self._store.path}: {len(self._names)}>"

    def assigned(self, name: str) -> Fleet | None:
        """The fleet the block put under ``name`` when it is not the one read. Never raises."""
        fleet = self._assigned.get(name)
        if fleet is None or (self._base is not None and self._base.built(name) is fleet):
            return None
        return fleet

    def changes(self) -> list[tuple[str, Fleet]]:
        """The fleets the block put in place of the ones read. Never raises."""
        return [(n, f) for n in self._assigned if (f := self.assigned(n)) is not None]

    def renamed(self) -> bool:
        """Whether the block added or removed a name. Never raises."""
        before = self._base._entries.keys() if self._base is not None else {}.keys()
        return self._names.keys() != before

    def changed(self) -> bool:
        """Whether the fleets now differ from those read (as dict equality would say).

        Raises:
            CorruptStoreError: as for :meth:`_Fleets.get`.
        """
        if self.renamed():
            return True
        base = self._base
        return base is not None and any(fleet != base.get(name) for name, fleet in self.changes())

    def history(self, name: str) -> tuple[Revision, ...]:
        """The revisions of the fleet now under ``name``.

        Raises:
            CorruptStoreError: as for :meth:`_Fleets.get`.
        """
        fleet = self.assigned(name)
        if fleet is not None:
            return fleet.history
        return self._base.history(name) if self._base is not None else ()

    def result(self, entries: dict[str, Any]) -> _Fleets:
        """The parse of the files these fleets were just written to as ``entries``.
        Never raises."""
        base = self._base
        built: dict[str, Fleet] = {}
        for name in self._names:
            fleet = self._assigned.get(name) or (base.built(name) if base is not None else None)
            if fleet is not None:
                built[name] = fleet
        return _Fleets(self._store, entries, base._side if base is not None else {}, built)


def replace_file(path: Path, payload: list[bytes], what: str) -> None:
    """Replace ``path`` with the concatenated ``payload``, atomically: a temp file
    ``.<name>.<random>.tmp`` beside it, written, fsynced and renamed over it. A crash
    at any instant leaves the old or the new file; the temp file is removed on error.

    Raises:
        StoreError: the file cannot be written (``what`` names it in the message).
    """
    directory = path.parent
    tmp = directory / f".{path.name}.{os.urandom(6).hex()}{_TMP_SUFFIX}"
    try:
        # O_EXCL: a name that exists (even as a dangling link) is never opened.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
        fd = os.open(tmp, flags, 0o666)  # the umask applies, as for any new file
        try:
            for chunk in payload:
                view = memoryview(chunk)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        reason = "it is a directory" if exc.errno == errno.EISDIR else exc.strerror
        raise StoreError(f"cannot write {what} {path}: {reason}") from None


@contextlib.contextmanager
def locked_file(
    lock_path: Path, timeout: float, *, deadline: float | None = None
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if missing) for the block.

    A lock file deleted or replaced while we waited is no longer the lock: the one
    at the path then is taken instead. A lock left by a killed process never blocks
    anyone (the kernel drops it with the process).

    Raises:
        StoreError: the lock cannot be taken before ``timeout`` seconds (or
            ``deadline``, a ``time.monotonic()`` value) pass, or the lock file is
            not a regular file or cannot be opened.
    """
    if deadline is None:
        deadline = time.monotonic() + timeout
    while True:
        fd = _open_own_file(lock_path, os.O_RDWR | os.O_CREAT, "lock file")
        if fd is None:  # O_CREAT found no directory: it was removed under us
            raise StoreError(f"cannot lock {lock_path}: {lock_path.parent} is gone")
        try:
            _lock_fd(fd, deadline, lock_path, timeout)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock_path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)
        if time.monotonic() >= deadline:
            raise StoreError(
                f"timed out after {timeout:g}s waiting for the lock on {lock_path} "
                "(it keeps being replaced)"
            )
    try:
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _lock_fd(fd: int, deadline: float, path: Path, timeout: float) -> None:
    """Take an exclusive lock on ``fd``, polling until ``deadline``.

    Raises:
        StoreError: the deadline passed, or the file cannot be locked.
    """
    while True:
        try:
            if _fcntl is not None:
                _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
            else:  # pragma: no cover - Windows
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK):
                raise StoreError(f"cannot lock {path}: {exc.strerror}") from None
        if time.monotonic() >= deadline:
            raise StoreError(f"timed out after {timeout:g}s waiting for the lock on {path}")
        time.sleep(_LOCK_POLL)


if sys.platform != "win32":
    import fcntl as _fcntl
else:  # pragma: no cover - Windows
    _fcntl = None


def _lenient(entry: Any, key: str, path: Path) -> Any:
    """The entry to build a fleet from: another tool's harmless oddities are warned about."""
    if not isinstance(entry, dict):
        return entry
    name = entry.get("name", key)
    fixed = entry
    if isinstance(name, str) and name != key:
        warnings.warn(
            f"fleet file {path}: the entry stored under {show_value(key)} is named "
            f"{show_value(name)}; it is used as {show_value(key)} and left as it is",
            FleetFileWarning,
            stacklevel=4,
        )
        fixed = {**fixed, "name": key}
    members = entry.get("member_ids")
    if isinstance(members, list):
        try:
            unique = len(set(members)) == len(members)
        except TypeError:  # an unhashable member: the converter reports the shape
            unique = True
        if not unique and set(map(type, members)) == {str}:
            warnings.warn(
                f"fleet file {path}: fleet {show_value(key)} lists a member ID more than "
                "once; each is used once and the entry is left as it is",
                FleetFileWarning,
                stacklevel=4,
            )
            fixed = {**fixed, "member_ids": list(dict.fromkeys(members))}
    return fixed


# The fields of a fleet entry and of a revision with the types they may have for
# listing without the converter. Deliberately narrower than what the converter
# accepts: whatever does not fit is decided by load().
_PLAIN_FLEET_STR = ("mold_source", "last_deployed_task", "last_deployed_at")
# dalfleet.convert.HISTORY_KEY, named here so that listing imports no converter
# (tests/test_store_json.py checks that the two agree).
_LEGACY_HISTORY_KEY = "dalfleet_history"
_PLAIN_REVISION = {
    "revision": (int,),
    "task": (str,),
    "deployed_at": (str,),
    "mold_source": (str, type(None)),
    "params": (dict, type(None)),
}


def _str_map(value: object) -> bool:
    return type(value) is dict and all(type(k) is str and type(v) is str for k, v in value.items())


def _plain_entry(entry: object, key: str) -> bool:
    """Whether the converter would take ``entry`` as it is (see JsonFileStore.listing)."""
    if not _plain_shape(entry, key):
        return False
    members = entry.get("member_ids", [])  # type: ignore[attr-defined]  # a dict, checked
    return len(set(members)) == len(members)


def _plain_shape(entry: object, key: str) -> bool:
    """Whether ``entry`` is a fleet of the plain shape, a duplicate member ID aside:
    the converter takes it as it is, or with the duplicate dropped and a warning."""
    if type(entry) is not dict:
        return False
    if entry.get("name", key) != key:
        return False
    members = entry.get("member_ids", [])
    if type(members) is not list or set(map(type, members)) - {str}:
        return False
    for field in _PLAIN_FLEET_STR:
        value = entry.get(field)
        if value is not None and type(value) is not str:
            return False
    params = entry.get("last_create_params")
    if params is not None and not _str_map(params):
        return False
    # Keys dalfleet does not know go to Fleet.extra whatever they hold; the legacy
    # in-entry history is the converter's to check.
    return _LEGACY_HISTORY_KEY not in entry


def _plain_revisions(revisions: object) -> bool:
    """Whether a fleet's history is a list of plain revision records."""
    if type(revisions) is not list:
        return False
    for revision in revisions:
        if type(revision) is not dict or not revision.keys() >= {"revision", "task", "deployed_at"}:
            return False
        for field, value in revision.items():
            allowed = _PLAIN_REVISION.get(field)
            if allowed is None or type(value) not in allowed:
                return False
        params = revision.get("params")
        if params is not None and not _str_map(params):
            return False
    return True


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (fsync the directory). Never raises."""
    # Some filesystems refuse to fsync a directory, which is not an error.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
