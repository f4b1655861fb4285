"""LocalCoordinator specifics: SQLite on disk, shared by instances and processes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dalfleet.coordinator import FinishStatus, LocalCoordinator, TaskCounts, TaskOutcome
from dalfleet.coordinator.local import SCHEMA_VERSION
from dalfleet.errors import CoordinatorError
from dalfleet.models import AgentSpec, AgentState, Task

REPO = Path(__file__).resolve().parents[1]
TASK = Task("template", "Process daily logs")


def db_path(base: Path) -> Path:
    return base / ".dal" / "agent_runtime.db"


def specs(n: int) -> list[AgentSpec]:
    return [AgentSpec(f"w_{i}") for i in range(n)]


def python(code: str, *args: str) -> subprocess.Popen[str]:
    """Start ``code`` in a fresh interpreter that imports this checkout."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


# -- persistence and sharing ----------------------------------------------------


def test_database_lives_under_dot_dal(tmp_path: Path) -> None:
    with LocalCoordinator(tmp_path) as coord:
        coord.spawn(specs(1))
    assert db_path(tmp_path).is_file()
    assert coord.path == db_path(tmp_path)


def test_second_instance_sees_agents_tasks_and_events(tmp_path: Path) -> None:
    first = LocalCoordinator(tmp_path)
    a, b = first.spawn([AgentSpec("a", lifecycle={"on_create": "hi"}), AgentSpec("b")])
    out = first.dispatch([a, b], TASK)
    first.close()
    with LocalCoordinator(str(tmp_path)) as second:
        assert second.agent_ids() == [a, b]
        assert second.events(a) == [("on_create", "hi")]
        assert second.status([a])[a].pending_tasks == 1
        (claimed,) = second.claim([a], "w", 5)
        assert claimed.task == out[a].task
        second.finish(TaskOutcome(claimed.task.task_id, ok=True, result="ok"), "w")
    with LocalCoordinator(tmp_path) as third:
        record = third.task(claimed.task.task_id)
        assert record is not None and record.result == "ok"


def test_two_open_instances_interleave_writes(tmp_path: Path) -> None:
    one, two = LocalCoordinator(tmp_path), LocalCoordinator(tmp_path)
    (a,) = one.spawn(specs(1))
    two.dispatch([a], TASK)
    one.dispatch([a], TASK)
    assert [c.agent.agent_id for c in two.claim([a], "w", 5)] == [a, a]
    one.close()
    two.close()


def test_agents_spawned_by_another_process_take_tasks_here(tmp_path: Path) -> None:
    child = python(
        """
        import json, sys
        from dalfleet.coordinator import FinishStatus, LocalCoordinator, TaskCounts, TaskOutcome
        from dalfleet.models import AgentSpec
        coord = LocalCoordinator(sys.argv[1])
        print(json.dumps(coord.spawn([AgentSpec(f"w_{i}") for i in range(5)])))
        """,
        str(tmp_path),
    )
    ids = json.loads(finish(child))
    with LocalCoordinator(tmp_path) as coord:
        out = coord.dispatch(ids, TASK)
        assert all(r.ok for r in out.values())
        status = coord.status(ids)
    assert all(s.state is AgentState.ALIVE and s.pending_tasks == 1 for s in status.values())


CLAIMER = """
    import json, sys
    from dalfleet.coordinator import LocalCoordinator, TaskOutcome, worker_identity
    coord = LocalCoordinator(sys.argv[1])
    ids = coord.agent_ids()
    print("ready", flush=True)
    sys.stdin.readline()  # start line: every worker is up before any claims
    me, taken = worker_identity(), []
    while claimed := coord.claim(ids, me, 1):
        for c in claimed:
            taken.append(c.task.task_id)
            coord.finish(TaskOutcome(c.task.task_id, ok=True, result=me), me)
    print(json.dumps({"worker": me, "taken": taken}))
"""


@pytest.mark.slow  # other processes
def test_processes_claiming_one_queue_take_each_task_exactly_once(tmp_path: Path) -> None:
    with LocalCoordinator(tmp_path) as coord:
        ids = coord.spawn(specs(50))
        tasks = [
            r.task.task_id
            for _ in range(4)
            for r in coord.dispatch(ids, TASK).values()
            if r.task is not None
        ]
    assert len(tasks) == 200
    workers = [python(CLAIMER, str(tmp_path)) for _ in range(4)]
    for proc in workers:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in workers:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reports = [json.loads(finish(proc)) for proc in workers]
    taken = [t for r in reports for t in r["taken"]]
    assert sorted(taken) == sorted(tasks)  # all claimed, none twice
    with LocalCoordinator(tmp_path) as coord:
        for report in reports:
            for task_id in report["taken"]:
                record = coord.task(task_id)
                assert record is not None
                assert (record.state, record.result) == ("completed", report["worker"])
                assert record.worker == report["worker"]
        assert sum(s.completed_tasks for s in coord.status(ids).values()) == 200


