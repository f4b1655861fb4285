"""An in-process coordinator for tests and notebooks (the "mock transport").

Agents, tasks and lifecycle events live in dictionaries behind one lock. Specs and
results are kept in their stored (JSON) form, so what comes back is what the
SQLite coordinator would give back. The task rules themselves (claim, finish,
counts) are the shared helpers of :mod:`dalfleet.coordinator.base`.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Final

import attrs

from dalfleet.coordinator.base import (
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    TERMINATED_ERROR,
    AgentStatus,
    ClaimAction,
    ClaimedTask,
    DispatchResult,
    FinishStatus,
    TaskCounts,
    TaskOutcome,
    TaskRecord,
    TaskState,
    check_lease,
    check_max_attempts,
    claim_action,
    counts_of,
    decode_result,
    decode_spec,
    encode_spec,
    expired_error,
    external_spec,
    finish_status,
    new_agent_id,
    new_task_id,
    now,
    outcome_columns,
    refused_error,
    storable_text,
    unique_ids,
)
from dalfleet.defaults import DEFAULT_TRUST_LEVEL
from dalfleet.models import AgentState
from dalfleet.records import Agent, AgentSpec, Task

__all__ = ["ON_CREATE", "ON_DESTROY", "MemoryCoordinator"]

# Lifecycle hooks of a mold that a coordinator hands over (records), never runs.
ON_CREATE: Final = "on_create"
ON_DESTROY: Final = "on_destroy"


@attrs.define
class _AgentRow:
    agent: Agent
    external: bool
    task_ids: list[str] = attrs.field(factory=list)
    events: list[tuple[str, str]] = attrs.field(factory=list)


@attrs.define
class _TaskRow:
    seq: int
    task: Task
    agent_id: str
    state: TaskState
    enqueued_at: float
    worker: str | None = None
    attempts: int = 0
    lease_expires_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    result_json: str | None = None
    error: str | None = None

    def record(self) -> TaskRecord:
        return TaskRecord(
            task=self.task,
            agent_id=self.agent_id,
            state=self.state,
            enqueued_at=self.enqueued_at,
            worker=self.worker,
            attempts=self.attempts,
            lease_expires_at=self.lease_expires_at,
            result=decode_result(self.result_json),
            error=self.error,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )


class MemoryCoordinator:
    """Agents and their task queues in this process's memory; thread-safe.

    Every agent is spawned with ``trust_level`` (the principal's setting), whatever
    its spec says; a task gets ``max_attempts`` claims. Nothing outlives the object.
    ``id_factory`` makes new agent IDs (default :func:`new_agent_id`).

    Raises (constructor):
        InvalidArgumentError: ``max_attempts`` is not an int >= 1.
    """

    def __init__(
        self,
        trust_level: str = DEFAULT_TRUST_LEVEL,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self.trust_level = trust_level
        self.max_attempts = check_max_attempts(max_attempts)
        self._new_agent_id = id_factory or new_agent_id
        self._lock = threading.Lock()
        self._agents: dict[str, _AgentRow] = {}
        self._tasks: dict[str, _TaskRow] = {}
        self._seq = itertools.count()

    def __repr__(self) -> str:
        return f"MemoryCoordinator(trust_level={self.trust_level!r})"

    # -- agents -----------------------------------------------------------------

    def spawn(self, specs: Sequence[AgentSpec]) -> list[str]:
        """Create one agent per spec and return their IDs in order (all or nothing).

        An ``on_create`` hook is recorded as an event, never executed.

        Raises:
            CoordinatorError: a spec cannot be stored; no agent is created.
        """
        # Round-trip through the stored form first, so a bad spec fails before
        # anything is created and specs come back as the SQLite coordinator gives them.
        decoded = [
            decode_spec(encode_spec(attrs.evolve(s, trust_level=self.trust_level))) for s in specs
        ]
        ids = [self._new_agent_id() for _ in decoded]
        with self._lock:
            for agent_id, spec in zip(ids, decoded, strict=True):
                row = _AgentRow(agent=Agent(agent_id, spec), external=False)
                hook = spec.lifecycle.get(ON_CREATE)
                if hook is not None:
                    row.events.append((ON_CREATE, hook))
                self._agents[agent_id] = row
        return ids

    def terminate(self, agent_ids: Sequence[str]) -> None:
        """Terminate the given agents and fail their pending tasks.

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
                hook = row.agent.spec.lifecycle.get(ON_DESTROY)
                if hook is not None:
                    row.events.append((ON_DESTROY, hook))
                for task_id in row.task_ids:
                    task = self._tasks[task_id]
                    if task.state is TaskState.PENDING:
                        task.state = TaskState.FAILED
                        task.error = TERMINATED_ERROR
                        task.finished_at = stamp

    def agents(self, agent_ids: Sequence[str]) -> dict[str, Agent]:
        """The known agents among ``agent_ids``, in input order.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
        """
        ids = unique_ids(agent_ids)
        with self._lock:
            return {i: self._agents[i].agent for i in ids if i in self._agents}

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
                tasks = [self._tasks[t] for t in row.task_ids]
                counts = counts_of(t.state for t in tasks)
                finished = [t.finished_at for t in tasks if t.finished_at is not None]
                out[agent_id] = AgentStatus(
                    agent_id,
                    row.agent.state,
                    pending_tasks=counts.pending,
                    running_tasks=counts.running,
                    completed_tasks=counts.completed,
                    failed_tasks=counts.failed,
                    last_result_at=max(finished, default=None),
                )
        return out

    # -- tasks ------------------------------------------------------------------

    def dispatch(
        self,
        agent_ids: Sequence[str],
        task: Task,
        *,
        worker: str | None = None,
        lease: float = DEFAULT_LEASE,
    ) -> dict[str, DispatchResult]:
        """Give ``task`` to every agent, as one task record (own ``task_id``) each.

        See :meth:`Coordinator.dispatch <dalfleet.coordinator.base.Coordinator.dispatch>`.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string, or a bad ``lease``.
        """
        ids = unique_ids(agent_ids)
        seconds = check_lease(lease)
        template = attrs.evolve(task, description=storable_text(task.description))
        stamp = now()
        out: dict[str, DispatchResult] = {}
        with self._lock:
            for agent_id in ids:
                row = self._agents.get(agent_id)
                if row is None:
                    # An agent that lives elsewhere: keep its inbox, as the reference does.
                    spec = external_spec(agent_id, self.trust_level)
                    row = _AgentRow(Agent(agent_id, spec, AgentState.UNKNOWN), external=True)
                    self._agents[agent_id] = row
                elif row.external and row.agent.state is AgentState.TERMINATED:
                    row.agent = attrs.evolve(row.agent, state=AgentState.UNKNOWN)
                if row.agent.state is AgentState.TERMINATED:
                    out[agent_id] = DispatchResult(agent_id, error=refused_error(agent_id))
                    continue
                stored = attrs.evolve(template, task_id=new_task_id())
                self._tasks[stored.task_id] = _TaskRow(
                    seq=next(self._seq),
                    task=stored,
                    agent_id=agent_id,
                    state=TaskState.PENDING if worker is None else TaskState.RUNNING,
                    enqueued_at=stamp,
                    worker=worker,
                    attempts=0 if worker is None else 1,
                    lease_expires_at=None if worker is None else stamp + seconds,
                    started_at=None if worker is None else stamp,
                )
                row.task_ids.append(stored.task_id)
                out[agent_id] = DispatchResult(agent_id, task=stored)
        return out

    def claim(
        self,
        agent_ids: Sequence[str],
        worker: str,
        limit: int,
        *,
        lease: float = DEFAULT_LEASE,
    ) -> list[ClaimedTask]:
        """Take up to ``limit`` tasks of these (alive) agents for ``worker``, oldest first.

        See :meth:`Coordinator.claim <dalfleet.coordinator.base.Coordinator.claim>`.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string, or a bad ``lease``.
        """
        ids = unique_ids(agent_ids)
        seconds = check_lease(lease)
        if limit < 1:
            return []
        stamp = now()
        with self._lock:
            candidates = (
                self._tasks[task_id]
                for agent_id in ids
                if (row := self._agents.get(agent_id)) is not None
                and row.agent.state is not AgentState.TERMINATED
                for task_id in row.task_ids
                if not self._tasks[task_id].state.finished
            )
            taken: list[_TaskRow] = []
            for task in sorted(candidates, key=lambda t: t.seq):
                action = claim_action(
                    task.state, task.attempts, task.lease_expires_at, stamp, self.max_attempts
                )
                if action is ClaimAction.FAIL:
                    task.error = expired_error(task.worker, task.attempts, task.error)
                    task.state = TaskState.FAILED
                    task.finished_at = stamp
                elif action is ClaimAction.TAKE and len(taken) < limit:
                    taken.append(task)
            for task in taken:
                task.state = TaskState.RUNNING
                task.worker = worker
                task.attempts += 1
                task.lease_expires_at = stamp + seconds
                task.started_at = stamp
            return [
                ClaimedTask(
                    self._agents[t.agent_id].agent,
                    t.task,
                    worker,
                    stamp + seconds,
                    t.attempts,
                )
                for t in taken
            ]

    def renew(
        self, task_ids: Sequence[str], worker: str, lease: float = DEFAULT_LEASE
    ) -> list[str]:
        """Extend ``worker``'s leases on these running tasks; return the IDs still held.

        Raises:
            InvalidArgumentError: ``task_ids`` is a single string, or a bad ``lease``.
        """
        ids = unique_ids(task_ids, "task_ids")
        until = now() + check_lease(lease)
        held: list[str] = []
        with self._lock:
            for task_id in ids:
                task = self._tasks.get(task_id)
                if task is not None and task.state is TaskState.RUNNING and task.worker == worker:
                    task.lease_expires_at = until
                    held.append(task_id)
        return held

    def finish(self, outcome: TaskOutcome, worker: str) -> FinishStatus:
        """Record one task's outcome (see :meth:`finish_many`). Never raises."""
        return self.finish_many([outcome], worker)[outcome.task_id]

    def finish_many(self, outcomes: Sequence[TaskOutcome], worker: str) -> dict[str, FinishStatus]:
        """Record outcomes of tasks running under ``worker``, once each; statuses by task ID.

        Never raises.
        """
        encoded = [(o, *outcome_columns(o)) for o in outcomes]
        stamp = now()
        out: dict[str, FinishStatus] = {}
        with self._lock:
            for outcome, final, result_json, error in encoded:
                task = self._tasks.get(outcome.task_id)
                if task is None:
                    out.setdefault(outcome.task_id, FinishStatus.NOT_FOUND)
                    continue
                status = finish_status(task.state, task.worker, worker)
                out.setdefault(outcome.task_id, status)
                if status is not FinishStatus.RECORDED:
                    continue
                task.state = final
                task.result_json = result_json
                task.error = error
                task.finished_at = stamp
        return out

    def release(self, task_ids: Sequence[str], worker: str) -> None:
        """Put tasks running under ``worker`` back in the queue (at their old place).

        Raises:
            InvalidArgumentError: ``task_ids`` is a single string.
        """
        ids = unique_ids(task_ids, "task_ids")
        with self._lock:
            for task_id in ids:
                task = self._tasks.get(task_id)
                if task is not None and task.state is TaskState.RUNNING and task.worker == worker:
                    task.state = TaskState.PENDING
                    task.worker = None
                    task.attempts = max(0, task.attempts - 1)
                    task.lease_expires_at = None
                    task.started_at = None

    def task_counts(self, agent_ids: Sequence[str]) -> TaskCounts:
        """Tasks of these agents by state.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
        """
        ids = unique_ids(agent_ids)
        with self._lock:
            return counts_of(
                self._tasks[t].state
                for agent_id in ids
                if (row := self._agents.get(agent_id)) is not None
                for t in row.task_ids
            )

    def tasks(self, agent_id: str) -> list[TaskRecord]:
        """Every task of one agent, oldest first. Never raises."""
        with self._lock:
            row = self._agents.get(agent_id)
            return [] if row is None else [self._tasks[t].record() for t in row.task_ids]

    def task(self, task_id: str) -> TaskRecord | None:
        """The stored task with this ID, or None. Never raises."""
        with self._lock:
            row = self._tasks.get(task_id)
            return None if row is None else row.record()

    def close(self) -> None:
        """Nothing to release; present for the protocol. Never raises."""

    # -- extras -----------------------------------------------------------------

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
