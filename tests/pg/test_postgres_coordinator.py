"""The PostgreSQL coordinator on a real server: the Coordinator protocol's rules.

Lease expiry is tested by moving the coordinator's clock (``base.now``), not by
sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

pytest.importorskip("psycopg", reason="needs 'dalfleet[postgres]' (psycopg)")

from dalfleet.coordinator import base
from dalfleet.coordinator.base import (
    Coordinator,
    FinishStatus,
    TaskCounts,
    TaskOutcome,
    TaskState,
)
from dalfleet.coordinator.postgres import PostgresCoordinator
from dalfleet.errors import InvalidArgumentError
from dalfleet.models import AgentSpec, AgentState, Task
from dalfleet.store.postgres import PostgresBackend


class Clock:
    """The coordinator's clock, moved by hand."""

    def __init__(self) -> None:
        self.at = 1_800_000_000.0

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(base, "now", fake)
    return fake


@pytest.fixture
def coordinator(backend: PostgresBackend) -> Iterator[PostgresCoordinator]:
    yield backend.coordinator


def _spawn(coordinator: PostgresCoordinator, n: int) -> list[str]:
    return coordinator.spawn([AgentSpec(name=f"w_{i}", trust_level="root") for i in range(n)])


TASK = Task("template", "Process logs", fleet="w")


def test_satisfies_the_protocol(coordinator: PostgresCoordinator) -> None:
    assert isinstance(coordinator, Coordinator)


def test_spawn_stores_specs_with_our_trust_level(coordinator: PostgresCoordinator) -> None:
    ids = _spawn(coordinator, 3)
    assert len(set(ids)) == 3
    agents = coordinator.agents([*reversed(ids), "unknown"])
    assert list(agents) == list(reversed(ids))
    assert all(a.spec.trust_level == "sandboxed" for a in agents.values())
    assert coordinator.status(ids)[ids[0]].state is AgentState.ALIVE


def test_dispatch_claim_finish(coordinator: PostgresCoordinator, clock: Clock) -> None:
    ids = _spawn(coordinator, 2)
    results = coordinator.dispatch([*ids, ids[0]], TASK)
    assert list(results) == ids and all(r.ok for r in results.values())
    task_ids = {r.task.task_id for r in results.values() if r.task is not None}
    assert len(task_ids) == 2 and "template" not in task_ids
    assert coordinator.task_counts(ids) == TaskCounts(pending=2)

    claimed = coordinator.claim(ids, "w1", 10, lease=30)
    assert [c.agent.agent_id for c in claimed] == ids  # oldest first
    assert all(c.attempt == 1 and c.lease_expires_at == clock.at + 30 for c in claimed)
    assert claimed[0].task.description == "Process logs" and claimed[0].task.fleet == "w"
    assert coordinator.claim(ids, "w2", 10) == []  # leases running: nothing for others

    first, second = (c.task.task_id for c in claimed)
    statuses = coordinator.finish_many(
        [
            TaskOutcome(first, ok=True, result={"n": 1}),
            TaskOutcome(second, ok=False, error="bad \x00 \udc80 text"),
            TaskOutcome(first, ok=False, error="second outcome"),
        ],
        "w1",
    )
    assert statuses == {first: FinishStatus.RECORDED, second: FinishStatus.RECORDED}
    assert coordinator.finish(TaskOutcome(first, ok=False), "w1") is FinishStatus.ALREADY_FINISHED
    assert coordinator.finish(TaskOutcome("nope", ok=True), "w1") is FinishStatus.NOT_FOUND
    done = coordinator.task(first)
    failed = coordinator.task(second)
    assert done is not None and done.state is TaskState.COMPLETED and done.result == {"n": 1}
    assert failed is not None and failed.state is TaskState.FAILED
    assert failed.error == "bad \x00 \\udc80 text"
    assert coordinator.task_counts(ids) == TaskCounts(completed=1, failed=1)
    status = coordinator.status(ids)
    assert status[ids[0]].completed_tasks == 1 and status[ids[1]].failed_tasks == 1


