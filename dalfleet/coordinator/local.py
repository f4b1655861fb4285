"""The local coordinator: agents, queues and results in SQLite under ``<base>/.dal/``.

``<base>/.dal/agent_runtime.db`` plays the reference's ``agent_runtime`` role: a
``run`` in one process reaches agents created by another, and worker processes
drain the queues (claims are atomic across processes).

Read-only calls never create the directory or the database; only ``spawn`` does.
Every batch is one transaction, and every lookup of many IDs is one query (the
IDs travel as one JSON array, expanded by ``json_each``), whatever their number.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

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
    decode_result,
    decode_spec,
    encode_spec,
    expired_error,
    external_spec,
    finish_status,
    new_agent_id,
    new_task_ids,
    now,
    outcome_columns,
    refused_error,
    storable_text,
    unique_ids,
)
from dalfleet.defaults import DEFAULT_TRUST_LEVEL
from dalfleet.errors import CoordinatorError, quote
from dalfleet.models import AgentState
from dalfleet.records import Agent, AgentSpec, Task

__all__ = ["DB_RELPATH", "SCHEMA_VERSION", "LocalCoordinator"]

DB_RELPATH: Final = Path(".dal") / "agent_runtime.db"
SCHEMA_VERSION: Final = 2  # PRAGMA user_version; bump with a step in _MIGRATIONS

_CACHE_KIB: Final = 32 * 1024  # the page cache of each connection, at most
# Task's fields after task_id and description (dispatch builds a Task per member).
_TASK_REST: Final = 2

# Lifecycle hooks of a mold that a coordinator hands over (records), never runs.
ON_CREATE: Final = "on_create"
ON_DESTROY: Final = "on_destroy"

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS agents (
        agent_id      TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        spec_json     TEXT NOT NULL,
        state         TEXT NOT NULL,
        created_at    REAL NOT NULL,
        terminated_at REAL,
        external      INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS tasks (
        seq               INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id           TEXT NOT NULL UNIQUE,
        agent_id          TEXT NOT NULL,
        description       TEXT NOT NULL,
        priority          TEXT NOT NULL,
        coordination_type TEXT NOT NULL,
        fleet             TEXT,
        state             TEXT NOT NULL,
        claimed_by        TEXT,
        result_json       TEXT,
        error             TEXT,
        enqueued_at       REAL NOT NULL,
        started_at        REAL,
        finished_at       REAL,
        attempts          INTEGER NOT NULL DEFAULT 0,
        lease_expires_at  REAL
    )""",
    "CREATE INDEX IF NOT EXISTS tasks_agent_state ON tasks (agent_id, state, seq)",
    """CREATE TABLE IF NOT EXISTS events (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        agent_id TEXT NOT NULL,
        kind     TEXT NOT NULL,
        detail   TEXT NOT NULL,
        at       REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_agent ON events (agent_id, seq)",
)

# Upgrade steps: _MIGRATIONS[v] takes a database from schema v to v + 1.
_MIGRATIONS: Final = {
    1: (
        "ALTER TABLE agents ADD COLUMN external INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN lease_expires_at REAL",
        # Version 1 marked agents from elsewhere only by their stand-in spec.
        "UPDATE agents SET external = 1 WHERE name = agent_id "
        "AND json_extract(spec_json, '$.metadata.external') = 'true' "
        "AND COALESCE(json_extract(spec_json, '$.mold_name'), '') = ''",
        "UPDATE tasks SET state = 'pending' WHERE state = 'queued'",
        "UPDATE tasks SET state = 'completed' WHERE state = 'done'",
        "UPDATE tasks SET state = 'failed', "
        f"error = '{TERMINATED_ERROR}' WHERE state = 'cancelled'",
        # Version 1 claims had no lease: they may be taken over at once.
        "UPDATE tasks SET attempts = 1, lease_expires_at = 0 WHERE state = 'running'",
    ),
}

# "the rows whose column is one of the IDs in this JSON array": one bound
# parameter for any number of IDs, so no SQLite variable limit and one query.
_IN_IDS: Final = "IN (SELECT value FROM json_each(?))"

_TASK_COLUMNS: Final = (
    "task_id, agent_id, description, priority, coordination_type, fleet, state, "
    "claimed_by, attempts, lease_expires_at, result_json, error, enqueued_at, "
    "started_at, finished_at"
)

# Candidates of a claim: pending, or running with an expired lease (the rule of
# base.claim_action, also applied to each row), of agents that are not terminated.
_CANDIDATES: Final = (
    "FROM tasks AS t JOIN agents AS a ON a.agent_id = t.agent_id "
    f"WHERE t.agent_id {_IN_IDS} AND a.state != 'terminated' "
    "AND (t.state = 'pending' OR (t.state = 'running' AND "
    "(t.lease_expires_at IS NULL OR t.lease_expires_at <= ?)))"
)


def _record(row: Sequence[Any]) -> TaskRecord:
    (task_id, agent_id, description, priority, coordination, fleet, state, *rest) = row
    worker, attempts, lease, result_json, error, enqueued, started, finished = rest
    return TaskRecord(
        task=Task(task_id, description, priority, coordination, fleet),
        agent_id=agent_id,
        state=TaskState(state),
        enqueued_at=enqueued,
        worker=worker,
        attempts=attempts,
        lease_expires_at=lease,
        result=decode_result(result_json),
        error=error,
        started_at=started,
        finished_at=finished,
    )


# The files SQLite keeps beside the database, by suffix.
_SIDECARS = ("-wal", "-shm", "-journal")


class LocalCoordinator:
    """Agents and task queues in ``<base>/.dal/agent_runtime.db``, shared by processes.

    One connection per instance, guarded by a lock (callable from any thread) and
    reopened after ``os.fork()``. Every agent is spawned with ``trust_level`` (the
    principal's setting), whatever its spec says; a task gets ``max_attempts``
    claims. ``busy_timeout`` is how long a call waits for another process's write
    to finish before failing. Every write is one short ``BEGIN IMMEDIATE``
    transaction that is rolled back on any exception, Ctrl-C included, so the
    connection is never left inside a transaction.

    A zero-length database file (what a crash while the file was being created
    leaves) is taken as a new one, as SQLite itself takes it: reads find no agents
    and the first spawn creates the schema in it. A symlink at the database or at
    its ``-wal``, ``-shm`` or ``-journal`` file is refused, never followed.

    Raises (constructor):
        InvalidArgumentError: ``max_attempts`` is not an int >= 1.
    """

    def __init__(
        self,
        base: str | os.PathLike[str],
        trust_level: str = DEFAULT_TRUST_LEVEL,
        *,
        busy_timeout: float = 30.0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.base = Path(base)
        self.path = self.base / DB_RELPATH
        self.trust_level = trust_level
        self.max_attempts = check_max_attempts(max_attempts)
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._conn: sqlite3.Connection | None = None
        # Connections inherited across fork(): SQLite forbids using (closing
        # included) them in the child, so they are only kept from being collected.
        self._inherited: list[sqlite3.Connection] = []

    def __repr__(self) -> str:
        return f"LocalCoordinator({str(self.base)!r}, trust_level={self.trust_level!r})"

    def __enter__(self) -> LocalCoordinator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- agents -----------------------------------------------------------------

    def spawn(self, specs: Sequence[AgentSpec]) -> list[str]:
        """Create one agent per spec and return their IDs in order.

        Creates ``<base>/.dal/`` and the database if needed. The stored spec carries
        this coordinator's ``trust_level``. An ``on_create`` hook is recorded as an
        event, never executed. One transaction: on failure nothing is created.

        Raises:
            CoordinatorError: a spec cannot be stored, or the database cannot be
                created, opened or written.
        """
        if not specs:
            return []
        stamp = now()
        agents: list[tuple[str, str, str, str, float]] = []
        events: list[tuple[str, str, str, float]] = []
        alive = AgentState.ALIVE.value
        for spec in specs:
            if spec.trust_level != self.trust_level:
                spec = attrs.evolve(spec, trust_level=self.trust_level)
            # Stored as encoded; the name and hooks are the spec's own (decoding the
            # text again was a third AgentSpec per agent and half of a spawn).
            text = encode_spec(spec)
            agent_id = new_agent_id()
            agents.append((agent_id, spec.name, text, alive, stamp))
            hook = spec.lifecycle.get(ON_CREATE)
            if hook is not None:
                events.append((agent_id, ON_CREATE, hook, stamp))
        with self._transaction(write=True, create=True) as conn:
            assert conn is not None  # create=True always yields a connection
            conn.executemany(
                "INSERT INTO agents (agent_id, name, spec_json, state, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                agents,
            )
            conn.executemany(
                "INSERT INTO events (agent_id, kind, detail, at) VALUES (?, ?, ?, ?)", events
            )
        return [row[0] for row in agents]

    def terminate(self, agent_ids: Sequence[str]) -> None:
        """Terminate the given agents and fail their pending tasks (one transaction).

        Unknown and already terminated IDs are ignored; with no database this is a
        no-op that creates nothing. An ``on_destroy`` hook is recorded as an event,
        never executed.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
            CoordinatorError: the database cannot be opened or written.
        """
        ids = unique_ids(agent_ids)
        if not ids:
            return
        with self._transaction(write=True) as conn:
            if conn is not None:
                self._terminate_in(conn, ids)

    def check_writable(self) -> None:
        """Wait for SQLite's write lock (up to ``busy_timeout``) and release it at once.

        A caller about to change something else first (the fleet file) and then
        terminate agents checks here that the terminate will not fail on a lock
        another process holds; an error here means nothing changed anywhere.

        Raises:
            CoordinatorError: the database cannot be opened or locked.
        """
        with self._transaction(write=True):
            pass

    def _terminate_in(self, conn: sqlite3.Connection, ids: list[str]) -> None:
        """The terminate, inside the caller's write transaction."""
        stamp = now()
        rows = conn.execute(
            "SELECT agent_id, json_extract(spec_json, '$.lifecycle.' || ?) FROM agents "
            f"WHERE agent_id {_IN_IDS} AND state != ?",
            (ON_DESTROY, json.dumps(ids), AgentState.TERMINATED.value),
        ).fetchall()
        if not rows:
            return
        alive = json.dumps([agent_id for agent_id, _ in rows])
        conn.execute(
            f"UPDATE agents SET state = ?, terminated_at = ? WHERE agent_id {_IN_IDS}",
            (AgentState.TERMINATED.value, stamp, alive),
        )
        conn.execute(
            "UPDATE tasks SET state = 'failed', error = ?, finished_at = ? "
            f"WHERE agent_id {_IN_IDS} AND state = 'pending'",
            (TERMINATED_ERROR, stamp, alive),
        )
        conn.executemany(
            "INSERT INTO events (agent_id, kind, detail, at) VALUES (?, ?, ?, ?)",
            [(agent_id, ON_DESTROY, hook, stamp) for agent_id, hook in rows if hook is not None],
        )

    def agents(self, agent_ids: Sequence[str]) -> dict[str, Agent]:
        """The known agents among ``agent_ids``, in input order.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
            CoordinatorError: the database cannot be opened or read, or a stored spec is unreadable.
        """
        ids = unique_ids(agent_ids)
        if not ids:
            return {}
        with self._transaction(write=False) as conn:
            if conn is None:
                return {}
            rows = conn.execute(
                f"SELECT agent_id, spec_json, state FROM agents WHERE agent_id {_IN_IDS}",
                (json.dumps(ids),),
            ).fetchall()
        found = {
            agent_id: Agent(agent_id, self._decode(agent_id, spec), AgentState(state))
            for agent_id, spec, state in rows
        }
        return {agent_id: found[agent_id] for agent_id in ids if agent_id in found}

    def status(self, agent_ids: Sequence[str]) -> dict[str, AgentStatus]:
        """Live status of each agent; unknown IDs get state ``unknown`` and zero counts.

        Two queries in one read transaction, whatever the number of IDs.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
            CoordinatorError: the database cannot be opened or read.
        """
        ids = unique_ids(agent_ids)
        states: dict[str, str] = {}
        counts: dict[str, tuple[int, int, int, int, float | None]] = {}
        if ids:
            with self._transaction(write=False) as conn:
                if conn is not None:
                    param = (json.dumps(ids),)
                    states = dict(
                        conn.execute(
                            f"SELECT agent_id, state FROM agents WHERE agent_id {_IN_IDS}", param
                        ).fetchall()
                    )
                    for agent_id, pending, running, completed, failed, last in conn.execute(
                        "SELECT agent_id, SUM(state = 'pending'), SUM(state = 'running'), "
                        "SUM(state = 'completed'), SUM(state = 'failed'), MAX(finished_at) "
                        f"FROM tasks WHERE agent_id {_IN_IDS} GROUP BY agent_id",
                        param,
                    ):
                        counts[agent_id] = (pending, running, completed, failed, last)
        out: dict[str, AgentStatus] = {}
        for agent_id in ids:
            state = states.get(agent_id)
            if state is None:
                out[agent_id] = AgentStatus(agent_id, AgentState.UNKNOWN)
                continue
            pending, running, completed, failed, last = counts.get(agent_id, (0, 0, 0, 0, None))
            out[agent_id] = AgentStatus(
                agent_id,
                AgentState(state),
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
        """Give ``task`` to every agent, as one task record (own ``task_id``) each.

        One transaction for the whole batch (creating the database if needed). See
        :meth:`Coordinator.dispatch <dalfleet.coordinator.base.Coordinator.dispatch>`.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string, or a bad ``lease``.
            CoordinatorError: the database cannot be opened or written.
        """
        ids = unique_ids(agent_ids)
        seconds = check_lease(lease)
        if not ids:
            return {}
        description = storable_text(task.description)
        holder = None if worker is None else storable_text(worker)
        with self._transaction(write=True, create=True) as conn:
            assert conn is not None  # create=True always yields a connection
            # One indexed look-up per ID that returns only the exceptions: IDs with
            # no agent row (external is NULL) and terminated agents. Fetching every
            # member's row into Python cost more than the task inserts themselves.
            new: list[str] = []
            terminated: dict[str, int] = {}
            for agent_id, external in conn.execute(
                "SELECT j.value, a.external FROM json_each(?) AS j "
                "LEFT JOIN agents AS a ON a.agent_id = j.value "
                "WHERE a.agent_id IS NULL OR a.state = ?",
                (json.dumps(ids), AgentState.TERMINATED.value),
            ):
                if external is None:
                    new.append(agent_id)
                else:
                    terminated[agent_id] = external
            stamp = now()
            # Agents that live elsewhere (add_member) get an inbox, as the reference
            # does; a terminated one's inbox reopens (its life is not ours to end).
            conn.executemany(
                "INSERT INTO agents (agent_id, name, spec_json, state, created_at, external) "
                "VALUES (?, ?, ?, ?, ?, 1)",
                [
                    (
                        agent_id,
                        agent_id,
                        encode_spec(external_spec(agent_id, self.trust_level)),
                        AgentState.UNKNOWN.value,
                        stamp,
                    )
                    for agent_id in new
                ],
            )
            reopened = [agent_id for agent_id, external in terminated.items() if external]
            if reopened:
                conn.execute(
                    f"UPDATE agents SET state = ?, terminated_at = NULL WHERE agent_id {_IN_IDS}",
                    (AgentState.UNKNOWN.value, json.dumps(reopened)),
                )
            refused = {agent_id for agent_id, external in terminated.items() if not external}
            state = TaskState.PENDING if holder is None else TaskState.RUNNING
            out: dict[str, DispatchResult] = {}
            rows: list[tuple[Any, ...]] = []
            # The task's other fields once, then one Task per member with its own ID,
            # built positionally (attrs.evolve per member re-reads the class's fields
            # every time; keywords cost a fifth more than positions).
            rest = attrs.astuple(task, recurse=False)[_TASK_REST:]
            task_ids = new_task_ids(len(ids))
            # state, claimed_by, enqueued_at, started_at, attempts, lease_expires_at
            claim = (
                (state.value, None, stamp, None, 0, None)
                if holder is None
                else (state.value, holder, stamp, stamp, 1, stamp + seconds)
            )
            columns = (description, task.priority, task.coordination_type, task.fleet, *claim)
            for agent_id, task_id in zip(ids, task_ids, strict=True):
                if agent_id in refused:
                    out[agent_id] = DispatchResult(agent_id, None, refused_error(agent_id))
                    continue
                out[agent_id] = DispatchResult(agent_id, Task(task_id, description, *rest))
                rows.append((task_id, agent_id, *columns))
            conn.executemany(
                "INSERT INTO tasks (task_id, agent_id, description, priority, "
                "coordination_type, fleet, state, claimed_by, enqueued_at, started_at, "
                "attempts, lease_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
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

        The claim holds the database's write lock, so concurrent workers (threads
        or processes) never take the same task. With no database, returns ``[]``
        and creates nothing. See
        :meth:`Coordinator.claim <dalfleet.coordinator.base.Coordinator.claim>`.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string, or a bad ``lease``.
            CoordinatorError: the database cannot be opened or written.
        """
        ids = unique_ids(agent_ids)
        seconds = check_lease(lease)
        if not ids or limit < 1:
            return []
        holder = storable_text(worker)
        with self._transaction(write=True) as conn:
            if conn is None:
                return []
            stamp = now()
            param = json.dumps(ids)
            spent = conn.execute(
                f"SELECT t.task_id, t.claimed_by, t.attempts, t.error {_CANDIDATES} "
                "AND t.attempts >= ?",
                (param, stamp, self.max_attempts),
            ).fetchall()
            conn.executemany(
                "UPDATE tasks SET state = 'failed', error = ?, finished_at = ? WHERE task_id = ?",
                [
                    (expired_error(who, attempts, error), stamp, task_id)
                    for task_id, who, attempts, error in spent
                ],
            )
            rows = [
                row
                for row in conn.execute(
                    "SELECT t.seq, t.task_id, t.agent_id, t.description, t.priority, "
                    "t.coordination_type, t.fleet, a.spec_json, a.state, t.state, t.attempts, "
                    f"t.lease_expires_at {_CANDIDATES} AND t.attempts < ? ORDER BY t.seq LIMIT ?",
                    (param, stamp, self.max_attempts, limit),
                )
                if claim_action(TaskState(row[9]), row[10], row[11], stamp, self.max_attempts)
                is ClaimAction.TAKE
            ]
            until = stamp + seconds
            conn.execute(
                "UPDATE tasks SET state = 'running', claimed_by = ?, started_at = ?, "
                f"lease_expires_at = ?, attempts = attempts + 1 WHERE seq {_IN_IDS}",
                (holder, stamp, until, json.dumps([row[0] for row in rows])),
            )
        specs: dict[str, AgentSpec] = {}
        claimed: list[ClaimedTask] = []
        for row in rows:
            _, task_id, agent_id, description, priority, coordination, fleet, spec, state = row[:9]
            if agent_id not in specs:
                specs[agent_id] = self._decode(agent_id, spec)
            claimed.append(
                ClaimedTask(
                    Agent(agent_id, specs[agent_id], AgentState(state)),
                    Task(task_id, description, priority, coordination, fleet),
                    worker,
                    until,
                    row[10] + 1,
                )
            )
        return claimed

    def renew(
        self, task_ids: Sequence[str], worker: str, lease: float = DEFAULT_LEASE
    ) -> list[str]:
        """Extend ``worker``'s leases on these running tasks; return the IDs still held.

        Raises:
            InvalidArgumentError: ``task_ids`` is a single string, or a bad ``lease``.
            CoordinatorError: the database cannot be opened or written.
        """
        ids = unique_ids(task_ids, "task_ids")
        seconds = check_lease(lease)
        if not ids:
            return []
        with self._transaction(write=True) as conn:
            if conn is None:
                return []
            where = f"WHERE task_id {_IN_IDS} AND state = 'running' AND claimed_by = ?"
            param = (json.dumps(ids), storable_text(worker))
            held = {
                task_id for (task_id,) in conn.execute(f"SELECT task_id FROM tasks {where}", param)
            }
            conn.execute(
                f"UPDATE tasks SET lease_expires_at = ? {where}", (now() + seconds, *param)
            )
        return [task_id for task_id in ids if task_id in held]

    def finish(self, outcome: TaskOutcome, worker: str) -> FinishStatus:
        """Record one task's outcome (see :meth:`finish_many`).

        Raises:
            CoordinatorError: the database cannot be opened or written.
        """
        return self.finish_many([outcome], worker)[outcome.task_id]

    def finish_many(self, outcomes: Sequence[TaskOutcome], worker: str) -> dict[str, FinishStatus]:
        """Record outcomes of tasks running under ``worker``, once each, in one transaction.

        Raises:
            CoordinatorError: the database cannot be opened or written; nothing recorded.
        """
        if not outcomes:
            return {}
        holder = storable_text(worker)
        columns = [(o.task_id, *outcome_columns(o)) for o in outcomes]
        ids = list(dict.fromkeys(task_id for task_id, *_ in columns))
        out: dict[str, FinishStatus] = {}
        with self._transaction(write=True) as conn:
            current: dict[str, tuple[str, str | None]] = {}
            if conn is not None:
                current = {
                    task_id: (state, who)
                    for task_id, state, who in conn.execute(
                        f"SELECT task_id, state, claimed_by FROM tasks WHERE task_id {_IN_IDS}",
                        (json.dumps(ids),),
                    )
                }
            stamp = now()
            updates: list[tuple[Any, ...]] = []
            for task_id, final, result_json, error in columns:
                if task_id in out:
                    continue  # the first outcome of a task counts
                if task_id not in current:
                    out[task_id] = FinishStatus.NOT_FOUND
                    continue
                state, who = current[task_id]
                out[task_id] = finish_status(TaskState(state), who, holder)
                if out[task_id] is FinishStatus.RECORDED:
                    updates.append((final.value, result_json, error, stamp, task_id, holder))
            if conn is not None and updates:
                conn.executemany(
                    "UPDATE tasks SET state = ?, result_json = ?, error = ?, finished_at = ? "
                    "WHERE task_id = ? AND state = 'running' AND claimed_by = ?",
                    updates,
                )
        return out

    def release(self, task_ids: Sequence[str], worker: str) -> None:
        """Put tasks running under ``worker`` back in the queue (at their old place).

        Raises:
            InvalidArgumentError: ``task_ids`` is a single string.
            CoordinatorError: the database cannot be opened or written.
        """
        ids = unique_ids(task_ids, "task_ids")
        if not ids:
            return
        with self._transaction(write=True) as conn:
            if conn is not None:
                conn.execute(
                    "UPDATE tasks SET state = 'pending', claimed_by = NULL, started_at = NULL, "
                    "lease_expires_at = NULL, attempts = MAX(attempts - 1, 0) "
                    f"WHERE task_id {_IN_IDS} AND state = 'running' AND claimed_by = ?",
                    (json.dumps(ids), storable_text(worker)),
                )

    def task_counts(self, agent_ids: Sequence[str]) -> TaskCounts:
        """Tasks of these agents by state (one query).

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
            CoordinatorError: the database cannot be opened or read.
        """
        ids = unique_ids(agent_ids)
        if not ids:
            return TaskCounts()
        with self._transaction(write=False) as conn:
            if conn is None:
                return TaskCounts()
            tally = dict(
                conn.execute(
                    f"SELECT state, COUNT(*) FROM tasks WHERE agent_id {_IN_IDS} GROUP BY state",
                    (json.dumps(ids),),
                ).fetchall()
            )
        return TaskCounts.from_tally(tally)

    def open_task_count(self, agent_ids: Sequence[str]) -> int:
        """How many tasks of these agents are pending or running (one query).

        Counts only those two states, through the (agent, state) index: on a queue
        with a long history it reads the open tasks, not every finished one.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
            CoordinatorError: the database cannot be opened or read.
        """
        ids = unique_ids(agent_ids)
        if not ids:
            return 0
        with self._transaction(write=False) as conn:
            if conn is None:
                return 0
            (count,) = conn.execute(
                f"SELECT COUNT(*) FROM tasks WHERE state IN (?, ?) AND agent_id {_IN_IDS}",
                (TaskState.PENDING.value, TaskState.RUNNING.value, json.dumps(ids)),
            ).fetchone()
        return int(count)

    def tasks(self, agent_id: str) -> list[TaskRecord]:
        """Every task of one agent, oldest first.

        Raises:
            CoordinatorError: the database cannot be opened or read.
        """
        with self._transaction(write=False) as conn:
            if conn is None:
                return []
            rows = conn.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks WHERE agent_id = ? ORDER BY seq",
                (agent_id,),
            ).fetchall()
        return [_record(row) for row in rows]

    def task(self, task_id: str) -> TaskRecord | None:
        """The stored task with this ID, or None.

        Raises:
            CoordinatorError: the database cannot be opened or read.
        """
        with self._transaction(write=False) as conn:
            if conn is None:
                return None
            row = conn.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,)
            ).fetchone()
        return None if row is None else _record(row)

    def close(self) -> None:
        """Close the connection; the next call reopens it. Never raises."""
        with self._guard():
            if self._conn is not None:
                conn, self._conn = self._conn, None
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    # -- extras -----------------------------------------------------------------

    def events(self, agent_id: str) -> list[tuple[str, str]]:
        """Lifecycle hooks handed over for ``agent_id``, oldest first, as (kind, hook text).

        Raises:
            CoordinatorError: the database cannot be opened or read.
        """
        with self._transaction(write=False) as conn:
            if conn is None:
                return []
            rows = conn.execute(
                "SELECT kind, detail FROM events WHERE agent_id = ? ORDER BY seq", (agent_id,)
            ).fetchall()
        return [(kind, detail) for kind, detail in rows]

    def adopt(self, tasks: Sequence[tuple[str, Task]]) -> list[str]:
        """Store tasks another tool queued, as ``(agent_id, task)``, keeping their IDs.

        Each becomes ``pending``, as if :meth:`dispatch` had stored it, except that
        its ``task_id`` is kept (so both tools name it alike); an ID stored already
        is left as it is, so adopting the same queue twice stores each task once.
        An agent not known here gets an inbox, as in :meth:`dispatch`; a task for
        an agent terminated here is stored ``failed`` (it would never run). One
        transaction. Returns the IDs stored by this call, in order.

        Raises:
            CoordinatorError: the database cannot be opened or written.
        """
        wanted = list({task.task_id: (agent_id, task) for agent_id, task in tasks}.values())
        if not wanted:
            return []
        with self._transaction(write=True, create=True) as conn:
            assert conn is not None  # create=True always yields a connection
            ids = json.dumps([task.task_id for _, task in wanted])
            stored = {
                task_id
                for (task_id,) in conn.execute(
                    f"SELECT task_id FROM tasks WHERE task_id {_IN_IDS}", (ids,)
                )
            }
            fresh = [(a, t) for a, t in wanted if t.task_id not in stored]
            if not fresh:
                return []
            agent_ids = json.dumps(list(dict.fromkeys(a for a, _ in fresh)))
            states = dict(
                conn.execute(
                    f"SELECT agent_id, state FROM agents WHERE agent_id {_IN_IDS}", (agent_ids,)
                ).fetchall()
            )
            stamp = now()
            conn.executemany(
                "INSERT INTO agents (agent_id, name, spec_json, state, created_at, external) "
                "VALUES (?, ?, ?, ?, ?, 1)",
                [
                    (
                        a,
                        a,
                        encode_spec(external_spec(a, self.trust_level)),
                        AgentState.UNKNOWN.value,
                        stamp,
                    )
                    for a in dict.fromkeys(a for a, _ in fresh)
                    if a not in states
                ],
            )
            rows = []
            for agent_id, task in fresh:
                refused = states.get(agent_id) == AgentState.TERMINATED.value
                rows.append(
                    (
                        storable_text(task.task_id),
                        agent_id,
                        storable_text(task.description),
                        task.priority,
                        task.coordination_type,
                        task.fleet,
                        (TaskState.FAILED if refused else TaskState.PENDING).value,
                        refused_error(agent_id) if refused else None,
                        stamp,
                        stamp if refused else None,
                    )
                )
            conn.executemany(
                "INSERT INTO tasks (task_id, agent_id, description, priority, "
                "coordination_type, fleet, state, error, enqueued_at, finished_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return [task.task_id for _, task in fresh]

    def task_states(self, task_ids: Sequence[str]) -> dict[str, TaskState]:
        """The state of each stored task among ``task_ids`` (unknown IDs are left out).

        One query, whatever the number of IDs.

        Raises:
            InvalidArgumentError: ``task_ids`` is a single string.
            CoordinatorError: the database cannot be opened or read.
        """
        ids = unique_ids(task_ids, "task_ids")
        if not ids:
            return {}
        with self._transaction(write=False) as conn:
            if conn is None:
                return {}
            rows = conn.execute(
                f"SELECT task_id, state FROM tasks WHERE task_id {_IN_IDS}", (json.dumps(ids),)
            ).fetchall()
        return {task_id: TaskState(state) for task_id, state in rows}

    def agent_ids(self, state: AgentState | None = None) -> list[str]:
        """IDs of every agent known here (optionally only those in ``state``), oldest first.

        Raises:
            CoordinatorError: the database cannot be opened or read.
        """
        with self._transaction(write=False) as conn:
            if conn is None:
                return []
            sql = "SELECT agent_id FROM agents"
            params: tuple[str, ...] = ()
            if state is not None:
                sql += " WHERE state = ?"
                params = (state.value,)
            rows = conn.execute(sql + " ORDER BY created_at, rowid", params).fetchall()
        return [agent_id for (agent_id,) in rows]

    # -- connection -------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Hold this instance's lock, after dropping what a fork() left behind."""
        pid = os.getpid()
        if pid != self._pid:
            # In a forked child the parent's lock may be held by a thread that does
            # not exist here, and its connection must not be used.
            self._lock = threading.Lock()
            if self._conn is not None:
                self._inherited.append(self._conn)
                self._conn = None
            self._pid = pid
        with self._lock:
            yield

    @contextlib.contextmanager
    def _transaction(
        self, *, write: bool, create: bool = False
    ) -> Iterator[sqlite3.Connection | None]:
        """Run the body in one transaction; yields None when there is no database yet.

        ``write`` takes the write lock up front (``BEGIN IMMEDIATE``); ``create``
        creates the directory, database and schema when missing. sqlite3 errors
        become :class:`CoordinatorError` and roll the transaction back.
        """
        with self._guard():
            conn = self._connection(create=create)
            if conn is None:
                yield None
                return
            # Everything from BEGIN to COMMIT is inside one try: an exception or a
            # Ctrl-C at any instant (even between two statements) rolls back, so the
            # connection never stays inside a transaction holding the write lock.
            try:
                if conn.in_transaction:  # left open by an interrupted COMMIT
                    conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(exc, (sqlite3.Error, UnicodeEncodeError)):
                    raise self._error(exc) from exc
                raise

    def _connection(self, *, create: bool) -> sqlite3.Connection | None:
        """The open connection, opening (and with ``create`` creating) the database."""
        if self._conn is not None:
            return self._conn
        path = self.path
        # SQLite would follow a symlink at the database or at the files it keeps beside
        # it (and create the target): none of them is ever followed.
        for own in (path, *(path.with_name(path.name + s) for s in _SIDECARS)):
            if own.is_symlink():
                raise CoordinatorError(
                    f"local runtime database file {own} is a symlink; refusing to follow it"
                )
        if path.is_dir():
            raise CoordinatorError(
                f"local runtime database {path} is a directory, not a SQLite database"
            )
        if not create and not path.exists():
            return None
        if create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CoordinatorError(
                    f"cannot create the local runtime directory {path.parent}: "
                    f"{exc.strerror or exc}"
                ) from exc
        # mode=rw never creates the file, so a reader racing a deletion creates nothing.
        uri = f"{path.absolute().as_uri()}?mode={'rwc' if create else 'rw'}"
        try:
            conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=self.busy_timeout,
                isolation_level=None,  # transactions are explicit (BEGIN … COMMIT)
                check_same_thread=False,  # shared by threads, serialised by self._lock
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA synchronous = NORMAL")
            # SQLite's default page cache (2 MiB) is smaller than the task table's two
            # indexes once tens of thousands of tasks are queued: each insert under a
            # random task ID then read its pages back from the OS (an enqueue to 10,000
            # members took a fifth longer). Pages are cached only as they are used.
            conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            if not self._initialise(conn, create=create):
                conn.close()  # an empty file and not creating: nothing stored yet
                return None
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from exc
            raise
        self._conn = conn
        return conn

    def _initialise(self, conn: sqlite3.Connection, *, create: bool) -> bool:
        """Check (and with ``create`` make) the schema; False if there is none yet.

        Switching to WAL while another process does the same can fail with "database
        is locked" without waiting for the busy timeout, so that step is retried.
        """
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.005
        while True:
            try:
                version = self._schema_version(conn)
                if version == 0:
                    if not create:
                        return False
                    self._create_schema(conn)
                elif version < SCHEMA_VERSION:
                    self._migrate(conn)
                return True
            except sqlite3.OperationalError as exc:
                transient = "locked" in str(exc) or "busy" in str(exc)
                if not transient or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)  # back off: another process is initialising the file
                delay = min(delay * 2, 0.2)

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise CoordinatorError(
                f"local runtime database {self.path} has schema version {version}; "
                f"this dalfleet understands up to {SCHEMA_VERSION} (upgrade dalfleet)"
            )
        return version

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        # WAL is persistent and cannot change inside a transaction; readers then
        # never block the writer. If another process holds the file this stays in
        # the rollback journal mode, which is slower but just as correct.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self._schema_version(conn) == 0:  # another process may have won the race
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Upgrade an older schema in place, one version per transaction."""
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = self._schema_version(conn)  # another process may have upgraded
                if version < SCHEMA_VERSION:
                    for statement in _MIGRATIONS[version]:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {version + 1}")
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            if version + 1 >= SCHEMA_VERSION:
                return

    def _decode(self, agent_id: str, text: str) -> AgentSpec:
        try:
            return decode_spec(text)
        except CoordinatorError as exc:  # the row was changed by hand
            raise CoordinatorError(
                f"local runtime database {self.path}: the stored spec of agent "
                f"{quote(agent_id)} is unreadable"
            ) from exc

    def _error(self, exc: BaseException) -> CoordinatorError:
        return CoordinatorError(f"local runtime database {self.path}: {exc}")
