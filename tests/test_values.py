"""Returned values are immutable, hashable and never alias what is stored (SPEC §2).

Each test tries to change a value the API handed out, then makes an unrelated
write and checks that the stored state is what it was.
"""

from __future__ import annotations

import inspect
import json
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import dalfleet
import dalfleet.fleet as fleet
from dalfleet import (
    Agent,
    AgentSpec,
    AgentState,
    Change,
    ChangeKind,
    Client,
    Fleet,
    FleetHealth,
    FleetSpec,
    FrozenDict,
    HealthStatus,
    MemberHealth,
    MemberOutcome,
    MoldSourceError,
    OutcomeStatus,
    Revision,
    RunReport,
    Task,
    WorkStats,
)
from dalfleet.convert import fleet_map, health_map, to_json_document
from tests.conftest import snapshot


@pytest.fixture(params=["json", "memory"])
def client(request: pytest.FixtureRequest, base: Path) -> Iterator[Client]:
    chosen = Client.for_base(base) if request.param == "json" else Client.in_memory(base)
    with chosen:
        chosen.create_from_mold("w", "worker", 3, {"env": "prod"})
        chosen.deploy("w", "first")
        chosen.deploy("w", "second")
        yield chosen


def _stored(client: Client) -> dict[str, Any]:
    return {name: to_json_document(f) for name, f in client.fleets().items()}


def _attempts(value: Any) -> list[Callable[[], object]]:
    """Every way a caller might try to change a sequence or mapping in place."""
    attempts: list[Callable[[], object]] = []
    for method in ("append", "clear", "pop", "extend", "sort", "reverse", "update", "popitem"):
        bound = getattr(value, method, None)
        if bound is not None:
            attempts.append(bound)
    attempts.append(lambda: value.__setitem__(0, "x"))
    attempts.append(lambda: value.__delitem__(0))
    return attempts


def _assert_unchangeable(value: Any) -> None:
    for attempt in _attempts(value):
        with pytest.raises((AttributeError, TypeError)):
            attempt()


def test_shown_fleet_cannot_be_changed_and_the_store_keeps_its_members(client: Client) -> None:
    before = _stored(client)
    shown = client.show("w")
    assert shown is not None
    assert isinstance(shown.member_ids, tuple)
    _assert_unchangeable(shown.member_ids)
    _assert_unchangeable(shown.last_create_params)
    _assert_unchangeable(shown.history)
    _assert_unchangeable(shown.extra)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        shown.member_ids = ()  # type: ignore[misc]
    client.create("unrelated")  # an unrelated write re-serializes every fleet
    after = _stored(client)
    after.pop("unrelated")
    assert after == before
    assert len(client.get("w").member_ids) == 3


def test_get_fleets_and_list_are_copies(client: Client) -> None:
    before = _stored(client)
    client.fleets().clear()
    client.list().clear()
    got = client.get("w")
    _assert_unchangeable(got.member_ids)
    client.create("unrelated")
    assert client.list() == ["unrelated", "w"]
    assert {k: v for k, v in _stored(client).items() if k != "unrelated"} == before


def test_history_revisions_and_their_params_are_frozen(client: Client) -> None:
    revisions = client.history("w")
    assert isinstance(revisions, tuple) and [r.task for r in revisions] == ["first", "second"]
    _assert_unchangeable(revisions)
    _assert_unchangeable(revisions[0].params)
    client.deploy("w", "third")
    assert [r.task for r in client.history("w")] == ["first", "second", "third"]


def test_health_and_reports_are_frozen(client: Client) -> None:
    health = client.health("w")
    _assert_unchangeable(health.members)
    reports = client.run("w", handler=lambda agent, task: {"agent": agent.name, "tags": [1, 2]})
    report = reports[0]
    _assert_unchangeable(report.errors)
    _assert_unchangeable(report.outcomes)
    result = report.outcomes[0].result
    assert result == {"agent": "w_0", "tags": (1, 2)}
    _assert_unchangeable(result)
    _assert_unchangeable(result["tags"])
    hash(report)
    assert [m.agent_id for m in client.health("w").members] == [m.agent_id for m in health.members]


def test_agents_specs_are_frozen(client: Client) -> None:
    agents = client.coordinator.agents(list(client.get("w").member_ids))
    agent = next(iter(agents.values()))
    _assert_unchangeable(agent.spec.capabilities)
    _assert_unchangeable(agent.spec.metadata)
    _assert_unchangeable(agent.metadata)
    hash(agent)


