"""The reference runtime's agent file (.dal/agent_runtime.json), in its shape (SPEC §5, #13).

The files here are written by hand from the reference's structs
(``AgentRuntimeSnapshot``, ``AgentContextDto``, ``AgentTaskDto`` in
``src/stdlib/agent_persist.rs``), as ``dal agent fleet run`` leaves them.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from dalfleet.coordinator.reference import (
    MAX_QUEUE_LEN,
    ReferenceRuntime,
    from_value,
    runtime_path,
    to_value,
)
from dalfleet.errors import CoordinatorError, InvalidArgumentError
from dalfleet.models import AgentSpec


def reference_agent(agent_id: str, name: str) -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "config": {
            "name": name,
            "agent_type": "worker",
            "role": "Fleet worker",
            "capabilities": ["read"],
            "skills": ["development", "creative", "office", "home"],
            "trust_level": "sandboxed",
            "max_memory": 65536,
            "learning_enabled": False,
            "communication_enabled": True,
            "coordination_enabled": True,
            "metadata": {
                "mold_name": {"String": "fleet_mold"},
                "mold_version": {"String": "1.0"},
                "env": {"String": "prod"},
            },
            "lifecycle": None,
        },
        "status": "idle",
        "memory": {},
        "tasks": [],
        "message_queue": [],
        "created_at": "2026-11-29T10:00:00.000000+00:00",
        "last_active": "2026-11-29T10:00:00.000000+00:00",
        "performance_metrics": {
            "tasks_completed": 0,
            "tasks_failed": 0,
            "tasks_assigned": 0,
            "messages_sent": 0,
            "messages_received": 0,
            "coordination_events": 0,
            "learning_sessions": 0,
            "status_changes": 0,
            "average_response_time": 0.0,
            "uptime_percentage": 100.0,
        },
        "trust_score": 1.0,
    }


def reference_task(task_id: str, description: str) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "description": description,
        "priority": "medium",
        "status": "pending",
        "assigned_at": "2026-11-29T10:00:01.000000+00:00",
        "completed_at": None,
        "dependencies": [],
        "metadata": {},
    }


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A project after `dal agent fleet create w --from-mold … --count 2`, deploy, run."""
    snapshot = {
        "version": 1,
        "agent_contexts": {
            "agent_a": reference_agent("agent_a", "w_0"),
            "agent_b": reference_agent("agent_b", "w_1"),
        },
        "task_queue": [
            ["agent_a", reference_task("t1", "Process daily logs")],
            ["agent_b", reference_task("t2", "Process daily logs")],
            ["agent_x", reference_task("t3", "for an agent elsewhere")],
        ],
        "message_bus": [],
        "evolution_store": {},
        "serve_agent_id": None,
        "registered_skills": [],
        "a_key_of_a_newer_reference": {"kept": True},
    }
    (tmp_path / ".dal").mkdir()
    runtime_path(tmp_path).write_text(json.dumps(snapshot, indent=2), encoding="utf-8")
    return tmp_path


def test_reference_agents_are_read_as_specs(base: Path) -> None:
    agents = ReferenceRuntime(base).agents()
    assert set(agents) == {"agent_a", "agent_b"}
    spec = agents["agent_a"]
    assert (spec.name, spec.agent_type, spec.role) == ("w_0", "Worker", "Fleet worker")
    assert (spec.mold_name, spec.metadata["env"]) == ("fleet_mold", "prod")


def test_queued_tasks_are_listed_without_being_taken(base: Path) -> None:
    runtime = ReferenceRuntime(base)
    assert [t.task_id for t in runtime.pending("agent_a")] == ["t1"]
    assert [t.task_id for t in runtime.pending()] == ["t1", "t2", "t3"]


def test_a_worker_takes_the_tasks_queued_by_the_reference(base: Path) -> None:
    runtime = ReferenceRuntime(base)
    taken = runtime.take(["agent_a", "agent_b"], 10)
    assert [(t.agent_id, t.task_id, t.description) for t in taken] == [
        ("agent_a", "t1", "Process daily logs"),
        ("agent_b", "t2", "Process daily logs"),
    ]
    # What is left is what `dal agent task list agent_x` would still show.
    assert [t.task_id for t in runtime.pending()] == ["t3"]
    runtime.record(taken[0], ok=True, result={"lines": 3})
    runtime.record(taken[1], ok=False, error="boom")
    snapshot = json.loads(runtime_path(base).read_text(encoding="utf-8"))
    done = snapshot["agent_contexts"]["agent_a"]["tasks"][0]
    assert (done["task_id"], done["status"]) == ("t1", "completed")
    assert from_value(done["metadata"]["result"]) == {"lines": 3}
    assert snapshot["agent_contexts"]["agent_b"]["tasks"][0]["status"] == "failed"
    assert snapshot["agent_contexts"]["agent_b"]["performance_metrics"]["tasks_failed"] == 1
    assert snapshot["a_key_of_a_newer_reference"] == {"kept": True}


def test_take_respects_the_limit_and_the_order(base: Path) -> None:
    runtime = ReferenceRuntime(base)
    assert [t.task_id for t in runtime.take(["agent_b", "agent_a"], 1)] == ["t1"]
    assert runtime.take(["agent_a"], 0) == []


