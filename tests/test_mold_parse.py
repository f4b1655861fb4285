"""Parsing molds as the reference implementation does (SPEC §4, [compat]).

The expected fields in the tables below were derived by reading the reference's
parser (``src/mold/parser.rs``, ``src/mold/config.rs``) line by line: what it
accepts is accepted here with the same fields, and what it ignores silently is
ignored here too, with a warning.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from dalfleet.errors import MoldError
from dalfleet.mold import (
    Mold,
    agent_type_of,
    memory_limit_bytes,
    parse_mold,
    reference_memory_bytes,
)

# --------------------------------------------------------------------------- fixtures
# Molds shaped like the reference's own examples and tests, written afresh.

RUNNER = """
mold "Runner" "2.0"
agent
  type Worker
  role "Run tasks"
  memory_limit "256MB"
lifecycle
  on_create "evolve::append_log(agent_id, \\"made\\")"
  on_evolve "evolve::append_summary(agent_id, evolution_data)"
"""

MINIMAL = """
mold "Probe" "1.0"
agent
  type AI
  capabilities "read"
  trust_level standard
"""

WITH_SKILLS = """
mold "Aide" "1.0"
agent
  type AI
  role "Assistant"
  skills "development" "creative" "office" "home"
"""

DETECTOR = """
// A detector mold
mold "detector" "1.0"
agent
  type AI
  role "Detect problems with {{env}}"
  capabilities "read" "analyze" "report"
  memory_limit "512MB"
  learning true
lifecycle
  on_create "evolve::append_log(agent_id, \\"made\\")"
  on_evolve "evolve::append_summary(agent_id, evolution_data)"
"""

SCAFFOLD = """mold "draft" "1.0"
agent
  type AI
  role ""
  capabilities
  skills "development" "creative" "office" "home"
  memory_limit "256MB"
  learning true
  communication true
  coordination true
