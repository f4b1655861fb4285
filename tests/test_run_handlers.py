"""``run(..., handler=…)`` executes now: bounded concurrency, timeouts, one outcome each."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import dalfleet.fleet as fleet
from dalfleet import Agent, Client, HandlerError, InvalidArgumentError, Task
from tests.conftest import snapshot


@pytest.fixture(params=["json", "memory"])
def client(request: pytest.FixtureRequest, base: Path) -> Any:
    c = Client.in_memory(base) if request.param == "memory" else Client.for_base(base)
    yield c
    c.close()


def deployed(client: Client, n: int, task: str = "do it") -> list[str]:
    members = client.create_from_mold("w", "worker", n).member_ids
    client.deploy("w", task)
    return list(members)


def test_every_member_runs_exactly_once(client: Client) -> None:
    members = deployed(client, 25)
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def handler(agent: Agent, task: Task) -> str:
        with lock:
            seen[agent.agent_id] += 1
        return f"{agent.name}:{task.description}"

    [report] = client.run("w", handler=handler)
    assert seen == Counter({m: 1 for m in members})
    assert report.executed
    assert report.members_dispatched == 25 and report.errors == ()
    assert [o.agent_id for o in report.outcomes] == members
    assert {o.result for o in report.outcomes} == {f"w_{i}:do it" for i in range(25)}
    assert all(o.status == "ok" and o.duration >= 0 for o in report.outcomes)
    assert report.task == "do it" and report.finished_at >= report.started_at


def test_async_handlers_are_awaited(client: Client) -> None:
    deployed(client, 5)

    async def handler(agent: Agent, task: Task) -> str:
        await asyncio.sleep(0)
        return agent.name

    [report] = client.run("w", handler=handler)
    assert sorted(o.result for o in report.outcomes) == [f"w_{i}" for i in range(5)]


def test_a_raising_member_is_reported_and_the_others_succeed(client: Client) -> None:
    members = deployed(client, 6)
    bad = members[2]

    def handler(agent: Agent, task: Task) -> str:
        if agent.agent_id == bad:
            raise RuntimeError("disk full")
        return "ok"

    [report] = client.run("w", handler=handler)
    assert report.members_dispatched == 5
    assert report.errors == (f"{bad}: RuntimeError: disk full",)
    failed = [o for o in report.outcomes if not o.ok]
    assert [(o.agent_id, o.status) for o in failed] == [(bad, "error")]


def test_a_member_that_times_out_does_not_stop_the_others(client: Client) -> None:
    members = deployed(client, 4)
    slow = members[0]

    async def handler(agent: Agent, task: Task) -> str:
        if agent.agent_id == slow:
            await asyncio.sleep(30)
        return "ok"

    [report] = client.run("w", handler=handler, timeout=0.3)
    by_id = {o.agent_id: o for o in report.outcomes}
    assert by_id[slow].status == "timeout" and "timed out after 0.3s" in (by_id[slow].error or "")
    assert all(by_id[m].ok for m in members[1:])
    assert report.members_dispatched == 3 and len(report.errors) == 1


def test_forty_handlers_run_at_once_by_default(client: Client) -> None:
    deployed(client, 40)
    # Each handler waits until all forty are inside it: only concurrent execution passes.
    barrier = threading.Barrier(40, timeout=20)

    def handler(agent: Agent, task: Task) -> int:
        return barrier.wait()

    [report] = client.run("w", handler=handler)
    assert report.errors == ()
    assert sorted(o.result for o in report.outcomes) == list(range(40))


def test_concurrency_is_bounded(client: Client) -> None:
    deployed(client, 30)
    lock = threading.Lock()
    active = [0, 0]

    async def handler(agent: Agent, task: Task) -> None:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        await asyncio.sleep(0.01)
        with lock:
            active[0] -= 1

    [report] = client.run("w", handler=handler, concurrency=4)
    assert report.errors == ()
    assert active[1] == 4


def test_handler_by_module_and_function_name(client: Client) -> None:
    deployed(client, 2)
    [report] = client.run("w", handler="dalfleet.handlers:echo")
    assert {o.result["agent"] for o in report.outcomes} == {"w_0", "w_1"}
    assert {o.result["task"] for o in report.outcomes} == {"do it"}


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("nocolon", "expected 'module:function'"),
        ("no_such_module_xyz:f", "importing no_such_module_xyz failed"),
        ("dalfleet.handlers:nope", "has no attribute 'nope'"),
        ("dalfleet.handlers:__doc__", "is not callable"),
    ],
)
def test_a_bad_handler_is_an_error_and_changes_nothing(base: Path, spec: str, why: str) -> None:
    fleet.create_from_mold("w", "worker", 2, base)
    fleet.deploy("w", "go", base)
    before = snapshot(base)
    with pytest.raises(HandlerError, match=why):
        fleet.run("w", base, handler=spec)
    assert snapshot(base) == before


@pytest.mark.parametrize(("kwargs"), [{"concurrency": 0}, {"timeout": 0}, {"timeout": -1.0}])
def test_bad_concurrency_or_timeout(client: Client, kwargs: dict[str, Any]) -> None:
    deployed(client, 1)
    with pytest.raises(InvalidArgumentError):
        client.run("w", handler="dalfleet.handlers:echo", **kwargs)


def test_results_are_recorded_for_health(client: Client) -> None:
    members = deployed(client, 3)

    def handler(agent: Agent, task: Task) -> str:
        if agent.agent_id == members[1]:
            raise ValueError("nope")
        return "fine"

    client.run("w", handler=handler)
    health = client.health("w")
    assert [(m.completed_tasks, m.failed_tasks, m.pending_tasks) for m in health.members] == [
        (1, 0, 0),
        (0, 1, 0),
        (1, 0, 0),
    ]
    assert all(m.last_result_at is not None for m in health.members)


def test_terminated_members_are_errors_not_executed(client: Client) -> None:
    members = deployed(client, 2)
    client.coordinator.terminate([members[0]])
    ran: list[str] = []
    [report] = client.run("w", handler=lambda agent, task: ran.append(agent.agent_id))
    assert ran == [members[1]]
    assert report.errors == (f"{members[0]}: agent '{members[0]}' is terminated",)


def test_run_with_a_handler_from_inside_an_event_loop(base: Path) -> None:
    # As in a Jupyter notebook: run() is called while a loop is running.
    fleet.create_from_mold("w", "worker", 3, base)
    fleet.deploy("w", "go", base)

    async def main() -> int:
        [report] = fleet.run("w", base, handler="dalfleet.handlers:sleep")
        return report.members_dispatched

    assert asyncio.run(main()) == 3


def test_run_reaches_agents_created_by_another_client(base: Path) -> None:
    with Client.for_base(base) as first:
        first.create_from_mold("w", "worker", 3)
        first.deploy("w", "go")
    with Client.for_base(base) as second:
        [report] = second.run("w", handler="dalfleet.handlers:echo")
    assert report.members_dispatched == 3


def test_sync_handlers_are_bounded_and_fill_every_slot(client: Client) -> None:
    deployed(client, 30)
    lock = threading.Lock()
    active = [0, 0]

    def handler(agent: Agent, task: Task) -> str:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        threading.Event().wait(0.02)
        with lock:
            active[0] -= 1
        return agent.agent_id

    [report] = client.run("w", handler=handler, concurrency=4)
    assert report.errors == ()
    assert active[1] == 4
    assert [o.result for o in report.outcomes] == [o.agent_id for o in report.outcomes]


def test_a_sync_handler_returning_a_coroutine_is_awaited_within_the_bound(client: Client) -> None:
    deployed(client, 12)
    lock = threading.Lock()
    active = [0, 0]

    async def finish(agent_id: str) -> str:
        await asyncio.sleep(0.01)
        with lock:
            active[0] -= 1
        if agent_id.endswith(("0", "5")):
            raise ValueError("late failure")
        return agent_id

    def handler(agent: Agent, task: Task) -> Any:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        return finish(agent.agent_id)

    [report] = client.run("w", handler=handler, concurrency=3)
    assert active[1] <= 3
    for outcome in report.outcomes:
        if outcome.agent_id.endswith(("0", "5")):
            assert not outcome.ok and "late failure" in (outcome.error or "")
        else:
            assert outcome.ok and outcome.result == outcome.agent_id


def test_ctrl_c_in_a_sync_handler_stops_the_run_and_starts_nothing_more(client: Client) -> None:
    deployed(client, 20)
    calls = [0]
    lock = threading.Lock()

    def handler(agent: Agent, task: Task) -> None:
        with lock:
            calls[0] += 1
            first = calls[0] == 1
        if first:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.run("w", handler=handler, concurrency=1)
    assert calls[0] == 1
    # Nothing ran, so nothing was recorded: every task is still there to run.
    counts = client.coordinator.task_counts(client.get("w").member_ids)
    assert counts.completed == 0 and counts.failed == 0


def test_a_raising_outcome_callback_does_not_stop_a_batch_of_sync_handlers() -> None:
    from dalfleet.coordinator import ClaimedTask
    from dalfleet.executor import LocalExecutor
    from dalfleet.models import AgentSpec

    claimed = [
        ClaimedTask(Agent(f"a{i}", AgentSpec(f"n{i}")), Task(f"t{i}", "d"), "w", 0.0, 1)
        for i in range(6)
    ]
    seen: list[str] = []

    def on_outcome(outcome: Any) -> None:
        seen.append(outcome.task_id)
        raise RuntimeError("callback failed")

    outcomes, unfinished = LocalExecutor().execute(
        claimed, lambda agent, task: task.task_id, concurrency=2, on_outcome=on_outcome
    )
    assert [o.result for o in outcomes] == [f"t{i}" for i in range(6)]
    assert unfinished == [] and sorted(seen) == sorted(o.task_id for o in outcomes)
