"""The Ray coordinator (SPEC §5 [beyond]) on a real local Ray cluster.

The conformance suite of tests/test_coordinator.py runs again here against
RayCoordinator: its test functions are collected a second time, with the
``kind``/``make``/``coord`` fixtures below (one fresh Ray namespace per test).
Then what only Ray does: a bounded set of detached host actors, state shared by
every driver of a namespace, agents that outlive the driver.
"""

from __future__ import annotations

import inspect
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import ray

import dalfleet.fleet as fleet
from dalfleet import Agent, Client, Task
from dalfleet.coordinator.ray import HOST_NAME, RayCoordinator, host_of
from dalfleet.errors import CoordinatorError, InvalidArgumentError
from dalfleet.models import AgentState
from dalfleet.store.memory import MemoryStore
from tests import test_coordinator as conformance

HOSTS = 4
REPO = Path(__file__).resolve().parent.parent

# The conformance tests, collected again in this module with the fixtures below
# (the memory-vs-local parity machine stays theirs).
globals().update(
    {
        name: test
        for name, test in vars(conformance).items()
        if name.startswith("test_") and inspect.isfunction(test)
    }
)
specs = conformance.specs
TASK = conformance.TASK


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray cluster for this module (``address="local"``: never someone else's)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def shared_namespace(cluster: None) -> Iterator[str]:
    """The Ray namespace of this module's tests; its host actors are killed at the end."""
    name = f"dalfleet-test-{uuid.uuid4().hex[:12]}"
    yield name
    RayCoordinator(namespace=name).shutdown_hosts()


@pytest.fixture
def namespace(shared_namespace: str) -> str:
    """The module's namespace with empty host actors: every test starts from nothing.

    The hosts are reset, not remade, between tests: starting an actor's process is
    what costs (about a second for four), and the conformance suite is long.
    """
    handles = [
        ray.get_actor(name, namespace=shared_namespace) for name in host_actors(shared_namespace)
    ]
    ray.get([h.reset.remote() for h in handles])
    return shared_namespace


@pytest.fixture
def kind() -> str:
    return "ray"


@pytest.fixture
def make(namespace: str) -> Iterator[Callable[..., RayCoordinator]]:
    made: list[RayCoordinator] = []

    def factory(trust_level: str = "sandboxed") -> RayCoordinator:
        coord = RayCoordinator(namespace=namespace, hosts=HOSTS, trust_level=trust_level)
        made.append(coord)
        return coord

    yield factory
    for coord in made:
        coord.close()


@pytest.fixture
def coord(make: Callable[..., RayCoordinator]) -> RayCoordinator:
    return make()


def host_actors(namespace: str) -> list[str]:
    """Names of the named actors living in ``namespace``."""
    return sorted(
        entry["name"]
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == namespace
    )


def kill_host(namespace: str, index: int) -> None:
    """Kill host actor ``index`` and wait until the cluster has forgotten its name."""
    name = HOST_NAME.format(index=index)
    ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
    # A deadline on an observed condition, not a guess: the kill is asynchronous.
    event = threading.Event()
    for _ in range(200):
        if name not in host_actors(namespace):
            return
        event.wait(0.05)
    pytest.fail(f"host actor {name} did not go away")


# -- where agents live ----------------------------------------------------------------


def test_agents_live_in_a_bounded_set_of_host_actors(coord: RayCoordinator, namespace: str) -> None:
    ids = coord.spawn(specs(200))
    hosts = [HOST_NAME.format(index=i) for i in range(HOSTS)]
    assert host_actors(namespace) == hosts
    assert Counter(host_of(i, HOSTS) for i in ids) == {i: 50 for i in range(HOSTS)}  # round-robin
    coord.spawn(specs(200))
    assert host_actors(namespace) == hosts  # 400 agents, still four actors
    assert len(coord.agent_ids(AgentState.ALIVE)) == 400


def test_tasks_live_on_the_host_of_their_agent(coord: RayCoordinator) -> None:
    ids = coord.spawn(specs(20))
    out = coord.dispatch(ids, TASK)
    for agent_id in ids:
        task = out[agent_id]
        assert isinstance(task, Task) and task.task_id.startswith("task_")
        assert host_of(task.task_id, HOSTS) == host_of(agent_id, HOSTS)


def test_a_second_coordinator_sees_the_state_of_the_first(
    make: Callable[..., RayCoordinator],
) -> None:
    first, second = make(), make()
    ids = first.spawn(specs(8))
    first.dispatch(ids, TASK)
    assert second.agent_ids() == ids
    claimed = second.claim(ids, "w", 8)
    assert sorted(c.agent.agent_id for c in claimed) == sorted(ids)
    for c in claimed:
        second.finish(c.task.task_id, ok=True, result=c.agent.name)
    assert [s.completed_tasks for s in first.status(ids).values()] == [1] * 8
    first.terminate(ids[:2])
    assert [a.state for a in second.agents(ids[:3]).values()] == [
        AgentState.TERMINATED,
        AgentState.TERMINATED,
        AgentState.ALIVE,
    ]


def test_every_driver_of_a_namespace_uses_the_same_host_count(
    coord: RayCoordinator, namespace: str
) -> None:
    coord.spawn(specs(1))
    with pytest.raises(CoordinatorError, match=r"on 4 host actors, not 3: .*hosts=4"):
        RayCoordinator(namespace=namespace, hosts=3).agent_ids()
    assert len(host_actors(namespace)) == HOSTS  # no stray host was made


def test_claims_across_hosts_are_oldest_first_and_release_the_surplus(
    coord: RayCoordinator,
) -> None:
    ids = coord.spawn(specs(8))  # two per host
    order = [coord.dispatch([a], TASK)[a] for a in reversed(ids)]
    taken = coord.claim(ids, "w", 3)
    assert [c.task for c in taken] == order[:3]
    assert sum(s.pending_tasks for s in coord.status(ids).values()) == 5  # surplus back
    assert [c.task for c in coord.claim(ids, "w", 10)] == order[3:]


# -- failures -------------------------------------------------------------------------


def test_a_dead_host_is_a_coordinator_error_then_is_replaced(
    coord: RayCoordinator, namespace: str
) -> None:
    ids = coord.spawn(specs(8))
    victim = host_of(ids[0], HOSTS)
    kill_host(namespace, victim)
    with pytest.raises(CoordinatorError, match=r"host actor in Ray namespace .* is gone"):
        coord.status(ids)
    # The next call makes an empty host in its place: its agents are lost, no others.
    lost = {i for i in ids if host_of(i, HOSTS) == victim}
    status = coord.status(ids)
    assert {i for i, s in status.items() if s.state is AgentState.UNKNOWN} == lost
    assert len(host_actors(namespace)) == HOSTS


def test_spawn_leaves_no_alive_agent_when_a_host_fails(
    coord: RayCoordinator, namespace: str
) -> None:
    assert coord.agent_ids() == []  # connected: the handles are held
    kill_host(namespace, 2)
    with pytest.raises(CoordinatorError, match="spawn failed; the agents spawned so far"):
        coord.spawn(specs(8))
    assert coord.agent_ids(AgentState.ALIVE) == []
    assert len(coord.agent_ids(AgentState.TERMINATED)) == 6  # 8 specs, 2 for the dead host


def test_hosts_must_be_a_positive_integer() -> None:
    for bad in (0, -1, True, 2.0):
        with pytest.raises(InvalidArgumentError, match="hosts must be a positive integer"):
            RayCoordinator(hosts=bad)  # type: ignore[arg-type]


def test_without_ray_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(CoordinatorError, match=r"needs Ray: pip install 'dalfleet\[ray\]'"):
        RayCoordinator()


def test_the_core_package_imports_without_ray() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import dalfleet, dalfleet.fleet, dalfleet.coordinator, dalfleet.coordinator.ray\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=_env())