def test_renew_keeps_a_lease_and_expiry_hands_it_over(
    coordinator: PostgresCoordinator, clock: Clock
) -> None:
    ids = _spawn(coordinator, 1)
    coordinator.dispatch(ids, TASK)
    (claimed,) = coordinator.claim(ids, "w1", 1, lease=10)
    task_id = claimed.task.task_id
    clock.at += 8
    assert coordinator.renew([task_id, "unknown"], "w1", lease=10) == [task_id]
    clock.at += 8  # 16 s after the claim, but renewed at 8 s: still held
    assert coordinator.claim(ids, "w2", 1) == []
    clock.at += 3  # the renewed lease ran out
    (taken,) = coordinator.claim(ids, "w2", 1, lease=10)
    assert taken.task.task_id == task_id and taken.attempt == 2
    assert coordinator.renew([task_id], "w1") == []  # w1 learns it lost the task
    assert coordinator.finish(TaskOutcome(task_id, ok=True), "w1") is FinishStatus.LEASE_LOST
    assert coordinator.finish(TaskOutcome(task_id, ok=True), "w2") is FinishStatus.RECORDED


def test_max_attempts_fails_a_task_with_its_last_error(
    backend: PostgresBackend, clock: Clock
) -> None:
    coordinator = PostgresCoordinator(backend, max_attempts=2)
    ids = _spawn(coordinator, 1)
    coordinator.dispatch(ids, TASK)
    for attempt in (1, 2):
        (claimed,) = coordinator.claim(ids, f"w{attempt}", 1, lease=5)
        assert claimed.attempt == attempt
        clock.at += 6
    assert coordinator.claim(ids, "w3", 1) == []
    (record,) = coordinator.tasks(ids[0])
    assert record.state is TaskState.FAILED and record.attempts == 2
    assert record.error is not None and "lease expired" in record.error


def test_release_gives_the_attempt_back(coordinator: PostgresCoordinator) -> None:
    ids = _spawn(coordinator, 1)
    coordinator.dispatch(ids, TASK)
    (claimed,) = coordinator.claim(ids, "w1", 1)
    coordinator.release([claimed.task.task_id], "someone-else")  # not theirs: ignored
    assert coordinator.task_counts(ids) == TaskCounts(running=1)
    coordinator.release([claimed.task.task_id], "w1")
    (again,) = coordinator.claim(ids, "w2", 1)
    assert again.task.task_id == claimed.task.task_id and again.attempt == 1


def test_terminate_fails_pending_tasks_and_refuses_new_ones(
    coordinator: PostgresCoordinator,
) -> None:
    ids = _spawn(coordinator, 2)
    coordinator.dispatch(ids, TASK)
    (running,) = coordinator.claim(ids[1:], "w1", 1)
    coordinator.terminate(ids)
    coordinator.terminate(ids)  # again: nothing more happens
    (pending,) = coordinator.tasks(ids[0])
    assert pending.state is TaskState.FAILED and "terminated" in (pending.error or "")
    assert coordinator.finish(TaskOutcome(running.task.task_id, True), "w1") is (
        FinishStatus.RECORDED
    )
    refused = coordinator.dispatch(ids[:1], TASK)[ids[0]]
    assert not refused.ok and "terminated" in (refused.error or "")
    assert coordinator.claim(ids, "w1", 5) == []


def test_agents_from_elsewhere_get_an_inbox(coordinator: PostgresCoordinator) -> None:
    result = coordinator.dispatch(["outside"], TASK)["outside"]
    assert result.ok
    assert coordinator.status(["outside"])["outside"].state is AgentState.UNKNOWN
    coordinator.terminate(["outside"])
    assert coordinator.dispatch(["outside"], TASK)["outside"].ok  # its inbox reopens


def test_dispatch_with_a_worker_creates_running_tasks(
    coordinator: PostgresCoordinator, clock: Clock
) -> None:
    ids = _spawn(coordinator, 1)
    result = coordinator.dispatch(ids, TASK, worker="now", lease=7)[ids[0]]
    assert result.task is not None
    record = coordinator.task(result.task.task_id)
    assert record is not None and record.state is TaskState.RUNNING
    assert record.worker == "now" and record.attempts == 1
    assert record.lease_expires_at == clock.at + 7


def test_id_lists_and_leases_are_checked(coordinator: PostgresCoordinator) -> None:
    with pytest.raises(InvalidArgumentError):
        coordinator.dispatch("agent_1", TASK)
    with pytest.raises(InvalidArgumentError):
        coordinator.claim(["a"], "w", 1, lease=0)
    with pytest.raises(InvalidArgumentError):
        coordinator.release("task_1", "w")
    with pytest.raises(InvalidArgumentError):
        PostgresCoordinator(coordinator.backend, max_attempts=0)


