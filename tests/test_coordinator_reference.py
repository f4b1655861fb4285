"""The reference-runtime coordinator (SPEC §5): the conformance kit, and both tools on
one directory.

The reference's files here are written by hand from its structs
(``AgentRuntimeSnapshot`` and the DTOs of ``src/stdlib/agent_persist.rs``; the
fleet entry of ``src/fleet.rs``), as ``dal agent fleet create … --from-mold``,
``deploy`` and ``run`` leave them: ``run`` queues one ``medium`` task with a UUID
per member through ``agent::coordinate(…, "task_distribution")``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dalfleet.client import Client
from dalfleet.coordinator.base import Coordinator, TaskOutcome, TaskState
from dalfleet.coordinator.local import LocalCoordinator
from dalfleet.coordinator.reference import (
    RUNTIME_ENV,
    ReferenceCoordinator,
    ReferenceRuntime,
    coordinator_for_base,
    runtime_path,
)
from dalfleet.errors import InvalidArgumentError
from dalfleet.models import AgentSpec, AgentState, Task
from dalfleet.testing import CoordinatorContract
from tests.test_reference_runtime import reference_task


class TestReferenceCoordinatorContract(CoordinatorContract):
    @pytest.fixture
    def coordinator(self, tmp_path: Path) -> Iterator[Coordinator]:
        coordinator = ReferenceCoordinator(tmp_path)
        yield coordinator
        coordinator.close()


class TestReferenceCoordinatorContractBesideTheReferencesAgents(CoordinatorContract):
    """The same rules hold in a project where the reference has agents and tasks."""

    @pytest.fixture
    def coordinator(self, tmp_path: Path) -> Iterator[Coordinator]:
        reference_project(tmp_path)
        coordinator = ReferenceCoordinator(tmp_path)
        yield coordinator
        coordinator.close()
        # Their tasks were left alone: the kit never named their agents.
        theirs = [
            t for t in ReferenceRuntime(tmp_path).pending() if t.agent_id.startswith("agent_r")
        ]
        assert [t.task_id[-1] for t in theirs] == ["1", "2"]


# -- the reference's shapes ------------------------------------------------------------

# Every key the reference's serde structs require (no #[serde(default)]): a file
# missing one of them would not load in the reference.
SNAPSHOT_KEYS = {
    "version",
    "agent_contexts",
    "task_queue",
    "message_bus",
    "evolution_store",
    "serve_agent_id",
}
CONTEXT_KEYS = {
    "agent_id",
    "config",
    "status",
    "memory",
    "tasks",
    "message_queue",
    "created_at",
    "last_active",
    "performance_metrics",
    "trust_score",
}
CONFIG_KEYS = {
    "name",
    "agent_type",
    "role",
    "capabilities",
    "skills",
    "trust_level",
    "max_memory",
    "learning_enabled",
    "communication_enabled",
    "coordination_enabled",
    "metadata",
    "lifecycle",
}
TASK_KEYS = {
    "task_id",
    "description",
    "priority",
    "status",
    "assigned_at",
    "completed_at",
    "dependencies",
    "metadata",
}
METRIC_KEYS = {
    "tasks_completed",
    "tasks_failed",
    "tasks_assigned",
    "messages_sent",
    "messages_received",
    "coordination_events",
    "learning_sessions",
    "status_changes",
    "average_response_time",
    "uptime_percentage",
}
STATUSES = {"idle", "active", "learning", "coordinating", "error", "terminated"}
TASK_STATUSES = {"pending", "in_progress", "completed", "failed", "cancelled"}


def assert_reference_loads(snapshot: dict[str, Any]) -> None:
    """The checks the reference's deserializer makes (required keys, enum spellings)."""
    assert set(snapshot) >= SNAPSHOT_KEYS
    for agent_id, context in snapshot["agent_contexts"].items():
        assert set(context) >= CONTEXT_KEYS, agent_id
        assert set(context["config"]) >= CONFIG_KEYS, agent_id
        assert set(context["performance_metrics"]) >= METRIC_KEYS, agent_id
        assert context["status"] in STATUSES
        for task in context["tasks"]:
            assert set(task) >= TASK_KEYS
            assert task["status"] in TASK_STATUSES
    for entry in snapshot["task_queue"]:
        agent_id, task = entry
        assert isinstance(agent_id, str)
        assert set(task) >= TASK_KEYS
        assert task["priority"] in {"low", "medium", "high", "critical"}


