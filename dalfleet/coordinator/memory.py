"""An in-process coordinator for tests and notebooks (the "mock transport").

It keeps agents, tasks and lifecycle events in dictionaries behind one lock and
behaves exactly like :class:`~dalfleet.coordinator.local.LocalCoordinator`: specs
and results are stored in their JSON form, so what comes back is what the SQLite
coordinator would give back. The helpers shared by both coordinators (spec and
result encoding, ID lists, task states) live here, in the backend without
dependencies.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs
import cattrs

from dalfleet.convert import json_default, spec_from_data, spec_to_data
from dalfleet.coordinator.base import (
    AgentStatus,
    ClaimedTask,
    new_agent_id,
    new_task_id,
    now,
)
from dalfleet.defaults import DEFAULT_TRUST_LEVEL
from dalfleet.errors import CoordinatorError, InvalidArgumentError
from dalfleet.models import Agent, AgentSpec, AgentState, Task

__all__ = ["MemoryCoordinator"]

# Task states, as stored (plain strings, so task records stay JSON-friendly).
QUEUED: Final = "queued"
RUNNING: Final = "running"
DONE: Final = "done"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"

# Lifecycle hooks of a mold that a coordinator hands over (records), never runs.
ON_CREATE: Final = "on_create"
ON_DESTROY: Final = "on_destroy"


def external_spec(agent_id: str, trust_level: str) -> AgentSpec:
    """The stand-in spec of an agent the coordinator did not spawn (registered with
    ``add_member``): it gets an inbox, and its state stays ``unknown``.

    Never raises.
    """
    return AgentSpec(name=agent_id, trust_level=trust_level, metadata={"external": "true"})


def encode_spec(spec: AgentSpec) -> tuple[str, AgentSpec]:
    """The stored (JSON) form of ``spec``, and the spec as it will be read back.

    Raises:
        CoordinatorError: the spec holds a value that cannot be stored and read back.
    """
    try:
        text = json.dumps(spec_to_data(spec), sort_keys=True)
        return text, decode_spec(text)
    except (TypeError, ValueError, cattrs.BaseValidationError) as exc:
        raise CoordinatorError(f"agent spec {spec.name!r} cannot be stored: {exc}") from exc


def decode_spec(text: str) -> AgentSpec:
    """The spec stored as ``text`` by :func:`encode_spec`.

    Raises:
        json.JSONDecodeError: ``text`` is not JSON.
        cattrs.BaseValidationError: ``text`` is JSON but not a stored spec.
    """
    return spec_from_data(json.loads(text))


def encode_result(result: Any) -> str | None:
    """The stored (JSON) form of a task result; ``repr`` text when JSON cannot hold it,
    and a placeholder naming the type when even ``repr`` fails.

    Never raises: a handler's odd result must not make recording the outcome fail.
    """
    if result is None:
        return None
    try:
        return json.dumps(result, default=json_default)
    except (TypeError, ValueError, RecursionError):  # not serializable, circular, too deep
        pass
    try:
        return json.dumps(repr(result))
    except Exception:  # a broken __repr__, or one nested too deeply
        return json.dumps(f"<unrepresentable {type(result).__name__}>")


def decode_result(text: str | None) -> Any:
    """The result stored as ``text`` by :func:`encode_result`.

    Raises:
        json.JSONDecodeError: ``text`` is not JSON.
    """
    return None if text is None else json.loads(text)


def unique_ids(ids: Sequence[str], what: str = "agent_ids") -> list[str]:
    """``ids`` without duplicates, in first-seen order.

    Raises:
        InvalidArgumentError: ``ids`` is a single string rather than a sequence of IDs.
    """
    if isinstance(ids, str):
        raise InvalidArgumentError(f"{what} must be a sequence of IDs, not the string {ids!r}")
    return list(dict.fromkeys(ids))


def task_record(
    *,
    task: Task,
    agent_id: str,
    state: str,
    claimed_by: str | None,
    result_json: str | None,
    error: str | None,
    enqueued_at: float,
    started_at: float | None,
    finished_at: float | None,
) -> dict[str, Any]:
    """The plain-dict view of a stored task that both coordinators return.

    Raises:
        json.JSONDecodeError: ``result_json`` is not JSON.
    """
    return {
        "task_id": task.task_id,
        "agent_id": agent_id,
        "description": task.description,
        "priority": task.priority,
        "coordination_type": task.coordination_type,
        "fleet": task.fleet,
        "state": state,
        "claimed_by": claimed_by,
        "result": decode_result(result_json),
        "error": error,
        "enqueued_at": enqueued_at,
        "started_at": started_at,
        "finished_at": finished_at,
    }


@attrs.define
class _AgentRow:
    agent: Agent
    created_at: float
    terminated_at: float | None = None
    task_ids: list[str] = attrs.field(factory=list)
    events: list[tuple[str, str]] = attrs.field(factory=list)


@attrs.define
class _TaskRow:
    seq: int
    task: Task
    agent_id: str
    state: str
    claimed_by: str | None
    enqueued_at: float
    started_at: float | None = None
    finished_at: float | None = None
    result_json: str | None = None
    error: str | None = None


class MemoryCoordinator:
    """Agents and their task queues in this process's memory; thread-safe.

    Every agent is spawned with ``trust_level`` (the principal's setting), whatever
    its spec says. Nothing outlives the object.

    ``id_factory`` and ``task_id_factory`` make new agent and task IDs (by default
    :func:`new_agent_id` and :func:`new_task_id`); ``where`` names this coordinator
    in "not found" errors. The Ray host actors set all three, so that the IDs they
    make route back to them and their errors name the cluster.
    """

    def __init__(
        self,
        trust_level: str = DEFAULT_TRUST_LEVEL,
        *,
        id_factory: Callable[[], str] | None = None,
        task_id_factory: Callable[[], str] | None = None,
        where: str = "the in-memory coordinator",
    ) -> None:
        self.trust_level = trust_level
        self.where = where
        self._new_agent_id = id_factory or new_agent_id
        self._new_task_id = task_id_factory or new_task_id
        self._lock = threading.Lock()
        self._agents: dict[str, _AgentRow] = {}
        self._tasks: dict[str, _TaskRow] = {}
        self._seq = itertools.count()

    def __repr__(self) -> str:
        return f"MemoryCoordinator(trust_level={self.trust_level!r})"

    # -- protocol ---------------------------------------------------------------

    def spawn(self, specs: Sequence[AgentSpec]) -> list[str]:
        """Create one agent per spec and return their IDs in order.

        The stored spec carries this coordinator's ``trust_level``. An ``on_create``
        hook is recorded as an event, never executed.

        Raises:
            CoordinatorError: a spec cannot be stored; no agent is created.
        """
        # Round-trip through the stored form first, so a bad spec fails before
        # anything is created and specs come back as the SQLite coordinator gives them.
        decoded = [encode_spec(attrs.evolve(s, trust_level=self.trust_level))[1] for s in specs]
        created = now()
        ids = [self._new_agent_id() for _ in decoded]
        with self._lock:
            for agent_id, spec in zip(ids, decoded, strict=True):
                row = _AgentRow(agent=Agent(agent_id, spec), created_at=created)
                hook = spec.lifecycle.get(ON_CREATE)
                if hook is not None:
                    row.events.append((ON_CREATE, hook))
                self._agents[agent_id] = row
        return ids

    def terminate(self, agent_ids: Sequence[str]) -> None:
        """Terminate the given agents and cancel their queued tasks.

        Unknown and already terminated IDs are ignored. An ``on_destroy`` hook is
        recorded as an event, never executed.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
        """
        ids = unique_ids(agent_ids)
        stamp = now()
        with self._lock:
            for agent_id in ids:
                row = self._agents.get(agent_id)
                if row is None or row.agent.state is AgentState.TERMINATED:
                    continue
                row.agent = attrs.evolve(row.agent, state=AgentState.TERMINATED)
                row.terminated_at = stamp
                hook = row.agent.spec.lifecycle.get(ON_DESTROY)
                if hook is not None:
                    row.events.append((ON_DESTROY, hook))
                for task_id in row.task_ids:
                    task = self._tasks[task_id]
                    if task.state == QUEUED:
                        task.state = CANCELLED
                        task.finished_at = stamp

    def dispatch(
        self,
        agent_ids: Sequence[str],
        task: Task,
        *,
        claimed_by: str | None = None,
    ) -> Mapping[str, Task | str]:
        """Give ``task`` to every agent, as one task record (own ``task_id``) each.

        Returns, per agent ID in input order (duplicates once), the stored
        :class:`Task` or an error string for a terminated agent. An agent this
        coordinator did not spawn gets an inbox (state ``unknown``), so tasks for
        members registered with ``add_member`` are queued as the reference does.
        With ``claimed_by`` the tasks start out running, owned by that worker.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
        """
        ids = unique_ids(agent_ids)
        stamp = now()
        out: dict[str, Task | str] = {}
        with self._lock:
            for agent_id in ids:
                row = self._agents.get(agent_id)
                if row is None:
                    # An agent that lives elsewhere: keep its inbox, as the reference does.
                    spec = external_spec(agent_id, self.trust_level)
                    row = _AgentRow(Agent(agent_id, spec, AgentState.UNKNOWN), created_at=stamp)
                    self._agents[agent_id] = row
                if row.agent.state is AgentState.TERMINATED:
                    out[agent_id] = f"agent '{agent_id}' is terminated"
                    continue
                stored = attrs.evolve(task, task_id=self._new_task_id())
                self._tasks[stored.task_id] = _TaskRow(
                    seq=next(self._seq),
                    task=stored,
                    agent_id=agent_id,
                    state=QUEUED if claimed_by is None else RUNNING,
                    claimed_by=claimed_by,
                    enqueued_at=stamp,
                    started_at=None if claimed_by is None else stamp,
                )
                row.task_ids.append(stored.task_id)
                out[agent_id] = stored
        return out

    def status(self, agent_ids: Sequence[str]) -> dict[str, AgentStatus]:
        """Live status of each agent; unknown IDs get state ``unknown`` and zero counts.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
        """
        ids = unique_ids(agent_ids)
        out: dict[str, AgentStatus] = {}
        with self._lock:
            for agent_id in ids:
                row = self._agents.get(agent_id)
                if row is None:
                    out[agent_id] = AgentStatus(agent_id, AgentState.UNKNOWN)
                    continue
                counts = {QUEUED: 0, RUNNING: 0, FAILED: 0, DONE: 0, CANCELLED: 0}
                last: float | None = None
                for task_id in row.task_ids:
                    task = self._tasks[task_id]
                    counts[task.state] += 1
                    if task.state in (DONE, FAILED) and task.finished_at is not None:
                        last = task.finished_at if last is None else max(last, task.finished_at)
                out[agent_id] = AgentStatus(
                    agent_id,
                    row.agent.state,
                    pending_tasks=counts[QUEUED],
                    running_tasks=counts[RUNNING],
                    failed_tasks=counts[FAILED],
                    completed_tasks=counts[DONE],
                    last_result_at=last,
                )
        return out

    def agents(self, agent_ids: Sequence[str]) -> dict[str, Agent]:
        """The known agents among ``agent_ids``, in input order.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
        """
        ids = unique_ids(agent_ids)
        with self._lock:
            return {i: self._agents[i].agent for i in ids if i in self._agents}

    def claim(self, agent_ids: Sequence[str], worker: str, limit: int) -> list[ClaimedTask]:
        """Atomically take up to ``limit`` queued tasks of these (alive) agents, oldest first.

        The tasks become running, owned by ``worker``.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
        """
        ids = unique_ids(agent_ids)
        if limit < 1:
            return []
        stamp = now()
        with self._lock:
            queued = (
                self._tasks[task_id]
                for agent_id in ids
                if (row := self._agents.get(agent_id)) is not None
                and row.agent.state is not AgentState.TERMINATED
                for task_id in row.task_ids
                if self._tasks[task_id].state == QUEUED
            )
            taken = heapq.nsmallest(limit, queued, key=lambda t: t.seq)
            for task in taken:
                task.state = RUNNING
                task.claimed_by = worker
                task.started_at = stamp
            return [ClaimedTask(self._agents[t.agent_id].agent, t.task) for t in taken]

    def finish(
        self, task_id: str, *, ok: bool, result: Any = None, error: str | None = None
    ) -> None:
        """Record the outcome of a task: ``done`` if ``ok`` else ``failed``.

        ``result`` is stored as JSON (its ``repr`` text when JSON cannot hold it).

        Raises:
            CoordinatorError: no task has this ID.
        """
        result_json = encode_result(result)
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                raise CoordinatorError(f"task '{task_id}' not found in {self.where}")
            task.state = DONE if ok else FAILED
            task.result_json = result_json
            task.error = error
            task.finished_at = now()

    def release(self, task_ids: Sequence[str]) -> None:
        """Put running tasks back in the queue (at their old place); others are ignored.

        Raises:
            InvalidArgumentError: ``task_ids`` is a single string.
        """
        ids = unique_ids(task_ids, "task_ids")
        with self._lock:
            for task_id in ids:
                task = self._tasks.get(task_id)
                if task is not None and task.state == RUNNING:
                    task.state = QUEUED
                    task.claimed_by = None
                    task.started_at = None

    def running(self, agent_ids: Sequence[str]) -> dict[str, str]:
        """Running tasks of these agents: task ID -> the worker that claimed it.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
        """
        ids = set(unique_ids(agent_ids))
        with self._lock:
            return {
                task.task.task_id: task.claimed_by or ""
                for task in self._tasks.values()
                if task.agent_id in ids and task.state == RUNNING
            }

    def close(self) -> None:
        """Nothing to release; present for the protocol. Never raises."""

    # -- extras -----------------------------------------------------------------

    def task_record(self, task_id: str) -> dict[str, Any] | None:
        """The stored task as a dict (state, result, error, agent_id, times), or None.

        Never raises.
        """
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return None
            return task_record(
                task=task.task,
                agent_id=task.agent_id,
                state=task.state,
                claimed_by=task.claimed_by,
                result_json=task.result_json,
                error=task.error,
                enqueued_at=task.enqueued_at,
                started_at=task.started_at,
                finished_at=task.finished_at,
            )

    def events(self, agent_id: str) -> list[tuple[str, str]]:
        """Lifecycle hooks handed over for ``agent_id``, oldest first, as (kind, hook text).

        Never raises.
        """
        with self._lock:
            row = self._agents.get(agent_id)
            return [] if row is None else list(row.events)

    def agent_ids(self, state: AgentState | None = None) -> list[str]:
        """IDs of every agent known here (optionally only those in ``state``), oldest first.

        Never raises.
        """
        with self._lock:
            return [
                agent_id
                for agent_id, row in self._agents.items()
                if state is None or row.agent.state is state
            ]
