"""Benchmark: ``run`` with 40 I/O-bound handlers (0.2 s each) vs one after another.

The floor is the same handler called for each member in a plain loop, measured
in the same run. The ratio serial / concurrent shows how much the bounded
concurrent execution buys for I/O-bound agents.

Run:  python benchmarks/bench_run.py [--members 40] [--delay 0.2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dalfleet import Agent, Client, Task
from dalfleet.mold import sample_mold_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=40)
    parser.add_argument("--delay", type=float, default=0.2)
    args = parser.parse_args()

    def handler(agent: Agent, task: Task) -> str:
        time.sleep(args.delay)  # a blocking call: the worst case for an event loop
        return agent.name

    with (
        tempfile.TemporaryDirectory(prefix="dalfleet-bench-") as tmp,
        Client.for_base(tmp) as client,
    ):
        client.create_from_mold("w", str(sample_mold_path()), args.members)
        client.deploy("w", "work")
        agents = list(client.coordinator.agents(client.show("w").member_ids).values())  # type: ignore[union-attr]
        start = time.perf_counter()
        for agent in agents:
            handler(agent, Task(task_id="t", description="work"))
        serial = time.perf_counter() - start
        start = time.perf_counter()
        [report] = client.run("w", handler=handler)
        concurrent = time.perf_counter() - start
        assert report.members_dispatched == args.members, report.errors
    print(f"{args.members} handlers of {args.delay:g}s each")
    print(f"floor: one after another  {serial:7.2f} s")
    print(f"run(handler=…)            {concurrent:7.2f} s")
    print(f"ratio serial/concurrent: {serial / concurrent:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