def reference_listing(snapshot: dict[str, Any], agent_id: str) -> list[str]:
    """What `dal agent task list AGENT` prints from this file (src/main.rs)."""
    mine = [task for who, task in snapshot["task_queue"] if who == agent_id]
    if not mine:
        return [f"📋 No pending tasks for {agent_id}"]
    lines = [f"📋 Pending tasks for {agent_id} ({len(mine)}):", ""]
    for index, task in enumerate(mine, start=1):
        lines.append(f"   {index}. {task['task_id']} | {task['priority']} | {task['description']}")
    return lines


def context(agent_id: str, name: str, status: str = "idle") -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "config": {
            "name": name,
            "agent_type": "worker",
            "role": "Fleet worker",
            # agent::spawn replaces a worker's capabilities with its built-in list.
            "capabilities": [
                "task_execution",
                "data_processing",
                "automation",
                "workflow_management",
            ],
            "skills": ["development", "creative", "office", "home"],
            "trust_level": "sandboxed",
            "max_memory": 65536,
            "learning_enabled": False,
            "communication_enabled": True,
            "coordination_enabled": True,
            "metadata": {"mold_name": {"String": "m"}, "mold_version": {"String": "1.0"}},
            "lifecycle": None,
        },
        "status": status,
        "memory": {
            "worker_type": {"String": "general"},
            "automation_level": {"String": "high"},
            "task_queue_size": {"Int": 100},
        },
        "tasks": [],
        "message_queue": [],
        "created_at": "2026-11-29T10:00:00.000000+00:00",
        "last_active": "2026-11-29T10:00:00.000000+00:00",
        "performance_metrics": dict.fromkeys(METRIC_KEYS, 0)
        | {"average_response_time": 0.0, "uptime_percentage": 100.0},
        "trust_score": 1.0,
    }


def queued(task_id: str, description: str = "Process daily logs") -> dict[str, Any]:
    """A task as the reference queues it (one shape, shared with the file layer's tests)."""
    return reference_task(task_id, description)


def reference_project(base: Path, *, status: str = "idle", run: bool = True) -> None:
    """`dal agent fleet create w --from-mold m --count 2`, `deploy w …`, and `run w`."""
    snapshot = {
        "version": 1,
        "agent_contexts": {
            "agent_r0": context("agent_r0", "w_0", status),
            "agent_r1": context("agent_r1", "w_1", status),
        },
        "task_queue": (
            [
                ["agent_r0", queued("5b2f0c1e-0000-4000-8000-000000000001")],
                ["agent_r1", queued("5b2f0c1e-0000-4000-8000-000000000002")],
            ]
            if run
            else []
        ),
        "message_bus": [],
        "evolution_store": {},
        "serve_agent_id": None,
        "registered_skills": [],
    }
    fleets = {
        "w": {
            "name": "w",
            "mold_source": "m",
            "member_ids": ["agent_r0", "agent_r1"],
            "last_deployed_task": "Process daily logs",
            "last_deployed_at": "1764410400",
        }
    }
    (base / ".dal").mkdir(exist_ok=True)
    runtime_path(base).write_text(json.dumps(snapshot, indent=2), encoding="utf-8")
    (base / ".dal" / "fleets.json").write_text(json.dumps(fleets, indent=2), encoding="utf-8")


def stored(base: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(runtime_path(base).read_text(encoding="utf-8"))
    return data


def cli(
    base: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dalfleet", *args],
        cwd=base,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})},
        check=False,
    )


# -- the coordinator ------------------------------------------------------------------


def test_the_references_queued_tasks_are_claimed_with_their_ids(tmp_path: Path) -> None:
    reference_project(tmp_path)
    coordinator = ReferenceCoordinator(tmp_path)
    assert coordinator.agents(["agent_r0"])["agent_r0"].spec.name == "w_0"
    assert coordinator.status(["agent_r0"])["agent_r0"].state == AgentState.ALIVE
    (claimed,) = coordinator.claim(["agent_r0"], "w1", 5)
    assert claimed.task.task_id == "5b2f0c1e-0000-4000-8000-000000000001"
    assert claimed.task.description == "Process daily logs"
    # The handler sees the agent as the reference stored it, not a stand-in.
    assert (claimed.agent.spec.name, claimed.agent.spec.role) == ("w_0", "Fleet worker")
    assert [t.agent_id for t in ReferenceRuntime(tmp_path).pending()] == ["agent_r1"]
    coordinator.finish(TaskOutcome(claimed.task.task_id, ok=True, result="done"), "w1")
    coordinator.close()
    snapshot = stored(tmp_path)
    assert_reference_loads(snapshot)
    (task,) = snapshot["agent_contexts"]["agent_r0"]["tasks"]
    assert task["task_id"] == claimed.task.task_id
    assert (task["status"], task["metadata"]["result"]) == ("completed", {"String": "done"})
    assert snapshot["agent_contexts"]["agent_r0"]["performance_metrics"]["tasks_completed"] == 1