# -- through the fleet API --------------------------------------------------------------


def test_a_fleet_runs_on_ray_end_to_end(base: Path, namespace: str) -> None:
    client = Client(MemoryStore(), RayCoordinator(namespace=namespace), base=base)
    members = list(client.create_from_mold("w", "worker", 6).member_ids)
    client.deploy("w", "do it")

    def handler(agent: Agent, task: Task) -> str:
        return f"{agent.name}:{task.description}"

    [report] = client.run("w", handler=handler)
    assert report.ok and report.members_dispatched == 6
    assert [o.result for o in report.outcomes] == [f"w_{i}:do it" for i in range(6)]

    [queued] = client.run("w")  # enqueue only; a worker drains it
    assert queued.members_dispatched == 6 and not queued.executed
    stats = client.work("w", handler, once=True)
    assert (stats.executed, stats.succeeded, stats.failed) == (6, 6, 0)

    health = client.health("w")
    assert health.status == "ok" and health.alive_count == 6
    assert [m.completed_tasks for m in health.members] == [2] * 6

    client.scale("w", 2)
    states = client.coordinator.status(members)
    assert [s.state for s in states.values()] == [AgentState.ALIVE] * 2 + [
        AgentState.TERMINATED
    ] * 4
    assert client.health("w").member_count == 2
    client.close()


