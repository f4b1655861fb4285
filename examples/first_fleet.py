"""The "first fleet" flow through the Python API, in a scratch directory.

Run:  python examples/first_fleet.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import dalfleet.fleet as fleet
from dalfleet import Agent, Task
from dalfleet.mold import sample_mold_path


def handle(agent: Agent, task: Task) -> str:
    """What each member does with the task: here, say who did what."""
    return f"{agent.name} ({agent.agent_id}) did: {task.description}"


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="dalfleet-first-fleet-"))
    (base / "mold").mkdir()
    shutil.copy(sample_mold_path(), base / "mold" / "worker.mold.dal")
    print(f"project directory: {base}")

    workers = fleet.create_from_mold("assistant-workers", "mold/worker.mold.dal", 2, base)
    print(f"created {workers.name} with members {workers.member_ids}")
    fleet.deploy("assistant-workers", "Smoke test task", base)

    [report] = fleet.run("assistant-workers", base, handler=handle, timeout=30)
    for outcome in report.outcomes:
        print(f"  {outcome.status}: {outcome.result}")

    health = fleet.health("assistant-workers", base)
    print(f"health: {health.status}, {health.alive_count}/{health.member_count} alive")
    print(fleet.export("assistant-workers", base, format="compose"))


if __name__ == "__main__":
    main()