def test_a_mutated_copy_from_the_caller_does_not_reach_the_model() -> None:
    members = ["a", "b"]
    params = {"env": "prod"}
    f = Fleet(name="w", member_ids=members, last_create_params=params)
    members.append("c")
    params["env"] = "dev"
    assert f.member_ids == ("a", "b")
    assert f.last_create_params == {"env": "prod"}


def _every_model() -> list[object]:
    spec = AgentSpec(name="w_0", capabilities=["r"], metadata={"k": "v"}, lifecycle={"a": "b"})
    outcome = MemberOutcome(
        agent_id="a", ok=True, status="ok", task_id="t", result={"x": [1, {"y": 2}]}
    )
    revision = Revision(revision=1, task="t", deployed_at="1", params={"env": "prod"})
    return [
        Fleet(
            name="w",
            member_ids=["a"],
            last_create_params={"e": "p"},
            history=[revision],
            extra={"unknown": {"nested": [1, 2]}},
        ),
        revision,
        spec,
        Agent(agent_id="a", spec=spec),
        Task(task_id="t", description="d"),
        outcome,
        RunReport(fleet_name="w", members_dispatched=1, errors=["e"], outcomes=[outcome]),
        MemberHealth(agent_id="a", state="alive"),
        FleetHealth(
            name="w",
            member_count=1,
            has_mold=False,
            last_deployed_task=None,
            last_deployed_at=None,
            status="ok",
            members=[MemberHealth(agent_id="a", state=AgentState.ALIVE)],
        ),
        FleetSpec(name="w", params={"a": "b"}),
        Change("create", "w", "create (empty)", params={"a": "b"}),
        WorkStats(
            fleet_name="w", executed=1, succeeded=1, failed=0, released=0, outcomes=[outcome]
        ),
    ]


@pytest.mark.parametrize("model", _every_model(), ids=lambda m: type(m).__name__)
def test_every_model_is_hashable_and_equal_values_hash_equal(model: object) -> None:
    assert hash(model) == hash(attrs.evolve(model))  # type: ignore[misc]
    assert {model} == {attrs.evolve(model)}  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(model)) == model


@pytest.mark.parametrize("model", _every_model(), ids=lambda m: type(m).__name__)
def test_every_model_field_is_immutable(model: object) -> None:
    for field in attrs.fields(type(model)):
        value = getattr(model, field.name)
        assert not isinstance(value, (list, dict, set)), f"{type(model).__name__}.{field.name}"


def test_frozen_dict_behaves_as_a_read_only_dict() -> None:
    d = FrozenDict({"b": "1", "a": "2"})
    assert list(d) == ["b", "a"]
    plain = {"a": "2", "b": "1"}
    assert d == plain and plain == d
    assert d != {"a": "2"}
    assert hash(d) == hash(FrozenDict({"a": "2", "b": "1"}))
    assert d.to_dict() == {"b": "1", "a": "2"} and type(d.to_dict()) is dict
    with pytest.raises(AttributeError):
        d._data = {}  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(d)) == d


def test_statuses_are_string_enums_that_compare_and_serialize_as_strings(base: Path) -> None:
    with Client.in_memory(base) as c:
        c.create("e")
        health = c.health("e")
    assert health.status is HealthStatus.EMPTY and health.status == "empty"
    assert f"{health.status}" == "empty" and str(health.status) == "empty"
    assert json.loads(json.dumps(health_map(health)))["status"] == "empty"
    assert MemberOutcome(agent_id="a", ok=True, status="queued").status is OutcomeStatus.QUEUED
    assert (
        Change("warn", "w", "x").action is ChangeKind.WARN
        and Change("warn", "w", "x").symbol == "!"
    )


def test_documents_are_plain_json() -> None:
    for model in _every_model():
        json.dumps(to_json_document(model), allow_nan=False)
    report = _every_model()[6]
    assert to_json_document(report)["ok"] is False
    f = Fleet(name="w", member_ids=["a"], last_create_params={"e": "p"})
    # The reference's DAL map: last_create_params is not one of its keys.
    assert fleet_map(f) == {"name": "w", "member_ids": ["a"]}
    assert type(fleet_map(f)["member_ids"]) is list