SPAWNER = """
    import json, sys
    from dalfleet.coordinator import FinishStatus, LocalCoordinator, TaskCounts, TaskOutcome
    from dalfleet.models import AgentSpec
    print("ready", flush=True)
    sys.stdin.readline()
    coord = LocalCoordinator(sys.argv[1])
    print(json.dumps(coord.spawn([AgentSpec(f"w_{i}") for i in range(25)])))
"""


@pytest.mark.slow  # other processes
def test_processes_creating_the_database_together_lose_nothing(tmp_path: Path) -> None:
    procs = [python(SPAWNER, str(tmp_path)) for _ in range(4)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    spawned = [i for proc in procs for i in json.loads(finish(proc))]
    with LocalCoordinator(tmp_path) as coord:
        assert sorted(coord.agent_ids()) == sorted(spawned)
    assert len(set(spawned)) == 100


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_usable_in_a_forked_child(tmp_path: Path) -> None:
    coord = LocalCoordinator(tmp_path)
    (a,) = coord.spawn(specs(1))  # the parent's connection is open across the fork
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            if coord.dispatch([a], TASK)[a].ok:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert coord.status([a])[a].pending_tasks == 1
    coord.close()


# -- nothing on disk without a write ----------------------------------------------


def test_read_only_calls_on_a_fresh_base_create_nothing(tmp_path: Path) -> None:
    coord = LocalCoordinator(tmp_path)
    assert coord.status(["agent_x"])["agent_x"].state is AgentState.UNKNOWN
    assert coord.agents(["agent_x"]) == {}
    assert coord.claim(["agent_x"], "w", 10) == []
    assert coord.agent_ids() == []
    assert coord.events("agent_x") == []
    assert coord.task("task_x") is None
    assert coord.tasks("agent_x") == []
    assert coord.task_counts(["agent_x"]) == TaskCounts()
    assert coord.renew(["task_x"], "w") == []
    assert coord.spawn([]) == []
    coord.terminate(["agent_x"])
    coord.release(["task_x"], "w")
    assert coord.finish(TaskOutcome("task_x", ok=True), "w") is FinishStatus.NOT_FOUND
    coord.close()
    assert list(tmp_path.iterdir()) == []


def test_spawn_that_cannot_store_a_spec_creates_nothing(tmp_path: Path) -> None:
    coord = LocalCoordinator(tmp_path)
    with pytest.raises(CoordinatorError):
        coord.spawn([AgentSpec("bad", metadata={"k": object()})])  # type: ignore[dict-item]
    assert list(tmp_path.iterdir()) == []


# -- all or nothing inside SQLite ---------------------------------------------------


def add_trigger(base: Path, sql: str) -> None:
    """Make SQLite itself refuse some rows (a real failure mid-batch, no mocks)."""
    with sqlite3.connect(db_path(base)) as conn:
        conn.execute(sql)
    conn.close()


def test_spawn_failing_mid_batch_leaves_nothing(tmp_path: Path) -> None:
    coord = LocalCoordinator(tmp_path)
    before = coord.spawn(specs(1))
    add_trigger(
        tmp_path,
        "CREATE TRIGGER refuse BEFORE INSERT ON agents WHEN NEW.name = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    with pytest.raises(CoordinatorError, match="refused by the test") as info:
        coord.spawn([*specs(3), AgentSpec("boom"), *specs(3)])
    assert str(db_path(tmp_path)) in str(info.value)
    assert coord.agent_ids() == before
    coord.close()


def test_spawn_failing_on_the_hook_events_leaves_no_agents(tmp_path: Path) -> None:
    coord = LocalCoordinator(tmp_path)
    before = coord.spawn(specs(1))
    add_trigger(
        tmp_path,
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.detail = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    batch = [*specs(3), AgentSpec("x", lifecycle={"on_create": "boom"})]
    with pytest.raises(CoordinatorError, match="refused by the test"):
        coord.spawn(batch)
    assert coord.agent_ids() == before
    coord.close()


def test_dispatch_failing_mid_batch_leaves_no_tasks(tmp_path: Path) -> None:
    coord = LocalCoordinator(tmp_path)
    ids = coord.spawn(specs(5))
    add_trigger(
        tmp_path,
        f"CREATE TRIGGER refuse BEFORE INSERT ON tasks WHEN NEW.agent_id = '{ids[3]}' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    with pytest.raises(CoordinatorError, match="refused by the test"):
        coord.dispatch(ids, TASK)
    assert all(s.pending_tasks == 0 for s in coord.status(ids).values())
    coord.close()


def test_text_sqlite_cannot_encode_is_stored_escaped_and_recorded_once(tmp_path: Path) -> None:
    # os.fsdecode(b"caf\xe9") gives a lone surrogate, which SQLite refuses as is.
    coord = LocalCoordinator(tmp_path)
    (a,) = coord.spawn(specs(1))
    out = coord.dispatch([a], Task("t", "lone surrogate \ud800"), worker=os.fsdecode(b"w\xe9"))
    task = out[a].task
    assert task is not None and task.description == "lone surrogate \\ud800"
    error = os.fsdecode(b"caf\xe9")
    status = coord.finish(TaskOutcome(task.task_id, False, error=error), os.fsdecode(b"w\xe9"))
    assert status is FinishStatus.RECORDED
    record = coord.task(task.task_id)
    assert record is not None
    assert (record.state, record.error) == ("failed", "caf\\udce9")
    assert coord.claim([a], "other", 5) == []
    coord.close()


# -- a broken database path gets one clear error ------------------------------------


def test_directory_at_the_database_path_is_a_clear_error(tmp_path: Path) -> None:
    db_path(tmp_path).mkdir(parents=True)
    coord = LocalCoordinator(tmp_path)
    for call in (
        lambda: coord.status(["agent_x"]),
        lambda: coord.spawn(specs(1)),
        lambda: coord.dispatch(["agent_x"], TASK),
    ):
        with pytest.raises(CoordinatorError, match="is a directory") as info:
            call()
        assert str(db_path(tmp_path)) in str(info.value)
    assert list(db_path(tmp_path).iterdir()) == []


def test_file_that_is_not_a_database_is_a_clear_error_and_stays_untouched(
    tmp_path: Path,
) -> None:
    path = db_path(tmp_path)
    path.parent.mkdir()
    junk = b"this is not a database\n" * 100
    path.write_bytes(junk)
    coord = LocalCoordinator(tmp_path)
    for call in (lambda: coord.status(["agent_x"]), lambda: coord.spawn(specs(1))):
        with pytest.raises(CoordinatorError, match="not a database") as info:
            call()
        assert str(path) in str(info.value)
    assert path.read_bytes() == junk
    assert sorted(p.name for p in path.parent.iterdir()) == ["agent_runtime.db"]


def test_dot_dal_being_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / ".dal").write_text("oops")
    coord = LocalCoordinator(tmp_path)
    assert coord.status(["agent_x"])["agent_x"].state is AgentState.UNKNOWN
    with pytest.raises(CoordinatorError, match=r"cannot create .*\.dal"):
        coord.spawn(specs(1))
    assert (tmp_path / ".dal").read_text() == "oops"


def test_database_from_a_newer_dalfleet_is_refused(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    path.parent.mkdir()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(CoordinatorError, match="schema version"):
        LocalCoordinator(tmp_path).status(["agent_x"])


V1_SCHEMA = (
    "CREATE TABLE agents (agent_id TEXT PRIMARY KEY, name TEXT NOT NULL, "
    "spec_json TEXT NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL, "
    "terminated_at REAL)",
    "CREATE TABLE tasks (seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL UNIQUE, "
    "agent_id TEXT NOT NULL, description TEXT NOT NULL, priority TEXT NOT NULL, "
    "coordination_type TEXT NOT NULL, fleet TEXT, state TEXT NOT NULL, claimed_by TEXT, "
    "result_json TEXT, error TEXT, enqueued_at REAL NOT NULL, started_at REAL, "
    "finished_at REAL)",
    "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, agent_id TEXT NOT NULL, "
    "kind TEXT NOT NULL, detail TEXT NOT NULL, at REAL NOT NULL)",
)


def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    path.parent.mkdir()
    spec = json.dumps({"name": "a", "metadata": {}})
    ext = json.dumps({"name": "agent_ext", "metadata": {"external": "true"}})
    conn = sqlite3.connect(path)
    for statement in V1_SCHEMA:
        conn.execute(statement)
    conn.executemany(
        "INSERT INTO agents VALUES (?, ?, ?, ?, 0, NULL)",
        [("agent_a", "a", spec, "alive"), ("agent_ext", "agent_ext", ext, "terminated")],
    )
    conn.executemany(
        "INSERT INTO tasks (task_id, agent_id, description, priority, coordination_type, "
        "state, claimed_by, result_json, enqueued_at) "
        "VALUES (?, ?, 'd', 'medium', 'td', ?, ?, ?, 0)",
        [
            ("t_queued", "agent_a", "queued", None, None),
            ("t_running", "agent_a", "running", "gone:1:x", None),
            ("t_done", "agent_a", "done", "w", '"ok"'),
            ("t_cancelled", "agent_ext", "cancelled", None, None),
        ],
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with LocalCoordinator(tmp_path) as coord:
        states = {
            t: coord.task(t).state for t in ("t_queued", "t_running", "t_done", "t_cancelled")
        }  # type: ignore[union-attr]
        assert states == {
            "t_queued": "pending",
            "t_running": "running",
            "t_done": "completed",
            "t_cancelled": "failed",
        }
        # A version-1 claim had no lease: it is taken over at once.
        taken = {c.task.task_id for c in coord.claim(["agent_a"], "w2", 5)}
        assert taken == {"t_queued", "t_running"}
        # The external agent may come back.
        assert coord.dispatch(["agent_ext"], TASK)["agent_ext"].ok
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


# -- storage settings and speed -----------------------------------------------------


def test_database_uses_wal_and_records_its_schema_version(tmp_path: Path) -> None:
    coord = LocalCoordinator(tmp_path)
    coord.spawn(specs(1))
    conn = sqlite3.connect(db_path(tmp_path))
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()
    assert coord._conn is not None
    assert coord._conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000
    coord.close()


def count_statements(coord: LocalCoordinator, call: object) -> int:
    assert coord._conn is not None
    seen: list[str] = []
    coord._conn.set_trace_callback(seen.append)
    try:
        call()  # type: ignore[operator]
    finally:
        coord._conn.set_trace_callback(None)
    return len(seen)


def test_batch_calls_use_a_constant_number_of_statements(tmp_path: Path) -> None:
    coord = LocalCoordinator(tmp_path)
    ids = coord.spawn(specs(1200))
    few, many = ids[:3], ids
    assert count_statements(coord, lambda: coord.status(few)) == count_statements(
        coord, lambda: coord.status(many)
    )
    assert count_statements(coord, lambda: coord.agents(few)) == count_statements(
        coord, lambda: coord.agents(many)
    )
    assert count_statements(coord, lambda: coord.terminate(few)) == count_statements(
        coord, lambda: coord.terminate(many[3:])
    )
    coord.close()


def test_thousand_agents_spawn_dispatch_and_status_quickly(tmp_path: Path) -> None:
    coord = LocalCoordinator(tmp_path)
    coord.spawn(specs(1))  # database created outside the timing
    start = time.perf_counter()
    ids = coord.spawn(specs(1000))
    spawned = time.perf_counter()
    out = coord.dispatch(ids, TASK)
    dispatched = time.perf_counter()
    status = coord.status(ids)
    done = time.perf_counter()
    assert len(out) == len(status) == 1000
    assert spawned - start < 1.0
    assert dispatched - spawned < 1.0
    assert done - dispatched < 0.1
    coord.close()


def test_a_spec_changed_by_hand_is_a_coordinator_error(tmp_path: Path) -> None:
    import sqlite3

    coord = LocalCoordinator(tmp_path)
    (agent_id,) = coord.spawn([AgentSpec("w_0")])
    coord.close()
    with sqlite3.connect(tmp_path / ".dal" / "agent_runtime.db") as conn:
        conn.execute("UPDATE agents SET spec_json = '{not json'")
    with pytest.raises(CoordinatorError, match="stored spec of agent"):
        LocalCoordinator(tmp_path).agents([agent_id])


def test_dispatch_builds_each_task_from_the_fields_after_its_id_and_description() -> None:
    # LocalCoordinator.dispatch builds one Task per member positionally from these.
    import attrs

    from dalfleet.coordinator.local import _TASK_REST
    from dalfleet.models import Task

    names = [f.name for f in attrs.fields(Task)]
    assert names[:_TASK_REST] == ["task_id", "description"]
