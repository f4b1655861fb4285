"""Claims per second with 1, 2 and 4 worker processes on one PostgreSQL database, and
the time until a SIGKILLed worker's task is completed by another.

``python -m benchmarks.postgres_workers [--tasks N] [--lease S]``

Starts a throw-away PostgreSQL server (as the ``postgres`` user when run as root),
prints one line per measurement, and stops the server. Workers claim one task at a
time and record an empty result, so the figure is the coordinator's own cost.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import time
from collections.abc import Sequence

from dalfleet.coordinator.base import TaskOutcome, worker_identity
from dalfleet.models import AgentSpec, Task
from dalfleet.store.postgres import PostgresBackend
from tests.postgres_server import PostgresServer


def _drain(url: str, ids: Sequence[str], batch: int) -> None:
    with PostgresBackend(url) as backend:
        coordinator = backend.coordinator
        worker = worker_identity()
        while claimed := coordinator.claim(ids, worker, batch):
            coordinator.finish_many(
                [TaskOutcome(c.task.task_id, ok=True, result=None) for c in claimed], worker
            )


def _seed(url: str, agents: int, tasks: int) -> list[str]:
    with PostgresBackend(url) as backend:
        ids = backend.coordinator.spawn([AgentSpec(name=f"w_{i}") for i in range(agents)])
        for n in range(tasks // agents):
            backend.coordinator.dispatch(ids, Task("t", f"job {n}"))
    return ids


def claims_per_second(server: PostgresServer, workers: int, tasks: int, batch: int) -> float:
    url = server.create_schema("bench")
    ids = _seed(url, 100, tasks)
    procs = [multiprocessing.Process(target=_drain, args=(url, ids, batch)) for _ in range(workers)]
    start = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return (tasks // 100 * 100) / (time.perf_counter() - start)


def _hold(url: str, ids: Sequence[str], lease: float) -> None:
    with PostgresBackend(url) as backend:
        backend.coordinator.claim(ids, "victim", 1, lease=lease)
        os.kill(os.getpid(), signal.SIGSTOP)  # wait here to be killed


def recovery_seconds(server: PostgresServer, lease: float) -> float:
    url = server.create_schema("recover")
    ids = _seed(url, 1, 1)
    victim = multiprocessing.Process(target=_hold, args=(url, ids, lease))
    victim.start()
    with PostgresBackend(url) as backend:
        coordinator = backend.coordinator
        while coordinator.task_counts(ids).running == 0:
            time.sleep(0.01)
        os.kill(victim.pid or 0, signal.SIGKILL)
        killed = time.perf_counter()
        victim.join()
        worker = worker_identity()
        while True:
            claimed = coordinator.claim(ids, worker, 1, lease=lease)
            if claimed:
                coordinator.finish(TaskOutcome(claimed[0].task.task_id, ok=True), worker)
                return time.perf_counter() - killed
            coordinator.wait_for_tasks(ids, timeout=lease * 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--lease", type=float, default=2.0)
    args = parser.parse_args()
    with PostgresServer() as server:
        for batch in (1, 10):
            for workers in (1, 2, 4):
                rate = claims_per_second(server, workers, args.tasks, batch)
                print(f"claim batch {batch:>2}, {workers} worker(s): {rate:8.0f} tasks/s")
        took = recovery_seconds(server, args.lease)
        print(f"lease {args.lease:g} s: killed worker's task completed after {took:.2f} s")


if __name__ == "__main__":
    main()
