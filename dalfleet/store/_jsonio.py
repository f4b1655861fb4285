"""The fleet file's JSON codec: strict parsing and fast pretty printing.

The file is written exactly as ``json.dumps(data, indent=2, ensure_ascii=False)``
writes it (the reference's pretty layout: two spaces, ``": "``, non-ASCII text
as UTF-8). Python's C encoder does not indent, and its pure-Python fallback was
most of the cost of a write, so :func:`pretty` builds the same text itself: a
list of plain strings (a fleet's ``member_ids``) becomes one ``str.join`` over
the C string encoder, and everything else follows the standard library's rules
(the same string, number and constant spellings). Tests compare the two on
random values.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Mapping
from json.encoder import encode_basestring

from dalfleet.errors import quote

# typing.TYPE_CHECKING without importing typing (start-up time of every command)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@functools.cache
def _orjson() -> Any:
    """The ``orjson`` module (the ``fast`` extra), or None when it is not installed.

    Imported on the first write, not with this module: it imports dataclasses,
    uuid and datetime (about 15 ms), which a command that only reads never needs.
    """
    try:
        return importlib.import_module("orjson")
    except ImportError:  # pragma: no cover - exercised when the extra is not installed
        return None


__all__ = ["fast_bytes", "has_float", "loads", "pretty", "pretty_bytes"]

_INDENT = "  "
_STR_ONLY = {str}


@functools.cache
def _list_encoder(newline: str) -> json.JSONEncoder:
    return json.JSONEncoder(ensure_ascii=False, separators=("," + newline, ": "))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {quote(key)}")
            seen.add(key)
    return out


def loads(raw: bytes) -> tuple[Any, bool]:
    """Parse ``raw`` (UTF-8 JSON text), refusing what the format does not allow.

    Returns the value and whether any number in it is a float (values without
    floats may be written back by orjson, see :func:`fast_bytes`).

    Raises:
        UnicodeDecodeError: ``raw`` is not UTF-8.
        json.JSONDecodeError: it is not JSON.
        RecursionError: it is nested too deeply.
        ValueError: NaN or Infinity, a key given twice in one object, an
            integer too long to convert.
    """
    floats: list[float] = []

    def parse_float(text: str) -> float:
        floats.append(float(text))
        return floats[-1]

    # Decoding here (not inside json.loads) makes bad UTF-8 an error instead of
    # being let through as surrogates.
    data = json.loads(
        raw.decode("utf-8"),
        parse_constant=_reject_constant,
        object_pairs_hook=_unique_keys,
        parse_float=parse_float,
    )
    return data, bool(floats)


def _float(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        # json.dumps would write NaN/Infinity, which no reader (ours included) accepts.
        raise ValueError(f"{value!r} is not a JSON value")
    return float.__repr__(value)


def pretty(value: Any, level: int = 0) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)``, byte for byte, but fast.

    ``level`` indents every line after the first by that many levels (for a
    value written inside an object at that depth).

    Raises:
        ValueError: a float is NaN or infinite.
        TypeError: a value is not JSON data.
    """
    out: list[str] = []
    _emit(value, out, "\n" + _INDENT * level)
    return "".join(out)


def pretty_bytes(value: Any, level: int = 0) -> bytes:
    """:func:`pretty` encoded as UTF-8; orjson writes it when installed (the ``fast`` extra).

    orjson's indented output is the standard library's byte for byte except for
    float spellings (``1e+16`` against ``1e16``), integers past 64 bits, keys that
    are not strings and values it does not know; values holding any of those are
    written by :func:`pretty`.

    Raises:
        ValueError: a float is NaN or infinite, or a string holds a lone surrogate
            (UnicodeEncodeError).
        TypeError: a value is not JSON data.
    """
    data = fast_bytes(value, check_floats=True)
    if data is not None:
        return data.replace(b"\n", b"\n" + b"  " * level) if level else data
    return pretty(value, level).encode("utf-8")


def fast_bytes(value: Any, *, check_floats: bool) -> bytes | None:
    """``pretty(value).encode()`` written by orjson, or ``None`` when orjson is not
    installed or would not write exactly those bytes.

    ``check_floats=False`` is for a caller that knows ``value`` holds no float
    (orjson spells some floats differently). Never raises.
    """
    orjson = _orjson()
    if orjson is None or (check_floats and has_float(value)):
        return None
    try:
        data: bytes = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except (TypeError, orjson.JSONEncodeError):
        return None  # not orjson's kind of data: the standard rules decide
    return data


_PLAIN = {str, int, bool, type(None)}


def has_float(value: Any) -> bool:
    """Whether ``value`` holds a float anywhere. Never raises (bar RecursionError)."""
    if isinstance(value, float):
        return True
    if isinstance(value, Mapping):
        return any(has_float(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        types = set(map(type, value))  # C-level: a million member IDs cost one pass
        if types <= _PLAIN:
            return False
        return float in types or any(has_float(v) for v in value)
    return False


def _emit(value: Any, out: list[str], newline: str) -> None:
    # ``newline`` is "\n" plus the indentation of the line ``value`` starts on.
    if isinstance(value, str):
        out.append(encode_basestring(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, Mapping):
        # dict, or a read-only mapping of a model (json.dumps itself would refuse one)
        if not value:
            out.append("{}")
            return
        inner = newline + _INDENT
        if not all(type(k) is str for k in value):
            # Non-string keys: leave the key conversions to the standard library.
            text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
            out.append(text.replace("\n", newline))
            return
        sep = "{" + inner
        for key, item in value.items():
            out.append(sep)
            out.append(encode_basestring(key))
            out.append(": ")
            _emit(item, out, inner)
            sep = "," + inner
        out.append(newline + "}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + _INDENT
        if set(map(type, value)) == _STR_ONLY:
            # The common case (member IDs): the C encoder writes the list in one pass,
            # with the line break and indentation as its item separator.
            compact = _list_encoder(inner).encode(value)
            out.append("[" + inner)
            out.append(compact[1:-1])
            del compact  # a million IDs are tens of MB: hold as few copies as possible
        else:
            sep = "[" + inner
            for item in value:
                out.append(sep)
                _emit(item, out, inner)
                sep = "," + inner
        out.append(newline + "]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON data")
