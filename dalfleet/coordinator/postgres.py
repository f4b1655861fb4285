"""The PostgreSQL coordinator: agents, task queues, leases and outcomes in one database.

Workers on any number of hosts share the queues. A claim takes rows with
``FOR UPDATE SKIP LOCKED`` (two claims never wait for or take the same task),
sets a lease, and counts an attempt; a task whose lease expired is taken by the
next claim, or failed once it has used ``max_attempts``. Every call is one
transaction; inside ``store.transaction()`` of the same backend it joins that
transaction instead (see :mod:`dalfleet.store.postgres`).

Idle workers do not poll: :meth:`PostgresCoordinator.wait_for_tasks` blocks on
``LISTEN`` until a dispatch or a release sends ``NOTIFY`` (or until the next
lease runs out). Worker calls (claim, renew, finish, release) reconnect and
retry across a server restart, so a drain survives one without losing a task.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs
import psycopg

from dalfleet.coordinator import base
from dalfleet.coordinator.base import (
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    EXTERNAL_KEY,
    TERMINATED_ERROR,
    AgentStatus,
    ClaimedTask,
    DispatchResult,
    FinishStatus,
    TaskCounts,
    TaskOutcome,
    TaskRecord,
    TaskState,
    check_lease,
    check_max_attempts,
    decode_spec,
    encode_result,
    encode_spec,
    expired_error,
    external_spec,
    finish_status,
    new_agent_id,
    new_task_id,
    refused_error,
    storable_text,
    unique_ids,
)
from dalfleet.coordinator.memory import ON_CREATE, ON_DESTROY
from dalfleet.defaults import DEFAULT_TRUST_LEVEL
from dalfleet.errors import CoordinatorError
from dalfleet.models import AgentState
from dalfleet.records import Agent, AgentSpec, Task
from dalfleet.store.postgres import (
    NOTIFY_CHANNEL,
    PostgresBackend,
    SchemaTooNewError,
)

if TYPE_CHECKING:
    from psycopg import Cursor

__all__ = ["PostgresCoordinator"]

_PENDING: Final = TaskState.PENDING.value
_RUNNING: Final = TaskState.RUNNING.value
_TERMINATED: Final = AgentState.TERMINATED.value
_TASK_COLUMNS: Final = (
    "t.task_id, t.agent_id, t.body, t.fleet, t.state, t.worker, t.attempts, "
    "t.lease_expires_at, t.result, t.error, t.enqueued_at, t.started_at, t.finished_at"
)


def _storable(value: Any) -> Any:
    """``value`` (decoded JSON) with every string made storable (no lone surrogates)."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {storable_text(k): _storable(v) for k, v in value.items()}
    return value


def _json_text(value: Any) -> str:
    """JSON text that PostgreSQL's ``json`` type accepts (ASCII, surrogates escaped)."""
    return json.dumps(_storable(value))


def _result_text(result: Any) -> str | None:
    text = encode_result(result)
    return None if text is None else _json_text(json.loads(text))


def _task_body(task: Task) -> str:
    return _json_text(
        {
            "description": task.description,
            "priority": task.priority,
            "coordination_type": task.coordination_type,
        }
    )


def _task(task_id: str, body: dict[str, Any], fleet: str | None) -> Task:
    return Task(
        task_id,
        body["description"],
        body.get("priority", "medium"),
        body.get("coordination_type", "task_distribution"),
        fleet,
    )


