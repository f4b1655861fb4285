"""The long-lived worker: drains queued tasks, survives failures, stops without losing any."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import dalfleet.fleet as fleet
from dalfleet import Agent, Client, FleetNotFoundError, Task

ROOT = Path(__file__).resolve().parents[1]


def env_with(*paths: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *map(str, paths)])
    return env


def queued(base: Path, n: int) -> list[str]:
    members = fleet.create_from_mold("w", "worker", n, base).member_ids
    fleet.deploy("w", "process logs", base)
    fleet.run("w", base)
    return members


def test_worker_once_drains_the_queue_and_records_results(base: Path) -> None:
    members = queued(base, 5)
    stats = fleet.work("w", "dalfleet.handlers:echo", base, once=True)
    assert (stats.executed, stats.succeeded, stats.failed, stats.released) == (5, 5, 0, 0)
    assert sorted(o.agent_id for o in stats.outcomes) == sorted(members)
    health = fleet.health("w", base)
    assert [(m.pending_tasks, m.completed_tasks) for m in health.members] == [(0, 1)] * 5
    again = fleet.work("w", "dalfleet.handlers:echo", base, once=True)
    assert again.executed == 0


def test_worker_survives_a_raising_handler(base: Path) -> None:
    members = queued(base, 4)

    def handler(agent: Agent, task: Task) -> str:
        if agent.agent_id in members[:2]:
            raise RuntimeError("boom")
        return "ok"

    stats = fleet.work("w", handler, base, once=True)
    assert (stats.executed, stats.succeeded, stats.failed) == (4, 2, 2)
    failed = {o.agent_id for o in stats.outcomes if not o.ok}
    assert failed == set(members[:2])
    health = fleet.health("w", base)
    assert sum(m.failed_tasks for m in health.members) == 2


def test_worker_serves_members_added_while_it_runs(base: Path) -> None:
    queued(base, 1)
    with Client.for_base(base) as client:
        client.work("w", "dalfleet.handlers:echo", once=True)
        client.add_from_mold("w", "worker", 2)
        client.run("w")
        stats = client.work("w", "dalfleet.handlers:echo", once=True)
    assert stats.executed == 3


def test_stopping_puts_unfinished_tasks_back(base: Path) -> None:
    queued(base, 3)
    stop = threading.Event()
    entered = threading.Semaphore(0)

    async def handler(agent: Agent, task: Task) -> None:
        import asyncio

        entered.release()
        await asyncio.sleep(60)

    result: list[object] = []
    with Client.for_base(base) as client:
        thread = threading.Thread(
            target=lambda: result.append(client.work("w", handler, stop=stop, poll_interval=0.05))
        )
        thread.start()
        for _ in range(3):
            assert entered.acquire(timeout=20)
        stop.set()
        thread.join(timeout=20)
        assert not thread.is_alive()
    [stats] = result
    assert stats.executed == 0 and stats.released == 3  # type: ignore[attr-defined]
    health = fleet.health("w", base)
    assert [m.pending_tasks for m in health.members] == [1, 1, 1]
    assert fleet.work("w", "dalfleet.handlers:echo", base, once=True).executed == 3


def test_worker_max_tasks(base: Path) -> None:
    queued(base, 5)
    stats = fleet.work("w", "dalfleet.handlers:echo", base, max_tasks=2, concurrency=1)
    assert stats.executed == 2
    assert sum(m.pending_tasks for m in fleet.health("w", base).members) == 3


def test_worker_for_an_unknown_fleet(base: Path) -> None:
    with pytest.raises(FleetNotFoundError):
        fleet.work("nope", "dalfleet.handlers:echo", base, once=True)


@pytest.mark.slow  # other processes
def test_a_worker_process_drains_tasks_enqueued_by_another_process(base: Path) -> None:
    fleet.create_from_mold("w", "worker", 4, base)
    fleet.deploy("w", "from afar", base)
    enqueue = subprocess.run(
        [
            sys.executable,
            "-c",
            "import dalfleet.fleet as f; print(f.run('w')[0].members_dispatched)",
        ],
        cwd=base,
        env=env_with(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert enqueue.returncode == 0, enqueue.stderr
    assert enqueue.stdout.strip() == "4"
    script = textwrap.dedent(
        """
        import dalfleet.fleet as f
        s = f.work("w", "dalfleet.handlers:echo", once=True)
        print(s.executed, s.succeeded)
        """
    )
    worker = subprocess.run(
        [sys.executable, "-c", script],
        cwd=base,
        env=env_with(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 0, worker.stderr
    assert worker.stdout.split() == ["4", "4"]
    assert [m.completed_tasks for m in fleet.health("w", base).members] == [1, 1, 1, 1]


ROLE_HANDLER = """
import os, pathlib, time

