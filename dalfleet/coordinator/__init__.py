"""Where agents live: the :class:`Coordinator` protocol and its implementations.

* :class:`MemoryCoordinator`: in-process, for tests and notebooks.
* :class:`LocalCoordinator`: SQLite under ``<base>/.dal/``, shared by processes.

The names are imported from their modules on first use (PEP 562): importing
:mod:`dalfleet.coordinator.base` does not load SQLite.
"""

from __future__ import annotations

import importlib

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


def __getattr__(name: str) -> object:
    """Import a public name from its module on first use, then keep it here.

    Raises:
        AttributeError: ``name`` is not a public name of this package.
    """
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
