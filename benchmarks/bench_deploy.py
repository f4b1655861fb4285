"""Benchmark: ``deploy`` on a fleet file of 1,000 fleets x 100 members.

The floor is what any correct implementation must do at least: read the file,
parse it, serialise it and land it with an atomic replace (temp file, fsync,
rename). ``deploy`` adds the lock, validation of every fleet, the model
conversion and the history entry. The ratio deploy / floor is printed; both are
measured in the same run on the same file, so the ratio does not depend on the
machine.

Run:  python benchmarks/bench_deploy.py [--fleets 1000] [--members 100] [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dalfleet.fleet as fleet
from dalfleet.store import jsonfile


def make_file(base: Path, fleets: int, members: int) -> Path:
    data = {
        f"fleet-{i:04d}": {
            "name": f"fleet-{i:04d}",
            "mold_source": "mold/worker.mold.dal",
            "member_ids": [f"agent_{i:04d}_{j:04d}_0123456789" for j in range(members)],
            "last_deployed_task": "Process daily logs",
            "last_deployed_at": "1764313200",
        }
        for i in range(fleets)
    }
    path = base / ".dal" / "fleets.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


def floor_once(path: Path, task: str) -> None:
    with open(path, "rb") as fh:
        data = json.loads(fh.read().decode("utf-8"))
    data["fleet-0500"]["last_deployed_task"] = task
    payload = (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    tmp = path.with_name(".floor.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def timed(fn: object, rounds: int) -> list[float]:
    out = []
    for i in range(rounds):
        start = time.perf_counter()
        fn(f"task {i}")  # type: ignore[operator]
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleets", type=int, default=1000)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dalfleet-bench-") as tmp:
        base = Path(tmp)
        path = make_file(base, args.fleets, args.members)
        size = path.stat().st_size
        # Warm both paths once (imports, page cache), then interleave rounds.
        floor_once(path, "warm")
        fleet.deploy("fleet-0500", "warm", base)
        floor: list[float] = []
        cold: list[float] = []
        warm: list[float] = []

        def deploy_cold(task: str) -> None:
            jsonfile._PARSED.clear()  # as in a new process (one CLI call)
            fleet.deploy("fleet-0500", task, base)

        for _ in range(args.rounds):
            floor += timed(lambda t: floor_once(path, t), 1)
            cold += timed(deploy_cold, 1)
            warm += timed(lambda t: fleet.deploy("fleet-0500", t, base), 1)
        f, c, w = (statistics.median(x) for x in (floor, cold, warm))
        print(f"file: {args.fleets} fleets x {args.members} members, {size / 1e6:.1f} MB")
        print(f"floor       (json load + dump + atomic replace): median {f * 1000:8.1f} ms")
        print(f"deploy cold (new process: lock, validate, write): median {c * 1000:8.1f} ms")
        print(f"deploy warm (same process, parse reused):          median {w * 1000:8.1f} ms")
        print(f"ratio cold/floor: {c / f:.2f}")
        print(f"ratio warm/floor: {w / f:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
