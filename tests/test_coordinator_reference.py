"""The reference-runtime coordinator: the conformance kit, and both tools on one directory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dalfleet.coordinator.base import Coordinator, TaskOutcome, TaskState
from dalfleet.coordinator.reference import ReferenceCoordinator, ReferenceRuntime, runtime_path
from dalfleet.models import AgentSpec, AgentState, Task
from dalfleet.testing import CoordinatorContract


class TestReferenceCoordinatorContract(CoordinatorContract):
    @pytest.fixture
    def coordinator(self, tmp_path: Path) -> Iterator[Coordinator]:
        coordinator = ReferenceCoordinator(tmp_path)
        yield coordinator
        coordinator.close()


def reference_file(base: Path) -> dict[str, object]:
    """A project after `dal agent fleet create w … --count 1`, `deploy`, `run`."""
    snapshot = {
        "version": 1,
        "agent_contexts": {
            "agent_ref": {
                "agent_id": "agent_ref",
                "config": {
                    "name": "w_0",
                    "agent_type": "worker",
                    "role": "r",
                    "capabilities": [],
                    "skills": [],
                    "trust_level": "sandboxed",
                    "max_memory": 1000,
                    "learning_enabled": False,
                    "communication_enabled": True,
                    "coordination_enabled": True,
                    "metadata": {"mold_name": {"String": "m"}},
                    "lifecycle": None,
                },
                "status": "idle",
                "memory": {},
                "tasks": [],
                "message_queue": [],
                "created_at": "2026-11-29T10:00:00+00:00",
                "last_active": "2026-11-29T10:00:00+00:00",
                "performance_metrics": {"tasks_completed": 0, "tasks_failed": 0},
                "trust_score": 1.0,
            }
        },
        "task_queue": [
            [
                "agent_ref",
                {
                    "task_id": "ref-task-1",
                    "description": "Process daily logs",
                    "priority": "medium",
                    "status": "pending",
                    "assigned_at": "2026-11-29T10:00:01+00:00",
                    "completed_at": None,
                    "dependencies": [],
                    "metadata": {},
                },
            ]
        ],
        "message_bus": [],
        "evolution_store": {},
        "serve_agent_id": None,
        "registered_skills": [],
    }
    (base / ".dal").mkdir(exist_ok=True)
    runtime_path(base).write_text(json.dumps(snapshot), encoding="utf-8")
    return snapshot


def test_a_task_the_reference_queued_is_claimed_and_recorded_there(tmp_path: Path) -> None:
    reference_file(tmp_path)
    coordinator = ReferenceCoordinator(tmp_path)
    assert coordinator.agents(["agent_ref"])["agent_ref"].spec.name == "w_0"
    assert coordinator.status(["agent_ref"])["agent_ref"].state == AgentState.ALIVE
    (claimed,) = coordinator.claim(["agent_ref"], "w1", 5)
    assert claimed.task.description == "Process daily logs"
    assert ReferenceRuntime(tmp_path).pending() == []
    coordinator.finish(TaskOutcome(claimed.task.task_id, ok=True, result="done"), "w1")
    coordinator.close()
    stored = json.loads(runtime_path(tmp_path).read_text(encoding="utf-8"))
    (task,) = stored["agent_contexts"]["agent_ref"]["tasks"]
    assert (task["status"], task["metadata"]["result"]) == ("completed", {"String": "done"})


def test_a_task_dispatched_here_is_listed_by_the_reference(tmp_path: Path) -> None:
    coordinator = ReferenceCoordinator(tmp_path)
    (agent_id,) = coordinator.spawn([AgentSpec(name="w_0", agent_type="Worker")])
    result = coordinator.dispatch([agent_id], Task(task_id="", description="Rotate keys"))
    task = result[agent_id].task
    assert task is not None
    stored = json.loads(runtime_path(tmp_path).read_text(encoding="utf-8"))
    assert stored["agent_contexts"][agent_id]["config"]["agent_type"] == "worker"
    assert stored["task_queue"] == [
        [agent_id, {**stored["task_queue"][0][1], "task_id": task.task_id}]
    ]
    assert stored["task_queue"][0][1]["description"] == "Rotate keys"
    # Claimed here: it leaves the reference's queue, and is not imported twice.
    (claimed,) = coordinator.claim([agent_id], "w1", 5)
    assert claimed.task.task_id == task.task_id
    assert ReferenceRuntime(tmp_path).pending() == []
    assert coordinator.task_counts([agent_id]).total == 1
    coordinator.close()


def test_terminated_by_the_reference_refuses_tasks(tmp_path: Path) -> None:
    snapshot = reference_file(tmp_path)
    contexts = snapshot["agent_contexts"]
    assert isinstance(contexts, dict)
    contexts["agent_ref"]["status"] = "terminated"
    runtime_path(tmp_path).write_text(json.dumps(snapshot), encoding="utf-8")
    coordinator = ReferenceCoordinator(tmp_path)
    assert coordinator.status(["agent_ref"])["agent_ref"].state == AgentState.TERMINATED
    assert not coordinator.dispatch(["agent_ref"], Task(task_id="", description="x"))[
        "agent_ref"
    ].ok
    coordinator.close()


def test_a_failed_task_is_failed_in_the_reference_file(tmp_path: Path) -> None:
    reference_file(tmp_path)
    coordinator = ReferenceCoordinator(tmp_path)
    (claimed,) = coordinator.claim(["agent_ref"], "w1", 5)
    coordinator.finish(TaskOutcome(claimed.task.task_id, ok=False, error="boom"), "w1")
    assert coordinator.task(claimed.task.task_id).state == TaskState.FAILED  # type: ignore[union-attr]
    coordinator.close()
    stored = json.loads(runtime_path(tmp_path).read_text(encoding="utf-8"))
    (task,) = stored["agent_contexts"]["agent_ref"]["tasks"]
    assert (task["status"], task["metadata"]["error"]) == ("failed", {"String": "boom"})


def reference_fleet(base: Path) -> None:
    """The fleet file `dal agent fleet create w --from-mold m --count 1` + deploy leaves."""
    fleets = {
        "w": {
            "name": "w",
            "mold_source": "m",
            "member_ids": ["agent_ref"],
            "last_deployed_task": "Process daily logs",
            "last_deployed_at": "1764313200",
        }
    }
    (base / ".dal" / "fleets.json").write_text(json.dumps(fleets), encoding="utf-8")


def test_dal_fleet_run_then_dalfleet_worker(tmp_path: Path) -> None:
    import dalfleet.fleet as fleet

    reference_file(tmp_path)
    reference_fleet(tmp_path)
    stats = fleet.work("w", "dalfleet.handlers:echo", tmp_path, once=True)
    assert (stats.executed, stats.succeeded) == (1, 1)
    stored = json.loads(runtime_path(tmp_path).read_text(encoding="utf-8"))
    assert stored["task_queue"] == []
    assert [t["status"] for t in stored["agent_contexts"]["agent_ref"]["tasks"]] == ["completed"]


def test_dalfleet_run_then_dal_agent_task_list(tmp_path: Path) -> None:
    import dalfleet.fleet as fleet

    reference_file(tmp_path)
    reference_fleet(tmp_path)
    ReferenceRuntime(tmp_path).remove(["ref-task-1"])
    fleet.run("w", tmp_path)
    # `dal agent task list agent_ref` reads exactly this queue.
    (task,) = ReferenceRuntime(tmp_path).pending("agent_ref")
    assert task.description == "Process daily logs"
