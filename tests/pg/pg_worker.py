"""A worker process for the many-hosts tests: drains tasks of some agents through the
PostgreSQL coordinator with leases renewed by a heartbeat, waking on NOTIFY.

``python -m tests.pg.pg_worker URL AGENTS_FILE --lease S --delay S [--hang-dir DIR]``

It exits 0 once no task of its agents is pending or running. With ``--hang-dir``
it writes ``DIR/<task_id>`` for its first claimed task and then hangs (the test
SIGKILLs it there). Each completed task's result names the worker's PID.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

from dalfleet.coordinator.base import TaskOutcome, worker_identity
from dalfleet.store.postgres import PostgresBackend


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("agents_file")
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--hang-dir", default=None)
    args = parser.parse_args()
    ids = Path(args.agents_file).read_text(encoding="utf-8").split()
    backend = PostgresBackend(args.url, reconnect_timeout=60)
    coordinator = backend.coordinator
    worker = worker_identity()
    held: set[str] = set()
    held_lock = threading.Lock()
    stop = threading.Event()

    def heartbeat() -> None:
        # Its own backend: renewing must not wait behind a long claim or finish.
        with PostgresBackend(args.url, reconnect_timeout=60) as own:
            while not stop.wait(args.lease / 3):
                with held_lock:
                    current = list(held)
                if current:
                    own.coordinator.renew(current, worker, lease=args.lease)

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    while True:
        claimed = coordinator.claim(ids, worker, 1, lease=args.lease)
        if not claimed:
            counts = coordinator.task_counts(ids)
            if counts.pending == 0 and counts.running == 0:
                break
            coordinator.wait_for_tasks(ids, timeout=args.lease)
            continue
        for item in claimed:
            task_id = item.task.task_id
            with held_lock:
                held.add(task_id)
            if args.hang_dir is not None:
                (Path(args.hang_dir) / task_id).write_text(str(os.getpid()), encoding="utf-8")
                while True:
                    time.sleep(3600)  # killed here by the test
            time.sleep(args.delay)  # the handler's work
            coordinator.finish(TaskOutcome(task_id, ok=True, result={"pid": os.getpid()}), worker)
            with held_lock:
                held.discard(task_id)
    stop.set()
    beat.join()
    backend.close()


if __name__ == "__main__":
    main()
