"""The rows of the benchmark table: each figure beside the floor the issue defines for it.

Every row measures its figure and its floor in the same run, on the same data,
alternating rounds, and reports medians; the ratio figure / floor is what is
compared with the target, so the table means the same on a fast or slow machine.
Only public APIs are used (``dalfleet.fleet`` functions and the ``dalfleet``
command), so the rows keep working while the internals change.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import math
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Result,
    Skipped,
    atomic_write,
    cpu_load,
    dalfleet_command,
    interleaved,
    peak_rss,
    python_command,
    run_checked,
    write_fleet_file,
)

__all__ = ["GROUP_OF", "ROWS", "Config", "Outcome"]

Outcome = Result | Skipped


@dataclass(frozen=True)
class Config:
    """Sizes and round counts: the issue's sizes, or small ones for ``--quick``."""

    quick: bool

    def pick(self, full: Any, quick: Any) -> Any:
        """``quick`` in a quick run, else ``full``."""
        return quick if self.quick else full


@contextlib.contextmanager
def _tempdir(tag: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"dalfleet-bench-{tag}-") as tmp:
        yield Path(tmp)


def _fleet() -> Any:
    import dalfleet.fleet as fleet

    return fleet


def _sample_mold() -> str:
    from dalfleet.mold import sample_mold_path

    return str(sample_mold_path())


# -- the stdlib floor of a fleet-file change -----------------------------------------

# A new process doing what any correct deploy must do at least: read and parse the
# file, change one field, serialise it (stdlib, compact), land it atomically.
_FLOOR_RMW = """
import json, os, sys
path, name, task = sys.argv[1:4]
with open(path, "rb") as fh:
    data = json.load(fh)
data[name]["last_deployed_task"] = task
payload = json.dumps(data).encode("utf-8")
tmp = path + ".floor.tmp"
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
view = memoryview(payload)
while view:
    view = view[os.write(fd, view):]
os.fsync(fd)
os.close(fd)
os.replace(tmp, path)
"""

_API_DEPLOY = (
    "import sys; import dalfleet.fleet as f; f.deploy(sys.argv[1], sys.argv[2], sys.argv[3])"
)


def row_deploy(cfg: Config) -> list[Outcome]:
    """deploy in a new process (the CLI, and the API) vs a new process doing the stdlib floor."""
    fleets, members = cfg.pick((1000, 100), (50, 20))
    rounds = cfg.pick(7, 2)
    name = f"fleet-{fleets // 2:04d}"
    out: list[Outcome] = []
    with _tempdir("deploy") as tmp:
        fig_base, floor_base = tmp / "fig", tmp / "floor"
        write_fleet_file(fig_base, fleets, members)
        floor_path = write_fleet_file(floor_base, fleets, members)
        pristine = floor_path.read_bytes()
        size = len(pristine)

        def reset_floor(_: int) -> None:
            # The floor writes compact JSON; it must read the same pretty file each round.
            floor_path.write_bytes(pristine)

        def floor(i: int) -> None:
            run_checked([*python_command(), "-c", _FLOOR_RMW, str(floor_path), name, f"t{i}"])

        variants = [
            (
                "deploy",
                "dalfleet deploy (CLI, new process)",
                lambda i: run_checked(
                    [*dalfleet_command(), "--base", str(fig_base), "deploy", name, f"task {i}"]
                ),
            ),
            (
                "deploy-api",
                "fleet.deploy (new process)",
                lambda i: run_checked(
                    [*python_command(), "-c", _API_DEPLOY, name, f"task {i}", str(fig_base)]
                ),
            ),
        ]
        for row, what, figure in variants:
            fig, flo, _, _ = interleaved(figure, floor, rounds, before_floor=reset_floor)
            out.append(
                Result(
                    row=row,
                    what=f"{what}, {fleets:,} fleets x {members} members ({size / 1e6:.1f} MB)",
                    figure=fig,
                    floor=flo,
                    unit="s",
                    target=1.5,
                    floor_what="new process: json.load + compact json.dumps + temp write "
                    "+ fsync + os.replace",
                )
            )
    return out


# -- CLI start-up ------------------------------------------------------------------------


def row_cli(cfg: Config) -> list[Outcome]:
    """``dalfleet list`` (100 fleets) and ``dalfleet --version`` vs ``python -c pass``."""
    rounds = cfg.pick(21, 3)
    out: list[Outcome] = []
    with _tempdir("cli") as tmp:
        write_fleet_file(tmp, 100, 10)
        floor = lambda _i: run_checked([*python_command(), "-c", "pass"])  # noqa: E731
        cases = [
            ("list", "dalfleet list (100 fleets)", ["--base", str(tmp), "list"], 3.0),
            ("version", "dalfleet --version", ["--version"], 2.5),
        ]
        for row, what, args, target in cases:
            cmd = [*dalfleet_command(), *args]
            fig, flo, _, _ = interleaved(lambda _i, c=cmd: run_checked(c), floor, rounds)
            out.append(
                Result(
                    row=row,
                    what=f"{what}, wall time, median of {rounds}",
                    figure=fig,
                    floor=flo,
                    unit="s",
                    target=target,
                    floor_what="python -c pass (same interpreter)",
                )
            )
    return out