def test_tasks_only_in_the_references_queue_are_counted_and_listed(tmp_path: Path) -> None:
    reference_project(tmp_path)
    coordinator = ReferenceCoordinator(tmp_path)
    assert coordinator.task_counts(["agent_r0", "agent_r1"]).pending == 2
    assert coordinator.status(["agent_r1"])["agent_r1"].pending_tasks == 1
    (record,) = coordinator.tasks("agent_r1")
    assert (record.task_id, record.state) == ("5b2f0c1e-0000-4000-8000-000000000002", "pending")
    assert coordinator.task("5b2f0c1e-0000-4000-8000-000000000001") is not None
    # Looking does not take them: `dal agent task list` still shows them.
    assert len(ReferenceRuntime(tmp_path).pending()) == 2
    coordinator.close()


def test_a_task_dispatched_here_is_listed_by_the_reference(tmp_path: Path) -> None:
    coordinator = ReferenceCoordinator(tmp_path)
    (agent_id,) = coordinator.spawn([AgentSpec(name="w_0", agent_type="Worker")])
    task = coordinator.dispatch([agent_id], Task(task_id="", description="Rotate keys"))[
        agent_id
    ].task
    assert task is not None
    snapshot = stored(tmp_path)
    assert_reference_loads(snapshot)
    assert snapshot["agent_contexts"][agent_id]["config"]["agent_type"] == "worker"
    assert reference_listing(snapshot, agent_id) == [
        f"📋 Pending tasks for {agent_id} (1):",
        "",
        f"   1. {task.task_id} | medium | Rotate keys",
    ]
    # Claimed here: it leaves the reference's queue, and is not taken in twice.
    (claimed,) = coordinator.claim([agent_id], "w1", 5)
    assert claimed.task.task_id == task.task_id
    assert ReferenceRuntime(tmp_path).pending() == []
    assert coordinator.task_counts([agent_id]).total == 1
    coordinator.close()


def test_a_released_task_goes_back_into_the_references_queue(tmp_path: Path) -> None:
    reference_project(tmp_path)
    coordinator = ReferenceCoordinator(tmp_path)
    claimed = coordinator.claim(["agent_r0", "agent_r1"], "w1", 5)
    assert len(claimed) == 2
    assert ReferenceRuntime(tmp_path).pending() == []
    coordinator.release([claimed[0].task.task_id], "w1")  # the worker stopped
    (back,) = ReferenceRuntime(tmp_path).pending()
    assert (back.agent_id, back.task_id) == ("agent_r0", claimed[0].task.task_id)
    assert coordinator.task_counts(["agent_r0", "agent_r1"]).pending == 1
    # Claimed again later: once, and it leaves the queue again.
    (again,) = coordinator.claim(["agent_r0", "agent_r1"], "w2", 5)
    assert again.task.task_id == claimed[0].task.task_id
    assert ReferenceRuntime(tmp_path).pending() == []
    assert_reference_loads(stored(tmp_path))
    coordinator.close()


def test_terminate_fails_the_references_queued_tasks_and_marks_the_agent(tmp_path: Path) -> None:
    reference_project(tmp_path)
    coordinator = ReferenceCoordinator(tmp_path)
    coordinator.terminate(["agent_r0"])
    assert coordinator.status(["agent_r0"])["agent_r0"].state == AgentState.TERMINATED
    assert coordinator.task_counts(["agent_r0"]).failed == 1
    snapshot = stored(tmp_path)
    assert snapshot["agent_contexts"]["agent_r0"]["status"] == "terminated"
    assert [who for who, _ in snapshot["task_queue"]] == ["agent_r1"]
    coordinator.close()


def test_terminated_by_the_reference_refuses_tasks(tmp_path: Path) -> None:
    reference_project(tmp_path, status="terminated")
    coordinator = ReferenceCoordinator(tmp_path)
    assert coordinator.status(["agent_r0"])["agent_r0"].state == AgentState.TERMINATED
    assert not coordinator.dispatch(["agent_r0"], Task(task_id="", description="x"))["agent_r0"].ok
    assert coordinator.claim(["agent_r0"], "w1", 5) == []
    coordinator.close()


