"""Rendering a mold with create-time params into an AgentSpec, and parsing params (SPEC §4)."""

from __future__ import annotations

import pytest

from dalfleet.errors import InvalidArgumentError, MoldError
from dalfleet.models import AgentSpec
from dalfleet.mold import DEFAULT_SKILLS, Mold, parse_mold, parse_params, render

MOLD = Mold(
    name="worker",
    version="2.0",
    agent_type="Worker",
    role="Work on {{env}} for {{team}}",
    capabilities=["read:{{env}}", "write", "{{ env }}-admin"],
    skills=["ops {{env}}"],
    memory_limit="256MB",
    learning=True,
    communication=True,
    coordination=False,
    trust_level="root",
    lifecycle={"on_create": "setup({{env}})"},
)


# --------------------------------------------------------------------------- render


def test_render_builds_the_spec_from_the_mold() -> None:
    spec = render(MOLD, "pool_0", {"env": "prod", "team": "core"})
    assert spec == AgentSpec(
        name="pool_0",
        mold_name="worker",
        mold_version="2.0",
        agent_type="Worker",
        role="Work on prod for core",
        capabilities=["read:prod", "write", "prod-admin"],
        skills=["ops {{env}}"],
        memory_limit="256MB",
        learning=True,
        communication=True,
        coordination=False,
        trust_level="sandboxed",
        metadata={"mold_name": "worker", "mold_version": "2.0", "env": "prod", "team": "core"},
        lifecycle={"on_create": "setup({{env}})"},
    )


def test_mold_without_skills_gets_the_default_learning_path() -> None:
    spec = render(Mold(name="m"), "a")
    assert spec.skills == DEFAULT_SKILLS == ("development", "creative", "office", "home")


def test_mold_metadata_is_merged_under_name_version_and_params() -> None:
    mold = parse_mold(
        '{"name": "m", "version": "2", "agent": {"type": "AI"},'
        ' "metadata": {"team": "ops", "mold_name": "spoof", "env": "dev", "n": 3, "x": [1]}}'
    )
    spec = render(mold, "a", {"env": "prod"})
    assert spec.metadata == {
        "team": "ops",
        "mold_name": "m",
        "mold_version": "2",
        "env": "prod",
        "n": "3",
        "x": "[1]",
    }


@pytest.mark.parametrize(
    ("written", "canonical"),
    [("worker", "Worker"), (" IDE ", "IDE"), ("custom:MyBot", "custom:MyBot")],
)
def test_agent_type_is_written_canonically(written: str, canonical: str) -> None:
    assert render(Mold(name="m", agent_type=written), "a").agent_type == canonical


def test_unknown_agent_type_is_the_reference_error() -> None:
    with pytest.raises(MoldError, match=r"^unknown agent type in mold: Robot$"):
        render(Mold(name="m", agent_type="Robot"), "a")


def test_role_placeholders_are_substituted() -> None:
    assert render(MOLD, "a", {"env": "dev", "team": "x"}).role == "Work on dev for x"


def test_placeholder_with_spaces_is_substituted() -> None:
    mold = Mold(name="m", role="on {{ env }} and {{env}} and {{\tenv  }}")
    assert render(mold, "a", {"env": "qa"}).role == "on qa and qa and qa"


def test_capability_placeholders_are_substituted() -> None:
    assert render(MOLD, "a", {"env": "dev"}).capabilities == ("read:dev", "write", "dev-admin")


def test_unknown_placeholders_are_left_as_they_are() -> None:
    assert render(MOLD, "a", {"env": "dev"}).role == "Work on dev for {{team}}"


def test_without_params_role_is_unchanged() -> None:
    assert render(MOLD, "a").role == MOLD.role


def test_substituted_value_is_not_expanded_again() -> None:
    spec = render(MOLD, "a", {"env": "{{team}}", "team": "core"})
    assert spec.role == "Work on {{team}} for core"


def test_substituted_value_is_inserted_literally() -> None:
    spec = render(Mold(name="m", role="{{x}}"), "a", {"x": "__import__('os').system('x') \\1"})
    assert spec.role == "__import__('os').system('x') \\1"


def test_skills_and_lifecycle_are_not_substituted() -> None:
    spec = render(MOLD, "a", {"env": "dev"})
    assert spec.skills == ("ops {{env}}",)
    assert spec.lifecycle == {"on_create": "setup({{env}})"}


