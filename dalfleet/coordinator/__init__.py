"""Where agents live: the :class:`Coordinator` protocol and its implementations.

* :class:`MemoryCoordinator`: in-process, for tests and notebooks.
* :class:`LocalCoordinator`: SQLite under ``<base>/.dal/``, shared by processes.
"""

from __future__ import annotations

from dalfleet.coordinator.base import (
    AgentStatus,
    ClaimedTask,
    Coordinator,
    new_agent_id,
    new_task_id,
    worker_identity,
)
from dalfleet.coordinator.local import LocalCoordinator
from dalfleet.coordinator.memory import MemoryCoordinator

__all__ = [
    "AgentStatus",
    "ClaimedTask",
    "Coordinator",
    "LocalCoordinator",
    "MemoryCoordinator",
    "is_orphaned",
    "new_agent_id",
    "new_task_id",
    "worker_identity",
]


# Kept until the worker loop moves to lease-based recovery (the new protocol).
import os as _os
import socket as _socket


def is_orphaned(owner: str) -> bool:
    """True when ``owner`` (a :func:`worker_identity`) is a process of this host that is gone.

    Claims of other hosts, of this process, or in another shape are never orphaned.

    Never raises.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _socket.gethostname() or not (pid_text.isascii() and pid_text.isdigit()):
        return False
    pid = int(pid_text)
    if pid == _os.getpid():
        return False
    try:
        _os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):
        return False  # exists but not ours to signal, or not a PID at all
    return False
