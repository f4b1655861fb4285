"""SPEC §3 / §9: many processes changing one base lose no update.

Every test starts real processes (not threads) and holds them behind a start
line: each child imports dalfleet, prints ``ready`` and waits for one line on
stdin, so all of them begin writing at the same moment and really overlap.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import dalfleet.fleet as fleet
from dalfleet.convert import HISTORY_KEY
from dalfleet.coordinator import LocalCoordinator
from dalfleet.models import AgentSpec, AgentState
from dalfleet.store import JsonFileStore
from tests.test_coordinator_local import python as start

REPO = Path(__file__).resolve().parents[1]
WRITERS = 6


def run_together(procs: list[subprocess.Popen[str]]) -> tuple[list[Any], float]:
    """Wait until every child is ready, release them at once, return their JSON reports
    and the seconds from the release until the last one finished."""
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line != "ready\n":
            _, err = proc.communicate(timeout=60)
            raise AssertionError(f"child did not start: {line!r} {err}")
    released = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    return reports, time.perf_counter() - released


# -- the fleet file ---------------------------------------------------------------------

FLEET_WRITER = """
    import json, random, sys, time
    import dalfleet.fleet as fleet
    from dalfleet import FleetExistsError

    base, me, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(me)
    print("ready", flush=True)
    sys.stdin.readline()
    began = time.perf_counter()
    report = {"me": me, "added": [], "deployed": [], "created": [], "sizes": [], "spawned": 0}
    ops = 0
    try:  # every writer tries the same name: exactly one may win
        fleet.create("contested", base)
        report["contested"] = True
    except FleetExistsError:
        report["contested"] = False
    ops += 1
    own = f"molded_{me}"
    fleet.create_from_mold(own, "worker", 2, base, [f"env=p{me}"])
    size, report["spawned"], ops = 2, 2, ops + 1
    for k in range(rounds):
        agent = f"p{me}_agent_{k:03d}"
        fleet.add_member("shared", agent, base)
        report["added"].append(agent)
        task = f"p{me} task {k}"
        fleet.deploy("shared", task, base)
        report["deployed"].append(task)
        if k % 2 == 0:
            name = f"own_{me}_{k}"
            fleet.create(name, base)
            report["created"].append(name)
        else:
            new = rng.choice([n for n in range(6) if n != size])
            fleet.scale(own, new, base)
            report["spawned"] += max(0, new - size)
            size = new
            report["sizes"].append(new)
        ops += 3
        if k % 5 == 0:  # an ID every writer adds: must end up there exactly once
            fleet.add_member("shared", f"common_{k}", base)
            ops += 1
    report["ops"] = ops
    report["seconds"] = time.perf_counter() - began
    print(json.dumps(report))
"""


def test_six_writer_processes_lose_no_update(base: Path) -> None:
    fleet.create("shared", base)
    rounds = 10
    procs = [start(FLEET_WRITER, str(base), str(i), str(rounds)) for i in range(WRITERS)]
    reports, seconds = run_together(procs)
    total_ops = sum(r["ops"] for r in reports)
    print(
        f"\n{WRITERS} writers: {total_ops} ops in {seconds:.2f}s = {total_ops / seconds:.0f} ops/s"
    )

    raw = json.loads((base / ".dal" / "fleets.json").read_text(encoding="utf-8"))
    fleets = JsonFileStore(base).load()
    assert set(raw) == set(fleets)

    # Exactly one writer created the contested fleet.
    assert sum(r["contested"] for r in reports) == 1
    assert "contested" in fleets

    # add_member: every ID present exactly once, nothing else.
    shared = fleets["shared"]
    added = [a for r in reports for a in r["added"]]
    commons = {f"common_{k}" for k in range(0, rounds, 5)}
    assert Counter(shared.member_ids).most_common(1)[0][1] == 1
    assert set(shared.member_ids) == set(added) | commons
    assert len(shared.member_ids) == len(added) + len(commons)
    # Each writer's members appear in the order it added them.
    for r in reports:
        mine = [m for m in shared.member_ids if m.startswith(f"p{r['me']}_")]
        assert mine == r["added"]

    # deploy: every deploy got its own revision number, none lost or repeated.
    deploys = [t for r in reports for t in r["deployed"]]
    history = raw["shared"][HISTORY_KEY]
    numbers = [rev["revision"] for rev in history]
    assert numbers == list(range(len(deploys) - len(history) + 1, len(deploys) + 1))
    assert shared.last_deployed_task == history[-1]["task"]
    assert set(rev["task"] for rev in history) <= set(deploys)
    for r in reports:  # and in each writer's program order
        kept = [rev["task"] for rev in history if rev["task"].startswith(f"p{r['me']} ")]
        assert kept == r["deployed"][len(r["deployed"]) - len(kept) :]

    # create: every created fleet exists.
    created = {n for r in reports for n in r["created"]}
    assert created <= set(fleets)
    expected = {"shared", "contested"} | created | {f"molded_{i}" for i in range(WRITERS)}
    assert set(fleets) == expected

    # scale: each fleet has the size last asked, its members alive in the coordinator,
    # and the coordinator holds exactly the agents the writers spawned.
    all_ids = [m for f in fleets.values() for m in f.member_ids]
    assert len(all_ids) == len(set(all_ids))
    with LocalCoordinator(base) as coord:
        for r in reports:
            f = fleets[f"molded_{r['me']}"]
            assert len(f.member_ids) == r["sizes"][-1]
            status = coord.status(f.member_ids)
            assert all(s.state is AgentState.ALIVE for s in status.values())
            names = [a.spec.name for a in coord.agents(f.member_ids).values()]
            assert names == [f"molded_{r['me']}_{i}" for i in range(len(f.member_ids))]
        spawned = sum(r["spawned"] for r in reports)
        assert len(coord.agent_ids()) == spawned
        alive = coord.agent_ids(AgentState.ALIVE)
        assert len(alive) == sum(r["sizes"][-1] for r in reports)
    assert not [p.name for p in (base / ".dal").iterdir() if p.name.endswith(".tmp")]


def test_writers_creating_the_fleet_file_together_lose_nothing(tmp_path: Path) -> None:
    # No .dal/ yet: the directory, the lock file and the fleet file are created in the race.
    code = """
        import json, sys
        import dalfleet.fleet as fleet
        base, me = sys.argv[1], int(sys.argv[2])
        print("ready", flush=True)
        sys.stdin.readline()
        names = [f"f{me}_{k}" for k in range(8)]
        for name in names:
            fleet.create(name, base)
        print(json.dumps(names))
    """
    procs = [start(code, str(tmp_path), str(i)) for i in range(WRITERS)]
    reports, _ = run_together(procs)
    assert fleet.list(tmp_path) == sorted(n for names in reports for n in names)


# -- the local coordinator (SQLite) --------------------------------------------------------

COORDINATOR_WORKER = """
    import json, sys
    from dalfleet.coordinator import LocalCoordinator, TaskOutcome, worker_identity
    from dalfleet.models import AgentSpec, Task

    base, me, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    coord = LocalCoordinator(base)
    pool = coord.agent_ids()
    worker = worker_identity()
    print("ready", flush=True)
    sys.stdin.readline()
    report = {"worker": worker, "spawned": [], "terminated": [], "dispatched": [], "taken": []}
    for r in range(rounds):
        own = coord.spawn([AgentSpec(f"p{me}_{r}_{j}") for j in range(5)])
        report["spawned"] += own
        out = coord.dispatch(pool, Task("template", f"p{me} round {r}"))
        assert all(r.ok for r in out.values()), out
        report["dispatched"] += [r.task.task_id for r in out.values()]
        for claimed in coord.claim(pool, worker, 7):
            coord.finish(TaskOutcome(claimed.task.task_id, ok=True, result=worker), worker)
            report["taken"].append(claimed.task.task_id)
        coord.terminate(own[:1])
        report["terminated"] += own[:1]
        late = coord.dispatch(own[:2], Task("template", "late"))
        assert not late[own[0]].ok and late[own[1]].ok
    print(json.dumps(report))