def test_a_failed_task_is_failed_in_the_reference_file(tmp_path: Path) -> None:
    reference_project(tmp_path)
    coordinator = ReferenceCoordinator(tmp_path)
    (claimed,) = coordinator.claim(["agent_r0"], "w1", 5)
    coordinator.finish(TaskOutcome(claimed.task.task_id, ok=False, error="boom"), "w1")
    record = coordinator.task(claimed.task.task_id)
    assert record is not None and record.state == TaskState.FAILED
    coordinator.close()
    (task,) = stored(tmp_path)["agent_contexts"]["agent_r0"]["tasks"]
    assert (task["status"], task["metadata"]["error"]) == ("failed", {"String": "boom"})


def test_keys_unknown_to_dalfleet_survive_its_writes(tmp_path: Path) -> None:
    reference_project(tmp_path)
    snapshot = stored(tmp_path)
    snapshot["from_a_newer_reference"] = {"kept": [1, 2]}
    snapshot["agent_contexts"]["agent_r0"]["config"]["resource_budget"] = {"max_total_tokens": 9}
    snapshot["task_queue"][1][1]["metadata"] = {"origin": {"String": "cron"}}
    runtime_path(tmp_path).write_text(json.dumps(snapshot), encoding="utf-8")
    coordinator = ReferenceCoordinator(tmp_path)
    (claimed,) = coordinator.claim(["agent_r0"], "w1", 1)
    coordinator.finish(TaskOutcome(claimed.task.task_id, ok=True, result=1), "w1")
    coordinator.close()
    after = stored(tmp_path)
    assert after["from_a_newer_reference"] == {"kept": [1, 2]}
    assert after["agent_contexts"]["agent_r0"]["config"]["resource_budget"] == {
        "max_total_tokens": 9
    }
    assert after["task_queue"][0][1]["metadata"] == {"origin": {"String": "cron"}}


# -- choosing the coordinator ----------------------------------------------------------


def test_the_default_client_shares_the_file_only_when_it_exists(tmp_path: Path) -> None:
    with Client.for_base(tmp_path) as client:
        assert isinstance(client.coordinator, LocalCoordinator)
    reference_project(tmp_path)
    with Client.for_base(tmp_path) as client:
        assert isinstance(client.coordinator, ReferenceCoordinator)
    with Client.for_base(tmp_path, runtime="local") as client:
        assert isinstance(client.coordinator, LocalCoordinator)


def test_the_reference_runtime_can_be_asked_for(tmp_path: Path) -> None:
    chosen = coordinator_for_base(tmp_path, "sandboxed", environ={RUNTIME_ENV: "reference"})
    assert isinstance(chosen, ReferenceCoordinator)
    with Client.for_base(tmp_path, runtime="reference") as client:
        client.create_from_mold("w", "worker", 1)
        (member,) = client.show("w").member_ids
    assert member in stored(tmp_path)["agent_contexts"]
    with pytest.raises(InvalidArgumentError, match="auto, local, reference"):
        coordinator_for_base(tmp_path, "sandboxed", environ={RUNTIME_ENV: "ray"})
    with pytest.raises(InvalidArgumentError):
        Client.for_base(tmp_path, runtime="sqlite")


# -- both tools on one directory (real processes) ---------------------------------------


def test_dal_fleet_run_then_dalfleet_worker(tmp_path: Path) -> None:
    reference_project(tmp_path)
    done = cli(tmp_path, "worker", "w", "--handler", "dalfleet.handlers:echo", "--once")
    assert done.returncode == 0, done.stderr
    snapshot = stored(tmp_path)
    assert_reference_loads(snapshot)
    assert snapshot["task_queue"] == []
    for agent_id in ("agent_r0", "agent_r1"):
        (task,) = snapshot["agent_contexts"][agent_id]["tasks"]
        assert task["status"] == "completed"
        assert task["description"] == "Process daily logs"
    # Nothing is left for a second worker.
    again = cli(tmp_path, "worker", "w", "--handler", "dalfleet.handlers:echo", "--once")
    assert again.returncode == 0, again.stderr
    assert all(len(c["tasks"]) == 1 for c in stored(tmp_path)["agent_contexts"].values())


def test_dalfleet_run_then_dal_agent_task_list(tmp_path: Path) -> None:
    reference_project(tmp_path, run=False)
    done = cli(tmp_path, "run", "w")
    assert done.returncode == 0, done.stderr
    snapshot = stored(tmp_path)
    assert_reference_loads(snapshot)
    for agent_id in ("agent_r0", "agent_r1"):
        lines = reference_listing(snapshot, agent_id)
        assert lines[0] == f"📋 Pending tasks for {agent_id} (1):"
        assert lines[2].endswith(" | medium | Process daily logs")
    # dalfleet's own listing prints the reference's lines for the same queue.
    listed = cli(tmp_path, "task", "list", "agent_r0")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == reference_listing(snapshot, "agent_r0")


