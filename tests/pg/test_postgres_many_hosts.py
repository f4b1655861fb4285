"""Many hosts on one PostgreSQL database: processes in different directories, many
concurrent writers, workers killed mid-task, a server restart during a drain.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="needs 'dalfleet[postgres]' (psycopg)")

from dalfleet.client import Client
from dalfleet.coordinator.base import TaskCounts, TaskState
from dalfleet.store.postgres import PostgresBackend
from tests.conftest import WORKER_MOLD
from tests.postgres_server import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DALFLEET_URL"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dalfleet", *args],
        cwd=cwd,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_two_hosts_in_different_directories_share_one_url(pg_url: str, tmp_path: Path) -> None:
    host_a, host_b = tmp_path / "a", tmp_path / "b"
    (host_a / "mold").mkdir(parents=True)
    (host_a / "mold" / "worker.mold.dal").write_text(WORKER_MOLD, encoding="utf-8")
    host_b.mkdir()
    created = _cli(host_a, "--url", pg_url, "create", "w", "--from-mold", "worker", "--count", "2")
    assert created.returncode == 0, created.stderr
    assert "Fleet 'w' created with 2 agents from mold worker" in created.stdout

    # The flag may come after the subcommand; DALFLEET_URL works; the flag wins over it.
    added = _cli(host_b, "add-member", "w", "agent-on-b", "--url", pg_url)
    assert added.returncode == 0, added.stderr
    deployed = _cli(host_b, "deploy", "w", "Process", "logs", env=_env(DALFLEET_URL=pg_url))
    assert deployed.returncode == 0, deployed.stderr
    shown = _cli(
        host_a,
        "show",
        "w",
        "--json",
        "--url",
        pg_url,
        env=_env(DALFLEET_URL="postgresql://nobody@127.0.0.1:1/nothing"),
    )
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["member_ids"][-1] == "agent-on-b" and len(doc["member_ids"]) == 3
    assert doc["last_deployed_task"] == "Process logs"
    listed = _cli(host_b, "list", env=_env(DALFLEET_URL=pg_url))
    assert "  w  (3 agents)" in listed.stdout
    # A run on one host queues tasks that a watcher on the other host sees.
    assert _cli(host_b, "run", "w", "--url", pg_url).returncode == 0
    health = json.loads(_cli(host_a, "--url", pg_url, "health", "w", "--json").stdout)
    assert (health["pending_tasks"], health["running_tasks"]) == (3, 0)
    assert (health["completed_tasks"], health["failed_tasks"]) == (0, 0)
    # With a URL nothing is written under .dal/ on either host.
    assert [p.name for p in host_a.iterdir()] == ["mold"] and list(host_b.iterdir()) == []
    # Without it, each directory is its own project again.
    assert "No fleets" in _cli(host_b, "list").stdout


_ADDER = """
import sys
from dalfleet.client import Client
url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Client.from_url(url) as client:
    for i in range(n):
        client.add_member("w", f"{who}-{i}")
"""


def test_six_processes_add_fifty_members_each_and_lose_none(pg_url: str, tmp_path: Path) -> None:
    with Client.from_url(pg_url) as client:
        client.create("w")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ADDER, pg_url, f"p{p}", "50"],
            cwd=tmp_path,
            env=_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(6)
    ]
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    finally:
        _kill(procs)
    with Client.from_url(pg_url) as client:
        members = client.get("w").member_ids
    assert len(members) == len(set(members)) == 300
    for p in range(6):  # each writer's adds landed in its own order
        mine = [m for m in members if m.startswith(f"p{p}-")]
        assert mine == [f"p{p}-{i}" for i in range(50)]


def _kill(procs: Sequence[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


HANDLERS = """
import os, pathlib, time

def work(agent, task):
    hang = os.environ.get("HANG_DIR")
    if hang:
        # The victim: say which task it holds, then never finish it.
        (pathlib.Path(hang) / agent.agent_id).write_text(str(os.getpid()))
        time.sleep(3600)
    time.sleep(float(os.environ.get("DELAY", "0.02")))
    return {"pid": os.getpid(), "agent": agent.agent_id}