def test_metadata_holds_mold_name_version_and_params() -> None:
    spec = render(MOLD, "a", {"region": "eu"})
    assert spec.metadata == {"mold_name": "worker", "mold_version": "2.0", "region": "eu"}


def test_metadata_without_params_holds_mold_name_and_version() -> None:
    assert render(MOLD, "a").metadata == {"mold_name": "worker", "mold_version": "2.0"}


@pytest.mark.parametrize("key", ["mold_name", "mold_version"])
def test_param_may_not_replace_reserved_metadata(key: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"invalid param '{key}'.*reserved"):
        render(MOLD, "a", {key: "x"})


def test_trust_level_defaults_to_sandboxed_not_the_molds() -> None:
    assert render(MOLD, "a").trust_level == "sandboxed"


def test_trust_level_comes_from_the_argument() -> None:
    assert render(MOLD, "a", trust_level="standard").trust_level == "standard"


def test_trust_level_from_a_parsed_mold_is_ignored() -> None:
    mold = parse_mold('mold "m"\nagent\n  trust_level trusted\n')
    assert mold.trust_level == "trusted"
    assert render(mold, "a").trust_level == "sandboxed"


def test_empty_trust_level_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="trust level"):
        render(MOLD, "a", trust_level=" ")


def test_lifecycle_is_a_copy() -> None:
    spec = render(MOLD, "a")
    with pytest.raises(TypeError):
        spec.lifecycle["on_destroy"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        spec.capabilities.append("y")  # type: ignore[attr-defined]
    assert "on_destroy" not in MOLD.lifecycle
    assert "y" not in MOLD.capabilities


def test_render_validates_param_keys() -> None:
    with pytest.raises(InvalidArgumentError, match="whitespace"):
        render(MOLD, "a", {"bad key": "v"})


# --------------------------------------------------------------------------- parse_params


def test_parse_params_none_is_none() -> None:
    assert parse_params(None) is None


def test_parse_params_mapping_values_become_strings() -> None:
    assert parse_params({"n": 3, "flag": True, "s": "x"}) == {"n": "3", "flag": "True", "s": "x"}


def test_parse_params_pairs() -> None:
    assert parse_params(["env=prod", "team=core"]) == {"env": "prod", "team": "core"}


def test_parse_params_splits_on_first_equals_only() -> None:
    assert parse_params(["url=a=b=c"]) == {"url": "a=b=c"}


def test_parse_params_value_may_be_empty() -> None:
    assert parse_params(["empty="]) == {"empty": ""}


def test_parse_params_key_is_trimmed_value_kept() -> None:
    assert parse_params([" env = prod "]) == {"env": " prod "}


def test_parse_params_later_duplicate_wins() -> None:
    assert parse_params(["a=1", "a=2"]) == {"a": "2"}


def test_parse_params_empty_list_is_empty_dict() -> None:
    assert parse_params([]) == {}


def test_parse_params_accepts_any_iterable() -> None:
    assert parse_params(iter(("a=1",))) == {"a": "1"}


def test_parse_params_pair_without_equals_is_an_error() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_params(["foo"])
    assert str(info.value) == "invalid param 'foo': expected KEY=VALUE"


def test_parse_params_bare_string_is_an_error() -> None:
    with pytest.raises(InvalidArgumentError, match="expected KEY=VALUE pairs"):
        parse_params("env=prod")


@pytest.mark.parametrize("item", ["=value", "  =value"])
def test_parse_params_empty_key_is_an_error(item: str) -> None:
    with pytest.raises(InvalidArgumentError, match="key is empty"):
        parse_params([item])


@pytest.mark.parametrize("item", ["a b=1", "{x}=1", "x}=1", "a\tb=1"])
def test_parse_params_key_with_whitespace_or_braces_is_an_error(item: str) -> None:
    with pytest.raises(InvalidArgumentError, match="must not contain whitespace"):
        parse_params([item])


@pytest.mark.parametrize("key", ["", "a b", "{a", "a=b"])
def test_parse_params_bad_mapping_key_is_an_error(key: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_params({key: "v"})


def test_parse_params_non_string_item_is_an_error() -> None:
    with pytest.raises(InvalidArgumentError, match="not int"):
        parse_params([3])  # type: ignore[list-item]


def test_parse_params_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        parse_params(["nope"])
