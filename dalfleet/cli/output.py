"""Everything the command line writes: lines, JSON, errors, progress, export files.

Output formats and never decides. Every line a command prints goes through
:func:`line` (stdout) or :func:`error_line` (stderr), and both escape control
characters, so text that came from users (tasks, names, mold fields, agent IDs,
error messages) is one record per line and can never reach the terminal as an
escape sequence. JSON goes through :func:`print_json`: one strictly valid document.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping

# Modules only some commands need (datetime, json, tempfile, threading, math,
# typing …) are imported where they are used: every command, ``--version`` and
# ``list`` included, imports this module first, and start-up time is what users
# feel on the short commands. ``TYPE_CHECKING`` without importing typing:
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

__all__ = [
    "PROG",
    "UNSET",
    "Progress",
    "error_line",
    "escape",
    "iso_time",
    "text_of",
    "json_text",
    "line",
    "or_unset",
    "plain",
    "plural",
    "print_json",
    "progress",
    "write_text",
]

PROG = "dalfleet"
UNSET = "—"

ProgressFn = Callable[[int, int], None]

# C0 and C1 controls, DEL, line/paragraph separators, bidirectional overrides and
# lone surrogates: anything that could break a line, move the cursor, start a
# terminal escape sequence or reorder what is shown. U+009B alone is a CSI.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with every control character written as a visible escape (``\\n``,
    ``\\x1b``, ``\\x9b``, ``\\u202e`` …); everything else, quotes included, unchanged.
    Never raises."""
    return _UNSAFE.sub(_escaped, text)


def line(text: str = "") -> None:
    """Print one line on stdout, control characters escaped.

    Raises:
        OSError: stdout cannot be written (``BrokenPipeError`` when the reader left).
    """
    sys.stdout.write(escape(text) + "\n")


def error_line(message: str, kind: str = "error") -> None:
    """Print ``dalfleet: KIND: MESSAGE`` as one line on stderr. Never raises."""
    text = " ".join(message.splitlines()) or "unknown error"
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"{PROG}: {kind}: {escape(text)}\n")
        sys.stderr.flush()


def warning_line(text: str) -> None:
    """Print one line on stderr (a per-member problem of a run). Never raises."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(escape(text) + "\n")


def text_of(value: object) -> str:
    """A value as the reference prints it: an enum (a status, a state) by its value,
    anything else by ``str``. Never raises for enums and strings."""
    import enum

    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def or_unset(value: str | None) -> str:
    """``value``, or the reference's ``—`` when it is unset. Never raises."""
    return UNSET if value is None else value


def plural(count: int, word: str) -> str:
    """``1 agent``, ``3 agents``: for our own lines only (the reference's keep
    ``1 agents``). Never raises."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def one_line(text: str, limit: int = 70) -> str:
    """``text`` with runs of whitespace folded to one space, shortened to ``limit``
    characters with ``…``. Never raises."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def iso_time(raw: str | float | None) -> str | None:
    """Epoch seconds (as the fleet file stores them, a string) as ISO-8601 UTC,
    ``2026-11-29T17:18:40Z``; None when unset or not a time. Never raises."""
    if raw is None:
        return None
    import datetime

    try:
        seconds = float(raw)
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- JSON ---------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """``value`` as plain JSON data: attrs instances are unstructured by
    :func:`dalfleet.convert.to_json_document`, mappings become dicts,
    sequences lists, enums their value; NaN and infinities become None (JSON has no
    such numbers); anything else unknown becomes its ``repr``. Never raises for
    values whose ``repr`` does not raise."""
    import enum
    import math

    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [plain(item) for item in items]
    import attrs

    if attrs.has(type(value)):
        from dalfleet.convert import to_json_document

        # The one converter makes the shape; this pass only makes it strict JSON.
        try:
            shaped = to_json_document(value)
        except Exception:  # a handler's own attrs class the converter cannot take
            return repr(value)
        return plain(shaped)
    return repr(value)


# JSON allows these raw inside strings; the terminal does not. \uXXXX is valid JSON.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_text(document: Any) -> str:
    """One strictly valid JSON document for ``document`` (see :func:`plain`), with no
    raw control character anywhere. Never raises for what :func:`plain` accepts."""
    import json

    text = json.dumps(plain(document), indent=2, ensure_ascii=False, allow_nan=False)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def print_json(document: Any) -> None:
    """Print :func:`json_text` of ``document`` on stdout.

    Raises:
        OSError: stdout cannot be written.
    """
    sys.stdout.write(json_text(document) + "\n")


