"""The DAL namespace binding (SPEC §2.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

import dalfleet.fleet as fleet
from dalfleet import ArgumentCountError, FleetNotFoundError, UnknownFunctionError
from dalfleet.dal import call


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
    assert call("fleet::show", ["nope"]) is None


def test_health_and_delete() -> None:
    call("fleet::create", ["w"])
    health = call("fleet::health", ["w"])
    assert health["status"] == "empty" and health["member_count"] == 0
    assert health["has_mold"] is False
    assert call("fleet::delete", ["w"]) is True
    assert call("fleet::delete", ["w"]) is False


def test_other_functions_return_true() -> None:
    assert call("fleet::create", ["w"]) is True
    assert call("fleet::add_from_mold", ["w", "worker", 2, {"env": "x"}]) is True
    assert call("fleet::add_member", ["w", "agent_z"]) is True
    assert call("fleet::scale", ["w", 1]) is True
    assert call("fleet::deploy", ["w", "task"]) is True
    assert call("fleet::run", ["w"]) is True
    assert call("fleet::create_from_mold", ["v", "worker"]) is True
    assert "agent_" in call("fleet::export", ["v", "compose"])


@pytest.mark.parametrize(
    ("function", "args"),
    [
        ("fleet::create", []),
        ("fleet::create", ["a", "b"]),
        ("fleet::list", ["x"]),
        ("fleet::deploy", ["w"]),
        ("fleet::add_from_mold", ["w", "m"]),
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
