"""Parsing molds: the .mold.dal format and the legacy JSON form (SPEC §4)."""

from __future__ import annotations

import json

import pytest

from dalfleet.errors import MoldError
from dalfleet.mold import Mold, memory_limit_bytes, parse_mold

FULL = """\
mold "workers" "2.1"          // name required; version defaults to "1.0"
agent
  type Worker              // case-insensitive
  role "Work on {{env}}"
  capabilities "read" "write"
  skills "development" "office"
  memory_limit "256MB"
  learning true
  communication true
  coordination false
  trust_level standard     // display only
lifecycle
  on_create "evolve::append_log(agent_id, \\"created\\")"
  on_message "handle(msg)"
  on_evolve "evolve::append_summary(agent_id, evolution_data)"
  on_destroy "bye()"
"""


def agent(*lines: str) -> str:
    """A minimal mold whose agent section holds ``lines``."""
    return 'mold "m"\nagent\n' + "".join(f"  {line}\n" for line in lines)


def parse_error(text: str) -> str:
    with pytest.raises(MoldError) as info:
        parse_mold(text, source="t.mold.dal")
    return str(info.value)


# --------------------------------------------------------------------------- the full example


def test_full_example_parses_every_field() -> None:
    assert parse_mold(FULL) == Mold(
        name="workers",
        version="2.1",
        agent_type="Worker",
        role="Work on {{env}}",
        capabilities=["read", "write"],
        skills=["development", "office"],
        memory_limit="256MB",
        learning=True,
        communication=True,
        coordination=False,
        trust_level="standard",
        lifecycle={
            "on_create": 'evolve::append_log(agent_id, "created")',
            "on_message": "handle(msg)",
            "on_evolve": "evolve::append_summary(agent_id, evolution_data)",
            "on_destroy": "bye()",
        },
    )


def test_parsed_mold_has_no_path() -> None:
    assert parse_mold(FULL).path is None


def test_minimal_mold_gets_defaults() -> None:
    assert parse_mold('mold "m"\nagent\n') == Mold(name="m")


def test_defaults_are_version_1_0_type_ai_and_flags_off() -> None:
    mold = parse_mold('mold "m"\nagent')
    assert (mold.version, mold.agent_type, mold.role) == ("1.0", "AI", "")
    assert (mold.learning, mold.communication, mold.coordination) == (False, False, False)
    assert (mold.memory_limit, mold.trust_level, mold.lifecycle) == (None, None, {})
    assert (mold.capabilities, mold.skills, mold.parameters, mold.metadata) == ([], [], {}, {})


def test_empty_version_defaults_to_1_0() -> None:
    assert parse_mold('mold "m" ""\nagent').version == "1.0"


def test_bare_name_and_version_are_accepted() -> None:
    mold = parse_mold("mold worker 3.0\nagent")
    assert (mold.name, mold.version) == ("worker", "3.0")


def test_crlf_line_endings_are_accepted() -> None:
    assert parse_mold(FULL.replace("\n", "\r\n")) == parse_mold(FULL)


def test_leading_byte_order_mark_is_ignored() -> None:
    assert parse_mold("\ufeff" + FULL) == parse_mold(FULL)


def test_keywords_are_case_insensitive() -> None:
    mold = parse_mold('MOLD "m"\nAgent\n  ROLE r\n  Learning TRUE\nLIFECYCLE\n  On_Create x')
    assert (mold.role, mold.learning, mold.lifecycle) == ("r", True, {"on_create": "x"})


def test_leading_whitespace_before_keywords_is_allowed() -> None:
    assert parse_mold('   mold "m"\n\t agent\n\t\ttype IDE').agent_type == "IDE"


# --------------------------------------------------------------------------- comments and blanks


def test_blank_lines_and_comment_lines_are_ignored() -> None:
    text = '// header\n\n   \nmold "m"\n// between\n\nagent\n  // inside\n  role r\n'
    assert parse_mold(text).role == "r"


def test_comment_after_a_value_is_dropped() -> None:
    assert parse_mold(agent("role Helper   // trailing")).role == "Helper"


def test_double_slash_inside_quotes_is_not_a_comment() -> None:
    mold = parse_mold(agent('role "see http://example.com" // real comment'))
    assert mold.role == "see http://example.com"


def test_double_slash_inside_a_quoted_list_item_is_kept() -> None:
    assert parse_mold(agent('capabilities "a//b" c')).capabilities == ["a//b", "c"]


def test_single_slash_in_a_bare_value_is_kept() -> None:
    assert parse_mold(agent("capabilities read/write")).capabilities == ["read/write"]