"""


def _project(tmp_path: Path, url: str, members: int) -> tuple[Path, list[str]]:
    """A host directory with the handler module, and a fleet with one queued task each."""
    host = tmp_path / "host"
    (host / "mold").mkdir(parents=True)
    (host / "mold" / "worker.mold.dal").write_text(WORKER_MOLD, encoding="utf-8")
    (host / "pg_handlers.py").write_text(HANDLERS, encoding="utf-8")
    with Client.from_url(url, base=host) as client:
        ids = client.create_from_mold("w", "worker", members, params={"env": "t"}).member_ids
        client.deploy("w", "Process logs")
        client.run("w")  # no handler: enqueue only
    return host, list(ids)


@contextmanager
def _workers(
    host: Path, url: str, count: int, *extra: str, **env: str
) -> Iterator[list[subprocess.Popen[str]]]:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dalfleet",
                "worker",
                "w",
                "--handler",
                "pg_handlers:work",
                *extra,
            ],
            cwd=host,
            env=_env(DALFLEET_URL=url, PYTHONPATH=f"{host}{os.pathsep}{ROOT}", **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        yield procs
    finally:
        _kill(procs)


def _stop(procs: Sequence[subprocess.Popen[str]]) -> None:
    """SIGTERM (a clean stop), then check every worker exited 0."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err


def _wait_until(
    what: str, done: Callable[[], bool], procs: Sequence[subprocess.Popen[str]]
) -> None:
    deadline = time.monotonic() + 90
    while not done():
        for proc in procs:
            assert proc.poll() is None, f"a worker exited early: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def test_three_workers_one_killed_mid_task_every_task_completes(
    pg_url: str, tmp_path: Path
) -> None:
    host, ids = _project(tmp_path, pg_url, members=12)
    hang = tmp_path / "hang"
    hang.mkdir()
    lease = ("--lease", "1.5")
    with (
        PostgresBackend(pg_url) as watcher,
        _workers(host, pg_url, 1, *lease, "--concurrency", "1", HANG_DIR=str(hang)) as victims,
    ):
        _wait_until("the victim holds a task", lambda: any(hang.iterdir()), victims)
        (marker,) = hang.iterdir()
        with _workers(host, pg_url, 2, *lease) as others:
            os.kill(victims[0].pid, signal.SIGKILL)
            victims[0].wait(timeout=30)
            _wait_until(
                "every task completed",
                lambda: watcher.coordinator.task_counts(ids).completed == 12,
                others,
            )
            _stop(others)
        records = [r for agent_id in ids for r in watcher.coordinator.tasks(agent_id)]
    assert len(records) == 12
    assert all(r.state is TaskState.COMPLETED for r in records)
    (taken_over,) = [r for r in records if r.agent_id == marker.name]
    assert taken_over.attempts == 2
    assert taken_over.result["pid"] != victims[0].pid
    assert all(r.attempts == 1 for r in records if r.agent_id != marker.name)


def test_a_server_restart_during_a_drain_loses_no_task(
    pg_server: PostgresServer, pg_url: str, tmp_path: Path
) -> None:
    host, ids = _project(tmp_path, pg_url, members=40)
    with (
        PostgresBackend(pg_url) as watcher,
        _workers(host, pg_url, 2, "--lease", "5", "--concurrency", "2", DELAY="0.1") as procs,
    ):
        _wait_until(
            "the drain started",
            lambda: watcher.coordinator.task_counts(ids).completed >= 5,
            procs,
        )
        before = watcher.coordinator.task_counts(ids)
        pg_server.restart()
        _wait_until(
            "every task completed",
            lambda: watcher.coordinator.task_counts(ids).completed == 40,
            procs,
        )
        _stop(procs)
        counts = watcher.coordinator.task_counts(ids)
    assert before.completed < 40  # the restart did cut the drain
    assert counts == TaskCounts(completed=40)