def test_dalfleet_task_list_shows_what_the_reference_queued(tmp_path: Path) -> None:
    reference_project(tmp_path)
    listed = cli(tmp_path, "task", "list", "agent_r1")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "📋 Pending tasks for agent_r1 (1):",
        "",
        "   1. 5b2f0c1e-0000-4000-8000-000000000002 | medium | Process daily logs",
    ]
    empty = cli(tmp_path, "task", "list", "agent_nobody")
    assert empty.stdout.splitlines() == ["📋 No pending tasks for agent_nobody"]


# -- taking the reference's tasks in (LocalCoordinator.adopt) -------------------------------


def test_adopt_keeps_ids_stores_each_task_once_and_fails_tasks_of_terminated_agents(
    tmp_path: Path,
) -> None:
    local = LocalCoordinator(tmp_path)
    (alive, gone) = local.spawn([AgentSpec(name="a"), AgentSpec(name="b")])
    local.terminate([gone])
    tasks = [
        (alive, Task(task_id="ref-1", description="one")),
        (gone, Task(task_id="ref-2", description="two")),
        ("agent_elsewhere", Task(task_id="ref-3", description="three", priority="high")),
    ]
    assert local.adopt(tasks) == ["ref-1", "ref-2", "ref-3"]
    assert local.adopt(tasks) == []  # the same queue again: nothing twice
    assert local.task_states(["ref-1", "ref-2", "ref-3", "nope"]) == {
        "ref-1": TaskState.PENDING,
        "ref-2": TaskState.FAILED,
        "ref-3": TaskState.PENDING,
    }
    assert local.status(["agent_elsewhere"])["agent_elsewhere"].pending_tasks == 1
    (claimed,) = local.claim([alive], "w", 5)
    assert claimed.task.task_id == "ref-1"
    with pytest.raises(InvalidArgumentError):
        local.task_states("ref-1")
    local.close()


def test_what_the_reference_stored_about_its_agents_is_kept(tmp_path: Path) -> None:
    reference_project(tmp_path)
    before = stored(tmp_path)["agent_contexts"]["agent_r0"]
    done = cli(tmp_path, "worker", "w", "--handler", "dalfleet.handlers:echo", "--once")
    assert done.returncode == 0, done.stderr
    after = stored(tmp_path)["agent_contexts"]["agent_r0"]
    for key in ("config", "memory", "created_at", "trust_score", "message_queue"):
        assert after[key] == before[key], key


def test_a_corrupt_reference_file_refuses_commands_and_nothing_changes(tmp_path: Path) -> None:
    reference_project(tmp_path, run=False)
    runtime_path(tmp_path).write_text('{"version": 1, "agent_contexts": ', encoding="utf-8")
    fleets_before = (tmp_path / ".dal" / "fleets.json").read_bytes()
    for args in (("run", "w"), ("create", "x", "--from-mold", "worker", "--count", "2")):
        done = cli(tmp_path, *args)
        assert done.returncode == 1, args
        (message,) = done.stderr.splitlines()
        assert message.startswith("dalfleet: error: ") and "corrupt" in message
    assert (tmp_path / ".dal" / "fleets.json").read_bytes() == fleets_before
    assert runtime_path(tmp_path).read_text(encoding="utf-8") == '{"version": 1, "agent_contexts": '
    with Client.for_base(tmp_path, runtime="local") as client:
        assert client.coordinator.task_counts(["agent_r0", "agent_r1"]).total == 0
        assert client.coordinator.agent_ids() == []


def test_a_running_worker_takes_what_the_reference_queues_later(tmp_path: Path) -> None:
    import threading

    import dalfleet.fleet as fleet

    reference_project(tmp_path, run=False)
    stats: list[Any] = []
    worker = threading.Thread(
        target=lambda: stats.append(
            fleet.work("w", "dalfleet.handlers:echo", tmp_path, poll_interval=0.01, max_tasks=1)
        )
    )
    worker.start()
    # `dal agent task assign`: the reference rewrites the whole file from its memory
    # (to agent_runtime.json.tmp, renamed over the file), with a new task queued.
    snapshot = stored(tmp_path)
    snapshot["task_queue"].append(["agent_r1", queued("task_1764410400123")])
    temp = runtime_path(tmp_path).with_suffix(".json.tmp")
    temp.write_text(json.dumps(snapshot, indent=2), encoding="utf-8")
    os.replace(temp, runtime_path(tmp_path))
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert (stats[0].executed, stats[0].succeeded) == (1, 1)
    (task,) = stored(tmp_path)["agent_contexts"]["agent_r1"]["tasks"]
    assert (task["task_id"], task["status"]) == ("task_1764410400123", "completed")