def test_comment_only_text_is_an_error() -> None:
    assert "no 'mold' line" in parse_error("// nothing\n\n// here\n")


# --------------------------------------------------------------------------- values


def test_bare_role_is_the_trimmed_rest_of_the_line() -> None:
    assert parse_mold(agent("role   Work on the  queue  ")).role == "Work on the  queue"


def test_quoted_role_keeps_inner_spaces() -> None:
    assert parse_mold(agent('role "  padded  "')).role == "  padded  "


def test_list_mixes_quoted_and_bare_items() -> None:
    mold = parse_mold(agent('capabilities read "write files" exec'))
    assert mold.capabilities == ["read", "write files", "exec"]


def test_empty_list_keyword_gives_empty_list() -> None:
    assert parse_mold(agent("skills")).skills == []


def test_trust_level_is_kept_for_display() -> None:
    assert parse_mold(agent("trust_level trusted")).trust_level == "trusted"


def test_text_after_a_quoted_single_value_is_an_error() -> None:
    message = parse_error(agent('role "a" b'))
    assert "unexpected 'b'" in message
    assert "line 3" in message


def test_single_value_keyword_without_value_is_an_error() -> None:
    assert "'role' needs a value" in parse_error(agent("role"))


def test_repeated_keyword_is_an_error_naming_both_lines() -> None:
    message = parse_error(agent("role a", "role b"))
    assert "'role' is given twice (first on line 3)" in message
    assert "line 4" in message


# --------------------------------------------------------------------------- escapes and quotes


@pytest.mark.parametrize(
    ("escaped", "value"),
    [("\\n", "\n"), ("\\t", "\t"), ("\\r", "\r"), ('\\"', '"'), ("\\\\", "\\")],
)
def test_escape_sequences_in_quoted_strings(escaped: str, value: str) -> None:
    assert parse_mold(agent(f'role "a{escaped}b"')).role == f"a{value}b"


def test_escaped_quote_does_not_end_the_string() -> None:
    assert (
        parse_mold(agent('role "say \\"hi\\" // not a comment"')).role
        == 'say "hi" // not a comment'
    )


def test_unknown_escape_is_an_error() -> None:
    message = parse_error(agent('role "C:\\data"'))
    assert "unknown escape '\\d'" in message
    assert "line 3" in message


def test_unterminated_quote_is_an_error_with_line() -> None:
    message = parse_error(agent('role "never closed'))
    assert "unterminated quoted string" in message
    assert "t.mold.dal line 3" in message


def test_backslash_before_end_of_line_leaves_quote_unterminated() -> None:
    assert "unterminated quoted string" in parse_error(agent('role "abc\\"'))


def test_quoted_string_does_not_span_lines() -> None:
    assert "unterminated" in parse_error(agent('role "one', 'two"'))


def test_unterminated_quote_on_mold_line_is_an_error() -> None:
    assert "line 1" in parse_error('mold "m\nagent')


# --------------------------------------------------------------------------- structure


def test_empty_text_is_an_error() -> None:
    assert "mold is empty (t.mold.dal)" in parse_error("")


def test_whitespace_only_text_is_an_error() -> None:
    assert "mold is empty" in parse_error(" \n\t \n")


def test_first_line_must_be_mold() -> None:
    message = parse_error('agent\nmold "m"')
    assert "expected 'mold \"NAME\" [\"VERSION\"]' first, got 'agent'" in message
    assert "line 1" in message


def test_first_non_blank_line_is_counted_for_the_error() -> None:
    assert "line 3" in parse_error("\n// c\nrole x\n")


def test_mold_without_name_is_an_error() -> None:
    assert "mold name is required" in parse_error("mold\nagent")


def test_mold_with_empty_quoted_name_is_an_error() -> None:
    assert "mold name is required" in parse_error('mold ""\nagent')


def test_mold_with_three_values_is_an_error() -> None:
    assert "got 3 values" in parse_error('mold "a" "1" "x"\nagent')


def test_second_line_must_be_agent() -> None:
    message = parse_error('mold "m"\n  type AI\nagent')
    assert "expected 'agent' after the mold line, got 'type AI'" in message
    assert "line 2" in message


def test_mold_line_alone_is_an_error() -> None:
    assert "expected an 'agent' line" in parse_error('mold "m"  // only this\n\n')


def test_agent_line_takes_no_value() -> None:
    assert "'agent' takes no value" in parse_error('mold "m"\nagent AI')


def test_second_mold_line_is_an_error() -> None:
    assert "may appear only once" in parse_error(agent('mold "again"'))


def test_second_agent_section_is_an_error() -> None:
    assert "may appear only once" in parse_error(agent("role r") + "lifecycle\nagent\n")


