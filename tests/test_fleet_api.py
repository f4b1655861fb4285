"""Every rule of the SPEC §2 table, through ``import dalfleet.fleet as fleet``.

Most tests run twice: on the default backends (JSON fleet file + local SQLite
coordinator under an explicit ``base``) and on the in-memory backends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dalfleet
import dalfleet.fleet as fleet
from dalfleet import (
    AgentState,
    CoordinatorError,
    FleetError,
    FleetExistsError,
    FleetNotFoundError,
    InvalidArgumentError,
    MoldError,
    MoldNotFoundError,
)
from tests.conftest import snapshot


class Ctx:
    """Calls the module functions with ``base`` for the JSON backend, or inside
    ``fleet.using(memory=True)`` for the memory backend."""

    def __init__(self, kind: str, base: Path) -> None:
        self.kind = kind
        self.base = base

    def __getattr__(self, op: str) -> Any:
        func = getattr(fleet, op)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.kind == "json":
                kwargs.setdefault("base", self.base)
            return func(*args, **kwargs)

        return call


@pytest.fixture(params=["json", "memory"])
def ctx(request: pytest.FixtureRequest, base: Path) -> Iterator[Ctx]:
    if request.param == "memory":
        with fleet.using(memory=True, base=base):
            yield Ctx("memory", base)
    else:
        yield Ctx("json", base)


# -- create ---------------------------------------------------------------------------


def test_create_returns_an_empty_fleet(ctx: Ctx) -> None:
    f = ctx.create("workers")
    assert f.name == "workers"
    assert f.member_ids == ()
    assert f.mold_source is None
    assert f.last_deployed_task is None
    assert ctx.list() == ["workers"]


def test_create_twice_is_an_error(ctx: Ctx) -> None:
    ctx.create("workers")
    with pytest.raises(FleetExistsError, match="fleet 'workers' already exists"):
        ctx.create("workers")


@pytest.mark.parametrize(
    "name",
    ["", "-lead", ".hidden", "a/b", "..", "has space", "new\nline", "x" * 64, "wоrkers", "é"],
)
def test_create_rejects_invalid_names(ctx: Ctx, name: str) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid fleet name"):
        ctx.create(name)
    assert ctx.list() == []


@pytest.mark.parametrize("name", ["a", "A.b_c-9", "x" * 63, "0day"])
def test_create_accepts_valid_names(ctx: Ctx, name: str) -> None:
    assert ctx.create(name).name == name


def test_errors_subclass_the_matching_builtins() -> None:
    assert issubclass(FleetNotFoundError, LookupError)
    assert issubclass(InvalidArgumentError, ValueError)
    assert issubclass(dalfleet.StoreError, OSError)
    assert issubclass(dalfleet.CorruptStoreError, dalfleet.StoreError)
    assert issubclass(MoldError, ValueError)
    for cls in (FleetNotFoundError, InvalidArgumentError, MoldError, dalfleet.StoreError):
        assert issubclass(cls, FleetError)


# -- create_from_mold -----------------------------------------------------------------


def test_create_from_mold_spawns_named_members_in_order(ctx: Ctx) -> None:
    f = ctx.create_from_mold("w", "worker", 3)
    assert len(f.member_ids) == 3
    assert len(set(f.member_ids)) == 3
    assert all(m.startswith("agent_") for m in f.member_ids)
    assert f.mold_source == "worker"
    assert f.last_create_params is None
    client = fleet.current_client() if ctx.kind != "json" else dalfleet.Client.for_base(ctx.base)
    agents = client.coordinator.agents(f.member_ids)
    assert [agents[m].name for m in f.member_ids] == ["w_0", "w_1", "w_2"]


def test_create_from_mold_records_source_exactly_as_given(ctx: Ctx) -> None:
    f = ctx.create_from_mold("w", "mold/worker.mold.dal")
    assert f.mold_source == "mold/worker.mold.dal"
    assert len(f.member_ids) == 1


def test_create_from_mold_takes_base_and_params_positionally(base: Path) -> None:
    f = fleet.create_from_mold("w", "worker", 2, base, {"env": "prod"})
    assert f.last_create_params == {"env": "prod"}
    assert fleet.show("w", base) == f


def test_create_from_mold_params_accept_key_value_strings(ctx: Ctx) -> None:
    f = ctx.create_from_mold("w", "worker", 1, params=["env=prod", "tier=a=b"])
    assert f.last_create_params == {"env": "prod", "tier": "a=b"}


def test_params_reach_agent_metadata_and_role(base: Path) -> None:
    with fleet.using(memory=True, base=base) as client:
        f = fleet.create_from_mold("w", "worker", 1, params={"env": "prod"})
        agent = client.coordinator.agents(f.member_ids)[f.member_ids[0]]
    assert agent.metadata["env"] == "prod"
    assert agent.metadata["mold_name"] == "worker"
    assert agent.metadata["mold_version"] == "1.2"
    assert agent.spec.role == "Process prod jobs"
    assert agent.spec.capabilities == ("read", "write:prod")


def test_trust_comes_from_the_principal_not_the_mold(base: Path) -> None:
    with fleet.using(memory=True, base=base) as client:
        f = fleet.create_from_mold("w", "worker", 1)
        agent = client.coordinator.agents(f.member_ids)[f.member_ids[0]]
    assert agent.spec.trust_level == "sandboxed"


@pytest.mark.parametrize("count", [0, -1, -100])
def test_create_from_mold_count_below_one(ctx: Ctx, count: int) -> None:
    with pytest.raises(InvalidArgumentError, match=r"count.*>= 1"):
        ctx.create_from_mold("w", "worker", count)
    assert ctx.list() == []


def test_create_from_mold_count_above_cap(ctx: Ctx) -> None:
    with pytest.raises(InvalidArgumentError, match="capped at 1000"):
        ctx.create_from_mold("w", "worker", 1001)
    assert ctx.list() == []


def test_create_from_mold_count_must_be_an_int(ctx: Ctx) -> None:
    with pytest.raises(InvalidArgumentError, match="count"):
        ctx.create_from_mold("w", "worker", "3")


def test_create_from_mold_at_the_cap(ctx: Ctx) -> None:
    assert len(ctx.create_from_mold("w", "worker", 1000).member_ids) == 1000


def test_create_from_mold_existing_name(ctx: Ctx) -> None:
    ctx.create("w")
    with pytest.raises(FleetExistsError, match="fleet 'w' already exists"):
        ctx.create_from_mold("w", "worker", 2)
    assert ctx.show("w").member_ids == ()


def test_create_from_mold_missing_mold_lists_what_was_tried(ctx: Ctx) -> None:
    with pytest.raises(MoldNotFoundError, match="nope") as info:
        ctx.create_from_mold("w", "nope", 1)
    assert "nope.mold.dal" in str(info.value)
    assert ctx.list() == []


def test_create_from_mold_broken_mold_changes_nothing(base: Path) -> None:
    fleet.create("keep", base)
    (base / "broken.mold.dal").write_text('mold "b"\nagent\n  type Robot\n')
    before = snapshot(base)
    with pytest.raises(MoldError, match="unknown agent type in mold: Robot"):
        fleet.create_from_mold("w", "broken", 2, base)
    assert snapshot(base) == before


def test_param_without_equals_is_an_error(ctx: Ctx) -> None:
    with pytest.raises(InvalidArgumentError, match="KEY=VALUE"):
        ctx.create_from_mold("w", "worker", 1, params=["env"])
    assert ctx.list() == []


# -- add_from_mold / add_member ---------------------------------------------------------


def test_add_from_mold_continues_numbering(base: Path) -> None:
    with fleet.using(memory=True, base=base) as client:
        fleet.create_from_mold("w", "worker", 2)
        f = fleet.add_from_mold("w", "worker", 2)
        agents = client.coordinator.agents(f.member_ids)
    assert [agents[m].name for m in f.member_ids] == ["w_0", "w_1", "w_2", "w_3"]


def test_add_from_mold_sets_mold_and_params_only_if_unset(ctx: Ctx) -> None:
    ctx.create("w")
    f = ctx.add_from_mold("w", "worker", 1, params={"env": "a"})
    assert (f.mold_source, f.last_create_params) == ("worker", {"env": "a"})
    f = ctx.add_from_mold("w", "mold/worker.mold.dal", 1, params={"env": "b"})
    assert (f.mold_source, f.last_create_params) == ("worker", {"env": "a"})
    assert len(f.member_ids) == 2


def test_add_from_mold_positional_base_and_params(base: Path) -> None:
    fleet.create("w", base)
    f = fleet.add_from_mold("w", "worker", 2, base, {"env": "x"})
    assert len(f.member_ids) == 2 and f.last_create_params == {"env": "x"}


def test_add_from_mold_unknown_fleet(ctx: Ctx) -> None:
    with pytest.raises(FleetNotFoundError, match="fleet 'w' not found"):
        ctx.add_from_mold("w", "worker", 1)


@pytest.mark.parametrize("count", [0, -1, 1001])
def test_add_from_mold_count_rules(ctx: Ctx, count: int) -> None:
    ctx.create("w")
    with pytest.raises(InvalidArgumentError, match="count"):
        ctx.add_from_mold("w", "worker", count)
    assert ctx.show("w").member_ids == ()


def test_add_member_registers_and_is_idempotent(ctx: Ctx) -> None:
    ctx.create("w")
    ctx.add_member("w", "agent_ext")
    f = ctx.add_member("w", "agent_ext")
    assert f.member_ids == ("agent_ext",)


def test_ensure_member_says_whether_the_id_was_added(ctx: Ctx) -> None:
    ctx.create("w")
    first = ctx.ensure_member("w", " agent_ext ")
    assert (first.added, first.agent_id, first.fleet.member_ids) == (
        True,
        "agent_ext",
        ("agent_ext",),
    )
    again = ctx.ensure_member("w", "agent_ext")
    assert (again.added, again.fleet) == (False, first.fleet)
    assert ctx.show("w").member_ids == ("agent_ext",)


@pytest.mark.parametrize("agent_id", ["", "   ", "\t"])
def test_add_member_blank_id(ctx: Ctx, agent_id: str) -> None:
    ctx.create("w")
    with pytest.raises(InvalidArgumentError, match="agent id cannot be empty"):
        ctx.add_member("w", agent_id)


def test_add_member_unknown_fleet(ctx: Ctx) -> None:
    with pytest.raises(FleetNotFoundError):
        ctx.add_member("nope", "agent_1")


# -- deploy / list / show / delete ---------------------------------------------------


def test_deploy_strips_and_stamps(ctx: Ctx) -> None:
    ctx.create("w")
    f = ctx.deploy("w", "  Process daily logs \n")
    assert f.last_deployed_task == "Process daily logs"
    assert f.last_deployed_at is not None and f.last_deployed_at.isdigit()
    assert ctx.show("w").last_deployed_task == "Process daily logs"


@pytest.mark.parametrize("task", ["", "   ", "\n\t"])
def test_deploy_blank_task(ctx: Ctx, task: str) -> None:
    ctx.create("w")
    with pytest.raises(InvalidArgumentError, match="deploy task cannot be empty"):
        ctx.deploy("w", task)
    assert ctx.show("w").last_deployed_task is None


def test_deploy_huge_task(ctx: Ctx) -> None:
    ctx.create("w")
    with pytest.raises(InvalidArgumentError, match="too long"):
        ctx.deploy("w", "x" * (1024 * 1024))


def test_deploy_unknown_fleet(ctx: Ctx) -> None:
    with pytest.raises(FleetNotFoundError, match="fleet 'w' not found"):
        ctx.deploy("w", "task")


def test_deploy_executes_nothing(ctx: Ctx) -> None:
    ctx.create_from_mold("w", "worker", 2)
    ctx.deploy("w", "task")
    assert all(m.pending_tasks == 0 for m in ctx.health("w").members)


def test_list_is_sorted(ctx: Ctx) -> None:
    for name in ["b", "C", "a"]:
        ctx.create(name)
    assert ctx.list() == ["C", "a", "b"]


def test_show_absent_is_none(ctx: Ctx) -> None:
    assert ctx.show("nope") is None


def test_delete_reports_whether_removed(ctx: Ctx) -> None:
    ctx.create("w")
    assert ctx.delete("w") is True
    assert ctx.delete("w") is False
    assert ctx.list() == []


def test_delete_of_a_missing_fleet_can_be_an_error(ctx: Ctx) -> None:
    ctx.create("workers")
    with pytest.raises(FleetNotFoundError) as caught:
        ctx.delete("wokers", missing_ok=False)
    assert str(caught.value) == "fleet 'wokers' not found; did you mean 'workers'?"
    assert caught.value.suggestion == "workers"
    assert ctx.delete("workers", missing_ok=False) is True
    assert ctx.list() == []


def test_a_mistyped_name_gets_a_suggestion_from_the_library(ctx: Ctx) -> None:
    ctx.create("workers")
    with pytest.raises(
        FleetNotFoundError, match=r"^fleet 'wokers' not found; did you mean 'workers'\?$"
    ):
        ctx.health("wokers")
    with pytest.raises(FleetNotFoundError) as caught:
        ctx.deploy("zzz", "task")
    assert (str(caught.value), caught.value.suggestion) == ("fleet 'zzz' not found", None)


def test_delete_is_metadata_only_by_default(ctx: Ctx) -> None:
    members = ctx.create_from_mold("w", "worker", 2).member_ids
    ctx.delete("w")
    ctx.create("w")
    ctx.add_member("w", members[0])
    assert ctx.health("w").members[0].state is AgentState.ALIVE


def test_delete_with_teardown_terminates_members(ctx: Ctx) -> None:
    members = ctx.create_from_mold("w", "worker", 2).member_ids
    assert ctx.delete("w", teardown=True) is True
    ctx.create("v")
    ctx.add_member("v", members[1])
    assert ctx.health("v").members[0].state is AgentState.TERMINATED


# -- scale ----------------------------------------------------------------------------


def test_scale_to_same_size_changes_nothing(ctx: Ctx) -> None:
    f = ctx.create_from_mold("w", "worker", 2)
    assert ctx.scale("w", 2) == f


def test_scale_down_keeps_the_first_n_and_terminates_the_rest(ctx: Ctx) -> None:
    f = ctx.create_from_mold("w", "worker", 4)
    g = ctx.scale("w", 1)
    assert g.member_ids == f.member_ids[:1]
    ctx.create("removed")
    for m in f.member_ids[1:]:
        ctx.add_member("removed", m)
    states = {m.state for m in ctx.health("removed").members}
    assert states == {AgentState.TERMINATED}
    assert ctx.health("w").status == "ok"


def test_scale_down_to_zero(ctx: Ctx) -> None:
    ctx.create_from_mold("w", "worker", 2)
    assert ctx.scale("w", 0).member_ids == ()
    assert ctx.health("w").status == "ok"  # it still has a mold


def test_scale_up_uses_last_create_params(base: Path) -> None:
    with fleet.using(memory=True, base=base) as client:
        fleet.create_from_mold("w", "worker", 1, params={"env": "prod"})
        f = fleet.scale("w", 3)
        agents = client.coordinator.agents(f.member_ids)
    assert [agents[m].name for m in f.member_ids] == ["w_0", "w_1", "w_2"]
    assert {agents[m].metadata["env"] for m in f.member_ids} == {"prod"}


def test_scale_up_without_mold(ctx: Ctx) -> None:
    ctx.create("w")
    with pytest.raises(
        InvalidArgumentError,
        match=r"fleet 'w' has no mold; cannot scale up \(create from mold first\)",
    ):
        ctx.scale("w", 2)


@pytest.mark.parametrize("n", [-1, 1001])
def test_scale_out_of_range(ctx: Ctx, n: int) -> None:
    ctx.create_from_mold("w", "worker", 1)
    with pytest.raises(InvalidArgumentError):
        ctx.scale("w", n)
    assert len(ctx.show("w").member_ids) == 1


def test_scale_unknown_fleet(ctx: Ctx) -> None:
    with pytest.raises(FleetNotFoundError):
        ctx.scale("nope", 1)


def test_scale_up_with_a_mold_that_vanished_changes_nothing(base: Path) -> None:
    fleet.create_from_mold("w", "mold/worker.mold.dal", 1, base)
    (base / "mold" / "worker.mold.dal").unlink()
    before = snapshot(base)
    with pytest.raises(MoldNotFoundError):
        fleet.scale("w", 3, base)
    assert snapshot(base) == before


# -- run ------------------------------------------------------------------------------


def test_run_dispatches_to_every_member(ctx: Ctx) -> None:
    ctx.create_from_mold("w", "worker", 3)
    ctx.deploy("w", "Process daily logs")
    [report] = ctx.run("w")
    assert report.fleet_name == "w"
    assert report.members_dispatched == 3
    assert report.errors == ()
    assert [o.status for o in report.outcomes] == ["queued"] * 3
    assert [m.pending_tasks for m in ctx.health("w").members] == [1, 1, 1]
    assert report.already_pending == 0
    [again] = ctx.run("w")
    assert again.already_pending == 3  # the first run's tasks, still queued


def test_run_skips_fleets_without_a_task(ctx: Ctx) -> None:
    ctx.create_from_mold("a", "worker", 1)
    ctx.create_from_mold("b", "worker", 2)
    ctx.deploy("b", "go")
    reports = ctx.run()
    assert [(r.fleet_name, r.members_dispatched) for r in reports] == [("b", 2)]
    assert ctx.run("a") == []


def test_run_adds_a_member_from_the_mold_when_empty(ctx: Ctx) -> None:
    ctx.create_from_mold("w", "worker", 1)
    ctx.scale("w", 0)
    ctx.deploy("w", "go")
    [report] = ctx.run("w")
    assert report.members_dispatched == 1
    assert len(ctx.show("w").member_ids) == 1


def test_run_without_members_and_mold(ctx: Ctx) -> None:
    ctx.create("w")
    ctx.deploy("w", "go")
    with pytest.raises(FleetError, match="fleet 'w' has no members and no mold_source"):
        ctx.run("w")


def test_run_unknown_named_fleet_is_an_error(ctx: Ctx) -> None:
    with pytest.raises(FleetNotFoundError, match="fleet 'nope' not found"):
        ctx.run("nope")


def test_run_queues_the_task_for_members_that_live_elsewhere(ctx: Ctx) -> None:
    # As the reference: add_member'd agents get the task in their inbox.
    ctx.create_from_mold("w", "worker", 1)
    ctx.add_member("w", "agent_elsewhere")
    ctx.deploy("w", "go")
    [report] = ctx.run("w")
    assert (report.members_dispatched, report.errors) == (2, ())
    health = ctx.health("w")
    assert [(m.state, m.pending_tasks) for m in health.members] == [
        (AgentState.ALIVE, 1),
        (AgentState.UNKNOWN, 1),
    ]
    assert health.status == "ok"


def test_run_reports_terminated_members(ctx: Ctx) -> None:
    members = ctx.create_from_mold("w", "worker", 2).member_ids
    ctx.delete("w", teardown=True)
    ctx.create("v")
    for m in members:
        ctx.add_member("v", m)
    ctx.deploy("v", "go")
    [report] = ctx.run("v")
    assert report.members_dispatched == 0
    assert report.errors == tuple(f"{m}: agent '{m}' is terminated" for m in members)


# -- health ---------------------------------------------------------------------------


def test_health_of_an_empty_fleet(ctx: Ctx) -> None:
    ctx.create("w")
    h = ctx.health("w")
    assert (h.name, h.member_count, h.has_mold, h.status) == ("w", 0, False, "empty")
    assert h.last_deployed_task is None and h.last_deployed_at is None


def test_health_ok_with_members(ctx: Ctx) -> None:
    ctx.create_from_mold("w", "worker", 2)
    ctx.deploy("w", "go")
    h = ctx.health("w")
    assert (h.member_count, h.has_mold, h.status) == (2, True, "ok")
    assert h.last_deployed_task == "go"
    assert [m.state for m in h.members] == [AgentState.ALIVE] * 2


def test_health_counts_the_fleets_tasks_by_state(ctx: Ctx) -> None:
    ctx.create_from_mold("w", "worker", 2)
    h = ctx.health("w")
    assert (h.pending_tasks, h.running_tasks, h.completed_tasks, h.failed_tasks) == (0, 0, 0, 0)
    ctx.deploy("w", "go")
    ctx.run("w")
    ctx.run("w")
    h = ctx.health("w")
    assert (h.pending_tasks, h.running_tasks, h.completed_tasks, h.failed_tasks) == (4, 0, 0, 0)
    [report] = ctx.run("w", handler="dalfleet.handlers:echo")
    assert report.already_pending == 4
    h = ctx.health("w")
    assert (h.pending_tasks, h.completed_tasks, h.failed_tasks) == (4, 2, 0)


def test_health_unknown_members_keep_status_ok(ctx: Ctx) -> None:
    ctx.create("w")
    ctx.add_member("w", "agent_elsewhere")
    h = ctx.health("w")
    assert h.status == "ok"
    assert h.members[0].state is AgentState.UNKNOWN


def test_health_unknown_fleet(ctx: Ctx) -> None:
    with pytest.raises(FleetNotFoundError):
        ctx.health("nope")


# -- export ---------------------------------------------------------------------------


def test_export_unknown_fleet(ctx: Ctx) -> None:
    with pytest.raises(FleetNotFoundError, match="fleet 'nope' not found"):
        ctx.export("nope")


def test_export_nothing_to_export(ctx: Ctx) -> None:
    with pytest.raises(FleetNotFoundError, match="no fleets to export"):
        ctx.export()


def test_export_unknown_format(ctx: Ctx) -> None:
    ctx.create("w")
    with pytest.raises(InvalidArgumentError, match="unknown export format"):
        ctx.export("w", format="helm")


@pytest.mark.parametrize("fmt", ["k8s", "docker-compose", "compose", dalfleet.ExportFormat.K8S])
def test_export_contains_every_agent_id(ctx: Ctx, fmt: Any) -> None:
    f = ctx.create_from_mold("w", "worker", 2)
    text = ctx.export("w", format=fmt)
    for m in f.member_ids:
        assert m in text


# -- history / rollback -----------------------------------------------------------------


def test_history_and_rollback(ctx: Ctx) -> None:
    ctx.create("w")
    ctx.deploy("w", "v1")
    ctx.deploy("w", "v2")
    assert [(r.revision, r.task) for r in ctx.history("w")] == [(1, "v1"), (2, "v2")]
    f = ctx.rollback("w")
    assert f.last_deployed_task == "v1"
    assert [r.task for r in ctx.history("w")] == ["v1", "v2", "v1"]
    assert ctx.rollback("w", to_revision=2).last_deployed_task == "v2"


def test_rollback_needs_a_previous_revision(ctx: Ctx) -> None:
    ctx.create("w")
    ctx.deploy("w", "v1")
    with pytest.raises(InvalidArgumentError, match="no previous revision"):
        ctx.rollback("w")
    with pytest.raises(InvalidArgumentError, match="no revision 7"):
        ctx.rollback("w", to_revision=7)


def test_history_is_bounded(ctx: Ctx) -> None:
    ctx.create("w")
    for i in range(60):
        ctx.deploy("w", f"t{i}")
    revisions = ctx.history("w")
    assert len(revisions) == 50
    assert revisions[-1].revision == 60 and revisions[0].revision == 11


# -- default context ----------------------------------------------------------------------


def test_base_none_means_the_working_directory_at_call_time(
    base: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path_factory.mktemp("other")
    monkeypatch.chdir(base)
    fleet.create("here")
    monkeypatch.chdir(other)
    fleet.create("there")
    assert fleet.list() == ["there"]
    assert fleet.list(base) == ["here"]
    assert json.loads((base / ".dal" / "fleets.json").read_text())["here"]["member_ids"] == []


def test_configure_memory_then_back(in_base: Path) -> None:
    fleet.configure(memory=True)
    fleet.create("scratch")
    assert fleet.list() == ["scratch"]
    assert not (in_base / ".dal").exists()
    fleet.configure()
    assert fleet.list() == []


def test_using_is_scoped(in_base: Path) -> None:
    with fleet.using(memory=True):
        fleet.create("scratch")
        assert fleet.list() == ["scratch"]
    assert fleet.list() == []


def test_client_carries_an_explicit_context(base: Path) -> None:
    with dalfleet.Client.for_base(base) as client:
        client.create_from_mold("w", "worker", 2)
        assert client.list() == ["w"]
    assert fleet.list(base) == ["w"]


def test_read_only_calls_create_nothing(base: Path) -> None:
    assert fleet.list(base) == []
    assert fleet.show("x", base) is None
    with pytest.raises(FleetNotFoundError):
        fleet.health("x", base)
    with pytest.raises(FleetNotFoundError):
        fleet.scale("x", 2, base)
    with pytest.raises(FleetNotFoundError):
        fleet.run("x", base)
    assert fleet.run(None, base) == []
    assert not (base / ".dal").exists()


def test_spawn_failure_leaves_no_partial_fleet(base: Path) -> None:
    from dalfleet.coordinator import MemoryCoordinator
    from dalfleet.store import MemoryStore

    class Recording(MemoryCoordinator):
        def __init__(self) -> None:
            super().__init__()
            self.spawned: list[str] = []

        def spawn(self, specs: Any) -> list[str]:
            ids: list[str] = super().spawn(specs)
            self.spawned.extend(ids)
            return ids

    def fail_after_spawn(done: int, total: int) -> None:
        raise CoordinatorError("out of capacity")

    coordinator = Recording()
    client = dalfleet.Client(MemoryStore(), coordinator, base=base)
    with pytest.raises(CoordinatorError, match="out of capacity"):
        client.create_from_mold("w", "worker", 250, progress=fail_after_spawn)
    assert client.list() == []
    assert len(coordinator.spawned) == 250
    states = coordinator.status(coordinator.spawned)
    assert all(s.state is AgentState.TERMINATED for s in states.values())


def test_lifecycle_hooks_are_handed_to_the_coordinator_as_data(base: Path) -> None:
    with fleet.using(memory=True, base=base) as client:
        f = fleet.create_from_mold("w", "worker", 2)
        fleet.scale("w", 1)
        events = client.coordinator.events  # type: ignore[attr-defined]
        assert ("on_create", "echo hello") in events(f.member_ids[0])
        assert ("on_destroy", "echo bye") in events(f.member_ids[1])
        assert ("on_destroy", "echo bye") not in events(f.member_ids[0])


def test_using_and_configure_accept_shorthands(base: Path, in_base: Path) -> None:
    with fleet.using("memory"):
        fleet.create("scratch")
        assert fleet.list() == ["scratch"]
    other = base / "sub"
    other.mkdir()
    fleet.configure(other)
    fleet.create("there")
    fleet.configure()
    assert fleet.list() == []
    assert fleet.list(other) == ["there"]


def test_a_base_that_is_a_file_is_an_error_and_a_new_one_is_made(base: Path) -> None:
    (base / "file").write_text("x", encoding="utf-8")
    with pytest.raises(InvalidArgumentError, match="is not a directory"):
        dalfleet.Client.for_base(base / "file")
    with pytest.raises(InvalidArgumentError, match="is not a directory"):
        fleet.list(base / "file")
    assert (base / "file").read_text(encoding="utf-8") == "x"
    # A directory still to be made is a new project: reads find nothing, a write makes it.
    new = base / "new" / "project"
    assert fleet.list(new) == []
    assert not (base / "new").exists()
    fleet.create("w", new)
    assert fleet.list(new) == ["w"]


def test_what_a_user_may_want_to_see_is_logged(
    base: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="dalfleet"), fleet.using(memory=True, base=base):
        fleet.create_from_mold("w", "worker", 3)
        fleet.deploy("w", "go")
        fleet.run("w")
        fleet.run("w", handler="dalfleet.handlers:echo")
        fleet.scale("w", 1)
        fleet.delete("w", teardown=True)
    assert [r.getMessage() for r in caplog.records if r.name == "dalfleet"] == [
        "fleet w: spawned 3 agent(s) from mold worker",
        "fleet w: queued the task for 3 member(s) (0 task(s) were already pending)",
        "fleet w: ran the task on 3 member(s): 3 ok, 0 failed",
        "fleet w: scaled to 1 agent(s); terminated 2 member(s)",
        "fleet w: deleted; terminated 1 member(s)",
    ]


def test_a_lease_takeover_is_logged(base: Path, caplog: pytest.LogCaptureFixture) -> None:
    import time

    client = dalfleet.Client.in_memory(base)
    members = client.create_from_mold("w", "worker", 1).member_ids
    client.deploy("w", "go")
    client.run("w")
    [claim] = client.coordinator.claim(members, "gone-worker", 1, lease=0.05)
    while time.time() <= claim.lease_expires_at:  # the lease runs out on the wall clock
        time.sleep(0.01)
    with caplog.at_level("INFO", logger="dalfleet"):
        stats = client.work("w", "dalfleet.handlers:echo", once=True)
    assert (stats.executed, stats.recovered) == (1, 1)
    assert "fleet w: took over 1 task(s) whose lease expired; retrying them" in [
        r.getMessage() for r in caplog.records
    ]


# -- gc ---------------------------------------------------------------------------------


def test_gc_terminates_the_agents_no_fleet_lists_and_only_them(ctx: Ctx) -> None:
    kept = ctx.create_from_mold("keep", "worker", 2).member_ids
    gone = ctx.create_from_mold("gone", "worker", 3).member_ids
    assert ctx.delete("gone") is True  # metadata only: its members are orphans now
    assert sorted(ctx.gc(dry_run=True)) == sorted(gone)
    assert sorted(ctx.gc()) == sorted(gone)
    assert ctx.gc() == []
    client = fleet.current_client() if ctx.kind != "json" else dalfleet.Client.for_base(ctx.base)
    states = client.coordinator.status([*kept, *gone])
    assert [states[a].state for a in kept] == [AgentState.ALIVE] * 2
    assert [states[a].state for a in gone] == [AgentState.TERMINATED] * 3
