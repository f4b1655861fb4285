"""The project's coordinators: the conformance kit, plus what only they promise.

``MemoryCoordinator`` and ``LocalCoordinator`` each pass
:class:`dalfleet.testing.CoordinatorContract`; a stateful test drives both with
the same random operations and compares what they report (SPEC §5).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dalfleet.coordinator import LocalCoordinator, MemoryCoordinator, TaskOutcome
from dalfleet.errors import CoordinatorError, InvalidArgumentError
from dalfleet.models import AgentSpec, Task
from dalfleet.testing import CoordinatorContract

Factory = Callable[..., Any]  # (trust_level=...) -> MemoryCoordinator | LocalCoordinator

TASK = Task("template", "Process daily logs", fleet="workers")


class TestMemoryCoordinator(CoordinatorContract):
    @pytest.fixture
    def coordinator(self) -> MemoryCoordinator:
        return MemoryCoordinator()


class TestLocalCoordinator(CoordinatorContract):
    @pytest.fixture
    def coordinator(self, tmp_path: Path) -> Iterator[LocalCoordinator]:
        coord = LocalCoordinator(tmp_path)
        yield coord
        coord.close()


# -- what the project's coordinators add: hooks, trust, their own extras ----------


@pytest.fixture(params=["memory", "local"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    made: list[Any] = []

    def factory(trust_level: str = "sandboxed", **kw: Any) -> Any:
        coord: Any = (
            MemoryCoordinator(trust_level, **kw)
            if request.param == "memory"
            else LocalCoordinator(tmp_path, trust_level, **kw)
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


def test_terminate_records_on_destroy_hook(coord: Any) -> None:
    (a,) = coord.spawn([AgentSpec("a", lifecycle={"on_destroy": "bye"})])
    coord.terminate([a])
    coord.terminate([a])
    assert coord.events(a) == [("on_destroy", "bye")]


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


def test_max_attempts_must_be_at_least_one(make: Factory) -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(InvalidArgumentError, match="max_attempts"):
            make(max_attempts=bad)


def test_one_attempt_fails_a_task_at_its_first_expired_lease(make: Factory) -> None:
    coord = make(max_attempts=1)
    (a,) = coord.spawn(specs(1))
    coord.dispatch([a], TASK, worker="w", lease=0.05)
    import time

    time.sleep(0.1)  # let the lease run out (wall clock, as leases are)
    assert coord.claim([a], "w2", 1) == []
    (record,) = coord.tasks(a)
    assert record.state == "failed"
    assert "lease expired" in (record.error or "")
    assert "'w'" in (record.error or "")


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
        owner = "w" if claimed else None
        mem = self.mem.dispatch([m for m, _ in chosen], TASK, worker=owner)
        loc = self.loc.dispatch([x for _, x in chosen], TASK, worker=owner)
        pairs = list(dict.fromkeys(chosen))  # duplicates are dispatched once
        assert list(mem) == [m for m, _ in pairs] and list(loc) == [x for _, x in pairs]
        for m, x in pairs:
            mem_out, loc_out = mem[m], loc[x]
            assert mem_out.ok == loc_out.ok
            if mem_out.task is not None and loc_out.task is not None:
                self.tasks[mem_out.task.task_id] = loc_out.task.task_id
                if claimed:
                    self.running.append(mem_out.task.task_id)
            else:
                assert mem_out.error is not None and loc_out.error is not None
                assert mem_out.error.replace(m, "ID") == loc_out.error.replace(x, "ID")

    @rule(data=st.data(), limit=st.integers(0, 4))
    def claim(self, data: st.DataObject, limit: int) -> None:
        chosen = self._some_agents(data)
        mem = self.mem.claim([m for m, _ in chosen], "w", limit)
        loc = self.loc.claim([x for _, x in chosen], "w", limit)
        assert [c.attempt for c in mem] == [c.attempt for c in loc]
        assert [self.tasks[c.task.task_id] for c in mem] == [c.task.task_id for c in loc]
        self.running += [c.task.task_id for c in mem]

    @rule(data=st.data(), ok=st.booleans())
    def finish(self, data: st.DataObject, ok: bool) -> None:
        if not self.running:
            return
        task_id = self.running.pop(data.draw(st.integers(0, len(self.running) - 1)))
        error = None if ok else "x"
        a = self.mem.finish(TaskOutcome(task_id, ok, [task_id], error), "w")
        b = self.loc.finish(TaskOutcome(self.tasks[task_id], ok, [task_id], error), "w")
        assert a is b

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        if not self.running:
            return
        task_id = self.running.pop(data.draw(st.integers(0, len(self.running) - 1)))
        self.mem.release([task_id], "w")
        self.loc.release([self.tasks[task_id]], "w")

    @invariant()
    def same_status(self) -> None:
        mem = self.mem.status([m for m, _ in self.agents])
        loc = self.loc.status([x for _, x in self.agents])
        assert self.mem.task_counts([m for m, _ in self.agents]) == self.loc.task_counts(
            [x for _, x in self.agents]
        )
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
            a, b = self.mem.task(m), self.loc.task(x)
            assert a is not None and b is not None
            assert (a.state, a.worker, a.attempts) == (b.state, b.worker, b.attempts)
            assert re.sub("agent_[0-9a-f]+", "ID", a.error or "") == re.sub(
                "agent_[0-9a-f]+", "ID", b.error or ""
            )
            assert a.result == b.result


SameBehaviour.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_memory_and_local_behave_the_same = SameBehaviour.TestCase
