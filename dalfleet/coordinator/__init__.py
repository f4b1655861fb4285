"""Where agents live: the :class:`Coordinator` protocol and its implementations.

* :class:`MemoryCoordinator`: in-process, for tests and notebooks.
* :class:`LocalCoordinator`: SQLite under ``<base>/.dal/``, shared by processes.
"""

from __future__ import annotations

from dalfleet.coordinator.base import (
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    AgentStatus,
    ClaimedTask,
    Coordinator,
    DispatchResult,
    FinishStatus,
    TaskCounts,
    TaskOutcome,
    TaskRecord,
    TaskState,
    new_agent_id,
    new_task_id,
    worker_identity,
)
from dalfleet.coordinator.local import LocalCoordinator
from dalfleet.coordinator.memory import MemoryCoordinator

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_MAX_ATTEMPTS",
    "AgentStatus",
    "ClaimedTask",
    "Coordinator",
    "DispatchResult",
    "FinishStatus",
    "LocalCoordinator",
    "MemoryCoordinator",
    "TaskCounts",
    "TaskOutcome",
    "TaskRecord",
    "TaskState",
    "new_agent_id",
    "new_task_id",
    "worker_identity",
]