def test_concurrent_claims_never_take_the_same_task(backend: PostgresBackend) -> None:
    ids = _spawn(backend.coordinator, 10)
    for _ in range(10):
        backend.coordinator.dispatch(ids, TASK)
    taken: list[list[str]] = []
    lock = threading.Lock()

    def drain(name: str) -> None:
        with PostgresBackend(backend.url) as own:
            mine: list[str] = []
            while claimed := own.coordinator.claim(ids, name, 3):
                mine += [c.task.task_id for c in claimed]
            with lock:
                taken.append(mine)

    threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    every = [task_id for mine in taken for task_id in mine]
    assert len(every) == len(set(every)) == 100


def test_an_idle_worker_wakes_on_notify(backend: PostgresBackend) -> None:
    ids = _spawn(backend.coordinator, 1)
    woke: list[bool] = []
    listening = threading.Event()

    def wait() -> None:
        with PostgresBackend(backend.url) as own:
            own.coordinator.wait_for_tasks(ids, timeout=0)  # LISTEN is set up
            listening.set()
            woke.append(own.coordinator.wait_for_tasks(ids, timeout=120))

    thread = threading.Thread(target=wait)
    thread.start()
    assert listening.wait(timeout=30)
    backend.coordinator.dispatch(ids, TASK)
    thread.join(timeout=60)
    assert woke == [True]
    # With a pending task, waiting returns at once; with nothing to do, it times out.
    assert backend.coordinator.wait_for_tasks(ids, timeout=60) is True
    backend.coordinator.claim(ids, "w", 1, lease=3600)
    assert backend.coordinator.wait_for_tasks(ids, timeout=0.01) is False


def test_a_server_restart_is_survived(pg_server: object, backend: PostgresBackend) -> None:
    from tests.postgres_server import PostgresServer

    assert isinstance(pg_server, PostgresServer)
    coordinator = backend.coordinator
    ids = _spawn(coordinator, 2)
    coordinator.dispatch(ids, TASK)
    (claimed,) = coordinator.claim(ids, "w1", 1)
    pg_server.restart()
    # Every worker call reconnects on its own.
    assert coordinator.renew([claimed.task.task_id], "w1") == [claimed.task.task_id]
    assert coordinator.finish(TaskOutcome(claimed.task.task_id, True), "w1") is (
        FinishStatus.RECORDED
    )
    pg_server.restart()
    assert len(coordinator.claim(ids, "w1", 5)) == 1
    assert coordinator.task_counts(ids) == TaskCounts(running=1, completed=1)
    assert backend.store.load() == {}


def test_lifecycle_hooks_are_recorded_never_run(
    coordinator: PostgresCoordinator, tmp_path: object
) -> None:
    hooks = {"on_create": "touch /tmp/never-created", "on_destroy": "echo 'bye' \x00"}
    (agent_id,) = coordinator.spawn([AgentSpec(name="w_0", lifecycle=hooks)])
    coordinator.terminate([agent_id])
    assert coordinator.events(agent_id) == [
        ("on_create", hooks["on_create"]),
        ("on_destroy", hooks["on_destroy"]),
    ]


def test_waiting_ignores_what_no_claim_could_take(
    coordinator: PostgresCoordinator, clock: Clock
) -> None:
    """A running task of a terminated agent, its lease expired, wakes no one."""
    ids = _spawn(coordinator, 1)
    coordinator.dispatch(ids, TASK)
    coordinator.claim(ids, "gone", 1, lease=1)
    coordinator.terminate(ids)
    clock.at += 5
    assert coordinator.claim(ids, "w", 1) == []
    assert coordinator.wait_for_tasks(ids, timeout=0.01) is False


def test_from_url_gives_the_backends_coordinator(pg_url: str) -> None:
    coordinator = PostgresCoordinator.from_url(pg_url, max_attempts=5)
    try:
        assert coordinator.backend.coordinator is coordinator
        assert coordinator.backend.store.shares_transactions_with(coordinator)
        assert coordinator.max_attempts == 5 and coordinator.agent_ids() == []
    finally:
        coordinator.close()