# -- create_from_mold ----------------------------------------------------------------------

_AGENTS_TABLE = """CREATE TABLE IF NOT EXISTS agents (
    agent_id TEXT PRIMARY KEY, name TEXT NOT NULL, spec_json TEXT NOT NULL,
    state TEXT NOT NULL, created_at REAL NOT NULL, terminated_at REAL)"""

_TASKS_TABLE = """CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL UNIQUE,
    agent_id TEXT NOT NULL, description TEXT NOT NULL, priority TEXT NOT NULL,
    coordination_type TEXT NOT NULL, fleet TEXT, state TEXT NOT NULL, claimed_by TEXT,
    result_json TEXT, error TEXT, enqueued_at REAL NOT NULL, started_at REAL,
    finished_at REAL)"""


def _floor_db(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")  # the durability the local coordinator uses
    return conn


def _plain(value: Any) -> dict[str, Any]:
    """A rendered spec's fields as a dict (shallow: json.dumps walks the rest)."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    names = getattr(type(value), "__attrs_attrs__", None)
    if names is not None:
        return {a.name: getattr(value, a.name) for a in names}
    slots = getattr(type(value), "__struct_fields__", None)  # msgspec
    if slots is not None:
        return {name: getattr(value, name) for name in slots}
    return dict(vars(value))


def row_create(cfg: Config) -> list[Outcome]:
    """create_from_mold N on the local coordinator vs render N + one SQLite transaction
    + one fleet-file write."""
    from dalfleet.mold import load_mold, render

    fleet = _fleet()
    count = cfg.pick(1000, 100)
    rounds = cfg.pick(5, 2)
    mold_path = _sample_mold()
    with _tempdir("create") as tmp:
        fig_base, floor_base = tmp / "fig", tmp / "floor"
        write_fleet_file(fig_base, 10, 10)
        floor_file = write_fleet_file(floor_base, 10, 10)
        floor_db = floor_base / ".dal" / "agents.db"
        _floor_db(floor_db, _AGENTS_TABLE)
        mold = load_mold(mold_path, floor_base)

        def figure(i: int) -> None:
            fleet.create_from_mold(f"created-{i + 1}", mold_path, count, base=fig_base)

        def floor(i: int) -> None:
            name = f"created-{i + 1}"
            stamp = time.time()
            rows = []
            for n in range(count):
                spec = render(mold, f"{name}_{n}", None, "sandboxed")
                rows.append(
                    (
                        f"agent_{uuid.uuid4().hex[:20]}",
                        f"{name}_{n}",
                        json.dumps(_plain(spec), default=str),
                        "alive",
                        stamp,
                    )
                )
            conn = _connect(floor_db)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT INTO agents (agent_id, name, spec_json, state, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                conn.execute("COMMIT")
            finally:
                conn.close()
            data = json.loads(floor_file.read_bytes())
            data[name] = {
                "name": name,
                "member_ids": [row[0] for row in rows],
                "mold_source": mold_path,
            }
            atomic_write(floor_file, json.dumps(data).encode("utf-8"))

        fig, flo, _, _ = interleaved(figure, floor, rounds)
    return [
        Result(
            row="create",
            what=f"create_from_mold {count:,}, local coordinator (in process)",
            figure=fig,
            floor=flo,
            unit="s",
            target=1.5,
            floor_what=f"render {count:,} specs + one SQLite transaction + one fleet-file write",
        )
    ]


# -- run: enqueue ---------------------------------------------------------------------------


def row_enqueue(cfg: Config) -> list[Outcome]:
    """run without a handler (enqueue) to N members vs one SQLite executemany of N rows."""
    fleet = _fleet()
    members = cfg.pick(10_000, 1000)
    rounds = cfg.pick(5, 2)
    mold_path = _sample_mold()
    with _tempdir("enqueue") as tmp:
        fig_base, floor_base = tmp / "fig", tmp / "floor"
        fleet.create_from_mold("wide", mold_path, 1000, base=fig_base)
        for _ in range(members // 1000 - 1):
            fleet.add_from_mold("wide", mold_path, 1000, base=fig_base)
        fleet.deploy("wide", "Process daily logs", base=fig_base)
        floor_base.mkdir()
        floor_db = floor_base / "tasks.db"
        _floor_db(
            floor_db,
            _TASKS_TABLE,
            "CREATE INDEX IF NOT EXISTS tasks_agent_state ON tasks (agent_id, state, seq)",
        )
        agent_ids = [f"agent_{uuid.uuid4().hex[:20]}" for _ in range(members)]
        prepared: list[list[tuple[Any, ...]]] = []

        def prepare(_: int) -> None:
            stamp = time.time()
            prepared[:] = [
                [
                    (
                        f"task_{uuid.uuid4().hex[:20]}",
                        agent_id,
                        "Process daily logs",
                        "medium",
                        "task_distribution",
                        "wide",
                        "queued",
                        None,
                        stamp,
                        None,
                    )
                    for agent_id in agent_ids
                ]
            ]

        def floor(_: int) -> None:
            conn = _connect(floor_db)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT INTO tasks (task_id, agent_id, description, priority, "
                    "coordination_type, fleet, state, claimed_by, enqueued_at, started_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    prepared[0],
                )
                conn.execute("COMMIT")
            finally:
                conn.close()

        def figure(_: int) -> None:
            [report] = fleet.run("wide", base=fig_base)
            assert report.members_dispatched == members, report.errors[:3]

        fig, flo, _, _ = interleaved(figure, floor, rounds, before_floor=prepare)
    return [
        Result(
            row="enqueue",
            what=f"run (enqueue, no handler) to {members:,} members",
            figure=fig,
            floor=flo,
            unit="s",
            target=1.5,
            floor_what=f"one SQLite executemany of {members:,} rows (one transaction)",
        )
    ]


# -- run with handlers --------------------------------------------------------------------


def _sleepers(delay: float) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """An async and a sync handler that wait ``delay`` seconds (nested: Ray ships them)."""

    async def async_handler(agent: Any, task: Any) -> str:
        await asyncio.sleep(delay)
        return "ok"

    def sync_handler(agent: Any, task: Any) -> str:
        time.sleep(delay)
        return "ok"

    return async_handler, sync_handler


def _concurrency() -> int:
    param = inspect.signature(_fleet().run).parameters.get("concurrency")
    default = param.default if param is not None else inspect.Parameter.empty
    return default if isinstance(default, int) else 64


def row_run(cfg: Config) -> list[Outcome]:
    """run N x delay handlers (async; sync), quiet and beside two CPU-bound processes,
    vs the ideal ceil(N / concurrency) x delay."""
    fleet = _fleet()
    members = cfg.pick(1000, 128)
    delay = cfg.pick(0.05, 0.02)
    rounds = cfg.pick(3, 1)
    bound = _concurrency()
    ideal = math.ceil(members / bound) * delay
    async_handler, sync_handler = _sleepers(delay)
    out: list[Outcome] = []
    with _tempdir("run") as base:
        fleet.create_from_mold("runners", _sample_mold(), members, base=base)
        fleet.deploy("runners", "Process daily logs", base=base)

        def timed(handler: Callable[..., Any]) -> float:
            samples = []
            for _ in range(rounds):
                start = time.perf_counter()
                [report] = fleet.run("runners", base=base, handler=handler)
                samples.append(time.perf_counter() - start)
                assert report.members_dispatched == members, report.errors[:3]
            return sorted(samples)[len(samples) // 2]

        timed(async_handler)  # warm-up: imports, database, page cache
        for load in (0, 2):
            with cpu_load(load):
                for kind, handler in (("async", async_handler), ("sync", sync_handler)):
                    where = "quiet" if load == 0 else "beside 2 CPU-bound processes"
                    out.append(
                        Result(
                            row=f"run-{kind}-{'quiet' if load == 0 else 'busy'}",
                            what=f"run {members:,} x {delay * 1000:g} ms {kind} handler, {where}",
                            figure=timed(handler),
                            floor=ideal,
                            unit="s",
                            target=1.3,
                            floor_what=f"ideal ceil({members}/{bound}) x {delay * 1000:g} ms",
                        )
                    )
    return out


# -- Ray -------------------------------------------------------------------------------------


def _ray_executor(ray: Any) -> Any:
    """The library's Ray executor, made for the cluster this process is connected to."""
    import importlib

    cls = None
    for module in ("dalfleet.executor", "dalfleet.executor.ray"):
        with contextlib.suppress(ImportError):
            cls = getattr(importlib.import_module(module), "RayExecutor", None)
        if cls is not None:
            break
    if cls is None:
        raise RuntimeError("fleet.run takes executor= but no dalfleet RayExecutor was found")
    try:
        return cls()
    except TypeError:
        return cls(ray.get_runtime_context().gcs_address)


def row_ray(cfg: Config) -> list[Outcome]:
    """run with a handler on Ray vs the same run on the local executor."""
    try:
        import ray
    except ImportError as exc:
        return [Skipped("ray", f"ray is not importable ({exc}); pip install 'dalfleet[ray]'")]
    fleet = _fleet()
    members = cfg.pick(1000, 64)
    delay = cfg.pick(0.05, 0.02)
    rounds = cfg.pick(3, 1)
    _, handler = _sleepers(delay)
    ideal = math.ceil(members / _concurrency()) * delay
    new_api = "executor" in inspect.signature(fleet.run).parameters
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=40
    )
    try:
        with _tempdir("ray") as tmp:
            local_base, ray_base = tmp / "local", tmp / "ray"
            fleet.create_from_mold("r", _sample_mold(), members, base=local_base)
            fleet.deploy("r", "Process daily logs", base=local_base)
            coordinator = None
            if new_api:
                executor = _ray_executor(ray)
                context: Any = contextlib.nullcontext()
                run_on_ray: Callable[[], Any] = lambda: fleet.run(  # noqa: E731
                    "r", base=local_base, handler=handler, executor=executor
                )
                how = "RayExecutor, local coordinator"
            else:
                from dalfleet.coordinator.ray import RayCoordinator

                coordinator = RayCoordinator(namespace=f"dalfleet-bench-{uuid.uuid4().hex[:8]}")
                context = fleet.using(base=ray_base, coordinator=coordinator)
                run_on_ray = lambda: fleet.run("r", handler=handler)  # noqa: E731
                how = "RayCoordinator"
            try:
                with context:
                    if coordinator is not None:
                        fleet.create_from_mold("r", _sample_mold(), members)
                        fleet.deploy("r", "Process daily logs")

                    def figure(_: int) -> None:
                        [report] = run_on_ray()
                        assert report.members_dispatched == members, report.errors[:3]

                    def floor(_: int) -> None:
                        [report] = fleet.run("r", base=local_base, handler=handler)
                        assert report.members_dispatched == members, report.errors[:3]

                    fig, flo, _, _ = interleaved(figure, floor, rounds)
            finally:
                if coordinator is not None:
                    with contextlib.suppress(Exception):
                        coordinator.shutdown_hosts()
    finally:
        ray.shutdown()
    return [
        Result(
            row="ray",
            what=f"run {members:,} x {delay * 1000:g} ms sync handler on Ray ({how}, 2 CPUs)",
            figure=fig,
            floor=flo,
            unit="s",
            target=1.5,
            floor_what="the same run on the local executor",
            note=f"{fig / ideal:.2f} x ideal ({ideal * 1000:.0f} ms)",
        )
    ]


