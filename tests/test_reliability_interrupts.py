"""SPEC §5 / §9: a failure or an interrupt at any instant leaves no ghost.

A *ghost* is a fleet member the coordinator has terminated; an *orphan* is an
alive agent no fleet lists. Every attack here uses real parts: a second process
holding SQLite's write lock, and real ``SIGINT`` signals delivered to a process
in the middle of an operation. After each one the invariant is checked from
outside: every member of every fleet is alive, another process can take the
fleet-file lock and SQLite's write lock at once, and the interrupted process's
own next call works.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dalfleet.fleet as fleet
from dalfleet.client import Client
from dalfleet.coordinator import LocalCoordinator
from dalfleet.errors import CoordinatorError
from dalfleet.models import AgentState
from dalfleet.store import JsonFileStore
from tests.test_coordinator_local import python as start

# Holds SQLite's write lock (BEGIN IMMEDIATE) until a line arrives on stdin.
LOCK_HOLDER = """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("ROLLBACK")
"""


def client_for(base: Path, busy_timeout: float = 0.3) -> Client:
    coordinator = LocalCoordinator(base, busy_timeout=busy_timeout)
    return Client(JsonFileStore(base), coordinator, base=base)


def ghosts(base: Path) -> list[str]:
    """Members of some fleet that the coordinator does not have alive."""
    with client_for(base, busy_timeout=5) as client:
        members = [m for f in client.fleets().values() for m in f.member_ids]
        states = client.coordinator.status(members)
    return [m for m in members if states[m].state is not AgentState.ALIVE]


def orphans(base: Path) -> set[str]:
    with client_for(base, busy_timeout=5) as client:
        listed = {m for f in client.fleets().values() for m in f.member_ids}
        return set(client.coordinator.agent_ids(AgentState.ALIVE)) - listed


class HeldLock:
    """Another process holding the runtime database's write lock."""

    def __init__(self, base: Path) -> None:
        self.proc = start(LOCK_HOLDER, str(base / ".dal" / "agent_runtime.db"))

    def __enter__(self) -> HeldLock:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line == "locked\n", self.proc.communicate(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.communicate("go\n", timeout=30)
        assert self.proc.returncode == 0


def test_scale_down_with_the_database_locked_changes_nothing(tmp_path: Path) -> None:
    fleet.create_from_mold("w", "worker", 3, base=tmp_path)
    before = (tmp_path / ".dal" / "fleets.json").read_bytes()
    with (
        HeldLock(tmp_path),
        client_for(tmp_path) as client,
        pytest.raises(CoordinatorError, match="locked"),
    ):
        client.scale("w", 1)
    assert (tmp_path / ".dal" / "fleets.json").read_bytes() == before
    assert ghosts(tmp_path) == []
    assert orphans(tmp_path) == set()
    assert len(JsonFileStore(tmp_path).load()["w"].member_ids) == 3
    # Once the lock is gone the same command works and terminates the removed ones.
    with client_for(tmp_path) as client:
        removed = client.get("w").member_ids[1:]
        client.scale("w", 1)
        states = client.coordinator.status(list(removed))
    assert {s.state for s in states.values()} == {AgentState.TERMINATED}
    assert ghosts(tmp_path) == [] and orphans(tmp_path) == set()


def test_delete_teardown_with_the_database_locked_changes_nothing(tmp_path: Path) -> None:
    fleet.create_from_mold("v", "worker", 2, base=tmp_path)
    before = (tmp_path / ".dal" / "fleets.json").read_bytes()
    with (
        HeldLock(tmp_path),
        client_for(tmp_path) as client,
        pytest.raises(CoordinatorError, match="locked"),
    ):
        client.delete("v", teardown=True)
    assert (tmp_path / ".dal" / "fleets.json").read_bytes() == before
    assert fleet.list(base=tmp_path) == ["v"]
    assert ghosts(tmp_path) == [] and orphans(tmp_path) == set()


def test_scale_down_on_the_reference_runtime_with_the_database_locked_changes_nothing(
    tmp_path: Path,
) -> None:
    with Client.for_base(tmp_path, runtime="reference") as client:
        client.create_from_mold("w", "worker", 3)
    before = {p.name: p.read_bytes() for p in (tmp_path / ".dal").iterdir() if p.is_file()}
    with (
        HeldLock(tmp_path),
        Client.for_base(tmp_path, runtime="reference") as client,
    ):
        client.coordinator.inner.busy_timeout = 0.3  # type: ignore[attr-defined]
        with pytest.raises(CoordinatorError, match="locked"):
            client.scale("w", 1)
    after = {p.name: p.read_bytes() for p in (tmp_path / ".dal").iterdir() if p.is_file()}
    assert after["fleets.json"] == before["fleets.json"]
    assert after["agent_runtime.json"] == before["agent_runtime.json"]
    assert ghosts(tmp_path) == [] and orphans(tmp_path) == set()


def test_create_and_scale_up_with_the_database_locked_change_nothing(tmp_path: Path) -> None:
    fleet.create_from_mold("w", "worker", 1, base=tmp_path)
    before = (tmp_path / ".dal" / "fleets.json").read_bytes()
    with HeldLock(tmp_path), client_for(tmp_path) as client:
        with pytest.raises(CoordinatorError, match="locked"):
            client.scale("w", 4)
        with pytest.raises(CoordinatorError, match="locked"):
            client.create_from_mold("x", "worker", 2)
    assert (tmp_path / ".dal" / "fleets.json").read_bytes() == before
    assert ghosts(tmp_path) == [] and orphans(tmp_path) == set()


def test_a_terminate_failing_after_the_file_landed_leaves_orphans_and_says_so(
    tmp_path: Path,
) -> None:
    """The one failure left after the fleet file changed: the commit of the terminate.
    It is forced here by a coordinator whose terminate fails; the removed agents are
    then orphans (never ghosts) and the error names them and the way out."""

    class FailingTerminate(LocalCoordinator):
        def terminate(self, agent_ids: object) -> None:
            raise CoordinatorError("disk I/O error")

    fleet.create_from_mold("w", "worker", 3, base=tmp_path)
    coordinator = FailingTerminate(tmp_path)
    with (
        Client(JsonFileStore(tmp_path), coordinator, base=tmp_path) as client,
        pytest.raises(CoordinatorError, match=r"scaled to 1.*2 removed.*dalfleet gc"),
    ):
        client.scale("w", 1)
    assert ghosts(tmp_path) == []
    assert len(orphans(tmp_path)) == 2


# -- interrupts -------------------------------------------------------------------------

# Runs one operation with a real SIGINT sent to itself at the k-th Python call made
# inside dalfleet or sqlite3 (k from argv; 0 counts the calls without interrupting),
# then checks from inside the same process that nothing stays locked and that the
# client still works, and prints what it saw as JSON.
INTERRUPTER = r"""
    import fcntl, json, os, signal, sqlite3, sys
    from pathlib import Path
    import dalfleet.fleet as fleet
    from dalfleet.client import Client
    from dalfleet.coordinator import LocalCoordinator
    from dalfleet.store import JsonFileStore

    root, op = Path(sys.argv[1]), sys.argv[2]
    points = [int(k) for k in sys.argv[3].split(",")]
    ROOT = os.path.dirname(os.path.dirname(fleet.__file__))
    OPS = {
        "create": lambda c: c.create_from_mold("n", "worker", 3),
        "add": lambda c: c.add_from_mold("w", "worker", 2),
        "scale_up": lambda c: c.scale("w", 5),
        "scale_down": lambda c: c.scale("w", 1),
        "delete": lambda c: c.delete("w", teardown=True),
        "run": lambda c: c.run("w"),
    }
    calls = 0
    target = 0

    def tracer(frame, event, arg):
        global calls
        if event == "call":
            calls += 1
            if calls == target:
                os.kill(os.getpid(), signal.SIGINT)
        return None

    report = {}
    for k in points:
        base = root / f"{op}-{k}"
        fleet.create_from_mold("w", "worker", 3, base=base)
        fleet.deploy("w", "work", base=base)
        client = Client(JsonFileStore(base), LocalCoordinator(base, busy_timeout=5), base=base)
        calls, target = 0, k
        interrupted = False
        sys.settrace(tracer)
        try:
            OPS[op](client)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sys.settrace(None)
        # Nothing is held: another connection takes SQLite's write lock at once, and
        # another open file description takes the fleet file's lock at once.
        db = sqlite3.connect(base / ".dal" / "agent_runtime.db", timeout=0, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
        db.close()
        with open(base / ".dal" / "fleets.json.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The interrupted client's own next calls work.
        client.list()
        client.coordinator.agent_ids()
        client.create("after")
        client.delete("after")
        client.close()
        report[k] = {"calls": calls, "interrupted": interrupted}
    print(json.dumps(report))
"""


def interrupt(root: Path, op: str, points: list[int]) -> dict[str, dict[str, object]]:
    """Run ``op`` once per point in one child, interrupted at that call; its report."""
    proc = start(INTERRUPTER, str(root), op, ",".join(map(str, points)))
    out, err = proc.communicate(timeout=1200)
    assert proc.returncode == 0, f"{op}: {err}"
    report: dict[str, dict[str, object]] = json.loads(out)
    return report


OPERATIONS = ["create", "add", "scale_up", "scale_down", "delete", "run"]


def check_whole(base: Path, what: str) -> None:
    assert ghosts(base) == [], f"ghosts after {what}"
    JsonFileStore(base).load()  # the fleet file parses


def interrupt_points(tmp_path: Path, op: str, step: int) -> tuple[int, int]:
    """Interrupt ``op`` at every ``step``-th call; returns (calls, points covered)."""
    total = interrupt(tmp_path, op, [0])["0"]["calls"]
    assert isinstance(total, int) and total > 10
    points = list(range(1, total + 1, step))
    report = interrupt(tmp_path, op, points)
    for k in points:
        check_whole(tmp_path / f"{op}-{k}", f"{op} interrupted at call {k} of {total}")
    assert any(r["interrupted"] for r in report.values())
    return total, len(points)


@pytest.mark.parametrize("op", OPERATIONS)
def test_an_interrupt_at_sampled_points_leaves_no_ghost_and_no_lock(
    tmp_path: Path, op: str
) -> None:
    _total, covered = interrupt_points(tmp_path, op, step=97)
    assert covered >= 1


@pytest.mark.slow
@pytest.mark.parametrize("op", OPERATIONS)
def test_an_interrupt_at_every_point_leaves_no_ghost_and_no_lock(tmp_path: Path, op: str) -> None:
    total, covered = interrupt_points(tmp_path, op, step=1)
    print(f"{op}: {covered} interrupt points of {total} calls")


# -- orphans and gc ------------------------------------------------------------------------


def test_gc_terminates_only_agents_no_fleet_lists(tmp_path: Path) -> None:
    fleet.create_from_mold("keep", "worker", 2, base=tmp_path)
    fleet.create_from_mold("gone", "worker", 3, base=tmp_path)
    kept = JsonFileStore(tmp_path).load()["keep"].member_ids
    fleet.delete("gone", base=tmp_path)  # metadata only: its agents are orphans now
    found = orphans(tmp_path)
    assert len(found) == 3
    assert set(fleet.gc(base=tmp_path, dry_run=True)) == found
    assert orphans(tmp_path) == found  # a dry run terminates nothing
    assert set(fleet.gc(base=tmp_path)) == found
    assert orphans(tmp_path) == set()
    assert fleet.gc(base=tmp_path) == []
    assert ghosts(tmp_path) == []
    with client_for(tmp_path) as client:
        states = client.coordinator.status(list(kept))
    assert {s.state for s in states.values()} == {AgentState.ALIVE}


@pytest.mark.slow
def test_gc_after_interrupts_finds_what_they_left(tmp_path: Path) -> None:
    """The orphans interrupted scale-downs leave are exactly what gc terminates."""
    total = interrupt(tmp_path / "count", "scale_down", [0])["0"]["calls"]
    assert isinstance(total, int)
    points = list(range(1, total + 1))
    interrupt(tmp_path, "scale_down", points)
    left = 0
    for k in points:
        base = tmp_path / f"scale_down-{k}"
        left += len(orphans(base))
        fleet.gc(base=base)
        assert orphans(base) == set() and ghosts(base) == []
    assert left > 0  # some interrupt fell between the file write and the terminate


# Creates fleets until told to stop on stdin; prints how many.
CREATOR = """
    import sys, threading
    import dalfleet.fleet as fleet
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    print("ready", flush=True)
    n = 0
    while not stop.is_set():
        fleet.create_from_mold(f"c{n}", "worker", 20, base=sys.argv[1])
        n += 1
    print(n)
"""


def test_gc_never_takes_a_create_in_progress_elsewhere_for_orphans(tmp_path: Path) -> None:
    fleet.create("seed", base=tmp_path)
    proc = start(CREATOR, str(tmp_path))
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    sweeps = 0
    try:
        while sweeps < 30:
            assert fleet.gc(base=tmp_path) == []
            sweeps += 1
    finally:
        out, err = proc.communicate("stop\n", timeout=120)
    assert proc.returncode == 0, err
    assert int(out) > 0
    assert ghosts(tmp_path) == [] and orphans(tmp_path) == set()


def test_gc_command(tmp_path: Path) -> None:
    fleet.create_from_mold("batch", "worker", 2, base=tmp_path)
    fleet.delete("batch", base=tmp_path)
    found = orphans(tmp_path)

    def dalfleet(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        return subprocess.run(
            [sys.executable, "-m", "dalfleet", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    dry = dalfleet("gc", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert set(json.loads(dry.stdout)["orphans"]) == found
    assert orphans(tmp_path) == found
    done = dalfleet("gc")
    assert done.returncode == 0, done.stderr
    assert "2 orphaned agent(s) terminated" in done.stdout
    assert all(agent_id in done.stdout for agent_id in found)
    assert orphans(tmp_path) == set()
    assert dalfleet("gc").stdout == "No orphaned agents\n"
