"""Parse mold text: the line-oriented ``.mold.dal`` format and the legacy JSON form.

Both parsers are linear in the size of the input and raise only
:class:`~dalfleet.errors.MoldError`, whatever string they are given. Nothing in
a mold is ever evaluated: lifecycle hooks are kept as text.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

import attrs

from dalfleet.errors import MoldError, quote
from dalfleet.mold.model import (
    LIFECYCLE_HOOKS,
    MAX_MOLD_SIZE,
    Mold,
    _excerpt,
    memory_limit_bytes,
    normalize_agent_type,
)

__all__ = ["parse_mold"]

_WS = re.compile(r"\s+")
# A bare token runs to whitespace, a quote or a "//" comment; a single "/" is part of it.
_BARE = re.compile(r'(?:[^\s"/]|/(?!/))+')
# Plain characters inside a quoted string, up to the next quote or backslash.
_PLAIN = re.compile(r'[^"\\]*')
_ESCAPES: dict[str, str] = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}

_SINGLE_KEYS = frozenset({"type", "role", "memory_limit", "trust_level"})
_LIST_KEYS = frozenset({"capabilities", "skills"})
_BOOL_KEYS = frozenset({"learning", "communication", "coordination"})
_AGENT_KEYS = _SINGLE_KEYS | _LIST_KEYS | _BOOL_KEYS
_SECTIONS = frozenset({"mold", "agent", "lifecycle"})

_JSON_LIFECYCLE: dict[str, str] = {
    "onCreate": "on_create",
    "onMessage": "on_message",
    "onEvolve": "on_evolve",
    "onDestroy": "on_destroy",
}


def parse_mold(text: str, source: str = "<mold>") -> Mold:
    """Parse a mold from ``text``.

    Text whose first non-whitespace character is ``{`` is read as the legacy JSON
    form; anything else as ``.mold.dal``. ``source`` names the text in error
    messages (a file path, usually). The returned mold has ``path=None``.

    Raises:
        MoldError: the text is empty, larger than 1 MiB, or not a valid mold; the
            message names ``source`` and the line (or JSON path) and says why.
    """
    if not isinstance(text, str):
        raise MoldError(f"mold text must be a string, not {type(text).__name__} ({source})")
    if len(text) > MAX_MOLD_SIZE:
        raise MoldError(
            f"mold is too large: {len(text)} characters, the limit is {MAX_MOLD_SIZE} ({source})"
        )
    # Editors on Windows may prefix a byte-order mark; it is not content.
    if text.startswith("\ufeff"):
        text = text[1:]
    stripped = text.lstrip()
    if not stripped:
        raise MoldError(f"mold is empty ({source})")
    if stripped.startswith("{"):
        return _parse_json(text, source)
    return _DalParser(source).parse(text)


# --------------------------------------------------------------------------- .mold.dal


@attrs.frozen
class _Token:
    text: str
    quoted: bool
    start: int


class _DalParser:
    """One pass over the lines of a ``.mold.dal`` text."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lineno = 0
        self.values: dict[str, Any] = {}
        self.lifecycle: dict[str, str] = {}
        self.seen: dict[str, int] = {}

    def fail(self, why: str) -> NoReturn:
        raise MoldError(f"{why} ({self.source} line {self.lineno})")

    def parse(self, text: str) -> Mold:
        state = "mold"
        mold_line = 0
        for lineno, line in enumerate(text.split("\n"), start=1):
            self.lineno = lineno
            code, tokens = self._lex(line)
            if not tokens:
                continue
            head = tokens[0]
            if head.quoted:
                self.fail(f"expected a keyword at the start of the line, got {_q(head.text)}")
            keyword = head.text.lower()
            args = tokens[1:]
            if state == "mold":
                if keyword != "mold":
                    self.fail(f'expected \'mold "NAME" ["VERSION"]\' first, got {_q(code)}')
                self._mold_line(args)
                state, mold_line = "agent-header", self.lineno
            elif state == "agent-header":
                if keyword != "agent":
                    self.fail(f"expected 'agent' after the mold line, got {_q(code)}")
                self._no_args("agent", args)
                state = "agent"
            elif keyword == "lifecycle" and state == "agent":
                self._no_args("lifecycle", args)
                state = "lifecycle"
            elif keyword in _SECTIONS:
                self.fail(f"'{keyword}' may appear only once, in order mold, agent, lifecycle")
            elif state == "agent":
                self._agent_line(keyword, code, args)
            else:
                self._lifecycle_line(keyword, code, args)
        if state == "mold":
            raise MoldError(
                f"mold has no 'mold' line, only blank lines or comments ({self.source})"
            )
        if state == "agent-header":
            self.lineno = mold_line
            self.fail("expected an 'agent' line after the mold line, found the end of the text")
        return Mold(lifecycle=self.lifecycle, **self.values)

    # -- lines

    def _mold_line(self, args: list[_Token]) -> None:
        if not args or not args[0].text.strip():
            self.fail('the mold name is required: mold "NAME" ["VERSION"]')
        if len(args) > 2:
            self.fail(f"mold takes a name and a version, got {len(args)} values")
        self.values["name"] = args[0].text
        if len(args) == 2 and args[1].text:
            self.values["version"] = args[1].text

    def _no_args(self, keyword: str, args: list[_Token]) -> None:
        if args:
            self.fail(f"'{keyword}' takes no value, got {_q(args[0].text)}")

    def _agent_line(self, keyword: str, code: str, args: list[_Token]) -> None:
        if keyword not in _AGENT_KEYS:
            hint = (
                " (lifecycle hooks go in a 'lifecycle' section)"
                if keyword.startswith("on_")
                else ""
            )
            self.fail(f"unknown keyword {_q(keyword)} in the agent section{hint}")
        self._once(keyword)
        if keyword in _LIST_KEYS:
            self.values[keyword] = [t.text for t in args]
            return
        value = self._single(keyword, code, args)
        if keyword in _BOOL_KEYS:
            flag = value.lower()
            if flag not in ("true", "false"):
                self.fail(f"{keyword} must be true or false, got {_q(value)}")
            self.values[keyword] = flag == "true"
        elif keyword == "type":
            agent_type = normalize_agent_type(value)
            if agent_type is None:
                self.fail(f"unknown agent type in mold: {_excerpt(value.strip())}")
            self.values["agent_type"] = agent_type
        elif keyword == "memory_limit":
            problem = _memory_problem(value)
            if problem:
                self.fail(problem)
            self.values["memory_limit"] = value.strip()
        else:
            self.values[keyword] = value

    def _lifecycle_line(self, keyword: str, code: str, args: list[_Token]) -> None:
        if keyword not in LIFECYCLE_HOOKS:
            hooks = ", ".join(LIFECYCLE_HOOKS)
            self.fail(f"unknown keyword {_q(keyword)} in the lifecycle section (expected {hooks})")
        self._once(keyword)
        self.lifecycle[keyword] = self._single(keyword, code, args)

    def _once(self, keyword: str) -> None:
        first = self.seen.setdefault(keyword, self.lineno)
        if first != self.lineno:
            self.fail(f"{keyword!r} is given twice (first on line {first})")

    def _single(self, keyword: str, code: str, args: list[_Token]) -> str:
        """One value: a quoted string, or the bare rest of the line, trimmed."""
        if not args:
            self.fail(f"{keyword!r} needs a value")
        first = args[0]
        if not first.quoted:
            return code[first.start :].strip()
        if len(args) > 1:
            self.fail(f"unexpected {_q(args[1].text)} after the quoted value of {keyword!r}")
        return first.text

    # -- tokens

    def _lex(self, line: str) -> tuple[str, list[_Token]]:
        """Split one line into tokens; return the line without its comment, and the tokens."""
        tokens: list[_Token] = []
        pos, end = 0, len(line)
        while pos < end:
            space = _WS.match(line, pos)
            if space is not None:
                pos = space.end()
                continue
            if line.startswith("//", pos):
                return line[:pos], tokens
            if line[pos] == '"':
                text, after = self._quoted(line, pos)
                tokens.append(_Token(text, True, pos))
                pos = after
                continue
            bare = _BARE.match(line, pos)
            # The pattern matches any character but whitespace and '"' (handled above).
            assert bare is not None
            tokens.append(_Token(bare.group(), False, pos))
            pos = bare.end()
        return line, tokens

    def _quoted(self, line: str, start: int) -> tuple[str, int]:
        """Read the quoted string opening at ``start``; return its value and the index after it."""
        parts: list[str] = []
        pos = start + 1
        while True:
            plain = _PLAIN.match(line, pos)
            assert plain is not None  # the pattern also matches the empty string
            parts.append(plain.group())
            pos = plain.end()
            if pos >= len(line):
                self.fail(f"unterminated quoted string starting at column {start + 1}")
            if line[pos] == '"':
                return "".join(parts), pos + 1
            escaped = line[pos + 1 : pos + 2]
            if escaped not in _ESCAPES:
                if not escaped:
                    self.fail(f"unterminated quoted string starting at column {start + 1}")
                self.fail(
                    f"unknown escape '\\{escaped}' at column {pos + 1} "
                    '(use \\n \\t \\r \\" or \\\\)'
                )
            parts.append(_ESCAPES[escaped])
            pos += 2


def _memory_problem(value: str) -> str | None:
    """Why ``value`` is not a valid memory limit, or None when it is."""
    try:
        memory_limit_bytes(value)
    except MoldError as exc:
        return exc.message
    return None


def _q(text: str) -> str:
    """Quote a (shortened) piece of mold text for an error message."""
    return quote(text.strip(), limit=60)


# --------------------------------------------------------------------------- legacy JSON


def _parse_json(text: str, source: str) -> Mold:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MoldError(
            f"invalid mold JSON: {exc.msg} ({source} line {exc.lineno} column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:
        # Nesting too deep for the decoder, or an integer too long to convert.
        raise MoldError(f"invalid mold JSON: {_excerpt(str(exc), 120)} ({source})") from None
    if not isinstance(doc, dict):
        raise MoldError(f"invalid mold JSON: expected an object at $ ({source})")

    def fail(path: str, why: str) -> NoReturn:
        raise MoldError(f"invalid mold JSON at {path}: {why} ({source})")

    def get(obj: dict[str, Any], key: str, path: str, kind: type, what: str) -> Any:
        value = obj.get(key)
        if value is not None and not isinstance(value, kind):
            fail(f"{path}.{key}", f"expected {what}, got {_json_type(value)}")
        return value

    def get_str(obj: dict[str, Any], key: str, path: str) -> str | None:
        value: str | None = get(obj, key, path, str, "a string")
        return value

    def get_list(obj: dict[str, Any], key: str, path: str) -> list[str]:
        items: list[Any] = get(obj, key, path, list, "a list of strings") or []
        for index, item in enumerate(items):
            if not isinstance(item, str):
                fail(f"{path}.{key}[{index}]", f"expected a string, got {_json_type(item)}")
        return list(items)

    def get_bool(obj: dict[str, Any], key: str, path: str) -> bool:
        return bool(get(obj, key, path, bool, "true or false"))

    name = get_str(doc, "name", "$")
    if not name:
        fail("$.name", "the mold name is required (a non-empty string)")
    values: dict[str, Any] = {"name": name, "version": get_str(doc, "version", "$") or "1.0"}
    values["parameters"] = dict(get(doc, "parameters", "$", dict, "an object") or {})
    values["metadata"] = dict(get(doc, "metadata", "$", dict, "an object") or {})

    agent: dict[str, Any] = get(doc, "agent", "$", dict, "an object") or {}
    raw_type = get_str(agent, "type", "$.agent")
    if raw_type is not None:
        agent_type = normalize_agent_type(raw_type)
        if agent_type is None:
            raise MoldError(
                f"unknown agent type in mold: {_excerpt(raw_type.strip())} "
                f"({source} at $.agent.type)"
            )
        values["agent_type"] = agent_type
    values["role"] = get_str(agent, "role", "$.agent") or ""
    values["capabilities"] = get_list(agent, "capabilities", "$.agent")
    values["skills"] = get_list(agent, "skills", "$.agent")
    values["trust_level"] = get_str(agent, "trustLevel", "$.agent") or None
    for flag in ("learning", "communication", "coordination"):
        values[flag] = get_bool(agent, flag, "$.agent")
    memory = (get_str(agent, "memoryLimit", "$.agent") or "").strip()
    if memory:
        problem = _memory_problem(memory)
        if problem:
            fail("$.agent.memoryLimit", problem)
        values["memory_limit"] = memory

    hooks: dict[str, Any] = get(doc, "lifecycle", "$", dict, "an object") or {}
    lifecycle: dict[str, str] = {}
    for key, hook in _JSON_LIFECYCLE.items():
        # The snake_case spelling is accepted too; the camelCase one is the reference's.
        for spelling in (key, hook):
            text_value = get_str(hooks, spelling, "$.lifecycle")
            if text_value is not None:
                lifecycle[hook] = text_value
    return Mold(lifecycle=lifecycle, **values)


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
