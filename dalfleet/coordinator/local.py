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
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from dalfleet.coordinator.base import (
    AgentStatus,
    ClaimedTask,
    new_agent_id,
    new_task_id,
    now,
)
from dalfleet.coordinator.memory import (
    CANCELLED,
    DONE,
    FAILED,
    ON_CREATE,
    ON_DESTROY,
    QUEUED,
    RUNNING,
    decode_spec,
    encode_result,
    encode_spec,
    external_spec,
    task_record,
    unique_ids,
)
from dalfleet.defaults import DEFAULT_TRUST_LEVEL
from dalfleet.errors import CoordinatorError
from dalfleet.models import Agent, AgentSpec, AgentState, Task

__all__ = ["DB_RELPATH", "SCHEMA_VERSION", "LocalCoordinator"]

DB_RELPATH: Final = Path(".dal") / "agent_runtime.db"
SCHEMA_VERSION: Final = 1  # PRAGMA user_version; bump with a migration step

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS agents (
        agent_id      TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        spec_json     TEXT NOT NULL,
        state         TEXT NOT NULL,
        created_at    REAL NOT NULL,
        terminated_at REAL
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
        finished_at       REAL
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

# "the rows whose column is one of the IDs in this JSON array": one bound
# parameter for any number of IDs, so no SQLite variable limit and one query.
_IN_IDS: Final = "IN (SELECT value FROM json_each(?))"

_TASK_COLUMNS: Final = (
    "task_id, agent_id, description, priority, coordination_type, fleet, state, "
    "claimed_by, result_json, error, enqueued_at, started_at, finished_at"
)


class LocalCoordinator:
    """Agents and task queues in ``<base>/.dal/agent_runtime.db``, shared by processes.

    One connection per instance, guarded by a lock (callable from any thread) and
    reopened after ``os.fork()``. Every agent is spawned with ``trust_level`` (the
    principal's setting), whatever its spec says. ``busy_timeout`` is how long a
    call waits for another process's write to finish before failing.
    """

    def __init__(
        self,
        base: str | os.PathLike[str],
        trust_level: str = DEFAULT_TRUST_LEVEL,
        *,
        busy_timeout: float = 30.0,
    ) -> None:
        self.base = Path(base)
        self.path = self.base / DB_RELPATH
        self.trust_level = trust_level
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

    # -- protocol ---------------------------------------------------------------

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
        for spec in specs:
            text, stored = encode_spec(attrs.evolve(spec, trust_level=self.trust_level))
            agent_id = new_agent_id()
            agents.append((agent_id, stored.name, text, AgentState.ALIVE.value, stamp))
            hook = stored.lifecycle.get(ON_CREATE)
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
        """Terminate the given agents and cancel their queued tasks (one transaction).

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
        stamp = now()
        with self._transaction(write=True) as conn:
            if conn is None:
                return
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
                "UPDATE tasks SET state = ?, finished_at = ? "
                f"WHERE agent_id {_IN_IDS} AND state = ?",
                (CANCELLED, stamp, alive, QUEUED),
            )
            conn.executemany(
                "INSERT INTO events (agent_id, kind, detail, at) VALUES (?, ?, ?, ?)",
                [
                    (agent_id, ON_DESTROY, hook, stamp)
                    for agent_id, hook in rows
                    if hook is not None
                ],
            )

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
        runtime did not spawn gets an inbox (state ``unknown``), so tasks for
        members registered with ``add_member`` are queued as the reference does.
        With ``claimed_by`` the tasks start out running, owned by that worker. One
        transaction for the whole batch (creating the database if needed).

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
            CoordinatorError: the database cannot be opened or written.
        """
        ids = unique_ids(agent_ids)
        if not ids:
            return {}
        with self._transaction(write=True, create=True) as conn:
            assert conn is not None  # create=True always yields a connection
            states: dict[str, str] = dict(
                conn.execute(
                    f"SELECT agent_id, state FROM agents WHERE agent_id {_IN_IDS}",
                    (json.dumps(ids),),
                ).fetchall()
            )
            stamp = now()
            # Agents that live elsewhere (add_member) get an inbox, as the reference does.
            external = [agent_id for agent_id in ids if agent_id not in states]
            conn.executemany(
                "INSERT INTO agents (agent_id, name, spec_json, state, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        agent_id,
                        agent_id,
                        encode_spec(external_spec(agent_id, self.trust_level))[0],
                        AgentState.UNKNOWN.value,
                        stamp,
                    )
                    for agent_id in external
                ],
            )
            states.update((agent_id, AgentState.UNKNOWN.value) for agent_id in external)
            state = QUEUED if claimed_by is None else RUNNING
            started = None if claimed_by is None else stamp
            out: dict[str, Task | str] = {}
            rows: list[tuple[Any, ...]] = []
            for agent_id in ids:
                if states[agent_id] == AgentState.TERMINATED.value:
                    out[agent_id] = f"agent '{agent_id}' is terminated"
                else:
                    stored = attrs.evolve(task, task_id=new_task_id())
                    out[agent_id] = stored
                    rows.append(
                        (
                            stored.task_id,
                            agent_id,
                            stored.description,
                            stored.priority,
                            stored.coordination_type,
                            stored.fleet,
                            state,
                            claimed_by,
                            stamp,
                            started,
                        )
                    )
            if rows:
                conn.executemany(
                    "INSERT INTO tasks (task_id, agent_id, description, priority, "
                    "coordination_type, fleet, state, claimed_by, enqueued_at, started_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        return out

    def status(self, agent_ids: Sequence[str]) -> dict[str, AgentStatus]:
        """Live status of each agent; unknown IDs get state ``unknown`` and zero counts.

        Two queries in one read transaction, whatever the number of IDs.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
            CoordinatorError: the database cannot be opened or read, or a stored spec is unreadable.
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
                    for agent_id, queued, running, failed, done, last in conn.execute(
                        "SELECT agent_id, "
                        f"SUM(state = '{QUEUED}'), SUM(state = '{RUNNING}'), "
                        f"SUM(state = '{FAILED}'), SUM(state = '{DONE}'), "
                        f"MAX(CASE WHEN state IN ('{DONE}', '{FAILED}') THEN finished_at END) "
                        f"FROM tasks WHERE agent_id {_IN_IDS} GROUP BY agent_id",
                        param,
                    ):
                        counts[agent_id] = (queued, running, failed, done, last)
        out: dict[str, AgentStatus] = {}
        for agent_id in ids:
            state = states.get(agent_id)
            if state is None:
                out[agent_id] = AgentStatus(agent_id, AgentState.UNKNOWN)
                continue
            queued, running, failed, done, last = counts.get(agent_id, (0, 0, 0, 0, None))
            out[agent_id] = AgentStatus(
                agent_id,
                AgentState(state),
                pending_tasks=queued,
                running_tasks=running,
                failed_tasks=failed,
                completed_tasks=done,
                last_result_at=last,
            )
        return out

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

    def claim(self, agent_ids: Sequence[str], worker: str, limit: int) -> list[ClaimedTask]:
        """Atomically take up to ``limit`` queued tasks of these agents (not terminated),
        oldest first.

        The tasks become running, owned by ``worker``. The claim holds the
        database's write lock, so concurrent workers (threads or processes) never
        take the same task. With no database, returns ``[]`` and creates nothing.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
            CoordinatorError: the database cannot be opened or written.
        """
        ids = unique_ids(agent_ids)
        if not ids or limit < 1:
            return []
        with self._transaction(write=True) as conn:
            if conn is None:
                return []
            rows = conn.execute(
                "SELECT t.seq, t.task_id, t.agent_id, t.description, t.priority, "
                "t.coordination_type, t.fleet, a.spec_json, a.state "
                "FROM tasks AS t JOIN agents AS a ON a.agent_id = t.agent_id "
                f"WHERE t.agent_id {_IN_IDS} AND t.state = ? AND a.state != ? "
                "ORDER BY t.seq LIMIT ?",
                (json.dumps(ids), QUEUED, AgentState.TERMINATED.value, limit),
            ).fetchall()
            if rows:
                conn.execute(
                    "UPDATE tasks SET state = ?, claimed_by = ?, started_at = ? "
                    f"WHERE seq {_IN_IDS}",
                    (RUNNING, worker, now(), json.dumps([row[0] for row in rows])),
                )
        specs: dict[str, AgentSpec] = {}
        claimed: list[ClaimedTask] = []
        for _, task_id, agent_id, description, priority, coordination, fleet, spec, state in rows:
            if agent_id not in specs:
                specs[agent_id] = self._decode(agent_id, spec)
            claimed.append(
                ClaimedTask(
                    Agent(agent_id, specs[agent_id], AgentState(state)),
                    Task(task_id, description, priority, coordination, fleet),
                )
            )
        return claimed

    def finish(
        self, task_id: str, *, ok: bool, result: Any = None, error: str | None = None
    ) -> None:
        """Record the outcome of a task: ``done`` if ``ok`` else ``failed``.

        ``result`` is stored as JSON (its ``repr`` text when JSON cannot hold it).

        Raises:
            CoordinatorError: no task has this ID, or the database cannot be
                opened or written.
        """
        result_json = encode_result(result)
        with self._transaction(write=True) as conn:
            updated = 0
            if conn is not None:
                updated = conn.execute(
                    "UPDATE tasks SET state = ?, result_json = ?, error = ?, finished_at = ? "
                    "WHERE task_id = ?",
                    (DONE if ok else FAILED, result_json, error, now(), task_id),
                ).rowcount
            if updated == 0:
                raise CoordinatorError(f"task '{task_id}' not found in the local runtime")

    def release(self, task_ids: Sequence[str]) -> None:
        """Put running tasks back in the queue (at their old place); others are ignored.

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
                    "UPDATE tasks SET state = ?, claimed_by = NULL, started_at = NULL "
                    f"WHERE task_id {_IN_IDS} AND state = ?",
                    (QUEUED, json.dumps(ids), RUNNING),
                )

    def running(self, agent_ids: Sequence[str]) -> dict[str, str]:
        """Running tasks of these agents: task ID -> the worker that claimed it.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
            CoordinatorError: the database cannot be read.
        """
        ids = unique_ids(agent_ids)
        if not ids:
            return {}
        with self._transaction(write=False) as conn:
            if conn is None:
                return {}
            rows = conn.execute(
                f"SELECT task_id, claimed_by FROM tasks WHERE agent_id {_IN_IDS} AND state = ?",
                (json.dumps(ids), RUNNING),
            ).fetchall()
        return {task_id: owner or "" for task_id, owner in rows}

    def close(self) -> None:
        """Close the connection; the next call reopens it. Never raises."""
        with self._guard():
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()

    # -- extras -----------------------------------------------------------------

    def task_record(self, task_id: str) -> dict[str, Any] | None:
        """The stored task as a dict (state, result, error, agent_id, times), or None.

        Raises:
            CoordinatorError: the database cannot be opened or read, or a stored spec is unreadable.
        """
        with self._transaction(write=False) as conn:
            if conn is None:
                return None
            row = conn.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,)
            ).fetchone()
        if row is None:
            return None
        (tid, agent_id, description, priority, coordination, fleet, *rest) = row
        state, claimed_by, result_json, error, enqueued_at, started_at, finished_at = rest
        return task_record(
            task=Task(tid, description, priority, coordination, fleet),
            agent_id=agent_id,
            state=state,
            claimed_by=claimed_by,
            result_json=result_json,
            error=error,
            enqueued_at=enqueued_at,
            started_at=started_at,
            finished_at=finished_at,
        )

    def events(self, agent_id: str) -> list[tuple[str, str]]:
        """Lifecycle hooks handed over for ``agent_id``, oldest first, as (kind, hook text).

        Raises:
            CoordinatorError: the database cannot be opened or read, or a stored spec is unreadable.
        """
        with self._transaction(write=False) as conn:
            if conn is None:
                return []
            rows = conn.execute(
                "SELECT kind, detail FROM events WHERE agent_id = ? ORDER BY seq", (agent_id,)
            ).fetchall()
        return [(kind, detail) for kind, detail in rows]

    def agent_ids(self, state: AgentState | None = None) -> list[str]:
        """IDs of every agent known here (optionally only those in ``state``), oldest first.

        Raises:
            CoordinatorError: the database cannot be opened or read, or a stored spec is unreadable.
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
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except (sqlite3.Error, UnicodeEncodeError) as exc:
                if conn.in_transaction:  # a failed COMMIT leaves the transaction open
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise self._error(exc) from exc

    def _connection(self, *, create: bool) -> sqlite3.Connection | None:
        """The open connection, opening (and with ``create`` creating) the database."""
        if self._conn is not None:
            return self._conn
        path = self.path
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
                if self._schema_version(conn) == 0:
                    if not create:
                        return False
                    self._create_schema(conn)
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

    def _decode(self, agent_id: str, text: str) -> AgentSpec:
        try:
            return decode_spec(text)
        except Exception as exc:  # JSON or cattrs errors: the row was changed by hand
            raise CoordinatorError(
                f"local runtime database {self.path}: the stored spec of agent "
                f"'{agent_id}' is unreadable ({type(exc).__name__})"
            ) from exc

    def _error(self, exc: BaseException) -> CoordinatorError:
        return CoordinatorError(f"local runtime database {self.path}: {exc}")