"""

LEGACY_JSON = """{
  "name": "probe_json",
  "version": "1.0",
  "agent": {
    "type": "AI", "role": "", "capabilities": [], "trustLevel": "standard",
    "learning": true, "communication": true, "coordination": true,
    "memoryLimit": "256MB"
  },
  "parameters": {},
  "dependencies": [],
  "metadata": {}
}"""


def fields(mold: Mold) -> dict[str, Any]:
    """The fields a comparison with the reference looks at."""
    return {
        "name": mold.name,
        "version": mold.version,
        "type": mold.agent_type,
        "role": mold.role,
        "capabilities": mold.capabilities,
        "skills": mold.skills,
        "memory_limit": mold.memory_limit,
        "trust_level": mold.trust_level,
        "learning": mold.learning,
        "communication": mold.communication,
        "coordination": mold.coordination,
        "lifecycle": mold.lifecycle,
    }


def test_runner_fixture() -> None:
    mold = parse_mold(RUNNER)
    assert (mold.name, mold.version, mold.agent_type, mold.role) == (
        "Runner",
        "2.0",
        "Worker",
        "Run tasks",
    )
    assert mold.memory_limit == "256MB"
    assert mold.lifecycle == {
        "on_create": 'evolve::append_log(agent_id, "made")',
        "on_evolve": "evolve::append_summary(agent_id, evolution_data)",
    }
    assert mold.warnings == ()


def test_minimal_fixture() -> None:
    mold = parse_mold(MINIMAL)
    assert (mold.name, mold.agent_type, mold.capabilities, mold.trust_level) == (
        "Probe",
        "AI",
        ["read"],
        "standard",
    )


def test_skills_fixture() -> None:
    assert parse_mold(WITH_SKILLS).skills == ["development", "creative", "office", "home"]


def test_detector_fixture() -> None:
    mold = parse_mold(DETECTOR)
    assert mold.capabilities == ["read", "analyze", "report"]
    assert (mold.learning, mold.communication, mold.memory_limit) == (True, False, "512MB")
    assert mold.warnings == ()


def test_scaffold_fixture_bare_capabilities_line_is_ignored() -> None:
    mold = parse_mold(SCAFFOLD)
    assert (mold.role, mold.capabilities) == ("", [])
    assert (mold.learning, mold.communication, mold.coordination) == (True, True, True)
    # A keyword alone is ignored silently: it can only mean the default here.
    assert mold.warnings == ()


def test_legacy_json_fixture() -> None:
    mold = parse_mold(LEGACY_JSON)
    assert fields(mold) == {
        "name": "probe_json",
        "version": "1.0",
        "type": "AI",
        "role": "",
        "capabilities": [],
        "skills": [],
        "memory_limit": "256MB",
        "trust_level": "standard",
        "learning": True,
        "communication": True,
        "coordination": True,
        "lifecycle": {},
    }
    assert mold.warnings == ()


def test_sample_mold_parses_without_warnings() -> None:
    from dalfleet.mold import sample_mold_path

    mold = parse_mold(sample_mold_path().read_text(encoding="utf-8"))
    assert (mold.name, mold.agent_type, mold.warnings) == ("worker", "Worker", ())


# --------------------------------------------------------------------------- the table

HEAD = 'mold "m"\nagent\n'

# (mold text, {field: value the reference reads}, a fragment of the expected warning or None)
TABLE: list[tuple[str, dict[str, Any], str | None]] = [
    # unknown keywords are ignored
    (HEAD + "  colour blue\n", {}, "unknown keyword 'colour'"),
    # keywords are case-sensitive: "Type Worker" is not the type
    (HEAD + "  Type Worker\n", {"type": "AI"}, "case-sensitive"),
    (HEAD + "  ROLE boss\n", {"role": ""}, "case-sensitive"),
    # repeated key: the last wins
    (HEAD + '  role "a"\n  role "b"\n', {"role": "b"}, "given again"),
    (HEAD + "  capabilities a b\n  capabilities c\n", {"capabilities": ["c"]}, "given again"),
    # booleans: exactly "key true|false", ASCII case-insensitive, one space
    (HEAD + "  learning true\n", {"learning": True}, None),
    (HEAD + "  LEARNING TRUE\n", {"learning": True}, None),
    (HEAD + "  Communication False\n", {"communication": False}, None),
    (HEAD + "  learning yes\n", {"learning": False}, "learning true"),
    (HEAD + "  learning  true\n", {"learning": False}, "one space"),
    (HEAD + "  learning\ttrue\n", {"learning": False}, "one space"),
    (HEAD + '  learning "true"\n', {"learning": False}, "learning true"),
    (HEAD + "  learning true\n  learning false\n", {"learning": False}, "given again"),
    # escapes: known ones, and an unknown one reads as the character itself
    (HEAD + '  role "a\\tb\\nc\\"d\\\\e\\rf"\n', {"role": 'a\tb\nc"d\\e\rf'}, None),
    (HEAD + '  role "a\\qb"\n', {"role": "aqb"}, "unknown escape"),
    # text after a quoted value is ignored
    (HEAD + '  role "a" and more\n', {"role": "a"}, "after the quoted value"),
    (HEAD + '  on_create "x"\n', {"lifecycle": {}}, "before 'lifecycle'"),
    # bare values
    (HEAD + "  role Work on it\n", {"role": "Work on it"}, None),
    (HEAD + "  role\n", {"role": ""}, None),
    (HEAD + "  role r\n  role\n", {"role": "r"}, "value from line 3 is kept"),
    (HEAD + "  capabilities a\n  capabilities\n", {"capabilities": ["a"]}, "without a value"),
    (HEAD + '  role a "b c"\n', {"role": 'a "b c"'}, None),
    (HEAD + '  capabilities a"b c" "d"\n', {"capabilities": ['a"b', 'c"', "d"]}, None),
    (HEAD + '  capabilities "a"b\n', {"capabilities": ["a", "b"]}, None),
    (HEAD + '  capabilities "" x\n', {"capabilities": ["", "x"]}, None),
    # type and trust_level are the rest of the line, quotes and all
    (HEAD + "  type custom:MyBot\n", {"type": "custom:MyBot"}, None),
    (HEAD + '  type "Worker"\n', {"type": '"Worker"'}, None),
    (HEAD + "  type  worker \n", {"type": "worker"}, None),
    (HEAD + '  trust_level "high"\n', {"trust_level": '"high"'}, None),
    # memory_limit is kept as written, whatever it says
    (HEAD + '  memory_limit "lots"\n', {"memory_limit": "lots"}, "invalid memory_limit"),
    (HEAD + '  memory_limit "256M"\n', {"memory_limit": "256M"}, "reference cannot read"),
    (HEAD + "  memory_limit 2GB\n", {"memory_limit": "2GB"}, None),
    (HEAD + '  memory_limit " 1 MB "\n', {"memory_limit": "1 MB"}, None),
    # the mold line: three values, bare values, an empty version
    ('mold "m" "2" "3"\nagent\n', {"version": "2"}, "after the mold name"),
    ("mold m 2.5\nagent\n", {"name": "m", "version": "2.5"}, None),
    ('mold "m" ""\nagent\n', {"version": "1.0"}, None),
    ('mold "m"x\nagent\n', {"name": "m", "version": "x"}, None),
    ('mold "m"\nAGENT\n', {"name": "m"}, None),
    # comments: "//" cuts the line anywhere, even in quotes (the reference's rule)
    (HEAD + "  role a // note\n", {"role": "a"}, None),
    (HEAD + '  role "x" "y // z"\n', {"role": "x"}, "after the quoted value"),
    (HEAD + '  role a "b // c"\n', {"role": 'a "b'}, None),
    (HEAD + "  capabilities read/write\n", {"capabilities": ["read/write"]}, None),
    # the lifecycle section: unknown hooks skipped; the first other line ends the mold
    (
        HEAD + 'lifecycle\n  on_create "a"\n  on_wake "b"\n  on_destroy "c"\n',
        {"lifecycle": {"on_create": "a", "on_destroy": "c"}},
        "unknown hook 'on_wake'",
    ),
    (
        HEAD + 'lifecycle\n  on_create "a"\n  role "late"\n  on_evolve "b"\n',
        {"role": "", "lifecycle": {"on_create": "a"}},
        "every line after it are ignored",
    ),
    (
        HEAD + 'lifecycle\n  on_create "a"\n  on_create "b"\n',
        {"lifecycle": {"on_create": "b"}},
        "given again",
    ),
    (HEAD + "lifecycle\n  on_create\n", {"lifecycle": {}}, "without a value"),
    (HEAD + "LifeCycle\n  on_message hi there\n", {"lifecycle": {"on_message": "hi there"}}, None),
    (HEAD + "lifecycle\n  On_Create x\n", {"lifecycle": {}}, "every line after it"),
    # lines break at \n only; \r\n works; other separators stay inside a line
    ('mold "m"\r\nagent\r\n  role r\r\n', {"role": "r"}, None),
    (HEAD + "  role a\x0bb\n", {"role": "a\x0bb"}, None),
    # non-ASCII text is read right (the reference garbles it byte by byte)
    (HEAD + '  role "café ☕"\n', {"role": "café ☕"}, None),
    ('mold "größe"\nagent\n', {"name": "größe"}, None),
    # a repeated mold/agent line inside the agent section is ignored
    (HEAD + "  agent\n", {}, "only once"),
]


@pytest.mark.parametrize(("text", "expected", "warning"), TABLE)
def test_reference_table(text: str, expected: dict[str, Any], warning: str | None) -> None:
    mold = parse_mold(text)
    got = fields(mold)
    assert {key: got[key] for key in expected} == expected
    if warning is None:
        assert mold.warnings == ()
    else:
        assert any(warning in w for w in mold.warnings), mold.warnings
        with pytest.raises(MoldError, match="strict"):
            parse_mold(text, strict=True)


def test_defaults_of_a_minimal_mold() -> None:
    assert fields(parse_mold(HEAD)) == {
        "name": "m",
        "version": "1.0",
        "type": "AI",
        "role": "",
        "capabilities": [],
        "skills": [],
        "memory_limit": None,
        "trust_level": None,
        "learning": False,
        "communication": False,
        "coordination": False,
        "lifecycle": {},
    }


def test_warnings_name_the_line() -> None:
    mold = parse_mold('// c\n\nmold "m"\nagent\n  colour blue\n')
    assert mold.warnings == ("line 5: unknown keyword 'colour' is ignored",)


# ------------------------------------------------------------------ errors, as in the reference


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("  \n\t\n", "empty"),
        ("// only\n// comments\n", "no 'mold' line"),
        ("agent\n", "expected 'mold"),
        ("mold\tm\nagent\n", "expected 'mold"),
        ("Mold m\nagent\n", "expected 'mold"),
        ("MOLD\nagent\n", "name is required"),
        ('mold ""\nagent\n', "name is required"),
        ('mold "m\nagent\n', "unterminated"),
        ('mold "m" "1\nagent\n', "unterminated"),
        ('mold "m"\n', "found the end"),
        ('mold "m"\nagent x\n', "expected 'agent'"),
        ('mold "m"\n  role r\nagent\n', "expected 'agent'"),
        (HEAD + '  role "open\n', "unterminated"),
        (HEAD + '  capabilities "a" "b\n', "unterminated"),
        (HEAD + 'lifecycle\n  on_create "x\\\n', "unterminated"),
    ],
)
def test_what_the_reference_refuses_is_refused(text: str, fragment: str) -> None:
    with pytest.raises(MoldError, match=fragment):
        parse_mold(text, source="t.mold.dal")


def test_double_slash_in_quotes_gets_a_hint() -> None:
    with pytest.raises(MoldError, match="'//' starts a comment even inside quotes"):
        parse_mold(HEAD + '  role "see http://example.com"\n')


def test_error_names_the_source_and_line() -> None:
    with pytest.raises(MoldError, match=r"\(t\.mold\.dal line 3\)"):
        parse_mold(HEAD + '  role "open\n', source="t.mold.dal")


def test_text_over_one_mebibyte_is_refused() -> None:
    with pytest.raises(MoldError, match="too large"):
        parse_mold(HEAD + "// " + "x" * (1024 * 1024))


def test_byte_order_mark_is_ignored() -> None:
    assert parse_mold("\ufeff" + RUNNER) == parse_mold(RUNNER)


def test_non_string_text_is_a_mold_error() -> None:
    with pytest.raises(MoldError, match="must be a string"):
        parse_mold(b"mold m\nagent")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- agent types


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("AI", "AI"),
        ("ai", "AI"),
        ("Worker", "Worker"),
        ("WORKER", "Worker"),
        ("system", "System"),
        ("ide", "IDE"),
        ("custom:MyBot", "custom:MyBot"),
        ("CUSTOM:MyBot", "custom:MyBot"),
        ("custom:", "custom:"),
    ],
)
def test_agent_type_is_kept_as_written_and_checked_when_used(written: str, canonical: str) -> None:
    mold = parse_mold(HEAD + f"  type {written}\n")
    assert mold.agent_type == written
    assert agent_type_of(mold) == canonical


@pytest.mark.parametrize("written", ["Robot", '"Worker"', "work er"])
def test_unknown_agent_type_parses_but_cannot_make_agents(written: str) -> None:
    mold = parse_mold(HEAD + f"  type {written}\n")
    with pytest.raises(MoldError, match=f"^unknown agent type in mold: {written}"):
        agent_type_of(mold)


# --------------------------------------------------------------------------- memory limits


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("256MB", 256 * 1024**2),
        ("256mb", 256 * 1024**2),
        ("256 MB", 256 * 1024**2),
        ("2GB", 2 * 1024**3),
        ("512KB", 512 * 1024),
        ("4096", 4096),
        ("256M", 256 * 1024**2),
        ("1MiB", 1024**2),
    ],
)
def test_memory_limit_bytes(value: str, expected: int) -> None:
    assert memory_limit_bytes(value) == expected


@pytest.mark.parametrize("value", ["lots", "", "0MB", "1.5GB", "-1MB", "MB", "1TB"])
def test_memory_limit_bytes_refuses_anything_else(value: str) -> None:
    with pytest.raises(MoldError):
        memory_limit_bytes(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("256MB", 256 * 1024**2),
        ("256 mb", 256 * 1024**2),
        ("4096", 4096),
        ("256M", 2),  # the reference's bug: not a unit it knows, so its fallback
        ("lots", 2),
        ("", None),
    ],
)
def test_reference_memory_reading(value: str, expected: int | None) -> None:
    assert reference_memory_bytes(value) == expected


# --------------------------------------------------------------------------- legacy JSON


def test_json_without_a_name_takes_the_reference_defaults() -> None:
    mold = parse_mold('{"agent": {"role": "r"}}')
    assert (mold.name, mold.version, mold.agent_type, mold.role) == ("", "", "", "r")
    with pytest.raises(MoldError, match=r"^unknown agent type in mold: $"):
        agent_type_of(mold)


def test_json_empty_object() -> None:
    mold = parse_mold("{}")
    assert fields(mold)["name"] == "" and mold.capabilities == [] and not mold.learning


def test_json_reads_every_field() -> None:
    doc = {
        "name": "w",
        "version": "3",
        "agent": {
            "type": "custom:Bot",
            "role": "r {{x}}",
            "capabilities": ["a"],
            "skills": ["s"],
            "trustLevel": "t",
            "learning": True,
            "communication": False,
            "coordination": True,
            "memoryLimit": "1GB",
        },
        "parameters": {"p": "v"},
        "dependencies": ["d"],
        "metadata": {"team": "ops", "n": 3, "tags": ["x"]},
        "lifecycle": {"onCreate": "c", "onMessage": "m", "onEvolve": None, "onDestroy": "d"},
    }
    mold = parse_mold(json.dumps(doc))
    assert (mold.agent_type, mold.trust_level, mold.memory_limit) == ("custom:Bot", "t", "1GB")
    assert (mold.parameters, mold.dependencies) == ({"p": "v"}, ["d"])
    assert mold.metadata == {"team": "ops", "n": 3, "tags": ["x"]}
    assert mold.lifecycle == {"on_create": "c", "on_message": "m", "on_destroy": "d"}
    assert mold.warnings == ()


def test_json_unknown_keys_are_ignored_with_a_warning() -> None:
    mold = parse_mold('{"name": "w", "colour": 1, "agent": {"trust_level": "x"}}')
    assert mold.trust_level is None
    assert len(mold.warnings) == 2


def test_json_snake_case_hooks_are_unknown_as_in_the_reference() -> None:
    mold = parse_mold('{"name": "w", "lifecycle": {"on_create": "x"}}')
    assert mold.lifecycle == {}
    assert mold.warnings


def test_json_repeated_metadata_key_keeps_the_last() -> None:
    assert parse_mold('{"name": "w", "metadata": {"a": 1, "a": 2}}').metadata == {"a": 2}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"name": "a", "name": "b"}', "given twice"),
        ('{"name": 3}', r"\$\.name: expected a string"),
        ('{"name": null}', "expected a string"),
        ('{"agent": null}', "expected an object"),
        ('{"agent": {"learning": "yes"}}', "true or false"),
        ('{"agent": {"capabilities": ["a", 1]}}', r"capabilities\[1\]"),
        ('{"parameters": {"a": 1}}', "expected a string"),
        ('{"lifecycle": {"onCreate": 1}}', "expected a string"),
        ('{"name": "w"', "invalid mold JSON"),
        ('{"name": "w"} x', "invalid mold JSON"),
        ('{"metadata": {"x": NaN}}', "invalid mold JSON"),
        ('{"name": "\\ud800"}', "surrogate"),
        ("{" * 100000, "invalid mold JSON"),
    ],
)
def test_json_the_reference_refuses(text: str, fragment: str) -> None:
    with pytest.raises(MoldError, match=fragment):
        parse_mold(text)


def test_a_line_of_many_items_parses() -> None:
    # Tokens are read by position: a 1 MiB line of items stays linear work.
    mold = parse_mold(HEAD + "  capabilities " + "a " * 300_000)
    assert len(mold.capabilities) == 300_000


def test_warnings_are_capped_and_counted() -> None:
    mold = parse_mold(HEAD + "  colour x\n" * 500)
    assert len(mold.warnings) == 101
    assert mold.warnings[-1] == "and 400 more warnings"