"""


def test_processes_spawning_dispatching_and_claiming_at_once_keep_counts(
    tmp_path: Path,
) -> None:
    pool_size, rounds = 20, 6
    with LocalCoordinator(tmp_path) as coord:
        pool = coord.spawn([AgentSpec(f"pool_{i}") for i in range(pool_size)])
    procs = [start(COORDINATOR_WORKER, str(tmp_path), str(i), str(rounds)) for i in range(WRITERS)]
    reports, _ = run_together(procs)

    dispatched = [t for r in reports for t in r["dispatched"]]
    taken = [t for r in reports for t in r["taken"]]
    assert len(dispatched) == len(set(dispatched)) == WRITERS * rounds * pool_size
    assert len(taken) == len(set(taken))
    assert set(taken) <= set(dispatched)
    with LocalCoordinator(tmp_path) as coord:
        # Whatever the writers did not take is still queued, once.
        rest = [c.task.task_id for c in coord.claim(pool, "drain", len(dispatched))]
        assert sorted(taken + rest) == sorted(dispatched)
        for r in reports:
            for task_id in r["taken"]:
                record = coord.task(task_id)
                assert record is not None
                assert (record.state, record.worker) == ("completed", r["worker"])
        spawned = [a for r in reports for a in r["spawned"]]
        terminated = {a for r in reports for a in r["terminated"]}
        assert len(set(spawned)) == len(spawned) == WRITERS * rounds * 5
        assert sorted(coord.agent_ids()) == sorted(pool + spawned)
        assert set(coord.agent_ids(AgentState.TERMINATED)) == terminated
        status = coord.status(pool)
        assert sum(s.completed_tasks for s in status.values()) == len(taken)
        assert sum(s.running_tasks for s in status.values()) == len(rest)
        assert sum(s.pending_tasks for s in status.values()) == 0
        # Each surviving own agent got exactly one "late" task; terminated ones none.
        own_status = coord.status(spawned)
        late = sum(s.pending_tasks for s in own_status.values())
        assert late == WRITERS * rounds
        assert all(own_status[a].pending_tasks == 0 for a in terminated)


RUNNER = """
    import json, sys
    import dalfleet.fleet as fleet
    base, runs = sys.argv[1], int(sys.argv[2])
    print("ready", flush=True)
    sys.stdin.readline()
    reports = [fleet.run("w", base)[0] for _ in range(runs)]
    print(json.dumps([[o.task_id for o in r.outcomes] for r in reports]))
"""


def test_concurrent_runs_enqueue_every_task_once(base: Path) -> None:
    fleet.create_from_mold("w", "worker", 8, base)
    fleet.deploy("w", "process the logs", base)
    runs = 5
    procs = [start(RUNNER, str(base), str(runs)) for _ in range(WRITERS)]
    reports, _ = run_together(procs)
    task_ids = [t for r in reports for run in r for t in run]
    assert len(task_ids) == len(set(task_ids)) == WRITERS * runs * 8
    health = fleet.health("w", base)
    assert [m.pending_tasks for m in health.members] == [WRITERS * runs] * 8
    stats = fleet.work("w", "dalfleet.handlers:echo", base, once=True, concurrency=8)
    assert (stats.executed, stats.succeeded) == (len(task_ids), len(task_ids))
    assert sorted(o.task_id for o in stats.outcomes if o.task_id) == sorted(task_ids)