# What a terminal would act on. A YAML dumper never writes these raw (it escapes
# them inside double quotes), so escaping them in its output loses nothing, while
# escaping more (a bidi override inside a plain scalar) would change the document.
_TERMINAL_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def print_text(text: str) -> None:
    """Print a document (export YAML) as it is, except for C0/C1 control
    characters, which are escaped so that none reaches the terminal.

    Raises:
        OSError: stdout cannot be written.
    """
    body = _TERMINAL_CONTROL.sub(_escaped, text.replace("\r\n", "\n"))
    sys.stdout.write(body if body.endswith("\n") else body + "\n")


# -- progress ------------------------------------------------------------------------------


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """``\\rLABEL done/total`` on stderr; the line is cleared when the work ends.

    The plain fallback when ``tqdm`` is not installed.
    """

    def __init__(self, label: str) -> None:
        import threading

        self.label = label
        self._lock = threading.Lock()
        self._width = 0

    def __call__(self, done: int, total: int) -> None:
        text = f"{self.label} {done}/{total}"
        with self._lock:
            self._width = max(self._width, len(text))
            sys.stderr.write(f"\r{text}")
            sys.stderr.flush()

    def close(self) -> None:
        """Clear the line. Never raises."""
        with self._lock, contextlib.suppress(OSError, ValueError):
            if self._width:
                sys.stderr.write("\r" + " " * self._width + "\r")
                sys.stderr.flush()
                self._width = 0


def _terminal_size() -> dict[str, int]:
    # A terminal that reports no size (0 x 0) would get an empty or hidden bar.
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (AttributeError, ValueError, OSError):
        return {}
    return {"ncols": size.columns or 80, "nrows": size.lines or 24}


class _TqdmProgress:
    """The same callback drawn with ``tqdm.auto`` (the ``progress`` extra)."""

    def __init__(self, label: str) -> None:
        import threading

        self.label = label
        self._bar: Any = None
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int) -> None:
        with self._lock:
            if self._bar is None:
                import importlib

                tqdm = importlib.import_module("tqdm.auto").tqdm
                self._bar = tqdm(
                    total=total, desc=self.label, leave=False, file=sys.stderr, **_terminal_size()
                )
            self._bar.total = total
            self._bar.update(done - self._bar.n)
            if done >= total:  # draw the end even when it came within tqdm's interval
                self._bar.refresh()

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):
            if self._bar is not None:
                self._bar.close()


@contextlib.contextmanager
def progress(enabled: bool, label: str) -> Iterator[ProgressFn | None]:
    """A ``(done, total)`` callback that draws progress on a terminal: ``tqdm.auto``
    when it is installed, else a plain ``LABEL done/total`` line. None when
    ``enabled`` is false or stderr is not a terminal. Never raises."""
    if not enabled or not _stderr_is_tty():
        yield None
        return
    import importlib

    bar: Progress | _TqdmProgress
    try:
        importlib.import_module("tqdm.auto")
    except ImportError:
        bar = Progress(label)
    else:
        bar = _TqdmProgress(label)
    try:
        yield bar
    finally:
        bar.close()


# -- files ------------------------------------------------------------------------------------


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a shell's ``>`` would, but safely.

    A regular file or a new path is replaced atomically (temporary file, fsync,
    rename; the old file's permissions kept), so a crash leaves the old or the new
    content, never half. Anything else that exists there - a symlink (its target
    is written), a FIFO, a character device - is opened and written in place:
    never replaced, never turned into a regular file.

    Raises:
        OSError: the path cannot be written (the message names the path); nothing
            was changed.
    """
    import stat

    data = text.encode("utf-8")
    try:
        info = path.lstat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise _os_error(path, exc) from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise OSError(f"cannot write {path}: it is a directory")
    if info is None or stat.S_ISREG(info.st_mode):
        _replace(path, data, None if info is None else stat.S_IMODE(info.st_mode))
    else:
        _write_in_place(path, data)


def _os_error(path: Path, exc: OSError) -> OSError:
    return OSError(f"cannot write {path}: {exc.strerror or exc}")


def _write_in_place(path: Path, data: bytes) -> None:
    # O_TRUNC is ignored by FIFOs and devices; for a symlink to a regular file it
    # gives what "> link" gives. No O_CREAT beyond what a symlink's target needs.
    flags = os.O_WRONLY | os.O_TRUNC | os.O_CREAT | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise _os_error(path, exc) from None
    import stat

    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(f"cannot write {path}: it is a directory")
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError as exc:
        raise _os_error(path, exc) from None
    finally:
        os.close(fd)


def _replace(path: Path, data: bytes, mode: int | None) -> None:
    import tempfile

    directory = path.parent
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _os_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _os_error(path, exc) from None
