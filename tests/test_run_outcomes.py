"""Attacks on the outcome path: whatever a handler does, each member gets one
recorded outcome, the others are unaffected, and nothing is left running
(SPEC §5 failure rules; issue #10 items 1, 2, 3, 7, 8, 9)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dalfleet.fleet as fleet
from dalfleet import Agent, Client, Task
from dalfleet.coordinator import LocalCoordinator, TaskCounts
from dalfleet.executor import Executor, LocalExecutor
from dalfleet.executor.base import Execution, OutcomeCallback


@pytest.fixture(params=["local", "memory"])
def client(request: pytest.FixtureRequest, base: Path) -> Iterator[Client]:
    c = Client.in_memory(base) if request.param == "memory" else Client.for_base(base)
    yield c
    c.close()


def deployed(client: Client, n: int, task: str = "do it") -> list[str]:
    members = list(client.create_from_mold("w", "worker", n).member_ids)
    client.deploy("w", task)
    return members


def counts(client: Client, members: list[str]) -> TaskCounts:
    return client.coordinator.task_counts(members)


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise ValueError("no text for you")


def raiser(exc: BaseException) -> Any:
    def handler(agent: Agent, task: Task) -> None:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError("upstream took too long"), "TimeoutError: upstream took too long"),
        (asyncio.TimeoutError(), "TimeoutError"),
        (BrokenStr(), "BrokenStr (its message could not be rendered)"),
        (RuntimeError(os.fsdecode(b"caf\xe9")), "RuntimeError: caf\\udce9"),
        (SystemExit(3), "SystemExit: 3"),
        (GeneratorExit(), "GeneratorExit"),
    ],
    ids=["builtin-timeout", "asyncio-timeout", "broken-str", "not-utf8", "sys-exit", "gen-exit"],
)
def test_any_exception_is_one_failed_outcome_recorded_once(
    client: Client, exc: BaseException, expected: str
) -> None:
    members = deployed(client, 4)
    bad = members[1]
    calls: Counter[str] = Counter()

    def handler(agent: Agent, task: Task) -> str:
        calls[agent.agent_id] += 1
        if agent.agent_id == bad:
            raise exc
        return "ok"

    [report] = client.run("w", handler=handler)
    by_id = {o.agent_id: o for o in report.outcomes}
    assert (by_id[bad].ok, by_id[bad].status, by_id[bad].error) == (False, "error", expected)
    assert "handler" in (by_id[bad].traceback or "")
    assert all(by_id[m].ok for m in members if m != bad)
    assert report.errors == (f"{bad}: {expected}",)
    assert counts(client, members) == TaskCounts(completed=3, failed=1)
    (record,) = client.coordinator.tasks(bad)
    assert record.state == "failed" and record.error == expected
    # A worker has nothing left to run: the failure was recorded, once.
    stats = client.work("w", handler, once=True)
    assert stats.executed == 0
    assert calls == Counter(dict.fromkeys(members, 1))


def test_async_handlers_failing_every_way_are_outcomes(client: Client) -> None:
    members = deployed(client, 4)
    errors = [TimeoutError("own"), SystemExit(0), BrokenStr(), None]

    async def handler(agent: Agent, task: Task) -> str:
        await asyncio.sleep(0)
        exc = errors[members.index(agent.agent_id)]
        if exc is not None:
            raise exc
        return "ok"

    [report] = client.run("w", handler=handler, timeout=30)
    assert [o.status for o in report.outcomes] == ["error", "error", "error", "ok"]
    assert report.outcomes[0].error == "TimeoutError: own"  # not "timed out after 30s"
    assert counts(client, members) == TaskCounts(completed=1, failed=3)


def test_a_timeout_is_reported_only_when_ours_fired(client: Client) -> None:
    members = deployed(client, 2)
    release = threading.Event()

    def handler(agent: Agent, task: Task) -> str:
        if agent.agent_id == members[0]:
            release.wait(30)  # outlives our timeout
            return "late"
        raise TimeoutError("theirs")

    try:
        [report] = client.run("w", handler=handler, timeout=0.2)
    finally:
        release.set()
    first, second = report.outcomes
    assert (first.status, first.error) == ("timeout", "timed out after 0.2s")
    assert (second.status, second.error) == ("error", "TimeoutError: theirs")
    assert counts(client, members) == TaskCounts(failed=2)


def test_a_handler_failure_is_logged_with_its_traceback(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    deployed(client, 1)

    def exploding(agent: Agent, task: Task) -> None:
        raise RuntimeError("disk full")

    with caplog.at_level("WARNING", logger="dalfleet"):
        client.run("w", handler=exploding)
    assert "disk full" in caplog.text and "exploding" in caplog.text


def test_ctrl_c_in_a_handler_stops_the_run_and_leaves_nothing_running(client: Client) -> None:
    members = deployed(client, 6)

    def handler(agent: Agent, task: Task) -> str:
        if agent.agent_id == members[3]:
            raise KeyboardInterrupt
        return "ok"

    with pytest.raises(KeyboardInterrupt):
        client.run("w", handler=handler, concurrency=1)
    got = counts(client, members)
    assert got.running == 0
    assert got.completed + got.pending == 6  # finished ones recorded, the rest given back
    stats = client.work("w", lambda agent, task: "again", once=True)
    assert stats.executed == got.pending


def test_worker_once_ends_even_when_every_handler_fails_oddly(client: Client) -> None:
    members = deployed(client, 3)
    client.run("w")  # enqueue only
    calls: Counter[str] = Counter()

    def handler(agent: Agent, task: Task) -> None:
        calls[agent.agent_id] += 1
        raise TimeoutError(os.fsdecode(b"\xff"))

    stats = client.work("w", handler, once=True)
    assert (stats.executed, stats.failed) == (3, 3)
    assert calls == Counter(dict.fromkeys(members, 1))


# -- the caller's context reaches handlers on every thread (#10 item 3) ------------


def test_using_reaches_sync_and_async_handlers(base: Path, tmp_path: Path) -> None:
    other = Client.in_memory(tmp_path)
    other.create("elsewhere")
    fleet.create_from_mold("w", "worker", 4, base)
    fleet.deploy("w", "look around", base)
    seen: list[list[str]] = []

    def sync_handler(agent: Agent, task: Task) -> list[str]:
        names = fleet.list()
        seen.append(names)
        return names

    async def async_handler(agent: Agent, task: Task) -> list[str]:
        return fleet.list()

    with Client.for_base(base) as runner, fleet.using(other):
        [sync_report] = runner.run("w", handler=sync_handler)
        [async_report] = runner.run("w", handler=async_handler)
    assert {tuple(o.result) for o in sync_report.outcomes} == {("elsewhere",)}
    assert {tuple(o.result) for o in async_report.outcomes} == {("elsewhere",)}
    assert fleet.list(base) == ["w"]


# -- one bounded, reused pool of daemon threads -------------------------------------


def test_sync_handlers_share_one_bounded_pool_of_daemon_threads(client: Client) -> None:
    deployed(client, 12)
    threads: set[int] = set()
    daemons: set[bool] = set()
    lock = threading.Lock()

    def handler(agent: Agent, task: Task) -> None:
        with lock:
            threads.add(threading.get_ident())
            daemons.add(threading.current_thread().daemon)

    for _ in range(3):
        [report] = client.run("w", handler=handler, concurrency=3)
        assert report.errors == ()
    assert len(threads) <= 3
    assert daemons == {True}


# -- executor= reaches run and work -------------------------------------------------


class CountingExecutor:
    def __init__(self) -> None:
        self.inner = LocalExecutor()
        self.batches = 0

    def execute(
        self,
        claimed: Any,
        handler: Any,
        *,
        concurrency: int = 64,
        timeout: float | None = None,
        on_outcome: OutcomeCallback | None = None,
        stop: threading.Event | None = None,
    ) -> Execution:
        self.batches += 1
        return self.inner.execute(
            claimed,
            handler,
            concurrency=concurrency,
            timeout=timeout,
            on_outcome=on_outcome,
            stop=stop,
        )

    def close(self) -> None:
        self.inner.close()


def test_an_executor_given_to_run_work_configure_or_using_is_used(in_base: Path) -> None:
    counting = CountingExecutor()
    assert isinstance(counting, Executor)
    fleet.create_from_mold("w", "worker", 2)
    fleet.deploy("w", "go")
    [report] = fleet.run("w", handler="dalfleet.handlers:echo", executor=counting)
    assert report.members_dispatched == 2 and counting.batches == 1
    fleet.run("w")
    assert fleet.work("w", "dalfleet.handlers:echo", once=True, executor=counting).executed == 2
    assert counting.batches == 2
    with fleet.using(executor=counting):
        fleet.run("w", handler="dalfleet.handlers:echo")
    assert counting.batches == 3
    try:
        fleet.configure(executor=counting)
        fleet.run("w", handler="dalfleet.handlers:echo")
    finally:
        fleet.configure()
    assert counting.batches == 4
    with Client.for_base(in_base, executor=counting) as c:
        c.run("w", handler="dalfleet.handlers:echo")
    assert counting.batches == 5


# -- racing runs, members from elsewhere --------------------------------------------


def test_concurrent_runs_of_an_empty_fleet_with_a_mold_add_exactly_one_member(
    base: Path,
) -> None:
    fleet.create_from_mold("w", "worker", 1, base)
    fleet.scale("w", 0, base)
    fleet.deploy("w", "go", base)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            with Client.for_base(base) as c:
                c.run("w")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    (member,) = fleet.show("w", base).member_ids  # type: ignore[union-attr]
    with LocalCoordinator(base) as coord:
        assert coord.task_counts([member]) == TaskCounts(pending=4)
        alive = [a for a, s in coord.status(coord.agent_ids()).items() if s.state == "alive"]
    assert alive == [member]


def test_a_member_from_elsewhere_removed_and_added_back_takes_tasks_again(base: Path) -> None:
    fleet.create("w", base)
    fleet.add_member("w", "agent_ext", base)
    fleet.deploy("w", "hello", base)
    fleet.run("w", base)
    fleet.scale("w", 0, base)
    fleet.add_member("w", "agent_ext", base)
    [report] = fleet.run("w", base, handler="dalfleet.handlers:echo")
    assert report.errors == () and report.members_dispatched == 1
    assert report.outcomes[0].result["agent_id"] == "agent_ext"


# -- Ctrl-C never leaves the SQLite connection inside a transaction (#10 item 7) ----


@pytest.mark.parametrize("operation", ["dispatch", "claim", "finish", "spawn", "renew"])
def test_an_interrupt_inside_a_write_leaves_no_open_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    from dalfleet.coordinator import TaskOutcome
    from dalfleet.coordinator import local as local_module
    from dalfleet.models import AgentSpec

    coord = LocalCoordinator(tmp_path)
    (a,) = coord.spawn([AgentSpec("a")])
    coord.dispatch([a], Task("t", "one"))
    (held,) = coord.claim([a], "w", 1)
    before = (coord.task_counts([a, "agent_ext"]), coord.agent_ids())

    def interrupt(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    # Each patched helper is called after BEGIN IMMEDIATE, between two statements.
    target = {
        "dispatch": "new_task_ids",
        "claim": "claim_action",
        "finish": "now",
        "spawn": "new_agent_id",
        "renew": "now",
    }[operation]
    monkeypatch.setattr(local_module, target, interrupt)
    calls = {
        "dispatch": lambda: coord.dispatch([a, "agent_ext"], Task("t", "two")),
        "claim": lambda: (coord.dispatch([a], Task("t", "x")), coord.claim([a], "w2", 5)),
        "finish": lambda: coord.finish(TaskOutcome(held.task.task_id, True), "w"),
        "spawn": lambda: coord.spawn([AgentSpec("b")]),
        "renew": lambda: coord.renew([held.task.task_id], "w"),
    }
    with pytest.raises(KeyboardInterrupt):
        calls[operation]()
    monkeypatch.undo()
    assert coord._conn is None or not coord._conn.in_transaction
    # Another process's writer is not kept waiting: the write lock was released.
    with LocalCoordinator(tmp_path, busy_timeout=0.2) as other:
        other.dispatch([a], Task("t", "three"))
    if operation != "claim":  # claim's interrupt comes after its own dispatch committed
        counts_now = coord.task_counts([a, "agent_ext"])
        assert counts_now.pending == before[0].pending + 1
    assert coord.agent_ids() == before[1]
    coord.close()


def test_handlers_module_path_is_importable() -> None:
    assert "dalfleet" in sys.modules