def handle(agent, task):
    if os.environ["ROLE"] == "stuck":
        pathlib.Path(os.environ["MARKER"]).touch()
        time.sleep(600)  # until SIGKILL
    return os.environ["ROLE"]
"""

WORKER_SCRIPT = """
import sys
import dalfleet.fleet as f
s = f.work("w", "rolemod:handle", lease=float(sys.argv[1]), max_tasks=1, poll_interval=0.05)
print(s.executed, s.succeeded, s.recovered, flush=True)
"""


@pytest.mark.slow
def test_a_killed_workers_task_is_taken_over_when_its_lease_expires(
    base: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Two real worker processes; the one running the task is SIGKILLed mid-task.
    lib = tmp_path_factory.mktemp("lib")
    (lib / "rolemod.py").write_text(ROLE_HANDLER, encoding="utf-8")
    members = queued(base, 1)
    marker = base / "started"
    lease = "2.0"

    def start(role: str) -> subprocess.Popen[str]:
        env = env_with(lib) | {"ROLE": role, "MARKER": str(marker)}
        return subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, lease],
            cwd=base,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    stuck = start("stuck")
    other: subprocess.Popen[str] | None = None
    try:
        for _ in range(600):  # the stuck worker has claimed and started the task
            if marker.exists() or stuck.poll() is not None:
                break
            threading.Event().wait(0.05)
        assert marker.exists(), stuck.communicate(timeout=10)
        other = start("taker")
        # Two lease periods: the stuck worker's heartbeat keeps its claim alive.
        with pytest.raises(subprocess.TimeoutExpired):
            other.wait(timeout=4.0)
        with Client.for_base(base) as client:
            (record,) = client.coordinator.tasks(members[0])
            assert (record.state, record.attempts) == ("running", 1)
        stuck.kill()
        stuck.wait(timeout=10)
        out, err = other.communicate(timeout=60)
        assert other.returncode == 0, err
        assert out.split() == ["1", "1", "1"]  # executed, succeeded, recovered
    finally:
        for proc in (stuck, other):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    with Client.for_base(base) as client:
        (record,) = client.coordinator.tasks(members[0])
    assert (record.state, record.result, record.attempts) == ("completed", "taker", 2)


def test_a_worker_serves_members_registered_from_elsewhere(base: Path) -> None:
    fleet.create("w", base)
    fleet.add_member("w", "agent_ext", base)
    fleet.deploy("w", "hello", base)
    [report] = fleet.run("w", base)
    assert report.members_dispatched == 1
    stats = fleet.work("w", "dalfleet.handlers:echo", base, once=True)
    assert [(o.agent_id, o.result) for o in stats.outcomes] == [
        ("agent_ext", {"agent": "agent_ext", "agent_id": "agent_ext", "task": "hello"})
    ]


def test_a_result_that_cannot_be_stored_as_json_is_kept_as_text(base: Path) -> None:
    queued(base, 1)
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    stats = fleet.work("w", lambda agent, task: deep, base, once=True)
    assert stats.succeeded == 1
    assert fleet.health("w", base).members[0].completed_tasks == 1


def test_the_cli_worker_takes_a_lease(base: Path) -> None:
    queued(base, 2)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dalfleet", "worker", "w", *args],
            cwd=base,
            env=env_with(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = cli("--handler", "dalfleet.handlers:echo", "--once", "--lease", "0")
    assert refused.returncode != 0 and "lease" in refused.stderr
    done = cli("--handler", "dalfleet.handlers:echo", "--once", "--lease", "5")
    assert done.returncode == 0, done.stderr
    with Client.for_base(base) as client:
        members = list(client.show("w").member_ids)  # type: ignore[union-attr]
        assert client.coordinator.task_counts(members).completed == 2


def test_a_stuck_handler_does_not_keep_a_stopped_worker_alive(
    base: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import signal

    lib = tmp_path_factory.mktemp("lib")
    (lib / "rolemod.py").write_text(ROLE_HANDLER, encoding="utf-8")
    members = queued(base, 1)
    marker = base / "started"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dalfleet", "worker", "w", "--handler", "rolemod:handle"],
        cwd=base,
        env=env_with(lib) | {"ROLE": "stuck", "MARKER": str(marker)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):
            if marker.exists() or proc.poll() is not None:
                break
            threading.Event().wait(0.05)
        assert marker.exists(), proc.communicate(timeout=10)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)  # the handler's thread is still asleep
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    with Client.for_base(base) as client:
        (record,) = client.coordinator.tasks(members[0])
    assert (record.state, record.attempts) == ("pending", 0)  # given back, attempt returned