def test_repr_stays_short_for_big_fleets() -> None:
    f = Fleet(
        name="w",
        member_ids=[f"agent_{'x' * 200}_{i}" for i in range(1000)],
        mold_source="m" * 1000,
        last_deployed_task="t" * 10_000,
    )
    text = repr(f)
    assert len(text) <= 400 and "1000" in text
    health = FleetHealth(
        name="w",
        member_count=1000,
        has_mold=True,
        last_deployed_task="t" * 10_000,
        last_deployed_at=None,
        status="ok",
        members=[MemberHealth(agent_id=f"a{i}", state="alive") for i in range(1000)],
    )
    assert len(repr(health)) <= 400
    report = RunReport(fleet_name="w", members_dispatched=1000, errors=["e" * 500] * 1000)
    assert len(repr(report)) <= 400


def test_html_is_escaped_and_compact() -> None:
    f = Fleet(name="w", member_ids=[f"<b>{i}</b>" for i in range(100)], last_deployed_task="<x>")
    page = f._repr_html_()
    assert "<b>0</b>" not in page and "&lt;b&gt;0&lt;/b&gt;" in page
    assert "&lt;b&gt;20&lt;/b&gt;" not in page and "80 more" in page
    health = _every_model()[8]
    assert "ok" in health._repr_html_()  # type: ignore[attr-defined]
    assert "w" in _every_model()[6]._repr_html_()  # type: ignore[attr-defined]


def test_a_path_is_a_mold_source(base: Path) -> None:
    mold = base / "mold" / "worker.mold.dal"
    f = fleet.create_from_mold("w", mold, 3, base)
    assert f.mold_source == str(mold) and len(f.member_ids) == 3
    g = fleet.add_from_mold("w", Path("mold/worker.mold.dal"), 1, base)
    assert len(g.member_ids) == 4


@pytest.mark.parametrize("source", ["", "   ", None, 5])
def test_a_blank_mold_source_is_one_error_everywhere(base: Path, source: Any) -> None:
    before = snapshot(base)
    fleet.create("w", base)
    created = snapshot(base)
    for call in (
        lambda: fleet.create_from_mold("n", source, 1, base),
        lambda: fleet.add_from_mold("w", source, 1, base),
        lambda: Client.for_base(base).load_mold(source),
    ):
        with pytest.raises(MoldSourceError):
            call()
    assert snapshot(base) == created != before


def test_extras_are_keyword_only(base: Path) -> None:
    assert fleet.create_from_mold("w", "worker", 1, base)
    fleet.deploy("w", "one", base)
    fleet.deploy("w", "two", base)
    # rollback("w", base): the second positional argument is the project, not a revision.
    assert fleet.rollback("w", base).last_deployed_task == "one"
    for func, names in [
        (fleet.rollback, ["to_revision"]),
        (fleet.shift, ["task", "progress"]),
        (fleet.apply, ["dry_run", "prune", "progress"]),
        (fleet.work, ["once", "concurrency", "timeout", "poll_interval", "stop", "max_tasks"]),
        (Client.rollback, ["to_revision"]),
        (Client.shift, ["task", "progress"]),
    ]:
        params = inspect.signature(func).parameters
        for name in names:
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, (func, name)
    assert list(inspect.signature(fleet.shift).parameters)[:4] == [
        "source",
        "target",
        "count",
        "base",
    ]


def test_client_options_are_reachable_from_the_fleet_module() -> None:
    for op in ("apply", "shift", "work", "run", "rollback", "create_from_mold", "scale"):
        client_opts = {
            n
            for n, p in inspect.signature(getattr(Client, op)).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
        module_opts = set(inspect.signature(getattr(fleet, op)).parameters)
        assert client_opts <= module_opts, (op, client_opts - module_opts)


def test_returned_types_are_exported() -> None:
    for name in (
        "Change",
        "ChangeKind",
        "FleetSpec",
        "WorkStats",
        "Progress",
        "Revision",
        "RunReport",
        "FleetHealth",
        "HealthStatus",
        "OutcomeStatus",
        "FrozenDict",
    ):
        assert name in dalfleet.__all__ and hasattr(dalfleet, name)
    assert isinstance(dalfleet.__version__, str)


def test_dal_maps_hold_plain_python_values(base: Path) -> None:
    from dalfleet import dal

    with Client.in_memory(base) as c:
        dal.call("fleet::create_from_mold", ["w", "worker", 2, {"env": "prod"}], c)
        dal.call("fleet::deploy", ["w", "go"], c)
        shown = dal.call("fleet::show", ["w"], c)
        health = dal.call("fleet::health", ["w"], c)
    assert type(shown["member_ids"]) is list and "last_create_params" not in shown
    assert type(health["status"]) is str and health["status"] == "ok"
    assert type(health["members"]) is list and type(health["members"][0]["state"]) is str
    assert json.loads(json.dumps(shown)) == shown