def test_line_starting_with_a_quoted_string_is_an_error() -> None:
    assert "expected a keyword" in parse_error(agent('"role" x'))


def test_unknown_agent_keyword_is_an_error_naming_it_and_the_line() -> None:
    message = parse_error(agent("role r", "colour blue"))
    assert "unknown keyword 'colour' in the agent section" in message
    assert "t.mold.dal line 4" in message


def test_hook_in_agent_section_is_an_error_with_hint() -> None:
    assert "'lifecycle' section" in parse_error(agent('on_create "x"'))


def test_unknown_lifecycle_keyword_is_an_error() -> None:
    message = parse_error(agent() + "lifecycle\n  on_boot x\n")
    assert "unknown keyword 'on_boot' in the lifecycle section" in message
    assert "line 4" in message


def test_agent_keyword_after_lifecycle_is_an_error() -> None:
    assert "unknown keyword 'role'" in parse_error(agent() + "lifecycle\n  role r\n")


def test_lifecycle_hooks_are_kept_as_text() -> None:
    hook = "os.system('rm -rf /')"
    mold = parse_mold(agent() + f'lifecycle\n  on_destroy "{hook}"\n  on_create bare text\n')
    assert mold.lifecycle == {"on_destroy": hook, "on_create": "bare text"}


def test_empty_lifecycle_section_gives_no_hooks() -> None:
    assert parse_mold(agent("role r") + "lifecycle\n").lifecycle == {}


def test_error_names_the_source() -> None:
    with pytest.raises(MoldError, match=r"/x/w\.mold\.dal line 3"):
        parse_mold(agent("bogus 1"), source="/x/w.mold.dal")


def test_text_over_one_mebibyte_is_rejected() -> None:
    text = agent("role r") + "// " + "x" * (1024 * 1024)
    assert "too large" in parse_error(text)


# --------------------------------------------------------------------------- agent type


@pytest.mark.parametrize(
    ("written", "normalized"),
    [
        ("AI", "AI"),
        ("ai", "AI"),
        ("system", "System"),
        ("SYSTEM", "System"),
        ("worker", "Worker"),
        ("wOrKeR", "Worker"),
        ("ide", "IDE"),
        ('"Worker"', "Worker"),
    ],
)
def test_agent_type_is_case_insensitive_and_normalized(written: str, normalized: str) -> None:
    assert parse_mold(agent(f"type {written}")).agent_type == normalized


def test_custom_agent_type_keeps_its_name() -> None:
    assert parse_mold(agent("type custom:Crawler")).agent_type == "custom:Crawler"


def test_custom_prefix_is_case_insensitive() -> None:
    assert parse_mold(agent("type CUSTOM: Crawler")).agent_type == "custom:Crawler"


def test_custom_type_without_name_is_unknown() -> None:
    assert "unknown agent type in mold: custom:" in parse_error(agent("type custom:"))


def test_unknown_agent_type_message() -> None:
    message = parse_error(agent("role r", "type Robot"))
    assert message.startswith("unknown agent type in mold: Robot")
    assert message == "unknown agent type in mold: Robot (t.mold.dal line 4)"


# --------------------------------------------------------------------------- booleans


@pytest.mark.parametrize("key", ["learning", "communication", "coordination"])
def test_boolean_keys_accept_true_and_false(key: str) -> None:
    assert getattr(parse_mold(agent(f"{key} true")), key) is True
    assert getattr(parse_mold(agent(f"{key} False")), key) is False


@pytest.mark.parametrize("value", ["yes", "1", "on", '"maybe"', "true false"])
def test_boolean_other_than_true_or_false_is_an_error(value: str) -> None:
    message = parse_error(agent(f"learning {value}"))
    assert "learning must be true or false" in message
    assert "line 3" in message


def test_boolean_without_value_is_an_error() -> None:
    assert "'coordination' needs a value" in parse_error(agent("coordination"))


# --------------------------------------------------------------------------- memory limit


def test_memory_limit_is_kept_as_written() -> None:
    assert parse_mold(agent('memory_limit "2 GB"')).memory_limit == "2 GB"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("256MB", 256 * 1024**2),
        ("256mb", 256 * 1024**2),
        ("256 MB", 256 * 1024**2),
        ("64KB", 64 * 1024),
        ("2GB", 2 * 1024**3),
        ("2G", 2 * 1024**3),
        ("512M", 512 * 1024**2),
        ("8k", 8 * 1024),
        ("1GiB", 1024**3),
        ("3MiB", 3 * 1024**2),
        ("7KiB", 7 * 1024),
        ("4096", 4096),
        ("4096B", 4096),
        (" 1 gb ", 1024**3),
    ],
)
def test_memory_limit_bytes_units(value: str, expected: int) -> None:
    assert memory_limit_bytes(value) == expected


