"""Ray as compute over PostgreSQL state: handlers run on the cluster, agents, tasks
and outcomes live in the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="needs 'dalfleet[postgres]' (psycopg)")
ray = pytest.importorskip("ray", reason="the Ray executor needs the 'ray' extra")

from dalfleet.client import Client  # noqa: E402
from dalfleet.coordinator.base import TaskCounts, TaskState  # noqa: E402
from dalfleet.executor.ray import RayExecutor  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray cluster for this module (``address="local"``: never someone else's)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_runs_the_handlers_and_postgres_keeps_the_outcomes(
    pg_url: str, base: Path, cluster: None
) -> None:
    with Client.from_url(pg_url, base=base, executor=RayExecutor()) as client:
        members = client.create_from_mold("w", "worker", 4, params={"env": "t"}).member_ids
        client.deploy("w", "Process logs")
        (report,) = client.run("w", handler="dalfleet.handlers:echo")
    assert report.executed and report.ok and report.members_dispatched == 4
    assert sorted(o.result["agent"] for o in report.outcomes) == [f"w_{i}" for i in range(4)]
    # Another host sees every outcome in the database.
    with Client.from_url(pg_url) as other:
        assert other.coordinator.task_counts(members) == TaskCounts(completed=4)
        (record,) = other.coordinator.tasks(members[0])
        assert record.state is TaskState.COMPLETED
        assert record.result == {"agent": "w_0", "agent_id": members[0], "task": "Process logs"}
    assert not (base / ".dal").exists()