# -- peak memory --------------------------------------------------------------------------


def row_memory(cfg: Config) -> list[Outcome]:
    """Peak RSS of one CLI deploy on a 1M-member file vs a stdlib read-modify-write of it."""
    fleets, members = cfg.pick((1000, 1000), (100, 200))
    name = f"fleet-{fleets // 2:04d}"
    with _tempdir("memory") as tmp:
        fig_base, floor_base = tmp / "fig", tmp / "floor"
        write_fleet_file(fig_base, fleets, members)
        floor_path = write_fleet_file(floor_base, fleets, members)
        size = floor_path.stat().st_size
        figure = peak_rss([*dalfleet_command(), "--base", str(fig_base), "deploy", name, "t"])
        floor = peak_rss([*python_command(), "-c", _FLOOR_RMW, str(floor_path), name, "t"])
        baseline = peak_rss([*python_command(), "-c", "pass"])
    return [
        Result(
            row="memory",
            what=f"peak RSS, dalfleet deploy on {fleets * members:,} members "
            f"({size / 1e6:.0f} MB file)",
            figure=float(figure),
            floor=float(floor),
            unit="B",
            target=1.5,
            floor_what="child process: stdlib json load + change + dumps + atomic write",
            note=f"python -c pass: {baseline / 2**20:.0f} MiB",
        )
    ]


ROWS: dict[str, Callable[[Config], list[Outcome]]] = {
    "deploy": row_deploy,
    "cli": row_cli,
    "create": row_create,
    "enqueue": row_enqueue,
    "run": row_run,
    "ray": row_ray,
    "memory": row_memory,
}

# Printed row name -> the function (group) that measures it, for ``--only ROW``.
GROUP_OF: dict[str, str] = {
    **{name: name for name in ROWS},
    "deploy-api": "deploy",
    "list": "cli",
    "version": "cli",
    **{f"run-{kind}-{load}": "run" for kind in ("async", "sync") for load in ("quiet", "busy")},
}
