"""Conformance suite: every coordinator behaves the same (SPEC §5).

Each test runs against the in-memory coordinator and the SQLite one; a stateful
test at the end drives both with the same random operations and compares them.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dalfleet.coordinator import (
    AgentStatus,
    Coordinator,
    LocalCoordinator,
    MemoryCoordinator,
    worker_identity,
)
from dalfleet.errors import CoordinatorError, InvalidArgumentError
from dalfleet.models import AgentSpec, AgentState, Task

Factory = Callable[..., Any]  # (trust_level=...) -> MemoryCoordinator | LocalCoordinator


@pytest.fixture(params=["memory", "local"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(kind: str, tmp_path: Path) -> Iterator[Factory]:
    made: list[Any] = []

    def factory(trust_level: str = "sandboxed") -> Any:
        coord: Any = (
            MemoryCoordinator(trust_level)
            if kind == "memory"
            else LocalCoordinator(tmp_path, trust_level)
        )
        made.append(coord)
        return coord

    yield factory
    for coord in made:
        coord.close()


@pytest.fixture
def coord(make: Factory) -> Any:
    return make()


def specs(n: int, **kw: Any) -> list[AgentSpec]:
    return [AgentSpec(f"w_{i}", mold_name="worker", **kw) for i in range(n)]


TASK = Task("template", "Process daily logs", fleet="workers")


def state_of(coord: Any, task_id: str) -> str:
    record = coord.task_record(task_id)
    assert record is not None
    return str(record["state"])


def queue(coord: Any, agent_ids: list[str]) -> list[str]:
    """Dispatch TASK to ``agent_ids`` and return the task IDs in agent order."""
    out = coord.dispatch(agent_ids, TASK)
    return [out[a].task_id for a in agent_ids]


# -- protocol -------------------------------------------------------------------


def test_satisfies_the_coordinator_protocol(coord: Any) -> None:
    assert isinstance(coord, Coordinator)


# -- spawn ----------------------------------------------------------------------


def test_spawn_returns_distinct_ids_in_order(coord: Any) -> None:
    ids = coord.spawn(specs(5))
    assert len(ids) == len(set(ids)) == 5
    assert all(i.startswith("agent_") for i in ids)
    agents = coord.agents(ids)
    assert [agents[i].name for i in ids] == [f"w_{i}" for i in range(5)]
    assert all(a.state is AgentState.ALIVE for a in agents.values())


def test_spawn_of_nothing_returns_empty_list(coord: Any) -> None:
    assert coord.spawn([]) == []


def test_spawn_stores_the_spec(coord: Any) -> None:
    spec = AgentSpec(
        "w_0",
        mold_name="worker",
        mold_version="2.1",
        agent_type="Worker",
        role="Work on prod",
        capabilities=["read", "write"],
        skills=["office"],
        memory_limit="256MB",
        learning=True,
        metadata={"mold_name": "worker", "env": "prod"},
        lifecycle={"on_create": "say hi"},
    )
    (agent_id,) = coord.spawn([spec])
    assert coord.agents([agent_id])[agent_id].spec == spec


def test_spawn_forces_the_coordinators_trust_level(make: Factory) -> None:
    coord = make(trust_level="standard")
    ids = coord.spawn([AgentSpec("a", trust_level="root"), AgentSpec("b")])
    assert {a.spec.trust_level for a in coord.agents(ids).values()} == {"standard"}


def test_spawn_default_trust_level_is_sandboxed(coord: Any) -> None:
    (agent_id,) = coord.spawn([AgentSpec("a", trust_level="full")])
    assert coord.agents([agent_id])[agent_id].spec.trust_level == "sandboxed"


def test_spawn_records_on_create_hook_without_running_it(coord: Any, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hook = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    with_hook, without = coord.spawn(
        [AgentSpec("a", lifecycle={"on_create": hook}), AgentSpec("b")]
    )
    assert coord.events(with_hook) == [("on_create", hook)]
    assert coord.events(without) == []
    assert not marker.exists()


def test_spawn_is_all_or_nothing_when_a_spec_cannot_be_stored(coord: Any) -> None:
    before = coord.spawn(specs(1))
    bad = AgentSpec("bad", metadata={"env": object()})  # type: ignore[dict-item]
    with pytest.raises(CoordinatorError, match="'bad' cannot be stored"):
        coord.spawn([*specs(3), bad, *specs(2)])
    assert coord.agent_ids() == before


def test_spawn_1000_agents(coord: Any) -> None:
    ids = coord.spawn(specs(1000))
    assert len(set(ids)) == 1000
    assert coord.agent_ids() == ids


# -- terminate ------------------------------------------------------------------


def test_terminate_marks_agents_terminated(coord: Any) -> None:
    a, b = coord.spawn(specs(2))
    coord.terminate([a])
    status = coord.status([a, b])
    assert status[a].state is AgentState.TERMINATED
    assert status[b].state is AgentState.ALIVE
    assert coord.agents([a])[a].state is AgentState.TERMINATED
    assert coord.agent_ids(AgentState.ALIVE) == [b]


def test_terminate_is_idempotent_and_ignores_unknown_ids(coord: Any) -> None:
    (a,) = coord.spawn([AgentSpec("a", lifecycle={"on_destroy": "bye"})])
    coord.terminate([a, "agent_nope"])
    coord.terminate([a])
    coord.terminate([])
    assert coord.status([a])[a].state is AgentState.TERMINATED
    assert coord.events(a) == [("on_destroy", "bye")]  # handed over once


def test_terminate_records_on_destroy_hook(coord: Any) -> None:
    (a,) = coord.spawn([AgentSpec("a", lifecycle={"on_create": "hi", "on_destroy": "bye"})])
    coord.terminate([a])
    assert coord.events(a) == [("on_create", "hi"), ("on_destroy", "bye")]


def test_terminate_cancels_queued_tasks_but_not_running_ones(coord: Any) -> None:
    a, b = coord.spawn(specs(2))
    queued = queue(coord, [a, a, b])  # duplicates are dispatched once
    running = coord.dispatch([a], TASK, claimed_by="w")[a].task_id
    coord.terminate([a])
    assert len(queued) == 3 and queued[0] == queued[1]
    assert state_of(coord, queued[0]) == "cancelled"
    assert state_of(coord, running) == "running"
    assert state_of(coord, queued[2]) == "queued"
    status = coord.status([a])[a]
    assert (status.pending_tasks, status.running_tasks) == (0, 1)


def test_terminate_rejects_a_single_string(coord: Any) -> None:
    (a,) = coord.spawn(specs(1))
    with pytest.raises(InvalidArgumentError, match="sequence of IDs"):
        coord.terminate(a)
    assert coord.status([a])[a].state is AgentState.ALIVE


# -- dispatch -------------------------------------------------------------------


def test_dispatch_creates_one_task_record_per_agent(coord: Any) -> None:
    ids = coord.spawn(specs(3))
    out = coord.dispatch(ids, TASK)
    assert list(out) == ids
    task_ids = {t.task_id for t in out.values()}
    assert len(task_ids) == 3 and TASK.task_id not in task_ids
    for agent_id, task in out.items():
        assert (task.description, task.priority, task.coordination_type, task.fleet) == (
            "Process daily logs",
            "medium",
            "task_distribution",
            "workers",
        )
        record = coord.task_record(task.task_id)
        assert record["agent_id"] == agent_id
        assert record["state"] == "queued"
        assert record["claimed_by"] is None
        assert record["description"] == "Process daily logs"


def test_dispatch_reports_terminated_agents(coord: Any) -> None:
    a, b = coord.spawn(specs(2))
    coord.terminate([b])
    out = coord.dispatch([a, b], TASK)
    assert list(out) == [a, b]
    assert out[b] == f"agent '{b}' is terminated"
    assert isinstance(out[a], Task)
    assert coord.status([b])[b].pending_tasks == 0


def test_dispatch_gives_an_agent_from_elsewhere_an_inbox(coord: Any) -> None:
    # Members registered with add_member were not spawned here: the reference still
    # queues their task; they stay "unknown" but a worker can serve the inbox.
    (a,) = coord.spawn(specs(1))
    out = coord.dispatch(["agent_ext", a], TASK)
    assert list(out) == ["agent_ext", a]
    assert isinstance(out["agent_ext"], Task)
    status = coord.status(["agent_ext"])["agent_ext"]
    assert (status.state, status.pending_tasks) == (AgentState.UNKNOWN, 1)
    agent = coord.agents(["agent_ext"])["agent_ext"]
    assert (agent.name, agent.state, agent.metadata) == (
        "agent_ext",
        AgentState.UNKNOWN,
        {"external": "true"},
    )
    claimed = coord.claim(["agent_ext"], "w", 5)
    assert [c.task.task_id for c in claimed] == [out["agent_ext"].task_id]
    coord.terminate(["agent_ext"])
    assert coord.dispatch(["agent_ext"], TASK) == {"agent_ext": "agent 'agent_ext' is terminated"}


def test_dispatch_to_no_agents_returns_empty(coord: Any) -> None:
    assert dict(coord.dispatch([], TASK)) == {}


def test_dispatch_with_claimed_by_creates_running_tasks(coord: Any) -> None:
    ids = coord.spawn(specs(2))
    out = coord.dispatch(ids, TASK, claimed_by="worker-1")
    for task in out.values():
        record = coord.task_record(task.task_id)
        assert (record["state"], record["claimed_by"]) == ("running", "worker-1")
        assert record["started_at"] is not None
    assert coord.claim(ids, "worker-2", 10) == []


# -- status and agents ----------------------------------------------------------


def test_status_of_unknown_ids(coord: Any) -> None:
    assert coord.status(["agent_nope"]) == {
        "agent_nope": AgentStatus("agent_nope", AgentState.UNKNOWN)
    }
    assert coord.status([]) == {}


def test_status_counts_follow_the_task_lifecycle(coord: Any) -> None:
    (a,) = coord.spawn(specs(1))

    def counts() -> tuple[int, int, int, int]:
        s = coord.status([a])[a]
        return (s.pending_tasks, s.running_tasks, s.failed_tasks, s.completed_tasks)

    assert counts() == (0, 0, 0, 0)
    first, second, third = (queue(coord, [a])[0] for _ in range(3))
    assert counts() == (3, 0, 0, 0)
    assert [c.task.task_id for c in coord.claim([a], "w", 2)] == [first, second]
    assert counts() == (1, 2, 0, 0)
    assert coord.status([a])[a].last_result_at is None
    coord.finish(first, ok=True, result={"rows": 3})
    assert counts() == (1, 1, 0, 1)
    coord.finish(second, ok=False, error="boom")
    assert counts() == (1, 0, 1, 1)
    last = coord.status([a])[a].last_result_at
    assert last == coord.task_record(second)["finished_at"]
    assert third  # still queued
    assert state_of(coord, third) == "queued"


def test_agents_leaves_out_unknown_ids(coord: Any) -> None:
    a, b = coord.spawn(specs(2))
    agents = coord.agents([b, "agent_nope", a])
    assert list(agents) == [b, a]
    assert agents[a].agent_id == a
    assert coord.agents([]) == {}


# -- claim, finish, release -----------------------------------------------------


def test_claim_takes_oldest_first_up_to_limit(coord: Any) -> None:
    a, b = coord.spawn(specs(2))
    order = [queue(coord, [x])[0] for x in (b, a, b, a)]
    first = coord.claim([a, b], "w", 3)
    assert [c.task.task_id for c in first] == order[:3]
    assert [c.agent.agent_id for c in first] == [b, a, b]
    assert all(state_of(coord, t) == "running" for t in order[:3])
    assert coord.task_record(order[0])["claimed_by"] == "w"
    assert [c.task.task_id for c in coord.claim([a, b], "w", 3)] == order[3:]
    assert coord.claim([a, b], "w", 3) == []


def test_claim_returns_the_agent_with_its_spec(coord: Any) -> None:
    (a,) = coord.spawn([AgentSpec("a", role="Work", metadata={"env": "prod"})])
    queue(coord, [a])
    (claimed,) = coord.claim([a], worker_identity(), 1)
    assert claimed.agent == coord.agents([a])[a]
    assert claimed.task.description == TASK.description


def test_claim_only_takes_tasks_of_the_given_alive_agents(coord: Any) -> None:
    a, b, c = coord.spawn(specs(3))
    queue(coord, [a, b, c])
    running = coord.dispatch([c], TASK, claimed_by="other")[c].task_id
    coord.terminate([c])
    claimed = coord.claim([a, c, "agent_nope"], "w", 10)
    assert [x.agent.agent_id for x in claimed] == [a]
    assert state_of(coord, running) == "running"


def test_claim_with_limit_below_one_takes_nothing(coord: Any) -> None:
    (a,) = coord.spawn(specs(1))
    queue(coord, [a])
    assert coord.claim([a], "w", 0) == []
    assert coord.claim([a], "w", -1) == []
    assert coord.status([a])[a].pending_tasks == 1


def test_concurrent_claims_take_each_task_once(coord: Any) -> None:
    ids = coord.spawn(specs(30))
    tasks = [t for _ in range(10) for t in queue(coord, ids)]
    taken: list[list[str]] = [[] for _ in range(8)]

    def work(slot: int) -> None:
        while claimed := coord.claim(ids, f"w{slot}", 3):
            for c in claimed:
                taken[slot].append(c.task.task_id)
                coord.finish(c.task.task_id, ok=True, result=slot)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [t for slot in taken for t in slot]
    assert sorted(everything) == sorted(tasks)
    assert sum(s.completed_tasks for s in coord.status(ids).values()) == 300


def test_finish_stores_result_as_json(coord: Any) -> None:
    (a,) = coord.spawn(specs(1))
    done, failed, odd = queue(coord, [a]), queue(coord, [a]), queue(coord, [a])
    coord.finish(done[0], ok=True, result={"rows": (1, 2), "ok": True})
    coord.finish(failed[0], ok=False, error="Traceback: boom")
    marker = object()
    coord.finish(odd[0], ok=True, result=marker)
    assert coord.task_record(done[0])["result"] == {"rows": [1, 2], "ok": True}
    assert coord.task_record(done[0])["state"] == "done"
    assert coord.task_record(failed[0])["state"] == "failed"
    assert coord.task_record(failed[0])["error"] == "Traceback: boom"
    assert coord.task_record(failed[0])["result"] is None
    assert coord.task_record(odd[0])["result"] == repr(marker)
    assert coord.task_record(odd[0])["finished_at"] is not None


def test_finish_of_unknown_task_raises(coord: Any) -> None:
    with pytest.raises(CoordinatorError, match="task 'task_nope' not found"):
        coord.finish("task_nope", ok=True)


def test_release_puts_tasks_back_at_their_place(coord: Any) -> None:
    (a,) = coord.spawn(specs(1))
    first, second = queue(coord, [a]), queue(coord, [a])
    (claimed,) = coord.claim([a], "w", 1)
    assert claimed.task.task_id == first[0]
    coord.release([first[0]])
    record = coord.task_record(first[0])
    assert (record["state"], record["claimed_by"], record["started_at"]) == ("queued", None, None)
    assert [c.task.task_id for c in coord.claim([a], "w2", 2)] == [first[0], second[0]]


def test_release_ignores_unknown_and_finished_tasks(coord: Any) -> None:
    (a,) = coord.spawn(specs(1))
    (task_id,) = queue(coord, [a])
    coord.claim([a], "w", 1)
    coord.finish(task_id, ok=True, result=1)
    coord.release([task_id, "task_nope"])
    coord.release([])
    assert state_of(coord, task_id) == "done"


def test_task_record_and_events_of_unknown_ids(coord: Any) -> None:
    assert coord.task_record("task_nope") is None
    assert coord.events("agent_nope") == []


def test_close_then_calls_reopen(coord: Any) -> None:
    (a,) = coord.spawn(specs(1))
    coord.close()
    coord.close()
    assert coord.status([a])[a].state is AgentState.ALIVE
    queue(coord, [a])
    assert coord.status([a])[a].pending_tasks == 1


# -- parity: the same random operations give the same observations ----------------


class SameBehaviour(RuleBasedStateMachine):
    """Drives a MemoryCoordinator and a LocalCoordinator in lockstep."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="dalfleet-parity-")
        self.mem = MemoryCoordinator()
        self.loc = LocalCoordinator(self.tmp)
        self.agents: list[tuple[str, str]] = []  # (memory ID, local ID)
        self.tasks: dict[str, str] = {}  # memory task ID -> local task ID
        self.running: list[str] = []  # memory task IDs

    def teardown(self) -> None:
        self.loc.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _some_agents(self, data: st.DataObject) -> list[tuple[str, str]]:
        if not self.agents:
            return [("agent_nope", "agent_nope")]
        picks = data.draw(st.lists(st.integers(0, len(self.agents) - 1), max_size=4))
        chosen = [self.agents[i] for i in picks]
        if data.draw(st.booleans()):
            chosen.append(("agent_nope", "agent_nope"))
        return chosen

    @rule(n=st.integers(0, 3), hooks=st.booleans())
    def spawn(self, n: int, hooks: bool) -> None:
        lifecycle = {"on_create": "hi", "on_destroy": "bye"} if hooks else {}
        batch = [AgentSpec(f"a{len(self.agents) + i}", lifecycle=lifecycle) for i in range(n)]
        self.agents += zip(self.mem.spawn(batch), self.loc.spawn(batch), strict=True)

    @rule(data=st.data())
    def terminate(self, data: st.DataObject) -> None:
        chosen = self._some_agents(data)
        self.mem.terminate([m for m, _ in chosen])
        self.loc.terminate([loc for _, loc in chosen])

    @rule(data=st.data(), claimed=st.booleans())
    def dispatch(self, data: st.DataObject, claimed: bool) -> None:
        chosen = self._some_agents(data)
        owner = "now" if claimed else None
        mem = self.mem.dispatch([m for m, _ in chosen], TASK, claimed_by=owner)
        loc = self.loc.dispatch([x for _, x in chosen], TASK, claimed_by=owner)
        pairs = list(dict.fromkeys(chosen))  # duplicates are dispatched once
        assert list(mem) == [m for m, _ in pairs] and list(loc) == [x for _, x in pairs]
        for m, x in pairs:
            mem_out, loc_out = mem[m], loc[x]
            if isinstance(mem_out, Task):
                assert isinstance(loc_out, Task)
                self.tasks[mem_out.task_id] = loc_out.task_id
                if claimed:
                    self.running.append(mem_out.task_id)
            else:
                assert isinstance(loc_out, str)
                assert mem_out.replace(m, "ID").replace("in-memory coordinator", "X") == (
                    loc_out.replace(x, "ID").replace("local runtime", "X")
                )

    @rule(data=st.data(), limit=st.integers(0, 4))
    def claim(self, data: st.DataObject, limit: int) -> None:
        chosen = self._some_agents(data)
        mem = self.mem.claim([m for m, _ in chosen], "w", limit)
        loc = self.loc.claim([x for _, x in chosen], "w", limit)
        assert [self.tasks[c.task.task_id] for c in mem] == [c.task.task_id for c in loc]
        self.running += [c.task.task_id for c in mem]

    @rule(data=st.data(), ok=st.booleans())
    def finish(self, data: st.DataObject, ok: bool) -> None:
        if not self.running:
            return
        task_id = self.running.pop(data.draw(st.integers(0, len(self.running) - 1)))
        self.mem.finish(task_id, ok=ok, result=[task_id], error=None if ok else "x")
        self.loc.finish(self.tasks[task_id], ok=ok, result=[task_id], error=None if ok else "x")

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        if not self.running:
            return
        task_id = self.running.pop(data.draw(st.integers(0, len(self.running) - 1)))
        self.mem.release([task_id])
        self.loc.release([self.tasks[task_id]])

    @invariant()
    def same_status(self) -> None:
        mem = self.mem.status([m for m, _ in self.agents])
        loc = self.loc.status([x for _, x in self.agents])
        for m, x in self.agents:
            a, b = mem[m], loc[x]
            assert (a.state, a.pending_tasks, a.running_tasks, a.failed_tasks) == (
                b.state,
                b.pending_tasks,
                b.running_tasks,
                b.failed_tasks,
            )
            assert a.completed_tasks == b.completed_tasks
            assert self.mem.events(m) == self.loc.events(x)

    @invariant()
    def same_task_states(self) -> None:
        for m, x in self.tasks.items():
            a, b = self.mem.task_record(m), self.loc.task_record(x)
            assert a is not None and b is not None
            assert (a["state"], a["claimed_by"], a["error"]) == (
                b["state"],
                b["claimed_by"],
                b["error"],
            )
            assert a["result"] == b["result"]


SameBehaviour.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_memory_and_local_behave_the_same = SameBehaviour.TestCase
