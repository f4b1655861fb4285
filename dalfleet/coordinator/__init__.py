"""Where agents live: the :class:`Coordinator` protocol and its implementations.

* :class:`MemoryCoordinator`: in-process, for tests and notebooks.
* :class:`LocalCoordinator`: SQLite under ``<base>/.dal/``, shared by processes.

The names are imported from their modules on first use (PEP 562): importing
:mod:`dalfleet.coordinator.base` does not load SQLite.
"""

from __future__ import annotations

from dalfleet import _lazy

# typing.TYPE_CHECKING without importing typing; type checkers treat it as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
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

# public name -> the module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
            "DEFAULT_LEASE",
            "DEFAULT_MAX_ATTEMPTS",
            "AgentStatus",
            "ClaimedTask",
            "Coordinator",
            "DispatchResult",
            "FinishStatus",
            "TaskCounts",
            "TaskOutcome",
            "TaskRecord",
            "TaskState",
            "new_agent_id",
            "new_task_id",
            "worker_identity",
        ),
        "dalfleet.coordinator.base",
    ),
    **dict.fromkeys(("LocalCoordinator",), "dalfleet.coordinator.local"),
    **dict.fromkeys(("MemoryCoordinator",), "dalfleet.coordinator.memory"),
}

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

__getattr__, __dir__ = _lazy.attach(__name__, _LAZY)
