"""The DAL namespace binding (SPEC §2.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

import dalfleet.fleet as fleet
from dalfleet import (
    ArgumentCountError,
    FleetNotFoundError,
    InvalidArgumentError,
    UnknownFunctionError,
)
from dalfleet.dal import FUNCTIONS, call


@pytest.fixture(autouse=True)
def memory(base: Path) -> object:
    with fleet.using(memory=True, base=base) as client:
        yield client


def test_create_returns_true() -> None:
    assert call("fleet::create", ["w"]) is True
    assert call("fleet::list", []) == ["w"]


def test_show_returns_a_plain_map() -> None:
    call("fleet::create_from_mold", ["w", "worker", 2])
    call("fleet::deploy", ["w", "go"])
    shown = call("fleet::show", ["w"])
    assert set(shown) >= {
        "name",
        "member_ids",
        "mold_source",
        "last_deployed_task",
        "last_deployed_at",
    }
    assert shown["name"] == "w" and len(shown["member_ids"]) == 2
    assert isinstance(shown["member_ids"], list)


def test_show_leaves_unset_keys_out() -> None:
    call("fleet::create", ["w"])
    assert call("fleet::show", ["w"]) == {"name": "w", "member_ids": []}


def test_show_of_a_missing_fleet_is_an_error_as_in_the_reference() -> None:
    with pytest.raises(FleetNotFoundError, match="fleet 'nope' not found"):
        call("fleet::show", ["nope"])


def test_show_map_has_exactly_the_reference_keys() -> None:
    call("fleet::create_from_mold", ["w", "worker", 1, {"env": "x"}])
    call("fleet::deploy", ["w", "go"])
    assert set(call("fleet::show", ["w"])) == {
        "name",
        "member_ids",
        "mold_source",
        "last_deployed_task",
        "last_deployed_at",
    }


def test_health_and_delete() -> None:
    call("fleet::create", ["w"])
    health = call("fleet::health", ["w"])
    assert health["status"] == "empty" and health["member_count"] == 0
    assert health["has_mold"] is False
    # Unset values are left out, as the reference does.
    assert "last_deployed_task" not in health and "last_deployed_at" not in health
    assert call("fleet::delete", ["w"]) is True
    assert call("fleet::delete", ["w"]) is False


def test_other_functions_return_true() -> None:
    assert call("fleet::create", ["w"]) is True
    assert call("fleet::add_from_mold", ["w", "worker", 2, {"env": "x"}]) is True
    assert call("fleet::add_member", ["w", "agent_z"]) is True
    assert call("fleet::scale", ["w", 1]) is True
    assert call("fleet::deploy", ["w", "task"]) is True
    assert call("fleet::run", ["w"]) is True
    assert call("fleet::create_from_mold", ["v", "worker", 1]) is True
    assert "agent_" in call("fleet::export", ["v", "compose"])


# The reference's arities (src/runtime/engine.rs, call_fleet_function): name -> (min, max).
REFERENCE_ARITIES = {
    "create": (1, 1),
    "create_from_mold": (3, 4),
    "list": (0, 0),
    "show": (1, 1),
    "scale": (2, 2),
    "delete": (1, 1),
    "deploy": (2, 2),
    "add_from_mold": (3, 4),
    "add_member": (2, 2),
    "health": (1, 1),
}


def test_arities_are_the_reference_ones() -> None:
    assert {name: FUNCTIONS[name][:2] for name in REFERENCE_ARITIES} == REFERENCE_ARITIES
    # Beyond the reference: run and export.
    assert set(FUNCTIONS) - set(REFERENCE_ARITIES) == {"run", "export"}


@pytest.mark.parametrize("name", sorted(REFERENCE_ARITIES))
def test_one_argument_too_few_or_too_many_is_refused(name: str) -> None:
    low, high = REFERENCE_ARITIES[name]
    for count in {low - 1, high + 1} - {-1}:
        with pytest.raises(ArgumentCountError, match=f"fleet::{name} expects"):
            call(f"fleet::{name}", ["w"] * count)
    assert call("fleet::list", []) == []


def test_values_are_converted_as_the_reference_does() -> None:
    # Counts from text, floats (truncated) and booleans; names from numbers.
    assert call("fleet::create_from_mold", [7, "worker", "2"]) is True
    assert call("fleet::show", [7])["name"] == "7"
    assert call("fleet::scale", ["7", 1.9]) is True
    assert len(call("fleet::show", ["7"])["member_ids"]) == 1
    assert call("fleet::add_from_mold", ["7", "worker", True]) is True
    assert len(call("fleet::show", ["7"])["member_ids"]) == 2
    with pytest.raises(InvalidArgumentError, match="whole number"):
        call("fleet::scale", ["7", "two"])
    with pytest.raises(InvalidArgumentError, match="string"):
        call("fleet::create", [["a"]])


def test_params_map_keeps_only_string_values() -> None:
    call("fleet::create_from_mold", ["w", "worker", 1, {"env": "prod", "n": 3}])
    shown = fleet.show("w")
    assert shown is not None and dict(shown.last_create_params or {}) == {"env": "prod"}


def test_params_that_are_not_a_map_are_ignored() -> None:
    call("fleet::create_from_mold", ["w", "worker", 1, "env=prod"])
    shown = fleet.show("w")
    assert shown is not None and shown.last_create_params is None


@pytest.mark.parametrize(
    ("function", "args"),
    [
        ("fleet::create", []),
        ("fleet::create", ["a", "b"]),
        ("fleet::list", ["x"]),
        ("fleet::deploy", ["w"]),
        ("fleet::add_from_mold", ["w", "m"]),
        ("fleet::create_from_mold", ["w", "worker"]),
        ("fleet::create_from_mold", ["w", "worker", 1, {}, "x"]),
    ],
)
def test_wrong_argument_count(function: str, args: list[object]) -> None:
    with pytest.raises(ArgumentCountError, match="argument"):
        call(function, args)
    assert call("fleet::list", []) == []


def test_unknown_function() -> None:
    with pytest.raises(UnknownFunctionError, match="fleet::explode"):
        call("fleet::explode", [])


def test_errors_pass_through() -> None:
    with pytest.raises(FleetNotFoundError):
        call("fleet::deploy", ["nope", "t"])


def test_an_explicit_base(tmp_path: Path) -> None:
    assert call("fleet::create", ["w"], base=tmp_path) is True
    assert call("fleet::list", [], base=tmp_path) == ["w"]
    assert call("fleet::list", []) == []
    assert (tmp_path / ".dal" / "fleets.json").is_file()
