"""The fleet file ``<base>/.dal/fleets.json``, safe for many writers.

Every change is a read-modify-write under an exclusive advisory lock
(portalocker, on ``fleets.json.lock`` beside the file) and lands with an atomic
replace (temp file, fsync, rename, fsync of the directory), so concurrent
processes lose no update and a writer killed at any instant leaves the old or
the new file. A file that does not parse is reported as a corrupt store and is
never overwritten. Lock files left by a killed process never block anyone: the
kernel drops the lock with the process.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import portalocker

from dalfleet.convert import FleetFormatError, structure_fleet, unstructure_fleet
from dalfleet.errors import CorruptStoreError, StoreError
from dalfleet.models import Fleet

__all__ = ["DEFAULT_MAX_BYTES", "JsonFileStore", "fleet_file_path"]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_TMP_PREFIX = ".fleets.json."
_TMP_SUFFIX = ".tmp"
# path -> (bytes, fleets) of the last parse in this process; keyed by content, never stale.
_PARSED: dict[str, tuple[bytes, dict[str, Fleet]]] = {}
_PARSED_KEEP = 8
# lock path -> thread holding a transaction on it in this process.
_HELD: dict[str, int] = {}  # bases remembered; a notebook touching many projects stays small


def _remember(key: str, raw: bytes, fleets: dict[str, Fleet]) -> None:
    _PARSED.pop(key, None)
    _PARSED[key] = (raw, fleets)
    while len(_PARSED) > _PARSED_KEEP:
        del _PARSED[next(iter(_PARSED))]


def fleet_file_path(base: str | os.PathLike[str]) -> Path:
    """``<base>/.dal/fleets.json`` (nothing is touched on disk). Never raises."""
    return Path(base) / ".dal" / "fleets.json"


class JsonFileStore:
    """Fleets in the reference's JSON fleet file.

    Args:
        base: the project directory; the file is ``<base>/.dal/fleets.json``.
        lock_timeout: seconds to wait for the lock before raising StoreError.
        max_bytes: a larger file is refused (StoreError) rather than read.
    """

    def __init__(
        self,
        base: str | os.PathLike[str],
        *,
        lock_timeout: float = 60.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.base = Path(base)
        self.path = fleet_file_path(self.base)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout
        self.max_bytes = max_bytes

    @property
    def location(self) -> str:
        """The fleet file's path."""
        return str(self.path)

    def __repr__(self) -> str:
        return f"JsonFileStore({str(self.path)!r})"

    # -- reading -----------------------------------------------------------------

    def _read_bytes(self) -> bytes | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            if os.path.islink(self.path):
                raise StoreError(
                    f"cannot read fleet file {self.path}: it is a symbolic link to "
                    f"{os.readlink(self.path)}, which does not exist"
                ) from None
            return None
        except IsADirectoryError:
            raise StoreError(f"cannot read fleet file {self.path}: it is a directory") from None
        except OSError as exc:
            raise StoreError(f"cannot read fleet file {self.path}: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size > self.max_bytes:
                    raise StoreError(
                        f"fleet file {self.path} is too large ({size} bytes; "
                        f"the limit is {self.max_bytes})"
                    )
                return fh.read(self.max_bytes + 1)
        except IsADirectoryError:
            raise StoreError(f"cannot read fleet file {self.path}: it is a directory") from None
        except OSError as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot read fleet file {self.path}: {exc.strerror}") from None

    def _parse(self, raw: bytes) -> dict[str, Fleet]:
        try:
            text = raw.decode("utf-8")
            data: Any = json.loads(
                text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys
            )
        except UnicodeDecodeError:
            raise CorruptStoreError(f"corrupt fleet file {self.path}: not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise CorruptStoreError(
                f"corrupt fleet file {self.path}: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        except RecursionError:
            raise CorruptStoreError(f"corrupt fleet file {self.path}: nested too deeply") from None
        except ValueError as exc:  # NaN/Infinity, duplicate keys, integers too long to convert
            raise CorruptStoreError(f"corrupt fleet file {self.path}: {exc}") from None
        if _SURROGATE_ESCAPE.search(text):
            # \ud800-style escapes may decode to lone surrogates, which no UTF-8 file can hold.
            try:
                json.dumps(data, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise CorruptStoreError(
                    f"corrupt fleet file {self.path}: a string holds a lone surrogate escape"
                ) from None
        if not isinstance(data, dict):
            raise CorruptStoreError(
                f"corrupt fleet file {self.path}: expected a JSON object of fleets, "
                f"not {type(data).__name__}"
            )
        fleets: dict[str, Fleet] = {}
        try:
            for key, entry in data.items():
                fleets[key] = structure_fleet(entry, key)
        except FleetFormatError as exc:
            raise CorruptStoreError(f"corrupt fleet file {self.path}: {exc}") from None
        return fleets

    def _parse_cached(self, raw: bytes) -> dict[str, Fleet]:
        # Same bytes, same fleets: reuse the last parse (Fleet objects are immutable).
        key = str(self.path)
        hit = _PARSED.get(key)
        if hit is not None and hit[0] == raw:
            return dict(hit[1])
        fleets = self._parse(raw)
        _remember(key, raw, fleets)
        return dict(fleets)

    def load(self) -> dict[str, Fleet]:
        """Every fleet in the file, by name; ``{}`` when the file does not exist.

        Reads without the lock: writers replace the file atomically, so a reader
        always sees a whole file.

        Raises:
            CorruptStoreError: the file does not parse or has the wrong shape.
            StoreError: the file cannot be read (a directory, permissions, too large).
        """
        raw = self._read_bytes()
        return {} if raw is None else self._parse_cached(raw)

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
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.path.parent):
                if entry.name.startswith(_TMP_PREFIX) and entry.name.endswith(_TMP_SUFFIX):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

    def _write(self, fleets: dict[str, Fleet]) -> None:
        data = {name: unstructure_fleet(f) for name, f in fleets.items()}
        payload = (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        directory = self.path.parent
        tmp = directory / f"{_TMP_PREFIX}{secrets.token_hex(6)}{_TMP_SUFFIX}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                view = memoryview(payload)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            reason = "it is a directory" if exc.errno == errno.EISDIR else exc.strerror
            raise StoreError(f"cannot write fleet file {self.path}: {reason}") from None
        _fsync_dir(directory)
        _remember(str(self.path), payload, dict(fleets))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, Fleet]]:
        """Lock, read, yield the fleets to change, write them back atomically if changed.

        Nothing is written if the block raises or changes nothing.

        Raises:
            StoreError: the lock cannot be taken in time, or the file cannot be read or written.
            CorruptStoreError: the file does not parse (it is left as it is).
        """
        held = str(self.lock_path)
        if _HELD.get(held) == threading.get_ident():
            # flock is per open file: a nested lock would wait for ourselves until timeout.
            raise StoreError(f"a transaction on {self.path} is already open in this thread")
        if self.path.is_dir():
            raise StoreError(f"cannot read fleet file {self.path}: it is a directory")
        self._ensure_dir()
        try:
            lock = portalocker.Lock(
                str(self.lock_path),
                mode="a",
                timeout=self.lock_timeout,
                check_interval=0.005,
                fail_when_locked=False,
                flags=portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING,
            )
            lock.acquire()
        except portalocker.exceptions.LockException:
            raise StoreError(
                f"timed out after {self.lock_timeout:g}s waiting for the lock on {self.lock_path}"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot lock {self.lock_path}: {exc.strerror}") from None
        _HELD[held] = threading.get_ident()
        try:
            self._remove_stale_temps()
            current = self.load()
            working = dict(current)
            yield working
            if working != current:
                self._write(working)
        finally:
            del _HELD[held]
            lock.release()

    def close(self) -> None:
        """Nothing stays open between calls (each read or transaction opens and
        closes the file). Never raises."""


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return out


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse, which is not an error.
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
