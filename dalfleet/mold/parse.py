"""Parse mold text: the line-oriented ``.mold.dal`` format and the legacy JSON form.

The rules are the reference implementation's, step for step (SPEC §4): every mold
the reference accepts is accepted here and read to the same fields. Where the
reference silently ignores something (an unknown keyword, a repeated key, a value
after a quoted string, ``learning yes`` …) the mold still parses and the reason is
kept in :attr:`Mold.warnings` (and logged); ``strict=True`` turns those warnings
into a :class:`~dalfleet.errors.MoldError`.

Both parsers are linear in the size of the input and raise only
:class:`~dalfleet.errors.MoldError`, whatever string they are given. Nothing in
a mold is ever evaluated: lifecycle hooks are kept as text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, NoReturn

from dalfleet.errors import MoldError, quote
from dalfleet.mold.model import (
    MAX_MOLD_SIZE,
    RUST_WHITESPACE,
    Mold,
    _excerpt,
    memory_problem,
)

__all__ = ["parse_mold", "rust_trim"]

_RUST_WS = frozenset(RUST_WHITESPACE)
_WS_CLASS = "[" + re.escape(RUST_WHITESPACE) + "]"
_WS_RUN = re.compile(_WS_CLASS + "*")
_BARE_TOKEN = re.compile("[^" + re.escape(RUST_WHITESPACE) + "]+")
# A quoted string as the reference scans it: a backslash takes the next character along.
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
#: At most this many warnings are kept per mold; the rest are counted.
MAX_WARNINGS = 100

_ESCAPES: dict[str, str] = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}

# Keywords the reference reads in the agent section (each followed by one space).
_VALUE_KEYS = ("type", "role", "capabilities", "memory_limit", "trust_level", "skills")
_FLAG_KEYS = ("learning", "communication", "coordination")
_HOOKS = ("on_create", "on_message", "on_evolve", "on_destroy")
_KNOWN_WORDS = frozenset(_VALUE_KEYS + _FLAG_KEYS + _HOOKS + ("mold", "agent", "lifecycle"))


def rust_trim(text: str) -> str:
    """``text`` without leading and trailing ``White_Space``, as Rust trims. Never raises."""
    return text.strip(RUST_WHITESPACE)


def parse_mold(text: str, source: str = "<mold>", *, strict: bool = False) -> Mold:
    """Parse a mold from ``text``, exactly as the reference implementation does.

    Text whose first non-whitespace character is ``{`` is read as the legacy JSON
    form; anything else as ``.mold.dal``. ``source`` names the text in messages (a
    file path, usually). The returned mold has ``path=None``; what the reference
    would silently ignore is listed in its ``warnings``.

    Raises:
        MoldError: the text is empty, larger than 1 MiB, or a mold the reference
            refuses too (no ``mold NAME`` line, no ``agent`` line, an unterminated
            quoted string, invalid JSON …); with ``strict=True``, also any warning.
            The message names ``source`` and the line (or JSON path) and says why.
    """
    if not isinstance(text, str):
        raise MoldError(f"mold text must be a string, not {type(text).__name__} ({source})")
    if len(text) > MAX_MOLD_SIZE:
        raise MoldError(
            f"mold is too large: {len(text)} characters, the limit is {MAX_MOLD_SIZE} ({source})"
        )
    # Editors on Windows may prefix a byte-order mark; it is not content. (The
    # reference refuses such a file: this is one place dalfleet accepts more.)
    if text.startswith("\ufeff"):
        text = text[1:]
    content = rust_trim(text)
    if not content:
        raise MoldError(f"mold is empty ({source})")
    if content.startswith("{"):
        mold = _parse_json(content, source)
    else:
        mold = _DalParser(source).parse(content)
    if strict and mold.warnings:
        raise MoldError(f"{mold.warnings[0]} ({source}; strict mode turns warnings into errors)")
    return mold


# --------------------------------------------------------------------------- .mold.dal


class _DalParser:
    """The reference's ``.mold.dal`` reader, with a reason recorded for what it ignores."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lineno = 0
        self.warnings: list[str] = []
        self.count = 0
        self.seen: dict[str, int] = {}
        # Numbers of the lines a '//' was cut from: a quote left open there gets a hint.
        self.cut: set[int] = set()

    def fail(self, why: str) -> NoReturn:
        where = f"{self.source} line {self.lineno}" if self.lineno else self.source
        raise MoldError(f"{why} ({where})")

    def warn(self, why: str) -> None:
        self.count += 1
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(f"line {self.lineno}: {why}")

    def parse(self, content: str) -> Mold:
        lines = _code_lines(content, self.cut)
        if not lines:
            self.fail("mold has no 'mold' line, only comments")
        self.lineno, first = lines[0]
        if not (first.startswith("mold ") or _ascii_eq(first, "mold")):
            self.fail(f'expected \'mold "NAME" "VERSION"\' first, got {_q(first)}')
        name, rest = self._token(rust_trim(first[4:]))
        version, rest = self._token(rest)
        if rest:
            self.warn(f"{_q(rest)} after the mold name and version is ignored")
        if not name:
            self.fail('the mold name is required: mold "NAME" ["VERSION"]')
        values: dict[str, Any] = {"name": name, "version": version or "1.0"}

        if len(lines) < 2 or not _ascii_eq(lines[1][1], "agent"):
            if len(lines) >= 2:
                self.lineno = lines[1][0]
                self.fail(f"expected 'agent' after the mold line, got {_q(lines[1][1])}")
            self.fail("expected an 'agent' line after the mold line, found the end of the text")
        lifecycle: dict[str, str] = {}
        index = 2
        while index < len(lines):
            self.lineno, line = lines[index]
            index += 1
            if _ascii_eq(line, "lifecycle"):
                index = self._lifecycle(lines, index, lifecycle)
                if index < len(lines):
                    self.lineno = lines[index][0]
                    self.warn(
                        f"{_q(lines[index][1])} and every line after it are ignored: "
                        "only lifecycle hooks may follow 'lifecycle'"
                    )
                break
            self._agent_line(line, values)
        values.setdefault("agent_type", "AI")
        if self.count > len(self.warnings):
            self.warnings.append(f"and {self.count - len(self.warnings)} more warnings")
        return Mold(lifecycle=lifecycle, warnings=tuple(self.warnings), **values)

    # -- the agent section

    def _agent_line(self, line: str, values: dict[str, Any]) -> None:
        for key in _VALUE_KEYS:
            if line.startswith(key + " "):
                self._repeated(key)
                if key in ("capabilities", "skills"):
                    values[key] = self._list(line[len(key) :])
                elif key == "type":
                    values["agent_type"] = rust_trim(line[len(key) :])
                elif key == "trust_level":
                    # Kept as written, quotes and all, as the reference does.
                    values["trust_level"] = rust_trim(line[len(key) :]) or None
                elif key == "role":
                    values["role"] = self._rest(key, line[len(key) :])
                else:
                    memory = rust_trim(self._rest(key, line[len(key) :])) or None
                    values["memory_limit"] = memory
                    if memory is not None:
                        self._check_memory(memory)
                return
        for key in _FLAG_KEYS:
            for flag in (True, False):
                if _ascii_eq(line, f"{key} {'true' if flag else 'false'}"):
                    self._repeated(key)
                    values[key] = flag
                    return
        if line in _VALUE_KEYS:
            # A keyword alone (the reference's own scaffold writes `capabilities`) is
            # ignored; that only matters when it was meant to clear an earlier value.
            if line in self.seen:
                self.warn(
                    f"{quote(line)} without a value is ignored: the value from line "
                    f"{self.seen[line]} is kept"
                )
            return
        self.warn(self._why_ignored(line))

    def _check_memory(self, memory: str) -> None:
        problem = memory_problem(memory)
        if problem:
            self.warn(problem)

    def _why_ignored(self, line: str) -> str:
        word = _first_word(line)
        lowered = word.lower()
        if word in _FLAG_KEYS or lowered in _FLAG_KEYS:
            return (
                f"{_q(line)} is ignored: write exactly '{lowered} true' or '{lowered} false' "
                f"(one space), so {lowered} keeps its value"
            )
        if word in _VALUE_KEYS:
            return (
                f"{_q(line)} is ignored: put one space (not a tab) between {quote(word)} "
                "and its value"
            )
        if lowered in _VALUE_KEYS:
            return (
                f"unknown keyword {_q(word)} is ignored "
                f"(keywords are case-sensitive: {quote(lowered)})"
            )
        if word in _HOOKS or lowered.startswith("on_"):
            return f"hook {_q(word)} before 'lifecycle' is ignored (hooks go after 'lifecycle')"
        if lowered in ("mold", "agent"):
            return f"{_q(line)} is ignored: {quote(lowered)} may appear only once, at the top"
        return f"unknown keyword {_q(word)} is ignored"

    def _repeated(self, key: str) -> None:
        first = self.seen.setdefault(key, self.lineno)
        if first != self.lineno:
            self.warn(
                f"{quote(key)} is given again (first on line {first}); the last value is used"
            )

    # -- the lifecycle section

    def _lifecycle(self, lines: list[tuple[int, str]], index: int, hooks: dict[str, str]) -> int:
        """Read hooks from ``lines[index:]``; return the index of the first line that is not one."""
        while index < len(lines):
            self.lineno, line = lines[index]
            for hook in _HOOKS:
                if line.startswith(hook + " "):
                    self._repeated(hook)
                    hooks[hook] = self._rest(hook, line[len(hook) :])
                    break
            else:
                if not line.startswith("on_"):
                    return index
                word = _first_word(line)
                if word in _HOOKS:
                    self.warn(f"hook {quote(word)} without a value is ignored")
                else:
                    self.warn(f"unknown hook {_q(word)} is ignored (known: {', '.join(_HOOKS)})")
            index += 1
        return index

    # -- values

    def _rest(self, key: str, text: str) -> str:
        """A single value: the quoted string that starts it, else the rest of the line."""
        rest = rust_trim(text)
        if not rest.startswith('"'):
            return rest
        end = self._string_end(rest, 0)
        after = rust_trim(rest[end + 1 :])
        if after:
            self.warn(f"{_q(after)} after the quoted value of {quote(key)} is ignored")
        return self._unescape(rest[1:end])

    def _list(self, text: str) -> list[str]:
        items: list[str] = []
        pos = _WS_RUN.match(text, 0).end()  # type: ignore[union-attr]
        while pos < len(text):
            item, pos = self._token_at(text, pos)
            items.append(item)
        return items

    def _token(self, text: str) -> tuple[str, str]:
        """The first token of ``text`` (quoted, or up to whitespace) and the trimmed rest."""
        text = rust_trim(text)
        if not text:
            return "", ""
        item, pos = self._token_at(text, 0)
        return item, text[pos:]

    def _token_at(self, text: str, pos: int) -> tuple[str, int]:
        """The token starting at ``pos`` and the index after it and the whitespace after that.

        Positions, not slices, keep a line of many items linear in its length.
        """
        if text.startswith('"', pos):
            end = self._string_end(text, pos)
            item, after = self._unescape(text[pos + 1 : end]), end + 1
        else:
            match = _BARE_TOKEN.match(text, pos)
            assert match is not None  # pos is at a character that is not whitespace
            item, after = match.group(), match.end()
        return item, _WS_RUN.match(text, after).end()  # type: ignore[union-attr]

    def _string_end(self, text: str, start: int) -> int:
        """Index of the quote closing the string that opens at ``start``; a backslash
        skips the character after it."""
        match = _QUOTED.match(text, start)
        if match is not None:
            return match.end() - 1
        self.fail(
            "unterminated quoted string (note: '//' starts a comment even inside quotes, "
            "as in the reference)"
            if self.lineno in self.cut
            else "unterminated quoted string"
        )

    def _unescape(self, text: str) -> str:
        if "\\" not in text:
            return text
        out: list[str] = []
        index = 0
        while index < len(text):
            char = text[index]
            if char == "\\" and index + 1 < len(text):
                escaped = text[index + 1]
                if escaped not in _ESCAPES:
                    self.warn(
                        f"unknown escape '\\{escaped}' is read as {quote(escaped)} "
                        '(known: \\n \\t \\r \\" \\\\)'
                    )
                out.append(_ESCAPES.get(escaped, escaped))
                index += 2
            else:
                out.append(char)
                index += 1
        return "".join(out)


def _code_lines(content: str, cut: set[int]) -> list[tuple[int, str]]:
    """Number, trim and uncomment the lines; drop the empty ones (the reference's first pass).

    ``//`` starts a comment wherever it is, even inside a quoted string, as in the
    reference; lines break at ``\\n`` only (a ``\\r`` before it is trimmed).
    """
    out: list[tuple[int, str]] = []
    for lineno, raw in enumerate(content.split("\n"), start=1):
        line = rust_trim(raw)
        at = line.find("//")
        if at >= 0:
            cut.add(lineno)
            line = rust_trim(line[:at])
        if line:
            out.append((lineno, line))
    return out


def _ascii_eq(text: str, expected: str) -> bool:
    """``text == expected`` ignoring ASCII case only (Rust's ``eq_ignore_ascii_case``)."""
    return len(text) == len(expected) and text.isascii() and text.lower() == expected


def _first_word(line: str) -> str:
    end = next((i for i, ch in enumerate(line) if ch in _RUST_WS), len(line))
    return line[:end]


def _q(text: str) -> str:
    """Quote a (shortened) piece of mold text for a message."""
    return quote(_excerpt(text))


# --------------------------------------------------------------------------- legacy JSON

# The reference's JSON shape (serde, camelCase): field -> expected kind. Missing
# fields take their defaults; a field given twice is an error, as with serde.
_TOP_FIELDS = ("name", "version", "agent", "parameters", "dependencies", "metadata", "lifecycle")
_AGENT_FIELDS: dict[str, str] = {
    "type": "agent_type",
    "capabilities": "capabilities",
    "skills": "skills",
    "trustLevel": "trust_level",
    "learning": "learning",
    "communication": "communication",
    "coordination": "coordination",
    "memoryLimit": "memory_limit",
    "role": "role",
}
_LIFECYCLE_FIELDS: dict[str, str] = {
    "onCreate": "on_create",
    "onMessage": "on_message",
    "onEvolve": "on_evolve",
    "onDestroy": "on_destroy",
}


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs, in order, duplicates kept."""


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(text: str, source: str) -> Mold:
    try:
        doc = json.loads(text, object_pairs_hook=_Pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise MoldError(
            f"invalid mold JSON: {exc.msg} ({source} line {exc.lineno} column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:
        # NaN/Infinity, nesting too deep for the decoder, or an integer too long to convert.
        raise MoldError(f"invalid mold JSON: {_excerpt(str(exc), 120)} ({source})") from None
    return _JsonReader(source).mold(doc)


class _JsonReader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.warnings: list[str] = []

    def fail(self, path: str, why: str) -> NoReturn:
        raise MoldError(f"invalid mold JSON at {path}: {why} ({self.source})")

    def fields(self, value: Any, path: str, known: tuple[str, ...]) -> dict[str, Any]:
        """A struct: its known fields (a repeat is an error), unknown keys warned about."""
        if not isinstance(value, _Pairs):
            self.fail(path, f"expected an object, got {_json_type(value)}")
        out: dict[str, Any] = {}
        for key, item in value:
            if key in known:
                if key in out:
                    self.fail(f"{path}.{key}", "the field is given twice")
                out[key] = item
            else:
                self.warnings.append(f"{path}: unknown key {_q(key)} is ignored")
        return out

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {_json_type(value)}")
        if _has_surrogate(value):
            self.fail(path, "a lone surrogate escape is not valid text")
        return value

    def strings(self, value: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            self.fail(path, f"expected a list of strings, got {_json_type(value)}")
        return [self.string(item, f"{path}[{i}]") for i, item in enumerate(value)]

    def flag(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            self.fail(path, f"expected true or false, got {_json_type(value)}")
        return value

    def plain(self, value: Any, path: str) -> Any:
        """Any JSON value as plain Python (a repeated key in an object keeps the last)."""
        if isinstance(value, _Pairs):
            out: dict[str, Any] = {}
            for key, item in value:
                self.string(key, f"{path} key")
                out[key] = self.plain(item, f"{path}.{key}")
            return out
        if isinstance(value, list):
            return [self.plain(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, str):
            return self.string(value, path)
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(path, "a number out of range")
        return value

    def mold(self, doc: Any) -> Mold:
        top = self.fields(doc, "$", _TOP_FIELDS)
        values: dict[str, Any] = {}
        read: dict[str, Callable[[Any, str], Any]] = {
            "name": self.string,
            "version": self.string,
            "dependencies": self.strings,
        }
        for key, reader in read.items():
            if key in top:
                values[key] = reader(top[key], f"$.{key}")
        if "parameters" in top:
            params = self.plain(top["parameters"], "$.parameters")
            if not isinstance(params, dict):
                self.fail("$.parameters", f"expected an object, got {_json_type(params)}")
            for key, item in params.items():
                self.string(item, f"$.parameters.{key}")
            values["parameters"] = params
        if "metadata" in top:
            metadata = self.plain(top["metadata"], "$.metadata")
            if not isinstance(metadata, dict):
                self.fail("$.metadata", f"expected an object, got {_json_type(metadata)}")
            values["metadata"] = metadata
        # serde's defaults: a missing name, version or type is the empty string.
        values.setdefault("name", "")
        values.setdefault("version", "")
        values["agent_type"] = ""
        if "agent" in top:
            agent = self.fields(top["agent"], "$.agent", tuple(_AGENT_FIELDS))
            for key, field in _AGENT_FIELDS.items():
                if key not in agent:
                    continue
                path = f"$.agent.{key}"
                if key in ("capabilities", "skills"):
                    values[field] = self.strings(agent[key], path)
                elif key in _FLAG_KEYS:
                    values[field] = self.flag(agent[key], path)
                else:
                    text = self.string(agent[key], path)
                    if key in ("trustLevel", "memoryLimit"):
                        values[field] = text or None
                    else:
                        values[field] = text
            memory = values.get("memory_limit")
            problem = memory_problem(memory) if memory is not None else None
            if problem:
                self.warnings.append(f"$.agent.memoryLimit: {problem}")
        lifecycle: dict[str, str] = {}
        hooks = top.get("lifecycle")
        if hooks is not None:
            given = self.fields(hooks, "$.lifecycle", tuple(_LIFECYCLE_FIELDS))
            for key, hook in _LIFECYCLE_FIELDS.items():
                if given.get(key) is not None:
                    lifecycle[hook] = self.string(given[key], f"$.lifecycle.{key}")
        return Mold(lifecycle=lifecycle, warnings=tuple(self.warnings), **values)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
