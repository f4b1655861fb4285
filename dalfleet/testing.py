"""Conformance kits: pytest test classes that prove a backend keeps its protocol.

A backend's own test suite subclasses a kit and provides a function-scoped
fixture that yields a fresh, empty backend::

    import pytest
    from dalfleet.testing import CoordinatorContract, StoreContract

    class TestMyCoordinator(CoordinatorContract):
        @pytest.fixture
        def coordinator(self, tmp_path):
            coord = MyCoordinator(tmp_path)
            yield coord
            coord.close()

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            yield MyStore(tmp_path)

Every test uses only the protocol (:class:`~dalfleet.coordinator.base.Coordinator`,
:class:`~dalfleet.store.base.Store`) and its docstrings. The kits are not
collected themselves (``__test__ = False``); a subclass named ``Test…`` is.
Lease tests use leases of a fraction of a second and wait for them to expire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import pytest

from dalfleet.coordinator.base import (
    ClaimedTask,
    Coordinator,
    DispatchResult,
    FinishStatus,
    TaskCounts,
    TaskOutcome,
    TaskState,
    count_open_tasks,
)
from dalfleet.errors import InvalidArgumentError
from dalfleet.models import AgentState, Fleet
from dalfleet.records import AgentSpec, Task
from dalfleet.store.base import Store

__all__ = ["CoordinatorContract", "StoreContract"]

_TASK = Task("template", "Process daily logs", fleet="workers")
_SHORT = 0.2  # seconds: a lease meant to run out during the test
_LONG = 60.0  # seconds: a lease meant to hold for the whole test


def _specs(n: int, prefix: str = "w") -> list[AgentSpec]:
    return [
        AgentSpec(f"{prefix}_{i}", mold_name="worker", metadata={"env": "test"}) for i in range(n)
    ]


def _expire(claims: Sequence[ClaimedTask]) -> None:
    """Wait until every lease in ``claims`` has run out (wall clock, as leases are)."""
    until = max(c.lease_expires_at for c in claims)
    while time.time() <= until:
        time.sleep(max(0.01, until - time.time() + 0.01))


def _run_threads(count: int, target: Callable[[int], None]) -> None:
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait()
        target(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class CoordinatorContract:
    """The behaviour every :class:`~dalfleet.coordinator.base.Coordinator` must have.

    Subclass it and provide a function-scoped ``coordinator`` fixture returning a
    fresh, empty coordinator (closed by the fixture after the test).
    """

    __test__: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__test__ = cls.__name__.startswith("Test")

    @pytest.fixture
    def coordinator(self) -> Coordinator:
        """A fresh, empty coordinator; subclasses must override this fixture."""
        raise NotImplementedError("provide a `coordinator` fixture")

    # -- helpers --------------------------------------------------------------

    @staticmethod
    def queue(coordinator: Coordinator, agent_ids: list[str]) -> list[str]:
        """Dispatch a task to ``agent_ids``; the new task IDs in agent order."""
        out = coordinator.dispatch(agent_ids, _TASK)
        tasks = [out[a].task for a in agent_ids]
        assert all(t is not None for t in tasks)
        return [t.task_id for t in tasks if t is not None]

    @staticmethod
    def state(coordinator: Coordinator, task_id: str) -> TaskState:
        """The stored state of a task that must exist."""
        record = coordinator.task(task_id)
        assert record is not None, f"task {task_id} not found"
        return TaskState(record.state)

    # -- shape ----------------------------------------------------------------

    def test_satisfies_the_protocol(self, coordinator: Coordinator) -> None:
        assert isinstance(coordinator, Coordinator)
        assert coordinator.max_attempts >= 1

    # -- agents ---------------------------------------------------------------

    def test_spawn_returns_distinct_ids_in_order(self, coordinator: Coordinator) -> None:
        ids = coordinator.spawn(_specs(5))
        assert len(ids) == len(set(ids)) == 5
        agents = coordinator.agents(ids)
        assert list(agents) == ids
        assert [agents[i].spec.name for i in ids] == [f"w_{i}" for i in range(5)]
        assert all(a.state is AgentState.ALIVE for a in agents.values())

    def test_spawn_of_nothing_changes_nothing(self, coordinator: Coordinator) -> None:
        assert coordinator.spawn([]) == []

    def test_spawn_keeps_the_spec_with_the_coordinators_trust_level(
        self, coordinator: Coordinator
    ) -> None:
        spec = AgentSpec(
            "w_0",
            mold_name="worker",
            mold_version="2.1",
            role="Work on prod",
            capabilities=["read", "write"],
            memory_limit="256MB",
            metadata={"env": "prod"},
            trust_level="root",
        )
        (agent_id,) = coordinator.spawn([spec])
        stored = coordinator.agents([agent_id])[agent_id].spec
        assert stored.trust_level == coordinator.trust_level
        assert (stored.name, stored.mold_name, stored.mold_version, stored.role) == (
            "w_0",
            "worker",
            "2.1",
            "Work on prod",
        )
        assert list(stored.capabilities) == ["read", "write"]
        assert dict(stored.metadata) == {"env": "prod"}

    def test_agent_ids_lists_every_agent_oldest_first(self, coordinator: Coordinator) -> None:
        assert coordinator.agent_ids() == []
        first = coordinator.spawn(_specs(3))
        coordinator.dispatch(["agent_elsewhere"], _TASK)
        second = coordinator.spawn(_specs(2, "v"))
        coordinator.terminate([first[1]])
        assert coordinator.agent_ids() == [*first, "agent_elsewhere", *second]
        assert coordinator.agent_ids(AgentState.TERMINATED) == [first[1]]
        assert coordinator.agent_ids(AgentState.ALIVE) == [first[0], first[2], *second]
        assert coordinator.agent_ids(AgentState.UNKNOWN) == ["agent_elsewhere"]

    def test_ids_from_two_spawns_never_collide(self, coordinator: Coordinator) -> None:
        first = coordinator.spawn(_specs(50))
        second = coordinator.spawn(_specs(50))
        assert not set(first) & set(second)

    def test_terminate_is_idempotent_and_ignores_unknown_ids(
        self, coordinator: Coordinator
    ) -> None:
        a, b = coordinator.spawn(_specs(2))
        coordinator.terminate([a, "agent_nope"])
        coordinator.terminate([a])
        states = coordinator.status([a, b])
        assert states[a].state is AgentState.TERMINATED
        assert states[b].state is AgentState.ALIVE

    def test_id_lists_refuse_a_single_string(self, coordinator: Coordinator) -> None:
        (a,) = coordinator.spawn(_specs(1))
        for call in (
            lambda: coordinator.terminate(a),
            lambda: coordinator.agents(a),
            lambda: coordinator.status(a),
            lambda: coordinator.dispatch(a, _TASK),
            lambda: coordinator.claim(a, "w", 1),
            lambda: coordinator.task_counts(a),
            lambda: coordinator.release("task_x", "w"),
            lambda: coordinator.renew("task_x", "w"),
        ):
            with pytest.raises(InvalidArgumentError):
                call()
        assert coordinator.status([a])[a].state is AgentState.ALIVE

    def test_status_and_agents_of_unknown_ids(self, coordinator: Coordinator) -> None:
        status = coordinator.status(["agent_nope"])
        assert status["agent_nope"].state is AgentState.UNKNOWN
        assert status["agent_nope"].pending_tasks == 0
        assert coordinator.agents(["agent_nope"]) == {}
        assert coordinator.tasks("agent_nope") == []
        assert coordinator.task("task_nope") is None

    # -- dispatch -------------------------------------------------------------

    def test_dispatch_stores_one_pending_task_per_agent(self, coordinator: Coordinator) -> None:
        ids = coordinator.spawn(_specs(3))
        out = coordinator.dispatch([*ids, ids[0]], _TASK)
        assert list(out) == ids
        assert all(isinstance(r, DispatchResult) and r.ok and r.error is None for r in out.values())
        tasks = [out[i].task for i in ids]
        task_ids = [t.task_id for t in tasks if t is not None]
        assert len(set(task_ids)) == 3 and _TASK.task_id not in task_ids
        for agent_id, task_id in zip(ids, task_ids, strict=True):
            record = coordinator.task(task_id)
            assert record is not None
            assert record.agent_id == agent_id
            assert record.state == TaskState.PENDING
            assert record.task.description == _TASK.description
            assert record.task.fleet == "workers"
            assert record.attempts == 0
            assert [r.task_id for r in coordinator.tasks(agent_id)] == [task_id]

    def test_dispatch_to_a_terminated_agent_is_an_error_result(
        self, coordinator: Coordinator
    ) -> None:
        a, b = coordinator.spawn(_specs(2))
        coordinator.terminate([a])
        out = coordinator.dispatch([a, b], _TASK)
        assert not out[a].ok and out[a].task is None and out[a].error
        assert out[b].ok
        assert coordinator.tasks(a) == []

    def test_dispatch_gives_an_agent_from_elsewhere_an_inbox(
        self, coordinator: Coordinator
    ) -> None:
        out = coordinator.dispatch(["agent_elsewhere"], _TASK)
        assert out["agent_elsewhere"].ok
        assert coordinator.status(["agent_elsewhere"])["agent_elsewhere"].state is (
            AgentState.UNKNOWN
        )
        claimed = coordinator.claim(["agent_elsewhere"], "w", 5, lease=_LONG)
        assert [c.task.task_id for c in claimed] == [
            t.task_id for t in [out["agent_elsewhere"].task] if t is not None
        ]

    def test_an_agent_from_elsewhere_can_come_back_after_terminate(
        self, coordinator: Coordinator
    ) -> None:
        coordinator.dispatch(["agent_elsewhere"], _TASK)
        coordinator.terminate(["agent_elsewhere"])
        again = coordinator.dispatch(["agent_elsewhere"], _TASK)["agent_elsewhere"]
        assert again.ok and again.task is not None
        claimed = coordinator.claim(["agent_elsewhere"], "w", 5, lease=_LONG)
        assert [c.task.task_id for c in claimed] == [again.task.task_id]

    def test_dispatch_with_a_worker_creates_claimed_tasks(self, coordinator: Coordinator) -> None:
        (a,) = coordinator.spawn(_specs(1))
        task = coordinator.dispatch([a], _TASK, worker="w1", lease=_LONG)[a].task
        assert task is not None
        record = coordinator.task(task.task_id)
        assert record is not None
        assert (record.state, record.worker, record.attempts) == (TaskState.RUNNING, "w1", 1)
        assert coordinator.claim([a], "w2", 5, lease=_LONG) == []
        assert coordinator.finish(TaskOutcome(task.task_id, True, "r"), "w1") is (
            FinishStatus.RECORDED
        )

    def test_dispatch_keeps_any_text(self, coordinator: Coordinator) -> None:
        (a,) = coordinator.spawn(_specs(1))
        text = "résumé ✓ 日本語 'quotes' \"double\" \\ ; DROP TABLE tasks; --\n\ttab"
        task = coordinator.dispatch([a], Task("t", text))[a].task
        assert task is not None
        record = coordinator.task(task.task_id)
        assert record is not None and record.task.description == text

    def test_lease_must_be_positive(self, coordinator: Coordinator) -> None:
        (a,) = coordinator.spawn(_specs(1))
        for bad in (0, -1.0):
            with pytest.raises(InvalidArgumentError):
                coordinator.claim([a], "w", 1, lease=bad)
            with pytest.raises(InvalidArgumentError):
                coordinator.dispatch([a], _TASK, worker="w", lease=bad)
        assert coordinator.tasks(a) == []

    # -- claim ----------------------------------------------------------------

    def test_claim_takes_oldest_first_up_to_limit(self, coordinator: Coordinator) -> None:
        a, b = coordinator.spawn(_specs(2))
        order = [*self.queue(coordinator, [b]), *self.queue(coordinator, [a])]
        order += self.queue(coordinator, [b])
        first = coordinator.claim([a, b], "w", 2, lease=_LONG)
        assert [c.task.task_id for c in first] == order[:2]
        assert all(c.worker == "w" and c.attempt == 1 for c in first)
        assert all(c.lease_expires_at > time.time() for c in first)
        assert [c.agent.agent_id for c in first] == [b, a]
        rest = coordinator.claim([a, b], "w", 10, lease=_LONG)
        assert [c.task.task_id for c in rest] == order[2:]
        assert coordinator.claim([a, b], "w", 10, lease=_LONG) == []
        assert self.state(coordinator, order[0]) == TaskState.RUNNING

    def test_claim_with_limit_below_one_takes_nothing(self, coordinator: Coordinator) -> None:
        (a,) = coordinator.spawn(_specs(1))
        self.queue(coordinator, [a])
        assert coordinator.claim([a], "w", 0) == []
        assert coordinator.task_counts([a]) == TaskCounts(pending=1)

    def test_claim_takes_only_tasks_of_the_given_alive_agents(
        self, coordinator: Coordinator
    ) -> None:
        a, b, c = coordinator.spawn(_specs(3))
        self.queue(coordinator, [a, b, c])
        coordinator.terminate([c])
        claimed = coordinator.claim([a, c], "w", 10, lease=_LONG)
        assert [x.agent.agent_id for x in claimed] == [a]

    def test_a_held_task_is_never_claimed_again(self, coordinator: Coordinator) -> None:
        ids = coordinator.spawn(_specs(3))
        self.queue(coordinator, ids)
        first = coordinator.claim(ids, "w1", 10, lease=_LONG)
        assert len(first) == 3
        assert coordinator.claim(ids, "w2", 10, lease=_LONG) == []
        assert coordinator.claim(ids, "w1", 10, lease=_LONG) == []

    def test_concurrent_claims_take_each_task_once(self, coordinator: Coordinator) -> None:
        ids = coordinator.spawn(_specs(10))
        for _ in range(5):
            self.queue(coordinator, ids)
        taken: list[list[str]] = [[] for _ in range(8)]

        def worker(i: int) -> None:
            while True:
                got = coordinator.claim(ids, f"w{i}", 3, lease=_LONG)
                if not got:
                    return
                taken[i].extend(c.task.task_id for c in got)

        _run_threads(8, worker)
        every = [t for part in taken for t in part]
        assert len(every) == 50 and len(set(every)) == 50

    def test_an_expired_lease_is_taken_over(self, coordinator: Coordinator) -> None:
        (a,) = coordinator.spawn(_specs(1))
        (task_id,) = self.queue(coordinator, [a])
        (first,) = coordinator.claim([a], "w1", 1, lease=_SHORT)
        _expire([first])
        (second,) = coordinator.claim([a], "w2", 1, lease=_LONG)
        assert second.task.task_id == task_id
        assert (second.worker, second.attempt) == ("w2", 2)
        assert coordinator.finish(TaskOutcome(task_id, True, "late"), "w1") is (
            FinishStatus.LEASE_LOST
        )
        assert coordinator.renew([task_id], "w1", _LONG) == []
        assert coordinator.finish(TaskOutcome(task_id, True, "mine"), "w2") is (
            FinishStatus.RECORDED
        )
        record = coordinator.task(task_id)
        assert record is not None
        assert (record.state, record.result, record.worker) == (TaskState.COMPLETED, "mine", "w2")

    def test_a_task_fails_after_max_attempts_expired_leases(self, coordinator: Coordinator) -> None:
        (a,) = coordinator.spawn(_specs(1))
        (task_id,) = self.queue(coordinator, [a])
        for attempt in range(1, coordinator.max_attempts + 1):
            (claim,) = coordinator.claim([a], f"w{attempt}", 1, lease=_SHORT)
            assert claim.attempt == attempt
            _expire([claim])
        assert coordinator.claim([a], "last", 1, lease=_LONG) == []
        record = coordinator.task(task_id)
        assert record is not None
        assert record.state == TaskState.FAILED
        assert record.error
        assert record.attempts == coordinator.max_attempts
        assert coordinator.task_counts([a]) == TaskCounts(failed=1)

    def test_a_finish_after_the_lease_ran_out_counts_if_no_one_took_over(
        self, coordinator: Coordinator
    ) -> None:
        (a,) = coordinator.spawn(_specs(1))
        (task_id,) = self.queue(coordinator, [a])
        (claim,) = coordinator.claim([a], "w1", 1, lease=_SHORT)
        _expire([claim])
        assert coordinator.finish(TaskOutcome(task_id, True, 1), "w1") is FinishStatus.RECORDED
        assert coordinator.claim([a], "w2", 1, lease=_LONG) == []

    def test_renew_keeps_a_lease_alive(self, coordinator: Coordinator) -> None:
        (a,) = coordinator.spawn(_specs(1))
        (task_id,) = self.queue(coordinator, [a])
        (claim,) = coordinator.claim([a], "w1", 1, lease=_SHORT)
        assert coordinator.renew([task_id, "task_nope"], "w1", _LONG) == [task_id]
        assert coordinator.renew([task_id], "w2", _LONG) == []
        _expire([claim])
        assert coordinator.claim([a], "w2", 1, lease=_LONG) == []
        record = coordinator.task(task_id)
        assert record is not None and record.lease_expires_at is not None
        assert record.lease_expires_at > time.time() + _LONG / 2

    # -- finish ---------------------------------------------------------------

    def test_an_outcome_is_recorded_once(self, coordinator: Coordinator) -> None:
        (a,) = coordinator.spawn(_specs(1))
        (task_id,) = self.queue(coordinator, [a])
        coordinator.claim([a], "w", 1, lease=_LONG)
        assert coordinator.finish(TaskOutcome(task_id, True, {"n": 1}), "w") is (
            FinishStatus.RECORDED
        )
        again = coordinator.finish_many(
            [TaskOutcome(task_id, False, error="second"), TaskOutcome("task_nope", True)], "w"
        )
        assert again == {
            task_id: FinishStatus.ALREADY_FINISHED,
            "task_nope": FinishStatus.NOT_FOUND,
        }
        record = coordinator.task(task_id)
        assert record is not None
        assert (record.state, record.result, record.error) == (
            TaskState.COMPLETED,
            {"n": 1},
            None,
        )
        assert coordinator.task_counts([a]) == TaskCounts(completed=1)
        status = coordinator.status([a])[a]
        assert (status.completed_tasks, status.failed_tasks) == (1, 0)

    def test_finish_many_records_a_batch_and_the_first_outcome_of_a_task(
        self, coordinator: Coordinator
    ) -> None:
        ids = coordinator.spawn(_specs(3))
        tasks = self.queue(coordinator, ids)
        coordinator.claim(ids, "w", 10, lease=_LONG)
        statuses = coordinator.finish_many(
            [
                TaskOutcome(tasks[0], True, [1, 2]),
                TaskOutcome(tasks[1], False, error="boom"),
                TaskOutcome(tasks[0], False, error="again"),
            ],
            "w",
        )
        assert statuses[tasks[0]] is FinishStatus.RECORDED
        assert statuses[tasks[1]] is FinishStatus.RECORDED
        assert self.state(coordinator, tasks[0]) == TaskState.COMPLETED
        assert self.state(coordinator, tasks[1]) == TaskState.FAILED
        assert self.state(coordinator, tasks[2]) == TaskState.RUNNING
        assert coordinator.task_counts(ids) == TaskCounts(running=1, completed=1, failed=1)

    def test_a_pending_task_cannot_be_finished(self, coordinator: Coordinator) -> None:
        (a,) = coordinator.spawn(_specs(1))
        (task_id,) = self.queue(coordinator, [a])
        assert coordinator.finish(TaskOutcome(task_id, True), "w") is FinishStatus.LEASE_LOST
        assert self.state(coordinator, task_id) == TaskState.PENDING

    def test_concurrent_finishes_record_one_outcome(self, coordinator: Coordinator) -> None:
        ids = coordinator.spawn(_specs(4))
        tasks = self.queue(coordinator, ids)
        coordinator.claim(ids, "w", 10, lease=_LONG)
        results: list[dict[str, FinishStatus]] = [{} for _ in range(6)]

        def finisher(i: int) -> None:
            results[i] = coordinator.finish_many([TaskOutcome(t, True, i) for t in tasks], "w")

        _run_threads(6, finisher)
        for task_id in tasks:
            winners = [i for i, r in enumerate(results) if r[task_id] is FinishStatus.RECORDED]
            assert len(winners) == 1
            record = coordinator.task(task_id)
            assert record is not None and record.result == winners[0]

    def test_results_and_errors_come_back_as_stored(self, coordinator: Coordinator) -> None:
        ids = coordinator.spawn(_specs(4))
        tasks = self.queue(coordinator, ids)
        coordinator.claim(ids, "w", 10, lease=_LONG)

        class Odd:
            def __repr__(self) -> str:
                return "<odd>"

        coordinator.finish_many(
            [
                TaskOutcome(tasks[0], True, {"rows": [1, 2], "ok": True}),
                TaskOutcome(tasks[1], False, error="Traceback: boom"),
                TaskOutcome(tasks[2], True, Odd()),
                TaskOutcome(tasks[3], False, error="caf\udce9 \ud800"),
            ],
            "w",
        )
        records = [coordinator.task(t) for t in tasks]
        assert all(r is not None and r.finished_at is not None for r in records)
        assert records[0] is not None and records[0].result == {"rows": [1, 2], "ok": True}
        assert records[1] is not None and records[1].error == "Traceback: boom"
        assert records[1].result is None and records[1].state == TaskState.FAILED
        assert records[2] is not None and records[2].result == "<odd>"
        # Text that is not valid UTF-8 is still recorded, once, as failed.
        assert records[3] is not None and records[3].state == TaskState.FAILED
        assert records[3].error is not None and records[3].error.startswith("caf")
        assert coordinator.task_counts(ids) == TaskCounts(completed=2, failed=2)

    # -- release, terminate and counts -----------------------------------------

    def test_release_puts_tasks_back_and_gives_the_attempt_back(
        self, coordinator: Coordinator
    ) -> None:
        (a,) = coordinator.spawn(_specs(1))
        tasks = self.queue(coordinator, [a]) + self.queue(coordinator, [a])
        coordinator.claim([a], "w1", 1, lease=_LONG)
        coordinator.release([tasks[0], "task_nope"], "w2")  # not w2's: ignored
        assert self.state(coordinator, tasks[0]) == TaskState.RUNNING
        coordinator.release([tasks[0]], "w1")
        record = coordinator.task(tasks[0])
        assert record is not None
        assert (record.state, record.attempts) == (TaskState.PENDING, 0)
        (again,) = coordinator.claim([a], "w2", 1, lease=_LONG)
        assert (again.task.task_id, again.attempt) == (tasks[0], 1)

    def test_terminate_fails_pending_tasks_and_lets_running_ones_finish(
        self, coordinator: Coordinator
    ) -> None:
        (a,) = coordinator.spawn(_specs(1))
        tasks = self.queue(coordinator, [a]) + self.queue(coordinator, [a])
        coordinator.claim([a], "w", 1, lease=_LONG)
        coordinator.terminate([a])
        assert self.state(coordinator, tasks[1]) == TaskState.FAILED
        assert self.state(coordinator, tasks[0]) == TaskState.RUNNING
        assert coordinator.finish(TaskOutcome(tasks[0], True), "w") is FinishStatus.RECORDED
        assert coordinator.task_counts([a]) == TaskCounts(completed=1, failed=1)

    def test_counts_follow_the_task_lifecycle(self, coordinator: Coordinator) -> None:
        a, b = coordinator.spawn(_specs(2))
        for _ in range(3):
            self.queue(coordinator, [a, b])
        claimed = coordinator.claim([a], "w", 2, lease=_LONG)
        coordinator.finish(TaskOutcome(claimed[0].task.task_id, True), "w")
        assert coordinator.task_counts([a]) == TaskCounts(pending=1, running=1, completed=1)
        assert coordinator.task_counts([a, b, a]) == TaskCounts(pending=4, running=1, completed=1)
        assert coordinator.task_counts([a, b]).total == 6
        status = coordinator.status([a])[a]
        assert (
            status.pending_tasks,
            status.running_tasks,
            status.completed_tasks,
            status.failed_tasks,
        ) == (1, 1, 1, 0)
        assert status.last_result_at is not None
        assert coordinator.status([b])[b].last_result_at is None

    def test_open_task_count_agrees_with_task_counts(self, coordinator: Coordinator) -> None:
        # count_open_tasks uses the coordinator's open_task_count when it has one.
        a, b, c = coordinator.spawn(_specs(3))
        assert count_open_tasks(coordinator, [a, b, c]) == 0
        for _ in range(3):
            self.queue(coordinator, [a, b])
        claimed = coordinator.claim([a], "w", 2, lease=_LONG)
        coordinator.finish(TaskOutcome(claimed[0].task.task_id, True), "w")
        coordinator.terminate([b])
        for ids in ([a], [b], [c], [a, b, a], [a, b, c], []):
            counts = coordinator.task_counts(ids)
            assert count_open_tasks(coordinator, ids) == counts.pending + counts.running, ids
        assert count_open_tasks(coordinator, [a]) == 2
        with pytest.raises(InvalidArgumentError):
            count_open_tasks(coordinator, a)

    def test_returned_values_do_not_alias_state(self, coordinator: Coordinator) -> None:
        (a,) = coordinator.spawn(_specs(1))
        (task_id,) = self.queue(coordinator, [a])
        listed = coordinator.tasks(a)
        got = coordinator.agents([a])
        got.clear()
        listed.clear()
        assert coordinator.agents([a]) != {}
        assert [r.task_id for r in coordinator.tasks(a)] == [task_id]

    def test_close_then_use_again(self, coordinator: Coordinator) -> None:
        (a,) = coordinator.spawn(_specs(1))
        coordinator.close()
        coordinator.close()
        (task_id,) = self.queue(coordinator, [a])
        assert self.state(coordinator, task_id) == TaskState.PENDING


class StoreContract:
    """The behaviour every :class:`~dalfleet.store.base.Store` must have.

    Subclass it and provide a function-scoped ``store`` fixture returning a fresh,
    empty store (closed by the fixture after the test).
    """

    __test__: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__test__ = cls.__name__.startswith("Test")

    @pytest.fixture
    def store(self) -> Store:
        """A fresh, empty store; subclasses must override this fixture."""
        raise NotImplementedError("provide a `store` fixture")

    @staticmethod
    def fleet(name: str, members: Sequence[str] = (), **fields: Any) -> Fleet:
        """A fleet value to store."""
        return Fleet(name=name, member_ids=list(members), **fields)

    def test_satisfies_the_protocol(self, store: Store) -> None:
        assert isinstance(store, Store)
        assert isinstance(store.location, str) and store.location

    def test_a_fresh_store_is_empty(self, store: Store) -> None:
        assert dict(store.load()) == {}

    def test_a_committed_write_is_read_back(self, store: Store) -> None:
        with store.transaction() as fleets:
            fleets["w"] = self.fleet(
                "w",
                ["agent_b", "agent_a", "agent_c"],
                mold_source="mold/worker.mold.dal",
                last_deployed_task="Process logs ✓",
                last_deployed_at="2026-01-01T00:00:00Z",
                last_create_params={"env": "prod"},
            )
        got = store.load()["w"]
        assert list(got.member_ids) == ["agent_b", "agent_a", "agent_c"]
        assert got.mold_source == "mold/worker.mold.dal"
        assert got.last_deployed_task == "Process logs ✓"
        assert got.last_deployed_at == "2026-01-01T00:00:00Z"
        assert dict(got.last_create_params or {}) == {"env": "prod"}

    def test_every_write_is_kept(self, store: Store) -> None:
        for i in range(5):
            with store.transaction() as fleets:
                fleets[f"f{i}"] = self.fleet(f"f{i}", [f"agent_{i}"])
        with store.transaction() as fleets:
            fleets["f0"] = self.fleet("f0", ["agent_0", "agent_x"])
            del fleets["f1"]
        loaded = store.load()
        assert sorted(loaded) == ["f0", "f2", "f3", "f4"]
        assert list(loaded["f0"].member_ids) == ["agent_0", "agent_x"]

    def test_a_transaction_sees_the_current_state(self, store: Store) -> None:
        with store.transaction() as fleets:
            fleets["w"] = self.fleet("w", ["agent_1"])
        with store.transaction() as fleets:
            assert list(fleets["w"].member_ids) == ["agent_1"]

    def test_a_failed_transaction_changes_nothing(self, store: Store) -> None:
        with store.transaction() as fleets:
            fleets["keep"] = self.fleet("keep", ["agent_1"])

        class Boom(Exception):
            pass

        with pytest.raises(Boom), store.transaction() as fleets:
            fleets["new"] = self.fleet("new")
            del fleets["keep"]
            raise Boom
        assert sorted(store.load()) == ["keep"]
        assert list(store.load()["keep"].member_ids) == ["agent_1"]

    def test_load_returns_a_snapshot(self, store: Store) -> None:
        with store.transaction() as fleets:
            fleets["w"] = self.fleet("w", ["agent_1"])
        snapshot = store.load()
        snapshot.clear()
        assert sorted(store.load()) == ["w"]

    def _grow_shared(self, store: Store, i: int) -> None:
        # Five transactions, each adding one member to "shared" and one fleet of its own.
        for j in range(5):
            with store.transaction() as fleets:
                current = fleets["shared"]
                fleets["shared"] = self.fleet("shared", [*current.member_ids, f"agent_{i}_{j}"])
                fleets[f"own_{i}_{j}"] = self.fleet(f"own_{i}_{j}")

    def test_concurrent_transactions_lose_no_update(self, store: Store) -> None:
        with store.transaction() as fleets:
            fleets["shared"] = self.fleet("shared")
        _run_threads(4, lambda i: self._grow_shared(store, i))
        loaded = store.load()
        assert len(loaded["shared"].member_ids) == 20
        assert len(set(loaded["shared"].member_ids)) == 20
        assert len(loaded) == 21

    def test_reads_beside_concurrent_transactions_see_whole_states(self, store: Store) -> None:
        # Each transaction adds one member to "shared" and one fleet of its own: a
        # snapshot that is whole has as many of one as of the other.
        with store.transaction() as fleets:
            fleets["shared"] = self.fleet("shared")
        done = threading.Event()
        seen: list[int] = []
        failures: list[BaseException] = []

        def reader() -> None:
            get = getattr(store, "get", None)
            try:
                while not done.is_set():
                    snapshot = store.load()
                    members = snapshot["shared"].member_ids
                    assert len(set(members)) == len(members) == len(snapshot) - 1
                    if callable(get):
                        one = get("shared")
                        assert one is not None and len(one.member_ids) >= len(members)
                    seen.append(len(members))
            except BaseException as exc:  # reported below: a thread's failure is lost
                failures.append(exc)

        readers = [threading.Thread(target=reader) for _ in range(2)]
        for thread in readers:
            thread.start()
        try:
            _run_threads(2, lambda i: self._grow_shared(store, i))
        finally:
            done.set()
            for thread in readers:
                thread.join()
        assert not failures, failures[0]
        assert len(store.load()["shared"].member_ids) == 10
        assert seen, "the readers never read"

    def test_close_then_use_again(self, store: Store) -> None:
        with store.transaction() as fleets:
            fleets["w"] = self.fleet("w")
        close = getattr(store, "close", None)
        if close is not None:
            close()
            close()
        assert sorted(store.load()) == ["w"]
