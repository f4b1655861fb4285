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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="needs 'dalfleet[postgres]' (psycopg)")

from dalfleet.client import Client
from dalfleet.coordinator.base import TaskState
from dalfleet.models import AgentSpec, Task
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


def _seed(url: str, agents: int, tasks_each: int, tmp_path: Path) -> tuple[list[str], Path]:
    with PostgresBackend(url) as backend:
        ids = backend.coordinator.spawn([AgentSpec(name=f"w_{i}") for i in range(agents)])
        for n in range(tasks_each):
            backend.coordinator.dispatch(ids, Task("t", f"job {n}", fleet="w"))
    agents_file = tmp_path / "agents.txt"
    agents_file.write_text("\n".join(ids), encoding="utf-8")
    return ids, agents_file


@contextmanager
def _workers(
    url: str, agents_file: Path, count: int, *extra: str
) -> Iterator[list[subprocess.Popen[str]]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.pg.pg_worker", url, str(agents_file), *extra],
            cwd=ROOT,
            env=_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        yield procs
    finally:
        _kill(procs)


def _wait_exit(procs: Sequence[subprocess.Popen[str]]) -> None:
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err


def test_three_workers_one_killed_mid_task_every_task_completes(
    pg_url: str, tmp_path: Path
) -> None:
    ids, agents_file = _seed(pg_url, agents=6, tasks_each=2, tmp_path=tmp_path)
    hang = tmp_path / "hang"
    hang.mkdir()
    lease = ("--lease", "1.5")
    with _workers(pg_url, agents_file, 1, *lease, "--hang-dir", str(hang)) as victims:
        # The victim holds a task; then the others start, and the victim is killed.
        deadline = time.monotonic() + 60
        while not list(hang.iterdir()):
            assert victims[0].poll() is None, victims[0].stderr
            assert time.monotonic() < deadline, "the victim never claimed a task"
            time.sleep(0.05)
        (marker,) = hang.iterdir()
        lost_task = marker.name
        with _workers(pg_url, agents_file, 2, *lease, "--delay", "0.05") as others:
            os.kill(victims[0].pid, signal.SIGKILL)
            victims[0].wait(timeout=30)
            _wait_exit(others)
    with PostgresBackend(pg_url) as backend:
        records = [r for agent_id in ids for r in backend.coordinator.tasks(agent_id)]
    assert len(records) == 12
    assert all(r.state is TaskState.COMPLETED for r in records)
    (taken_over,) = [r for r in records if r.task_id == lost_task]
    assert taken_over.attempts == 2
    assert taken_over.result["pid"] != victims[0].pid
    assert all(r.attempts == 1 for r in records if r.task_id != lost_task)


def test_a_server_restart_during_a_drain_loses_no_task(
    pg_server: PostgresServer, pg_url: str, tmp_path: Path
) -> None:
    ids, agents_file = _seed(pg_url, agents=8, tasks_each=5, tmp_path=tmp_path)
    with (
        PostgresBackend(pg_url) as watcher,
        _workers(pg_url, agents_file, 2, "--lease", "5", "--delay", "0.05") as procs,
    ):
        deadline = time.monotonic() + 60
        while watcher.coordinator.task_counts(ids).completed < 5:
            assert time.monotonic() < deadline, "the drain never started"
            time.sleep(0.05)
        pg_server.restart()
        _wait_exit(procs)
        counts = watcher.coordinator.task_counts(ids)
    assert counts.completed == 40 and counts.total == 40
