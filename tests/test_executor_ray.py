"""The Ray executor (SPEC §5 [beyond]) on a real local Ray cluster.

Ray is only where handlers run: state stays in the coordinator (memory or the
SQLite one here), so the same fleet runs on Ray or locally, and outcomes come
back from the cluster in batches, recorded with one ``finish_many`` per batch.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real processes (a Ray cluster, pytest runs)

ray = pytest.importorskip("ray", reason="the Ray executor needs the 'ray' extra")

import dalfleet.fleet as fleet  # noqa: E402
from dalfleet import Agent, Client, Task  # noqa: E402
from dalfleet.coordinator import FinishStatus, MemoryCoordinator, TaskOutcome  # noqa: E402
from dalfleet.errors import CoordinatorError  # noqa: E402
from dalfleet.executor.ray import RayExecutor  # noqa: E402
from dalfleet.store.memory import MemoryStore  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray cluster for this module (``address="local"``: never someone else's)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(params=["local", "memory"])
def client(request: pytest.FixtureRequest, base: Path, cluster: None) -> Iterator[Client]:
    executor = RayExecutor()
    c = (
        Client.in_memory(base, executor=executor)
        if request.param == "memory"
        else Client.for_base(base, executor=executor)
    )
    yield c
    c.close()


def test_a_fleet_runs_on_ray_end_to_end(client: Client) -> None:
    members = client.create_from_mold("w", "worker", 6).member_ids
    client.deploy("w", "do it")

    def handler(agent: Agent, task: Task) -> str:
        return f"{agent.name}:{task.description}"

    [report] = client.run("w", handler=handler)
    assert report.ok and report.members_dispatched == 6
    assert [o.result for o in report.outcomes] == [f"w_{i}:do it" for i in range(6)]

    [queued] = client.run("w")  # enqueue only; a worker drains it on the cluster
    assert queued.members_dispatched == 6 and not queued.executed
    stats = client.work("w", handler, once=True)
    assert (stats.executed, stats.succeeded, stats.failed) == (6, 6, 0)
    assert client.coordinator.task_counts(list(members)).completed == 12


def test_handlers_run_in_ray_workers_and_failures_are_recorded_once(client: Client) -> None:
    members = client.create_from_mold("w", "worker", 8).member_ids
    client.deploy("w", "where am I")
    bad = members[3]

    def handler(agent: Agent, task: Task) -> int:
        if agent.agent_id == bad:
            raise SystemExit("this member fails")
        return os.getpid()

    [report] = client.run("w", handler=handler)
    assert [o.agent_id for o in report.outcomes] == list(members)
    assert report.errors == (f"{bad}: SystemExit: this member fails",)
    assert os.getpid() not in {o.result for o in report.outcomes if o.ok}
    counts = client.coordinator.task_counts(list(members))
    assert (counts.completed, counts.failed, counts.running) == (7, 1, 0)


def test_a_handler_by_name_and_a_timeout_on_the_cluster(client: Client) -> None:
    client.create_from_mold("w", "worker", 3)
    client.deploy("w", "echo")
    [report] = client.run("w", handler="dalfleet.handlers:echo")
    assert sorted(o.result["agent"] for o in report.outcomes) == ["w_0", "w_1", "w_2"]

    async def slow(agent: Agent, task: Task) -> None:
        import asyncio

        await asyncio.sleep(30)

    [report] = client.run("w", handler=slow, timeout=0.2)
    assert {o.status for o in report.outcomes} == {"timeout"}
    assert len(report.errors) == 3


class CountingCoordinator(MemoryCoordinator):
    """Counts how outcomes are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.singles = 0

    def finish(self, outcome: TaskOutcome, worker: str) -> FinishStatus:
        self.singles += 1
        return super().finish(outcome, worker)

    def finish_many(self, outcomes: Sequence[TaskOutcome], worker: str) -> dict[str, FinishStatus]:
        self.batches.append(len(outcomes))
        return super().finish_many(outcomes, worker)


def test_outcomes_come_back_and_are_recorded_in_batches(base: Path, cluster: None) -> None:
    coordinator = CountingCoordinator()
    with Client(MemoryStore(), coordinator, base=base, executor=RayExecutor()) as client:
        client.create_from_mold("w", "worker", 40)
        client.deploy("w", "batch")
        [report] = client.run("w", handler="dalfleet.handlers:echo")
    assert report.members_dispatched == 40
    assert coordinator.singles == 0
    assert sum(coordinator.batches) == 40
    assert len(coordinator.batches) <= 2  # one per Ray batch (2 CPUs), at most


def test_the_plain_functions_use_a_configured_ray_executor(base: Path, cluster: None) -> None:
    with fleet.using(memory=True, base=base, executor=RayExecutor()):
        fleet.create_from_mold("w", "worker", 2)
        fleet.deploy("w", "hi")
        [report] = fleet.run("w", handler=lambda agent, task: os.getpid())
    assert os.getpid() not in {o.result for o in report.outcomes}


def test_without_ray_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(CoordinatorError, match=r"needs Ray: pip install 'dalfleet\[ray\]'"):
        RayExecutor()


def test_the_core_package_imports_without_ray() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import dalfleet, dalfleet.fleet, dalfleet.executor, dalfleet.executor.ray\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=_env())


# -- the CLI on an external cluster ---------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def external_cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """A one-node cluster from ``ray start --head --block``: (address, env for drivers).

    Stopped by signalling that ``ray start`` (it stops what it started), never with
    ``ray stop``, which would stop every Ray cluster of the machine.
    """
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="dfray")  # its own: Ray's socket paths must stay short
    # Token auth off for this private test cluster, for it and for its drivers alike.
    env = _env(RAY_AUTH_MODE="disabled")
    command = [
        str(Path(sys.executable).with_name("ray")),
        *("start", "--head", "--block", f"--port={port}", "--num-cpus=1"),
        *("--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"),
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        for line in proc.stdout:  # until it is up, or exits (end of output)
            seen.append(line)
            if "Ray runtime started" in line:
                break
        else:
            pytest.fail("ray start failed:\n" + "".join(seen[-20:]))
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
        yield f"127.0.0.1:{port}", env
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_the_cli_runs_handlers_on_a_cluster_and_keeps_state_in_the_project(
    external_cluster: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    address, env = external_cluster
    shutil.copy(REPO / "dalfleet" / "samples" / "worker.mold.dal", tmp_path)

    def cli(*args: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-m", "dalfleet", "--ray", address, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.splitlines()

    cli("create", "w", "--from-mold", "worker", "--count", "2")
    cli("deploy", "w", "hello")
    out = cli("run", "w", "--handler", "dalfleet.handlers:echo")
    assert any("2" in line for line in out)
    assert (tmp_path / ".dal" / "agent_runtime.db").is_file()  # state stays here
    with Client.for_base(tmp_path) as client:
        members = list(client.show("w").member_ids)  # type: ignore[union-attr]
        assert client.coordinator.task_counts(members).completed == 2