class PostgresCoordinator:
    """The Coordinator protocol on a :class:`~dalfleet.store.postgres.PostgresBackend`.

    Build it from a backend (``PostgresBackend(url).coordinator``), or from a URL
    with :meth:`from_url`. ``max_attempts`` is how many claims a task gets before
    an expired lease fails it.

    Raises (constructor):
        InvalidArgumentError: ``max_attempts`` is not an int >= 1.
    """

    def __init__(
        self, backend: PostgresBackend, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS
    ) -> None:
        self.backend = backend
        self.max_attempts = check_max_attempts(max_attempts)
        self._listen_lock = threading.Lock()
        self._listener: psycopg.Connection[Any] | None = None
        self._listener_pid = os.getpid()
        self._inherited: list[psycopg.Connection[Any]] = []

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        trust_level: str = DEFAULT_TRUST_LEVEL,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> PostgresCoordinator:
        """A coordinator on its own backend for ``url`` (nothing connects yet).

        Raises:
            InvalidArgumentError: ``max_attempts`` is not an int >= 1.
        """
        backend = PostgresBackend(url, trust_level=trust_level)
        coordinator = cls(backend, max_attempts=max_attempts)
        backend.attach(coordinator)
        return coordinator

    @property
    def trust_level(self) -> str:
        """The trust level every spawned agent gets (the backend's)."""
        return self.backend.trust_level

    @trust_level.setter
    def trust_level(self, value: str) -> None:
        self.backend.trust_level = value

    def __repr__(self) -> str:
        return f"PostgresCoordinator({self.backend.location!r})"

    # -- agents -----------------------------------------------------------------

    def spawn(self, specs: Sequence[AgentSpec]) -> list[str]:
        """Create one alive agent per spec and return their IDs in order (all or nothing).

        Lifecycle hooks are recorded as events, never executed.

        Raises:
            CoordinatorError: a spec cannot be stored, or the database fails.
        """
        if not specs:
            return []
        rows: list[tuple[str, str]] = []
        events: list[tuple[str, str, str]] = []
        for spec in specs:
            text = encode_spec(attrs.evolve(spec, trust_level=self.trust_level))
            stored = decode_spec(text)
            agent_id = new_agent_id()
            rows.append((agent_id, _json_text(json.loads(text))))
            hook = stored.lifecycle.get(ON_CREATE)
            if hook is not None:
                events.append((agent_id, ON_CREATE, _json_text(hook)))

        def work(cur: Cursor[Any]) -> None:
            stamp = base.now()
            cur.executemany(
                "INSERT INTO dalfleet_agents (agent_id, spec, state, created_at) "
                "VALUES (%s, %s::json, 'alive', %s)",
                [(agent_id, spec, stamp) for agent_id, spec in rows],
            )
            cur.executemany(
                "INSERT INTO dalfleet_events (agent_id, kind, detail, at) "
                "VALUES (%s, %s, %s::json, %s)",
                [(*event, stamp) for event in events],
            )

        with self.backend.session(CoordinatorError) as cur:
            work(cur)
        return [agent_id for agent_id, _ in rows]

    def terminate(self, agent_ids: Sequence[str]) -> None:
        """Terminate these agents and fail their pending tasks; unknown IDs are ignored.

        An ``on_destroy`` hook is recorded as an event, never executed.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string.
            CoordinatorError: the database fails.
        """
        ids = unique_ids(agent_ids)
        if not ids:
            return

        def work(cur: Cursor[Any]) -> None:
            stamp = base.now()
            gone = cur.execute(
                "UPDATE dalfleet_agents SET state = %s, terminated_at = %s "
                "WHERE agent_id = ANY(%s) AND state <> %s "
                "RETURNING agent_id, spec",
                (_TERMINATED, stamp, ids, _TERMINATED),
            ).fetchall()
            if not gone:
                return
            # Read in Python, not with SQL's JSON operators: those refuse a \u0000.
            hooks = [
                (agent_id, (spec.get("lifecycle") or {}).get(ON_DESTROY)) for agent_id, spec in gone
            ]
            cur.execute(
                "UPDATE dalfleet_tasks SET state = 'failed', error = %s::json, finished_at = %s "
                "WHERE agent_id = ANY(%s) AND state = 'pending'",
                (_json_text(TERMINATED_ERROR), stamp, [agent_id for agent_id, _ in gone]),
            )
            cur.executemany(
                "INSERT INTO dalfleet_events (agent_id, kind, detail, at) "
                "VALUES (%s, %s, %s::json, %s)",
                [
                    (agent_id, ON_DESTROY, _json_text(hook), stamp)
                    for agent_id, hook in hooks
                    if isinstance(hook, str)
                ],
            )

        # Idempotent, so safe to repeat on a new connection after a server restart.
        self.backend.retrying(CoordinatorError, work)

    def agents(self, agent_ids: Sequence[str]) -> dict[str, Agent]:
        """The known agents among ``agent_ids``, in input order.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string.
            CoordinatorError: the database fails, or a stored spec is unreadable.
        """
        ids = unique_ids(agent_ids)
        if not ids:
            return {}
        rows = self.backend.retrying(
            CoordinatorError,
            lambda cur: cur.execute(
                "SELECT agent_id, spec, state FROM dalfleet_agents WHERE agent_id = ANY(%s)",
                (ids,),
            ).fetchall(),
        )
        found = {a: Agent(a, self._spec(spec), AgentState(state)) for a, spec, state in rows}
        return {a: found[a] for a in ids if a in found}

    def status(self, agent_ids: Sequence[str]) -> dict[str, AgentStatus]:
        """Live status of each agent with its task counts; unknown IDs get ``unknown``.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string.
            CoordinatorError: the database fails.
        """
        ids = unique_ids(agent_ids)
        if not ids:
            return {}

        def work(cur: Cursor[Any]) -> tuple[list[Any], list[Any]]:
            states = cur.execute(
                "SELECT agent_id, state FROM dalfleet_agents WHERE agent_id = ANY(%s)", (ids,)
            ).fetchall()
            counts = cur.execute(
                "SELECT agent_id, "
                "count(*) FILTER (WHERE state = 'pending'), "
                "count(*) FILTER (WHERE state = 'running'), "
                "count(*) FILTER (WHERE state = 'completed'), "
                "count(*) FILTER (WHERE state = 'failed'), "
                "max(finished_at) FILTER (WHERE state IN ('completed', 'failed')) "
                "FROM dalfleet_tasks WHERE agent_id = ANY(%s) GROUP BY agent_id",
                (ids,),
            ).fetchall()
            return states, counts

        states, counts = self.backend.retrying(CoordinatorError, work)
        state_of = dict(states)
        count_of = {row[0]: row[1:] for row in counts}
        out: dict[str, AgentStatus] = {}
        for agent_id in ids:
            if agent_id not in state_of:
                out[agent_id] = AgentStatus(agent_id, AgentState.UNKNOWN)
                continue
            pending, running, completed, failed, last = count_of.get(agent_id, (0, 0, 0, 0, None))
            out[agent_id] = AgentStatus(
                agent_id,
                AgentState(state_of[agent_id]),
                pending_tasks=pending,
                running_tasks=running,
                completed_tasks=completed,
                failed_tasks=failed,
                last_result_at=last,
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
        """Give ``task`` to every agent: one stored task, with a new ``task_id``, each.

        Agents that live elsewhere get an inbox (state ``unknown``); a terminated
        agent we spawned gets an error result. Pending tasks wake idle workers
        (``NOTIFY`` on commit). One transaction.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string, or ``lease`` is not > 0.
            CoordinatorError: the database fails; no task of this call exists afterwards.
        """
        ids = unique_ids(agent_ids)
        seconds = check_lease(lease)
        if not ids:
            return {}
        template = attrs.evolve(task, description=storable_text(task.description))
        body = _task_body(template)
        fleet = None if template.fleet is None else _json_text(template.fleet)
        out: dict[str, DispatchResult] = {}
        with self.backend.session(CoordinatorError) as cur:
            stamp = base.now()
            known = {
                agent_id: (state, (spec.get("metadata") or {}).get(EXTERNAL_KEY) == "true")
                for agent_id, state, spec in cur.execute(
                    "SELECT agent_id, state, spec FROM dalfleet_agents WHERE agent_id = ANY(%s)",
                    (ids,),
                )
            }
            new = [a for a in ids if a not in known]
            # Agents that live elsewhere (add_member) get an inbox, as the reference does;
            # ON CONFLICT: another host may give the same agent an inbox at the same time.
            cur.executemany(
                "INSERT INTO dalfleet_agents (agent_id, spec, state, created_at) "
                "VALUES (%s, %s::json, 'unknown', %s) ON CONFLICT (agent_id) DO NOTHING",
                [
                    (
                        a,
                        _json_text(json.loads(encode_spec(external_spec(a, self.trust_level)))),
                        stamp,
                    )
                    for a in new
                ],
            )
            reopen = [a for a, (state, ext) in known.items() if ext and state == _TERMINATED]
            if reopen:
                cur.execute(
                    "UPDATE dalfleet_agents SET state = 'unknown', terminated_at = NULL "
                    "WHERE agent_id = ANY(%s)",
                    (reopen,),
                )
            rows: list[tuple[Any, ...]] = []
            for agent_id in ids:
                state, external = known.get(agent_id, ("unknown", True))
                if state == _TERMINATED and not external:
                    out[agent_id] = DispatchResult(agent_id, error=refused_error(agent_id))
                    continue
                stored = attrs.evolve(template, task_id=new_task_id())
                out[agent_id] = DispatchResult(agent_id, task=stored)
                rows.append(
                    (
                        stored.task_id,
                        agent_id,
                        body,
                        fleet,
                        _PENDING if worker is None else _RUNNING,
                        worker,
                        0 if worker is None else 1,
                        None if worker is None else stamp + seconds,
                        stamp,
                        None if worker is None else stamp,
                    )
                )
            cur.executemany(
                "INSERT INTO dalfleet_tasks (task_id, agent_id, body, fleet, state, worker, "
                "attempts, lease_expires_at, enqueued_at, started_at) "
                "VALUES (%s, %s, %s::json, %s::json, %s, %s, %s, %s, %s, %s)",
                rows,
            )
            if rows and worker is None:
                cur.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
        return out

    def claim(
        self,
        agent_ids: Sequence[str],
        worker: str,
        limit: int,
        *,
        lease: float = DEFAULT_LEASE,
    ) -> list[ClaimedTask]:
        """Take up to ``limit`` tasks of these (not terminated) agents for ``worker``.

        Pending tasks and running tasks whose lease expired, oldest dispatch first,
        locked with ``FOR UPDATE SKIP LOCKED`` so concurrent claims on any host
        never wait for each other nor take the same task. Expired candidates that
        used ``max_attempts`` attempts are failed with their last error. Retried
        on a new connection when the server restarted (a claim that may have been
        committed before the cut is recovered when its lease expires).

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string, or ``lease`` is not > 0.
            CoordinatorError: the database fails; nothing was claimed.
        """
        ids = unique_ids(agent_ids)
        seconds = check_lease(lease)
        if not ids or limit < 1:
            return []
        return self.backend.retrying(
            CoordinatorError, lambda cur: self._claim(cur, ids, worker, limit, seconds)
        )

    def _claim(
        self, cur: Cursor[Any], ids: list[str], worker: str, limit: int, seconds: float
    ) -> list[ClaimedTask]:
        stamp = base.now()
        alive = (
            "FROM dalfleet_tasks AS t JOIN dalfleet_agents AS a ON a.agent_id = t.agent_id "
            "WHERE t.agent_id = ANY(%(ids)s) AND a.state <> 'terminated' "
        )
        expired = (
            "t.state = 'running' AND (t.lease_expires_at IS NULL OR t.lease_expires_at <= %(now)s)"
        )
        params: dict[str, Any] = {"ids": ids, "now": stamp, "max": self.max_attempts}
        # Expired leases with no attempt left: failed with the last error (running
        # tasks are few, so this is cheap; the open-tasks index finds them).
        spent = cur.execute(
            f"SELECT t.seq, t.worker, t.attempts, t.error {alive}"
            f"AND {expired} AND t.attempts >= %(max)s FOR UPDATE OF t SKIP LOCKED",
            params,
        ).fetchall()
        self._fail_spent(cur, spent, stamp)
        until = stamp + seconds
        claimed: list[ClaimedTask] = []
        specs: dict[str, AgentSpec] = {}
        while len(claimed) < limit:
            rows = cur.execute(
                f"SELECT t.seq, {_TASK_COLUMNS}, a.spec, a.state {alive}"
                f"AND (t.state = 'pending' OR ({expired})) "
                "ORDER BY t.seq LIMIT %(limit)s FOR UPDATE OF t SKIP LOCKED",
                {**params, "limit": limit - len(claimed)},
            ).fetchall()
            if not rows:
                break
            # A pending task out of attempts (max_attempts lowered since) is failed too.
            spent = [(r[0], r[6], r[7], r[10]) for r in rows if r[7] >= self.max_attempts]
            self._fail_spent(cur, spent, stamp)
            take = [r for r in rows if r[7] < self.max_attempts]
            cur.execute(
                "UPDATE dalfleet_tasks SET state = 'running', worker = %s, "
                "attempts = attempts + 1, lease_expires_at = %s, started_at = %s "
                "WHERE seq = ANY(%s)",
                (worker, until, stamp, [row[0] for row in take]),
            )
            for row in take:
                task_id, agent_id, body, fleet = row[1:5]
                if agent_id not in specs:
                    specs[agent_id] = self._spec(row[-2])
                claimed.append(
                    ClaimedTask(
                        Agent(agent_id, specs[agent_id], AgentState(row[-1])),
                        _task(task_id, body, fleet),
                        worker,
                        until,
                        row[7] + 1,
                    )
                )
            if not spent:
                break
        return claimed

    def _fail_spent(self, cur: Cursor[Any], spent: list[Any], stamp: float) -> None:
        if spent:
            cur.executemany(
                "UPDATE dalfleet_tasks SET state = 'failed', error = %s::json, finished_at = %s "
                "WHERE seq = %s",
                [
                    (_json_text(expired_error(w, attempts, error)), stamp, seq)
                    for seq, w, attempts, error in spent
                ],
            )

    def renew(
        self, task_ids: Sequence[str], worker: str, lease: float = DEFAULT_LEASE
    ) -> list[str]:
        """Extend ``worker``'s leases on these running tasks; return the IDs still held.

        Retried on a new connection after a server restart.

        Raises:
            InvalidArgumentError: ``task_ids`` is a string, or ``lease`` is not > 0.
            CoordinatorError: the database fails.
        """
        ids = unique_ids(task_ids, "task_ids")
        seconds = check_lease(lease)
        if not ids:
            return []
        held = {
            row[0]
            for row in self.backend.retrying(
                CoordinatorError,
                lambda cur: cur.execute(
                    "UPDATE dalfleet_tasks SET lease_expires_at = %s "
                    "WHERE task_id = ANY(%s) AND state = 'running' AND worker = %s "
                    "RETURNING task_id",
                    (base.now() + seconds, ids, worker),
                ).fetchall(),
            )
        }
        return [task_id for task_id in ids if task_id in held]

    def finish(self, outcome: TaskOutcome, worker: str) -> FinishStatus:
        """Record one task's outcome (see :meth:`finish_many`).

        Raises:
            CoordinatorError: the database fails; nothing was recorded.
        """
        return self.finish_many([outcome], worker)[outcome.task_id]

    def finish_many(self, outcomes: Sequence[TaskOutcome], worker: str) -> dict[str, FinishStatus]:
        """Record outcomes of tasks running under ``worker``, once each, in one transaction.

        Returns the :class:`FinishStatus` per task ID, in input order. Retried on a
        new connection after a server restart: a finish repeated after a cut
        whose commit did land answers ``already_finished``, and changes nothing.

        Raises:
            CoordinatorError: the database fails; nothing of this call was recorded.
        """
        encoded: list[tuple[str, str, str | None, str | None]] = []
        for outcome in outcomes:
            if outcome.ok:
                encoded.append((outcome.task_id, "completed", _result_text(outcome.result), None))
            else:
                text = outcome.error if isinstance(outcome.error, str) and outcome.error else None
                encoded.append((outcome.task_id, "failed", None, _json_text(text or "failed")))
        ids = list(dict.fromkeys(task_id for task_id, *_ in encoded))
        if not ids:
            return {}

        first: dict[str, tuple[str, str | None, str | None]] = {}
        for task_id, final, result, error in encoded:
            first.setdefault(task_id, (final, result, error))

        def work(cur: Cursor[Any]) -> dict[str, FinishStatus]:
            # One statement records every outcome whose task this worker still holds.
            recorded = {
                row[0]
                for row in cur.execute(
                    "UPDATE dalfleet_tasks AS t SET state = v.state, result = v.result::json, "
                    "error = v.error::json, finished_at = %s "
                    "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) "
                    "AS v(task_id, state, result, error) "
                    "WHERE t.task_id = v.task_id AND t.state = 'running' AND t.worker = %s "
                    "RETURNING t.task_id",
                    (
                        base.now(),
                        list(first),
                        [v[0] for v in first.values()],
                        [v[1] for v in first.values()],
                        [v[2] for v in first.values()],
                        worker,
                    ),
                )
            }
            out = dict.fromkeys(recorded, FinishStatus.RECORDED)
            others = [task_id for task_id in first if task_id not in recorded]
            if others:
                found = {
                    task_id: (TaskState(state), holder)
                    for task_id, state, holder in cur.execute(
                        "SELECT task_id, state, worker FROM dalfleet_tasks WHERE task_id = ANY(%s)",
                        (others,),
                    )
                }
                for task_id in others:
                    if task_id not in found:
                        out[task_id] = FinishStatus.NOT_FOUND
                    else:
                        out[task_id] = finish_status(*found[task_id], worker)
            return out

        statuses = self.backend.retrying(CoordinatorError, work)
        return {task_id: statuses[task_id] for task_id in ids}

    def release(self, task_ids: Sequence[str], worker: str) -> None:
        """Put tasks running under ``worker`` back to ``pending``, giving back the attempt.

        Wakes idle workers. Retried on a new connection after a server restart.

        Raises:
            InvalidArgumentError: ``task_ids`` is a string.
            CoordinatorError: the database fails.
        """
        ids = unique_ids(task_ids, "task_ids")
        if not ids:
            return

        def work(cur: Cursor[Any]) -> None:
            released = cur.execute(
                "UPDATE dalfleet_tasks SET state = 'pending', "
                "attempts = greatest(attempts - 1, 0), "
                "lease_expires_at = NULL, started_at = NULL "
                "WHERE task_id = ANY(%s) AND state = 'running' AND worker = %s",
                (ids, worker),
            ).rowcount
            if released:
                cur.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))

        self.backend.retrying(CoordinatorError, work)

    def task_counts(self, agent_ids: Sequence[str]) -> TaskCounts:
        """How many tasks of these agents are in each state (one query).

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string.
            CoordinatorError: the database fails.
        """
        ids = unique_ids(agent_ids)
        if not ids:
            return TaskCounts()
        rows = self.backend.retrying(
            CoordinatorError,
            lambda cur: cur.execute(
                "SELECT state, count(*) FROM dalfleet_tasks WHERE agent_id = ANY(%s) "
                "GROUP BY state",
                (ids,),
            ).fetchall(),
        )
        tally = {state: int(n) for state, n in rows}
        return TaskCounts.from_tally(tally)

    def open_task_count(self, agent_ids: Sequence[str]) -> int:
        """How many tasks of these agents are pending or running (one query, which
        reads the open tasks rather than every finished one).

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string.
            CoordinatorError: the database fails.
        """
        ids = unique_ids(agent_ids)
        if not ids:
            return 0
        row: tuple[int] | None = self.backend.retrying(
            CoordinatorError,
            lambda cur: cur.execute(
                "SELECT count(*) FROM dalfleet_tasks WHERE agent_id = ANY(%s) "
                "AND state IN ('pending', 'running')",
                (ids,),
            ).fetchone(),
        )
        return 0 if row is None else int(row[0])

    def tasks(self, agent_id: str) -> list[TaskRecord]:
        """Every task of one agent, oldest dispatch first (empty for an unknown ID).

        Raises:
            CoordinatorError: the database fails.
        """
        rows = self.backend.retrying(
            CoordinatorError,
            lambda cur: cur.execute(
                f"SELECT {_TASK_COLUMNS} FROM dalfleet_tasks AS t WHERE t.agent_id = %s "
                "ORDER BY t.seq",
                (agent_id,),
            ).fetchall(),
        )
        return [self._record(row) for row in rows]

    def task(self, task_id: str) -> TaskRecord | None:
        """The stored task with this ID, or None.

        Raises:
            CoordinatorError: the database fails.
        """
        rows = self.backend.retrying(
            CoordinatorError,
            lambda cur: cur.execute(
                f"SELECT {_TASK_COLUMNS} FROM dalfleet_tasks AS t WHERE t.task_id = %s",
                (task_id,),
            ).fetchall(),
        )
        return self._record(rows[0]) if rows else None

    def close(self) -> None:
        """Close the backend's connections; a later call reconnects. Never raises."""
        self.backend.close()

    # -- waking idle workers --------------------------------------------------------

    def wait_for_tasks(self, agent_ids: Sequence[str], timeout: float) -> bool:
        """Block until a task of these agents may be claimable, or ``timeout`` seconds.

        Returns True at once when a pending task, or a running one whose lease
        expired, exists; otherwise waits on ``LISTEN`` for a dispatch or a release
        (any host), or until the earliest lease of these agents runs out, and
        returns True; False when the timeout passed with nothing to do. A True may
        be spurious (another worker was faster, or the connection was cut by a
        server restart): claim, and wait again if nothing was claimed.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string.
            CoordinatorError: the database fails (a cut connection is not a failure
                here: the call returns True and the next claim reconnects), or it has
                a newer schema.
        """
        ids = unique_ids(agent_ids)
        deadline = time.monotonic() + max(0.0, timeout)
        self._after_fork()
        with self._listen_lock:
            try:
                conn = self._listening()
                # LISTEN is active before this check, so nothing dispatched after it is missed.
                row = conn.execute(
                    # What claim() could take: tasks of agents that are not terminated.
                    "SELECT count(*) FILTER (WHERE t.state = 'pending' "
                    "OR t.lease_expires_at <= %s), "
                    "min(t.lease_expires_at) FILTER (WHERE t.state = 'running') "
                    "FROM dalfleet_tasks AS t JOIN dalfleet_agents AS a "
                    "ON a.agent_id = t.agent_id WHERE t.agent_id = ANY(%s) "
                    "AND a.state <> 'terminated' AND t.state IN ('pending', 'running')",
                    (base.now(), ids),
                ).fetchone()
                ready, next_expiry = (row[0], row[1]) if row is not None else (0, None)
                if ready:
                    return True
                wait = deadline - time.monotonic()
                if next_expiry is not None:
                    wait = min(wait, max(0.0, next_expiry - base.now()) + 0.01)
                if wait <= 0:
                    return False
                for _ in conn.notifies(timeout=wait, stop_after=1):
                    return True
                return next_expiry is not None and time.monotonic() < deadline
            except psycopg.Error as exc:
                broken = self._listener is None or self._listener.broken or self._listener.closed
                self._drop_listener()
                if broken or isinstance(exc, psycopg.OperationalError):
                    # The server went away (a restart): wake the caller, whose next
                    # claim reconnects (and waits for the server) on its own.
                    return True
                raise CoordinatorError(
                    f"PostgreSQL database {self.backend.location}: {exc}"
                ) from exc
            except SchemaTooNewError as exc:
                raise CoordinatorError(str(exc)) from None

    def _after_fork(self) -> None:
        if self._listener_pid != os.getpid():
            # Inherited through fork(): the parent's LISTEN session and lock are not ours.
            self._listen_lock = threading.Lock()
            if self._listener is not None:
                self._inherited.append(self._listener)
                self._listener = None
            self._listener_pid = os.getpid()

    def _listening(self) -> psycopg.Connection[Any]:
        conn = self._listener
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._drop_listener()
        conn = self.backend.connect(autocommit=True)
        conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        self._listener = conn
        return conn

    def _drop_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close_listener(self) -> None:
        """Close the ``LISTEN`` connection, if any. Never raises."""
        self._after_fork()
        with self._listen_lock:
            self._drop_listener()

    # -- extras -----------------------------------------------------------------

    def events(self, agent_id: str) -> list[tuple[str, str]]:
        """Lifecycle hooks handed over for ``agent_id``, oldest first, as (kind, hook text).

        Raises:
            CoordinatorError: the database fails.
        """
        rows = self.backend.retrying(
            CoordinatorError,
            lambda cur: cur.execute(
                "SELECT kind, detail FROM dalfleet_events WHERE agent_id = %s ORDER BY seq",
                (agent_id,),
            ).fetchall(),
        )
        return [(kind, str(detail)) for kind, detail in rows]

    def agent_ids(self, state: AgentState | None = None) -> list[str]:
        """IDs of every agent known here (spawned, or given an inbox by :meth:`dispatch`),
        oldest first; only those in ``state`` if given (used to find orphans).

        Raises:
            CoordinatorError: the database fails.
        """
        sql = "SELECT agent_id FROM dalfleet_agents"
        params: tuple[str, ...] = ()
        if state is not None:
            sql += " WHERE state = %s"
            params = (state.value,)
        rows = self.backend.retrying(
            CoordinatorError,
            lambda cur: cur.execute(sql + " ORDER BY seq", params).fetchall(),
        )
        return [agent_id for (agent_id,) in rows]

    # -- helpers ----------------------------------------------------------------

    def _spec(self, doc: Any) -> AgentSpec:
        return decode_spec(json.dumps(doc))

    def _record(self, row: Sequence[Any]) -> TaskRecord:
        (task_id, agent_id, body, fleet, state, worker, attempts, lease, result, error) = row[:10]
        enqueued_at, started_at, finished_at = row[10:13]
        return TaskRecord(
            task=_task(task_id, body, fleet),
            agent_id=agent_id,
            state=TaskState(state),
            enqueued_at=enqueued_at,
            worker=worker,
            attempts=attempts,
            lease_expires_at=lease,
            result=result,
            error=error,
            started_at=started_at,
            finished_at=finished_at,
        )
