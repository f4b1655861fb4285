"""Property tests: the mold parser raises nothing but MoldError, on any text, and stays fast."""

from __future__ import annotations

import contextlib
import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dalfleet.errors import InvalidArgumentError, MoldError
from dalfleet.mold import Mold, agent_type_of, memory_limit_bytes, parse_mold, parse_params, render

# No example database: the tests must not write into the working tree.
FUZZ = settings(
    deadline=None,
    max_examples=300,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

KEYWORDS = [
    "mold",
    "agent",
    "lifecycle",
    "type",
    "role",
    "capabilities",
    "skills",
    "memory_limit",
    "learning",
    "communication",
    "coordination",
    "trust_level",
    "on_create",
    "on_message",
    "on_evolve",
    "on_destroy",
    "MOLD",
    "Agent",
    "custom:x",
]
PIECES = [
    '"',
    "\\",
    '\\"',
    "\\n",
    "\\q",
    "//",
    "/",
    "{{env}}",
    "{",
    "}",
    "true",
    "false",
    "256MB",
    "lots",
    "AI",
    "Worker",
    "custom:",
    "\t",
    " ",
    "\r",
    "\0",
    "\ufeff",
]

word = st.one_of(
    st.sampled_from(KEYWORDS),
    st.sampled_from(PIECES),
    st.text(max_size=8),
    st.builds(lambda s: '"' + s + '"', st.text(max_size=8)),
)
line = st.lists(word, max_size=6).map(" ".join)
grammarish = st.lists(line, max_size=20).map("\n".join)
valid_prefix = st.sampled_from(['mold "m"\nagent\n', "mold x 2\nAGENT\n", ""])


def parses_or_mold_error(text: str) -> None:
    try:
        mold = parse_mold(text, source="fuzz")
    except MoldError:
        return
    assert isinstance(mold, Mold)
    # Only the legacy JSON form may leave the name empty (the reference's default).
    assert mold.name or text.strip().startswith("{")
    assert all(isinstance(w, str) for w in mold.warnings)


@FUZZ
@given(st.text())
def test_any_text_parses_or_raises_mold_error(text: str) -> None:
    parses_or_mold_error(text)


@FUZZ
@given(valid_prefix, grammarish)
def test_keyword_soup_parses_or_raises_mold_error(prefix: str, body: str) -> None:
    parses_or_mold_error(prefix + body)


@FUZZ
@given(st.text(alphabet='{}[]":,0123456789truefalsn \n\\', max_size=200))
def test_json_like_text_parses_or_raises_mold_error(body: str) -> None:
    parses_or_mold_error("{" + body)


agent_value = st.one_of(
    st.sampled_from(["true", "false", "AI", "worker", "custom:bot", "256MB", "1 gb", "standard"]),
    st.builds(lambda s: '"' + escape(s) + '"', st.text(max_size=10)),
    st.text(alphabet=st.characters(blacklist_characters="\n"), max_size=10),
)
agent_key = st.sampled_from(KEYWORDS[3:12])
hook_key = st.sampled_from(KEYWORDS[12:16])


def section(keys: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pairs = st.lists(st.tuples(keys, agent_value), max_size=8, unique_by=lambda kv: kv[0])
    return pairs.map(lambda kvs: "".join(f"  {k} {v}\n" for k, v in kvs))


@FUZZ
@given(section(agent_key), st.booleans(), section(hook_key))
def test_nearly_valid_molds_parse_to_well_typed_values(
    agent_lines: str, has_lifecycle: bool, hook_lines: str
) -> None:
    text = 'mold "m"\nagent\n' + agent_lines + ("lifecycle\n" + hook_lines if has_lifecycle else "")
    try:
        mold = parse_mold(text)
    except MoldError:
        return
    try:
        canonical = agent_type_of(mold)
    except MoldError as exc:
        assert str(exc).startswith("unknown agent type in mold: ")
    else:
        assert canonical in ("AI", "System", "Worker", "IDE") or canonical.startswith("custom:")
    assert all(isinstance(flag, bool) for flag in (mold.learning, mold.coordination))
    assert mold.memory_limit is None or isinstance(mold.memory_limit, str)
    assert all(isinstance(c, str) for c in mold.capabilities + mold.skills)
    assert set(mold.lifecycle) <= {"on_create", "on_message", "on_evolve", "on_destroy"}


def escape(text: str) -> str:
    for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\t", "\\t"), ("\r", "\\r")):
        text = text.replace(raw, escaped)
    return text.replace("\n", "\\n")


@FUZZ
@given(st.text())
def test_escaped_quoted_string_round_trips(value: str) -> None:
    mold = parse_mold(f'mold "m"\nagent\n  role "{escape(value)}"  // comment\n')
    assert mold.role == value


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)
json_keys = st.sampled_from(
    [
        *("name", "version", "agent", "parameters", "metadata", "lifecycle", "type", "role"),
        *("capabilities", "skills", "trustLevel", "learning", "memoryLimit", "onCreate"),
    ]
)


@FUZZ
@given(st.dictionaries(json_keys, json_value | st.dictionaries(json_keys, json_value), max_size=6))
def test_json_documents_parse_or_raise_mold_error(doc: dict[str, object]) -> None:
    parses_or_mold_error(json.dumps(doc))


@FUZZ
@given(st.text())
def test_memory_limit_bytes_returns_positive_int_or_raises_mold_error(value: str) -> None:
    with contextlib.suppress(MoldError):
        assert memory_limit_bytes(value) > 0


@FUZZ
@given(st.text(max_size=30), st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5)))
def test_render_never_evaluates_and_only_raises_invalid_argument(
    role: str, params: dict[str, str]
) -> None:
    try:
        spec = render(Mold(name="m", role=role, capabilities=[role]), "a", params)
    except InvalidArgumentError:
        return
    assert spec.trust_level == "sandboxed"
    if not params:
        assert spec.role == role


@FUZZ
@given(st.lists(st.text(max_size=10), max_size=5))
def test_parse_params_returns_dict_or_raises_value_error(items: list[str]) -> None:
    try:
        result = parse_params(items)
    except InvalidArgumentError:
        return
    assert result is not None
    assert all(isinstance(k, str) and k for k in result)


def test_huge_single_line_is_handled_quickly() -> None:
    text = 'mold "m"\nagent\n  role "' + "a\\n" * 300_000 + '"\n'
    start = time.perf_counter()
    assert len(parse_mold(text).role) == 600_000
    assert time.perf_counter() - start < 5


def test_many_short_lines_are_handled_quickly() -> None:
    text = 'mold "m"\nagent\n' + "// c\n" * 200_000
    start = time.perf_counter()
    assert parse_mold(text).name == "m"
    assert time.perf_counter() - start < 5