def test_handlers_run_in_ray_workers_not_the_driver(base: Path, namespace: str) -> None:
    client = Client(MemoryStore(), RayCoordinator(namespace=namespace), base=base)
    members = list(client.create_from_mold("w", "worker", 8).member_ids)
    client.deploy("w", "where am I")
    bad = members[3]

    def handler(agent: Agent, task: Task) -> int:
        import os

        if agent.agent_id == bad:
            raise RuntimeError("this member fails")
        return os.getpid()

    [report] = client.run("w", handler=handler)
    assert [o.agent_id for o in report.outcomes] == members
    assert report.errors == (f"{bad}: RuntimeError: this member fails",)
    pids = {o.result for o in report.outcomes if o.ok}
    assert len(report.outcomes) == 8 and report.members_dispatched == 7
    assert os.getpid() not in pids  # executed on the cluster
    health = client.health("w")
    assert sum(m.completed_tasks for m in health.members) == 7
    assert sum(m.failed_tasks for m in health.members) == 1
    client.close()


def test_a_handler_by_name_and_a_timeout_on_the_cluster(base: Path, namespace: str) -> None:
    client = Client(MemoryStore(), RayCoordinator(namespace=namespace), base=base)
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
    client.close()


def test_the_plain_functions_use_a_configured_ray_coordinator(base: Path, namespace: str) -> None:
    coordinator = RayCoordinator(namespace=namespace)
    with fleet.using(store=MemoryStore(), coordinator=coordinator, base=base):
        members = list(fleet.create_from_mold("w", "worker", 3).member_ids)
        assert fleet.health("w").alive_count == 3
    assert list(coordinator.agents(members)) == members


# -- agents outlive the driver ------------------------------------------------------------

DRIVER = """
import sys
from dalfleet.coordinator.ray import RayCoordinator
from dalfleet.models import AgentSpec, Task

coord = RayCoordinator(address=sys.argv[1], namespace="outlive")
if sys.argv[2] == "spawn":
    ids = coord.spawn([AgentSpec(f"w_{i}") for i in range(5)])
    coord.dispatch(ids, Task("t", "outlive the driver"))
    print("ids", *ids)
else:
    ids = coord.agent_ids()
    status = coord.status(ids)
    print("ids", *ids)
    print("pending", sum(s.pending_tasks for s in status.values()))
    coord.shutdown_hosts()  # so that the cluster stops quickly
"""


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


def _drive(address: str, env: dict[str, str], action: str) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, address, action],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = (line.split() for line in done.stdout.splitlines() if line.strip())
    return {words[0]: words[1:] for words in lines}


@pytest.mark.slow
def test_agents_outlive_the_driver_that_spawned_them(
    external_cluster: tuple[str, dict[str, str]],
) -> None:
    address, env = external_cluster
    spawned = _drive(address, env, "spawn")["ids"]  # this driver process has exited
    assert len(spawned) == 5
    seen = _drive(address, env, "list")
    assert seen["ids"] == spawned
    assert seen["pending"] == ["5"]

    # The command line on the same cluster: agents in Ray, the fleet file in the project.
    project = Path(tempfile.mkdtemp(prefix="dfcli"))
    try:
        shutil.copy(REPO / "dalfleet" / "samples" / "worker.mold.dal", project)

        def cli(*args: str) -> list[str]:
            done = subprocess.run(
                [sys.executable, "-m", "dalfleet", "--ray", address, *args],
                capture_output=True,
                text=True,
                env=env,
                cwd=project,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            assert done.stderr == ""  # Ray's own log lines stay out of the output
            return done.stdout.splitlines()

        assert cli("create", "w", "--from-mold", "worker", "--count", "2") == [
            "Fleet 'w' created with 2 agents from mold worker"
        ]
        cli("deploy", "w", "hello")
        assert cli("run", "w") == ["Fleet 'w': dispatched to 2 member(s)"]
        assert "  Alive: 2/2  Pending tasks: 2  Completed tasks: 0  Failed tasks: 0" in cli(
            "health", "w"
        )
        assert not (project / ".dal" / "agent_runtime.db").exists()
    finally:
        shutil.rmtree(project, ignore_errors=True)