@pytest.mark.parametrize(
    "value",
    ["lots", "", "MB", "1.5GB", "-1MB", "0MB", "10TB", "12 M B", "\u0661\u0662MB", "9" * 40],
)
def test_memory_limit_bytes_rejects_anything_else(value: str) -> None:
    with pytest.raises(MoldError, match="invalid memory_limit"):
        memory_limit_bytes(value)


def test_bad_memory_limit_is_a_parse_error_naming_the_line() -> None:
    message = parse_error(agent("role r", "memory_limit lots"))
    assert "invalid memory_limit 'lots'" in message
    assert "t.mold.dal line 4" in message


# --------------------------------------------------------------------------- legacy JSON

LEGACY = {
    "name": "legacy",
    "version": "0.9",
    "agent": {
        "type": "system",
        "role": "Old {{env}}",
        "capabilities": ["read"],
        "skills": ["ops"],
        "trustLevel": "standard",
        "learning": True,
        "communication": False,
        "coordination": True,
        "memoryLimit": "1GB",
    },
    "parameters": {"p": "v"},
    "metadata": {"team": "core", "n": 3},
    "dependencies": ["ignored"],
    "lifecycle": {"onCreate": "a()", "onMessage": "b()", "onEvolve": "c()", "onDestroy": "d()"},
}


def json_error(doc: object) -> str:
    return parse_error(json.dumps(doc))


def test_legacy_json_parses_every_field() -> None:
    assert parse_mold(json.dumps(LEGACY, indent=2)) == Mold(
        name="legacy",
        version="0.9",
        agent_type="System",
        role="Old {{env}}",
        capabilities=["read"],
        skills=["ops"],
        memory_limit="1GB",
        learning=True,
        communication=False,
        coordination=True,
        trust_level="standard",
        parameters={"p": "v"},
        metadata={"team": "core", "n": 3},
        lifecycle={
            "on_create": "a()",
            "on_message": "b()",
            "on_evolve": "c()",
            "on_destroy": "d()",
        },
    )


def test_legacy_json_is_detected_after_leading_whitespace() -> None:
    assert parse_mold('\n   {"name": "x"}').name == "x"


def test_legacy_json_minimal_gets_defaults() -> None:
    assert parse_mold('{"name": "x"}') == Mold(name="x")


def test_legacy_json_missing_name_is_an_error() -> None:
    assert "$.name" in json_error({"version": "1.0"})


def test_legacy_json_name_not_a_string_is_an_error() -> None:
    message = json_error({"name": 7})
    assert "invalid mold JSON at $.name: expected a string, got a number" in message


def test_legacy_json_capabilities_not_a_list_is_an_error() -> None:
    message = json_error({"name": "x", "agent": {"capabilities": "read"}})
    assert "$.agent.capabilities: expected a list of strings, got a string" in message


def test_legacy_json_capability_not_a_string_names_its_index() -> None:
    message = json_error({"name": "x", "agent": {"capabilities": ["a", 2]}})
    assert "$.agent.capabilities[1]: expected a string" in message


def test_legacy_json_boolean_must_be_a_boolean() -> None:
    assert "$.agent.learning: expected true or false" in json_error(
        {"name": "x", "agent": {"learning": "yes"}}
    )


def test_legacy_json_agent_must_be_an_object() -> None:
    assert "$.agent: expected an object" in json_error({"name": "x", "agent": []})


def test_legacy_json_lifecycle_hook_must_be_a_string() -> None:
    assert "$.lifecycle.onCreate" in json_error({"name": "x", "lifecycle": {"onCreate": 1}})


def test_legacy_json_unknown_type_message() -> None:
    message = json_error({"name": "x", "agent": {"type": "Robot"}})
    assert message.startswith("unknown agent type in mold: Robot")


def test_legacy_json_bad_memory_limit_is_an_error() -> None:
    message = json_error({"name": "x", "agent": {"memoryLimit": "lots"}})
    assert "$.agent.memoryLimit: invalid memory_limit 'lots'" in message


def test_legacy_json_invalid_syntax_reports_line_and_column() -> None:
    message = parse_error('{\n  "name": "x",\n  oops\n}')
    assert message.startswith("invalid mold JSON")
    assert "line 3 column 3" in message


def test_legacy_json_trailing_garbage_is_an_error() -> None:
    assert "invalid mold JSON" in parse_error('{"name": "x"} extra')


def test_legacy_json_deep_nesting_is_a_mold_error() -> None:
    assert "invalid mold JSON" in parse_error('{"a": ' + "[" * 200_000)