def test_tasks_queued_here_have_the_reference_shape(base: Path) -> None:
    runtime = ReferenceRuntime(base)
    created = runtime.enqueue(["agent_a"], "Rotate keys", "high")
    snapshot = json.loads(runtime_path(base).read_text(encoding="utf-8"))
    agent_id, task = snapshot["task_queue"][-1]
    assert agent_id == "agent_a"
    assert set(task) == {
        "task_id",
        "description",
        "priority",
        "status",
        "assigned_at",
        "completed_at",
        "dependencies",
        "metadata",
    }
    assert (task["task_id"], task["description"], task["priority"], task["status"]) == (
        created["agent_a"],
        "Rotate keys",
        "high",
        "pending",
    )


def test_spawned_agents_have_the_reference_shape(tmp_path: Path) -> None:
    runtime = ReferenceRuntime(tmp_path)
    spec = AgentSpec(
        name="w_0",
        agent_type="custom:MyBot",
        memory_limit="256MB",
        metadata={"mold_name": "m", "n": "1"},
        lifecycle={"on_create": "x"},
    )
    (agent_id,) = runtime.spawn([spec])
    snapshot = json.loads(runtime_path(tmp_path).read_text(encoding="utf-8"))
    assert set(snapshot) >= {"version", "agent_contexts", "task_queue", "message_bus"}
    context = snapshot["agent_contexts"][agent_id]
    assert context["config"]["metadata"]["n"] == {"String": "1"}
    assert context["config"]["max_memory"] == 256 * 1024 * 1024 // 4096
    assert context["config"]["lifecycle"]["on_create"] == "x"
    assert context["status"] == "idle"
    assert runtime.agents()[agent_id].agent_type == "custom:MyBot"
    runtime.terminate([agent_id, "unknown"])
    assert runtime.status(agent_id) == "terminated"


def test_the_queue_keeps_the_newest_entries(tmp_path: Path) -> None:
    runtime = ReferenceRuntime(tmp_path)
    runtime.enqueue([f"a{i}" for i in range(MAX_QUEUE_LEN + 5)], "t")
    pending = runtime.pending()
    assert len(pending) == MAX_QUEUE_LEN and pending[0].agent_id == "a5"


def test_concurrent_writers_lose_no_task(tmp_path: Path) -> None:
    runtime = ReferenceRuntime(tmp_path)

    def queue(i: int) -> None:
        for j in range(10):
            ReferenceRuntime(tmp_path).enqueue([f"agent_{i}"], f"task {j}")

    threads = [threading.Thread(target=queue, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(runtime.pending()) == 40


@pytest.mark.parametrize(
    "content",
    ["{not json", "[]", '{"task_queue": {}}', '{"task_queue": [["a"]]}', '{"version": 9}'],
)
def test_a_file_the_reference_could_not_read_is_refused_and_kept(
    tmp_path: Path, content: str
) -> None:
    path = runtime_path(tmp_path)
    path.parent.mkdir()
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CoordinatorError):
        ReferenceRuntime(tmp_path).enqueue(["a"], "t")
    assert path.read_text(encoding="utf-8") == content


def test_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    path = runtime_path(tmp_path)
    path.parent.mkdir()
    os.mkfifo(path)
    with pytest.raises(CoordinatorError, match="FIFO"):
        ReferenceRuntime(tmp_path).load()


def test_a_missing_file_is_an_empty_runtime(tmp_path: Path) -> None:
    runtime = ReferenceRuntime(tmp_path)
    assert not runtime.exists()
    assert runtime.pending() == [] and runtime.agents() == {}


def test_id_lists_refuse_a_string(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        ReferenceRuntime(tmp_path).take("agent_a", 1)
    with pytest.raises(InvalidArgumentError, match="priority"):
        ReferenceRuntime(tmp_path).enqueue(["a"], "t", "urgent")


def test_runtime_path_follows_the_environment(tmp_path: Path) -> None:
    assert runtime_path(tmp_path, {}) == tmp_path / ".dal" / "agent_runtime.json"
    assert runtime_path(tmp_path, {"DAL_AGENT_RUNTIME_PATH": "x.json"}) == tmp_path / "x.json"


@pytest.mark.parametrize("value", [None, True, 3, 2.5, "s", [1, "a"], {"k": [None, {"j": False}]}])
def test_runtime_values_round_trip(value: object) -> None:
    assert from_value(to_value(value)) == value


def test_runtime_values_have_the_reference_tags() -> None:
    assert to_value({"a": [1, None]}) == {"Map": {"a": {"List": [{"Int": 1}, "Null"]}}}


def test_taking_keeps_the_tasks_when_the_block_fails(base: Path) -> None:
    runtime = ReferenceRuntime(base)
    with pytest.raises(RuntimeError), runtime.taking(["agent_a"], 5) as taken:
        assert [t.task_id for t in taken] == ["t1"]
        raise RuntimeError("storing them elsewhere failed")
    assert [t.task_id for t in runtime.pending("agent_a")] == ["t1"]
    with runtime.taking(["agent_a", "agent_b"], 5, where=lambda t: t.task_id != "t1") as taken:
        assert [t.task_id for t in taken] == ["t2"]
    assert [t.task_id for t in runtime.pending()] == ["t1", "t3"]


def test_tasks_with_their_own_ids_are_queued_and_removed(base: Path) -> None:
    from dalfleet.coordinator.reference import QueuedTask

    runtime = ReferenceRuntime(base)
    runtime.enqueue_tasks([QueuedTask("agent_a", "mine", "d", "low")])
    assert runtime.pending("agent_a")[-1].task_id == "mine"
    runtime.remove(["mine", "t2", "nothing"])
    assert [t.task_id for t in runtime.pending()] == ["t1", "t3"]
