"""The Coordinator protocol: the cut-off between the fleet API and where agents live.

A coordinator knows agents and tasks, nothing of fleets or fleet files. Every
method takes and returns plain models from :mod:`dalfleet.models`.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from dalfleet.models import Agent, AgentSpec, AgentState, Task

__all__ = [
    "AgentStatus",
    "ClaimedTask",
    "Coordinator",
    "new_agent_id",
    "is_orphaned",
    "new_task_id",
    "worker_identity",
]


def new_agent_id() -> str:
    """A fresh, globally unique agent ID in the reference's ``agent_…`` shape. Never raises."""
    return f"agent_{uuid.uuid4().hex[:20]}"


def new_task_id() -> str:
    """A fresh, globally unique task ID. Never raises."""
    return f"task_{uuid.uuid4().hex[:20]}"


def worker_identity() -> str:
    """An identity for the current process, used to mark claimed tasks: ``host:pid:nonce``.

    Never raises.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def is_orphaned(owner: str) -> bool:
    """True when ``owner`` (a :func:`worker_identity`) is a process of this host that is gone.

    Claims of other hosts, of this process, or in another shape are never orphaned.

    Never raises.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not (pid_text.isascii() and pid_text.isdigit()):
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):
        return False  # exists but not ours to signal, or not a PID at all
    return False


@attrs.frozen
class AgentStatus:
    """What a coordinator knows about one agent right now."""

    agent_id: str
    state: AgentState
    pending_tasks: int = 0
    running_tasks: int = 0
    failed_tasks: int = 0
    completed_tasks: int = 0
    last_result_at: float | None = None


@attrs.frozen
class ClaimedTask:
    """A task taken from the queue by a worker, with the agent it belongs to."""

    agent: Agent
    task: Task


@runtime_checkable
class Coordinator(Protocol):
    """Where agents live: spawn, terminate, dispatch, report status, run queues.

    Implementations: :class:`~dalfleet.coordinator.memory.MemoryCoordinator`
    (in-process) and :class:`~dalfleet.coordinator.local.LocalCoordinator`
    (SQLite under ``<base>/.dal/``).
    """

    trust_level: str

    def spawn(self, specs: Sequence[AgentSpec]) -> list[str]:
        """Create one agent per spec and return their IDs in order.

        All or nothing: if any spawn fails, no agent is left behind and
        :class:`~dalfleet.errors.CoordinatorError` is raised.

        Raises:
            CoordinatorError: a spec cannot be stored, or the backend fails.
        """
        ...

    def terminate(self, agent_ids: Sequence[str]) -> None:
        """Terminate the given agents; unknown or already terminated IDs are ignored.

        Queued tasks of a terminated agent are cancelled.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string, not a list of IDs.
            CoordinatorError: the backend fails (database, cluster).
        """
        ...

    def dispatch(
        self,
        agent_ids: Sequence[str],
        task: Task,
        *,
        claimed_by: str | None = None,
    ) -> Mapping[str, Task | str]:
        """Give ``task`` to every agent; one task record (own ``task_id``) each.

        Returns, per agent ID, the stored :class:`Task` or an error string (a
        terminated agent). An agent the coordinator did not spawn (registered with
        ``add_member``) gets an inbox and state ``unknown``, as in the reference.
        With ``claimed_by`` the tasks are created already running, owned by that
        worker (used when executing right away).

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string, not a list of IDs.
            CoordinatorError: the backend fails (database, cluster).
        """
        ...

    def status(self, agent_ids: Sequence[str]) -> dict[str, AgentStatus]:
        """Live status of each agent; unknown IDs get state ``unknown``.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string, not a list of IDs.
            CoordinatorError: the backend fails (database, cluster).
        """
        ...

    def agents(self, agent_ids: Sequence[str]) -> dict[str, Agent]:
        """The known agents among ``agent_ids`` (unknown IDs are left out).

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string, not a list of IDs.
            CoordinatorError: the backend fails (database, cluster).
        """
        ...

    def claim(self, agent_ids: Sequence[str], worker: str, limit: int) -> list[ClaimedTask]:
        """Atomically take up to ``limit`` queued tasks of these agents, oldest first.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string, not a list of IDs.
            CoordinatorError: the backend fails (database, cluster).
        """
        ...

    def finish(
        self, task_id: str, *, ok: bool, result: Any = None, error: str | None = None
    ) -> None:
        """Record the outcome of a claimed task.

        Raises:
            CoordinatorError: no task has this ID, or the backend fails.
        """
        ...

    def release(self, task_ids: Sequence[str]) -> None:
        """Put claimed but unfinished tasks back in the queue.

        Raises:
            InvalidArgumentError: ``task_ids`` is a single string, not a list of IDs.
            CoordinatorError: the backend fails (database, cluster).
        """
        ...

    def running(self, agent_ids: Sequence[str]) -> Mapping[str, str]:
        """Running tasks of these agents: task ID -> the worker identity that claimed it.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string, not a list of IDs.
            CoordinatorError: the backend fails (database, cluster).
        """
        ...

    def close(self) -> None:
        """Release resources (connections); the coordinator may be reopened lazily.

        The built-in implementations never raise.
        """
        ...


def now() -> float:
    """Wall-clock time in seconds (one place, so tests can reason about it). Never raises."""
    return time.time()
