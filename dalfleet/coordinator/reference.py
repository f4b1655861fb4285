"""The reference runtime's agent file, ``.dal/agent_runtime.json``, read and written in its shape.

The reference keeps its agents and their queued tasks in one JSON snapshot
(``src/stdlib/agent_persist.rs``)::

    {"version": 1,
     "agent_contexts": {"agent_…": {"agent_id": …, "config": {…}, "status": "idle", …}},
     "task_queue": [["agent_…", {"task_id": …, "description": …, "priority": "medium",
                                  "status": "pending", "assigned_at": …, …}]],
     "message_bus": [], "evolution_store": {}, "serve_agent_id": null,
     "registered_skills": []}

:class:`ReferenceRuntime` reads and changes that file. Every change is a
read-modify-write under an exclusive lock that lands with an atomic replace (the
store's :func:`~dalfleet.store.jsonfile.locked_file` and
:func:`~dalfleet.store.jsonfile.replace_file`); keys dalfleet does not know are
kept. Runtime values (metadata, task results) use the reference's tagged form
(``{"String": "x"}``, ``"Null"``).

:class:`ReferenceCoordinator` is the coordinator built on it, so that both tools
work on one directory: ``dal agent fleet run`` queues tasks that ``dalfleet
worker`` runs, and tasks ``dalfleet run`` queues are listed by ``dal agent task
list``. :func:`coordinator_for_base` picks it (or the local coordinator) for
:meth:`Client.for_base <dalfleet.client.Client.for_base>`.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from dalfleet.coordinator.base import (
    DEFAULT_LEASE,
    EXTERNAL_KEY,
    AgentStatus,
    ClaimedTask,
    Coordinator,
    DispatchResult,
    FinishStatus,
    TaskCounts,
    TaskOutcome,
    TaskRecord,
    TaskState,
    check_lease,
    refused_error,
)
from dalfleet.defaults import DEFAULT_TRUST_LEVEL, RUNTIME_ENV
from dalfleet.errors import CoordinatorError, InvalidArgumentError, StoreError, quote
from dalfleet.models import AgentState
from dalfleet.mold.model import normalize_agent_type
from dalfleet.records import Agent, AgentSpec, Task
from dalfleet.store.jsonfile import fsync_dir, locked_file, read_own_file, replace_file

__all__ = [
    "MAX_QUEUE_LEN",
    "RUNTIME_FILE",
    "SNAPSHOT_VERSION",
    "QueuedTask",
    "RUNTIME_ENV",
    "ReferenceCoordinator",
    "ReferenceRuntime",
    "agent_context",
    "coordinator_for_base",
    "from_value",
    "runtime_path",
    "spec_of",
    "to_value",
]

#: The file name under ``<base>/.dal/``.
RUNTIME_FILE = "agent_runtime.json"
#: The snapshot version the reference writes (and the newest it reads).
SNAPSHOT_VERSION = 1
#: The reference keeps at most this many queued tasks (the newest).
MAX_QUEUE_LEN = 10_000
#: Largest file read (the reference has no limit; a bound keeps a bad file from exhausting memory).
MAX_RUNTIME_BYTES = 256 * 1024 * 1024

_RUNTIMES = ("auto", "local", "reference")

_PRIORITIES = ("low", "medium", "high", "critical")
_TMP_PREFIX = ".agent_runtime."
_TMP_SUFFIX = ".tmp"
_LOCK_TIMEOUT = 30.0


def runtime_path(base: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Path:
    """Where the reference keeps its agent file for the project in ``base``.

    As the reference: ``DAL_AGENT_RUNTIME_PATH`` if set (relative to ``base``), else
    ``<base>/.dal/agent_runtime.json``. Never raises.
    """
    env = os.environ if environ is None else environ
    override = env.get("DAL_AGENT_RUNTIME_PATH")
    if override:
        return Path(base) / override
    return Path(base) / ".dal" / RUNTIME_FILE


# --------------------------------------------------------------------------- runtime values


def to_value(value: Any) -> Any:
    """A plain Python value as the reference's tagged runtime value. Never raises.

    ``None`` → ``"Null"``; bool → ``{"Bool": …}``; int (64-bit) → ``{"Int": …}``;
    float → ``{"Float": …}``; str → ``{"String": …}``; list → ``{"List": […]}``;
    dict → ``{"Map": {…}}`` (keys as strings); anything else → its ``repr`` as a String.
    """
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return {"Bool": value}
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return {"Int": value}
    if isinstance(value, float) and math.isfinite(value):
        return {"Float": value}
    if isinstance(value, str):
        return {"String": value}
    if isinstance(value, (list, tuple)):
        return {"List": [to_value(item) for item in value]}
    if isinstance(value, dict):
        return {"Map": {str(k): to_value(v) for k, v in value.items()}}
    return {"String": repr(value)}


def from_value(value: Any) -> Any:
    """The plain Python value of a tagged runtime value (unknown shapes come back as is).

    Never raises.
    """
    if value == "Null":
        return None
    if isinstance(value, dict) and len(value) == 1:
        ((tag, inner),) = value.items()
        if tag in ("Int", "Float", "String", "Bool", "Closure"):
            return inner
        if tag in ("List", "Array") and isinstance(inner, list):
            return [from_value(item) for item in inner]
        if tag == "Set" and isinstance(inner, list):
            return list(inner)
        if tag == "Map" and isinstance(inner, dict):
            return {k: from_value(v) for k, v in inner.items()}
        if tag == "Option":
            return None if inner is None else from_value(inner)
        if tag == "Struct" and isinstance(inner, list) and len(inner) == 2:
            return {k: from_value(v) for k, v in dict(inner[1]).items()}
    return value


# --------------------------------------------------------------------------- records


@attrs.frozen
class QueuedTask:
    """One task of the reference's queue: the agent it is for, and the task as stored."""

    agent_id: str
    task_id: str
    description: str
    priority: str = "medium"
    assigned_at: str = ""
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


def _now() -> str:
    """The time as the reference writes it (RFC 3339, UTC)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def _empty_snapshot() -> dict[str, Any]:
    return {
        "version": SNAPSHOT_VERSION,
        "agent_contexts": {},
        "task_queue": [],
        "message_bus": [],
        "evolution_store": {},
        "serve_agent_id": None,
        "registered_skills": [],
    }


def _metrics() -> dict[str, Any]:
    return {
        "tasks_completed": 0,
        "tasks_failed": 0,
        "tasks_assigned": 0,
        "messages_sent": 0,
        "messages_received": 0,
        "coordination_events": 0,
        "learning_sessions": 0,
        "status_changes": 0,
        "average_response_time": 0.0,
        "uptime_percentage": 100.0,
    }


def _max_memory(memory_limit: str | None) -> int:
    from dalfleet.mold.model import reference_memory_bytes

    size = reference_memory_bytes(memory_limit) if memory_limit else None
    return 1000 if size is None else size // 4096


def agent_context(agent_id: str, spec: AgentSpec, when: str) -> dict[str, Any]:
    """The reference's stored form of a new agent spawned from ``spec``. Never raises."""
    canonical = normalize_agent_type(spec.agent_type) or "AI"
    # The reference stores the type lowercase (``worker``, ``custom:name``).
    agent_type = canonical.lower() if not canonical.startswith("custom:") else canonical
    hooks = {hook: spec.lifecycle.get(hook) for hook in _HOOKS}
    return {
        "agent_id": agent_id,
        "config": {
            "name": spec.name,
            "agent_type": agent_type,
            "role": spec.role,
            "capabilities": list(spec.capabilities),
            "skills": list(spec.skills),
            "trust_level": spec.trust_level,
            "max_memory": _max_memory(spec.memory_limit),
            "learning_enabled": spec.learning,
            "communication_enabled": spec.communication,
            "coordination_enabled": spec.coordination,
            "metadata": {k: to_value(v) for k, v in spec.metadata.items()},
            "lifecycle": hooks if spec.lifecycle else None,
        },
        "status": "idle",
        "memory": {},
        "tasks": [],
        "message_queue": [],
        "created_at": when,
        "last_active": when,
        "performance_metrics": _metrics(),
        "trust_score": 1.0,
    }


_HOOKS = ("on_create", "on_message", "on_evolve", "on_destroy")
_TYPE_NAMES = {"ai": "AI", "system": "System", "worker": "Worker", "ide": "IDE"}


def spec_of(context: Mapping[str, Any]) -> AgentSpec:
    """The dalfleet spec of a stored reference agent.

    Raises:
        CoordinatorError: the stored agent is not of the reference's shape.
    """
    config = context.get("config")
    if not isinstance(config, dict):
        raise CoordinatorError(f"stored agent {quote(context.get('agent_id'))} has no config")
    try:
        raw_type = str(config.get("agent_type", "ai"))
        metadata = {
            str(k): _metadata_text(from_value(v))
            for k, v in dict(config.get("metadata") or {}).items()
        }
        hooks = config.get("lifecycle") or {}
        return AgentSpec(
            name=str(config.get("name", "")),
            mold_name=str(metadata.get("mold_name", "")),
            mold_version=str(metadata.get("mold_version", "1.0")),
            agent_type=_TYPE_NAMES.get(raw_type, raw_type),
            role=str(config.get("role", "")),
            capabilities=[str(c) for c in config.get("capabilities") or []],
            skills=[str(s) for s in config.get("skills") or []],
            learning=bool(config.get("learning_enabled", False)),
            communication=bool(config.get("communication_enabled", False)),
            coordination=bool(config.get("coordination_enabled", False)),
            trust_level=str(config.get("trust_level") or DEFAULT_TRUST_LEVEL),
            metadata=metadata,
            lifecycle={
                h: str(hooks[h]) for h in _HOOKS if isinstance(hooks, dict) and hooks.get(h)
            },
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise CoordinatorError(
            f"stored agent {quote(context.get('agent_id'))} cannot be read: {exc}"
        ) from None


def _metadata_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------- the file


class ReferenceRuntime:
    """The reference's agent file of one project, changed safely by many processes.

    Nothing is opened until a method is called.
    """

    def __init__(
        self,
        base: str | os.PathLike[str],
        *,
        path: str | os.PathLike[str] | None = None,
        lock_timeout: float = _LOCK_TIMEOUT,
    ) -> None:
        self.base = Path(base)
        self.path = Path(path) if path is not None else runtime_path(self.base)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"ReferenceRuntime({str(self.path)!r})"

    def exists(self) -> bool:
        """True when the reference's agent file is there. Never raises."""
        try:
            return stat.S_ISREG(self.path.stat().st_mode)
        except (OSError, ValueError):
            return False

    # -- reading

    def load(self) -> dict[str, Any]:
        """The snapshot as a plain dict (a fresh copy); an empty one when there is no file.

        Raises:
            CoordinatorError: the file is not a regular file, is too large, or is not a
                snapshot the reference could read (it is left as it is).
        """
        raw = self._read()
        if raw is None:
            return _empty_snapshot()
        try:
            snapshot = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise CoordinatorError(f"agent runtime file {self.path} is corrupt: {exc}") from None
        return self._checked(snapshot)

    def agents(self) -> dict[str, AgentSpec]:
        """Every stored agent's spec, by ID.

        Raises:
            CoordinatorError: as :meth:`load`, or an agent is not of the reference's shape.
        """
        contexts = self.load()["agent_contexts"]
        return {agent_id: spec_of(context) for agent_id, context in contexts.items()}

    def status(self, agent_id: str) -> str | None:
        """The reference's status of one agent (``idle``, ``terminated`` …), or None.

        Raises:
            CoordinatorError: as :meth:`load`.
        """
        context = self.load()["agent_contexts"].get(agent_id)
        return str(context.get("status")) if isinstance(context, dict) else None

    def pending(self, agent_id: str | None = None) -> list[QueuedTask]:
        """The queued tasks (of one agent, or all), oldest first, without taking them.

        Raises:
            CoordinatorError: as :meth:`load`.
        """
        return [t for t in _queued(self.load()) if agent_id is None or t.agent_id == agent_id]

    # -- changing

    def spawn(self, specs: Sequence[AgentSpec]) -> list[str]:
        """Store one new ``idle`` agent per spec, in the reference's shape; return the IDs.

        Raises:
            CoordinatorError: the file cannot be read, locked or written (nothing is stored).
        """
        ids = [f"agent_{uuid.uuid4().hex[:20]}" for _ in specs]
        self.add_agents(list(zip(ids, specs, strict=True)))
        return ids

    def add_agents(self, agents: Sequence[tuple[str, AgentSpec]]) -> None:
        """Store these agents (ID and spec) as new ``idle`` agents, in one step.

        Raises:
            CoordinatorError: the file cannot be read, locked or written (nothing is stored).
        """
        if not agents:
            return
        when = _now()
        with self.transaction() as snapshot:
            for agent_id, spec in agents:
                snapshot["agent_contexts"][agent_id] = agent_context(agent_id, spec, when)

    def terminate(self, agent_ids: Sequence[str]) -> None:
        """Mark these agents ``terminated`` (as the reference does); unknown IDs are ignored.

        Their queued tasks stay in the queue, as in the reference.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string.
            CoordinatorError: the file cannot be read, locked or written.
        """
        wanted = _ids(agent_ids)
        when = _now()
        with self.transaction() as snapshot:
            for agent_id in wanted:
                context = snapshot["agent_contexts"].get(agent_id)
                if isinstance(context, dict) and context.get("status") != "terminated":
                    context["status"] = "terminated"
                    context["last_active"] = when
                    metrics = context.setdefault("performance_metrics", _metrics())
                    metrics["status_changes"] = int(metrics.get("status_changes", 0)) + 1

    def enqueue(
        self, agent_ids: Sequence[str], description: str, priority: str = "medium"
    ) -> dict[str, str]:
        """Queue ``description`` for every agent, as ``coordinate(.., "task_distribution")``
        does; return the new task ID per agent. The queue keeps the newest 10,000.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string, or ``priority`` is not
                ``low``, ``medium``, ``high`` or ``critical``.
            CoordinatorError: the file cannot be read, locked or written (nothing is queued).
        """
        wanted = _ids(agent_ids)
        created = {agent_id: str(uuid.uuid4()) for agent_id in wanted}
        self.enqueue_tasks([QueuedTask(a, t, description, priority) for a, t in created.items()])
        return created

    def enqueue_tasks(self, tasks: Sequence[QueuedTask]) -> None:
        """Queue these tasks (with their own IDs), in order, in one step.

        Raises:
            InvalidArgumentError: a priority is not ``low``, ``medium``, ``high`` or
                ``critical``.
            CoordinatorError: the file cannot be read, locked or written (nothing is queued).
        """
        for task in tasks:
            if task.priority not in _PRIORITIES:
                raise InvalidArgumentError(
                    f"invalid priority {quote(task.priority)}: expected {', '.join(_PRIORITIES)}"
                )
        if not tasks:
            return
        when = _now()
        with self.transaction() as snapshot:
            queue = snapshot["task_queue"]
            for task in tasks:
                stored = _task(task.task_id, task.description, task.priority, when)
                queue.append([task.agent_id, stored])
            del queue[:-MAX_QUEUE_LEN]

    def remove(self, task_ids: Sequence[str]) -> None:
        """Drop these tasks from the queue (unknown IDs are ignored).

        Raises:
            InvalidArgumentError: ``task_ids`` is a string.
            CoordinatorError: the file cannot be read, locked or written.
        """
        unwanted = set(_ids(task_ids))
        if not unwanted:
            return
        with self.transaction() as snapshot:
            snapshot["task_queue"] = [
                entry
                for entry, task in zip(snapshot["task_queue"], _queued(snapshot), strict=True)
                if task.task_id not in unwanted
            ]

    @contextlib.contextmanager
    def taking(
        self,
        agent_ids: Sequence[str],
        limit: int,
        where: Callable[[QueuedTask], bool] | None = None,
    ) -> Iterator[list[QueuedTask]]:
        """Yield up to ``limit`` queued tasks of these agents (oldest first, those
        ``where`` accepts), holding the lock; they leave the queue only when the block
        ends without an exception — so a caller can store them elsewhere first.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string.
            CoordinatorError: the file cannot be read, locked or written (nothing is taken).
        """
        wanted = set(_ids(agent_ids))
        with self.transaction() as snapshot:
            taken: list[QueuedTask] = []
            kept = []
            for entry, task in zip(snapshot["task_queue"], _queued(snapshot), strict=True):
                chosen = (
                    len(taken) < limit
                    and task.agent_id in wanted
                    and (where is None or where(task))
                )
                if chosen:
                    taken.append(task)
                else:
                    kept.append(entry)
            yield taken
            snapshot["task_queue"] = kept

    def take(self, agent_ids: Sequence[str], limit: int) -> list[QueuedTask]:
        """Remove and return up to ``limit`` queued tasks of these agents, oldest first —
        what the reference's ``receive_pending_tasks`` does for one agent.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string.
            CoordinatorError: the file cannot be read, locked or written (nothing is taken).
        """
        with self.taking(agent_ids, limit) as taken:
            return list(taken)

    def record(
        self, task: QueuedTask, *, ok: bool, result: Any = None, error: str | None = None
    ) -> None:
        """Keep the outcome of a taken task in its agent's task list, as the reference's
        ``AgentTask`` (status ``completed`` or ``failed``, ``completed_at``; the result or
        error under ``metadata``), and count it in the agent's metrics.

        An agent that is not in the file (one that lives elsewhere) is left alone.

        Raises:
            CoordinatorError: the file cannot be read, locked or written.
        """
        self.record_many([(task, ok, result if ok else error)])

    def record_many(self, outcomes: Sequence[tuple[QueuedTask, bool, Any]]) -> None:
        """:meth:`record` for many ``(task, ok, result or error)`` in one step.

        Raises:
            CoordinatorError: the file cannot be read, locked or written.
        """
        if not outcomes:
            return
        when = _now()
        with self.transaction() as snapshot:
            for task, ok, value in outcomes:
                context = snapshot["agent_contexts"].get(task.agent_id)
                if not isinstance(context, dict):
                    continue
                stored = dict(task.raw) or _task(
                    task.task_id, task.description, task.priority, task.assigned_at or when
                )
                stored["status"] = "completed" if ok else "failed"
                stored["completed_at"] = when
                metadata = dict(stored.get("metadata") or {})
                if ok:
                    metadata["result"] = to_value(value)
                else:
                    metadata["error"] = to_value(value or "failed")
                stored["metadata"] = metadata
                context.setdefault("tasks", []).append(stored)
                context["last_active"] = when
                metrics = context.setdefault("performance_metrics", _metrics())
                key = "tasks_completed" if ok else "tasks_failed"
                metrics[key] = int(metrics.get(key, 0)) + 1

    # -- the file

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, Any]]:
        """Lock, read, yield the snapshot to change, write it back atomically if changed.

        Nothing is written if the block raises or changes nothing; keys dalfleet does
        not know are written back as they were.

        Raises:
            CoordinatorError: the lock cannot be taken in time, or the file cannot be
                read (corrupt: it is left as it is) or written.
        """
        self._ensure_dir()
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(locked_file(self.lock_path, self.lock_timeout))
            except StoreError as exc:
                raise CoordinatorError(str(exc)) from None
            self._remove_stale_temps()
            current = self.load()
            working = json.loads(json.dumps(current))
            yield working
            if working != current:
                self._write(working)

    def _read(self) -> bytes | None:
        try:
            # Never follows a link, never blocks on a FIFO planted at the path.
            return read_own_file(self.path, "agent runtime file", MAX_RUNTIME_BYTES)
        except StoreError as exc:
            raise CoordinatorError(str(exc)) from None

    def _checked(self, snapshot: Any) -> dict[str, Any]:
        def bad(why: str) -> CoordinatorError:
            return CoordinatorError(f"agent runtime file {self.path} is corrupt: {why}")

        if not isinstance(snapshot, dict):
            raise bad("expected a JSON object")
        version = snapshot.get("version", SNAPSHOT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise bad("'version' is not a number")
        if version > SNAPSHOT_VERSION:
            raise CoordinatorError(
                f"agent runtime file {self.path} has version {version}; "
                f"dalfleet reads up to {SNAPSHOT_VERSION}"
            )
        for key, kind in (("agent_contexts", dict), ("task_queue", list)):
            if not isinstance(snapshot.setdefault(key, kind()), kind):
                raise bad(f"'{key}' is not a JSON {'object' if kind is dict else 'list'}")
        for entry in snapshot["task_queue"]:
            if not (
                isinstance(entry, list)
                and len(entry) == 2
                and isinstance(entry[0], str)
                and isinstance(entry[1], dict)
            ):
                raise bad("a 'task_queue' entry is not [agent_id, task]")
        for key, value in _empty_snapshot().items():
            snapshot.setdefault(key, value)
        return snapshot

    def _ensure_dir(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CoordinatorError(f"cannot create {self.path.parent}: {exc.strerror}") from None

    def _remove_stale_temps(self) -> None:
        # Under the lock no live writer has a temp file open: any left is from a killed one.
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.path.parent):
                if entry.name.startswith(_TMP_PREFIX) and entry.name.endswith(_TMP_SUFFIX):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

    def _write(self, snapshot: dict[str, Any]) -> None:
        # Pretty-printed with two spaces, as the reference writes it.
        payload = json.dumps(snapshot, indent=2, ensure_ascii=False).encode("utf-8")
        try:
            replace_file(self.path, [payload], "agent runtime file")
        except StoreError as exc:
            raise CoordinatorError(str(exc)) from None
        fsync_dir(self.path.parent)


def _task(task_id: str, description: str, priority: str, when: str) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "description": description,
        "priority": priority,
        "status": "pending",
        "assigned_at": when,
        "completed_at": None,
        "dependencies": [],
        "metadata": {},
    }


def _queued(snapshot: Mapping[str, Any]) -> list[QueuedTask]:
    out = []
    for agent_id, task in snapshot["task_queue"]:
        out.append(
            QueuedTask(
                agent_id=agent_id,
                task_id=str(task.get("task_id", "")),
                description=str(task.get("description", "")),
                priority=str(task.get("priority", "medium")),
                assigned_at=str(task.get("assigned_at", "")),
                raw=task,
            )
        )
    return out


def _ids(agent_ids: Sequence[str]) -> list[str]:
    if isinstance(agent_ids, str):
        raise InvalidArgumentError(
            f"agent_ids must be a sequence of IDs, not the string {quote(agent_ids)}"
        )
    return list(dict.fromkeys(agent_ids))


# --------------------------------------------------------------------------- the coordinator


class ReferenceCoordinator:
    """A :class:`~dalfleet.coordinator.base.Coordinator` that shares the reference's agent file.

    Task states, leases and attempts live in the local SQLite coordinator under
    ``<base>/.dal/`` (the reference's file has no room for them); the reference's
    ``.dal/agent_runtime.json`` is kept in step, in its own shape, so that its
    queue holds the tasks that are pending here:

    * agents spawned here are written there (``dal agent fleet show`` members exist
      for the reference too), and terminating one marks it ``terminated`` there;
    * a task dispatched here (or released by a worker that stopped) is queued
      there too, under the same ID, so ``dal agent task list`` shows it; it leaves
      that queue when a worker here claims it;
    * a task queued there (``dal agent fleet run``) is taken in here, keeping its
      ID, whenever dalfleet looks at its agent (a claim, a status, a count, a task
      listing): a ``dalfleet worker`` runs it and it is counted as pending;
    * a finished task is written into its agent's task list there, with its status
      (``completed`` / ``failed``) and result or error.

    Agents the reference spawned are known here by their stored config and state.
    The two files are two stores: a call changes the SQLite database atomically
    and then brings the reference's file in step; if that second write fails the
    file is brought in step by a later call (the database decides).
    """

    def __init__(
        self,
        base: str | os.PathLike[str],
        trust_level: str = DEFAULT_TRUST_LEVEL,
        *,
        max_attempts: int | None = None,
        runtime: ReferenceRuntime | None = None,
    ) -> None:
        from dalfleet.coordinator.local import LocalCoordinator

        self.base = Path(base)
        self.runtime = runtime if runtime is not None else ReferenceRuntime(self.base)
        if max_attempts is None:
            self.inner = LocalCoordinator(self.base, trust_level)
        else:
            self.inner = LocalCoordinator(self.base, trust_level, max_attempts=max_attempts)

    def __repr__(self) -> str:
        return f"ReferenceCoordinator({str(self.base)!r}, trust_level={self.trust_level!r})"

    @property
    def trust_level(self) -> str:
        """Every spawned agent's spec carries this trust level."""
        return self.inner.trust_level

    @trust_level.setter
    def trust_level(self, value: str) -> None:
        self.inner.trust_level = value

    @property
    def max_attempts(self) -> int:
        """Claims a task gets before an expired lease fails it."""
        return self.inner.max_attempts

    @max_attempts.setter
    def max_attempts(self, value: int) -> None:
        self.inner.max_attempts = value

    # -- agents

    def spawn(self, specs: Sequence[AgentSpec]) -> list[str]:
        """As the protocol; the agents are written into the reference's file too.

        Raises:
            CoordinatorError: as the protocol (the new agents are terminated here
                when the reference's file cannot be written).
        """
        if not specs:
            return []
        self.runtime.load()  # a file that cannot be read refuses the call before any change
        ids = self.inner.spawn(specs)
        stored = self.inner.agents(ids)
        try:
            self.runtime.add_agents([(i, stored[i].spec) for i in ids if i in stored])
        except BaseException:
            with contextlib.suppress(Exception):
                self.inner.terminate(ids)
            raise
        return ids

    def terminate(self, agent_ids: Sequence[str]) -> None:
        """As the protocol; the agents are marked ``terminated`` in the reference's file,
        and their pending tasks (those it queued included) fail and leave its queue.

        Raises:
            InvalidArgumentError / CoordinatorError: as the protocol.
        """
        ids = _ids(agent_ids)
        if not ids:
            return
        self._sync(ids)  # the reference's queued tasks fail with the rest
        self.inner.terminate(ids)
        self.runtime.terminate(ids)
        self._sync(ids)

    def check_writable(self) -> None:
        """As :meth:`LocalCoordinator.check_writable`; the reference's file must also
        be readable, since a terminate rewrites it.

        Raises:
            CoordinatorError: the database cannot be locked or the file cannot be read.
        """
        self.runtime.load()
        self.inner.check_writable()

    def agents(self, agent_ids: Sequence[str]) -> dict[str, Agent]:
        """As the protocol; agents the reference spawned are included.

        Raises:
            InvalidArgumentError / CoordinatorError: as the protocol.
        """
        ids = _ids(agent_ids)
        found = self.inner.agents(ids)
        theirs = self._reference_agents(
            self.runtime.load(), [i for i in ids if _external_or_missing(found.get(i))]
        )
        out: dict[str, Agent] = {}
        for agent_id in ids:
            if agent_id in theirs:
                out[agent_id] = theirs[agent_id]
            elif agent_id in found:
                out[agent_id] = found[agent_id]
        return out

    def agent_ids(self, state: AgentState | None = None) -> list[str]:
        """As the protocol: the agents spawned (or given an inbox) here, oldest first.

        Agents the reference spawned are not listed: they are not this tool's to
        terminate as orphans (``dal agent`` may have made them outside any fleet).

        Raises:
            CoordinatorError: as the protocol.
        """
        return self.inner.agent_ids(state)

    def status(self, agent_ids: Sequence[str]) -> dict[str, AgentStatus]:
        """As the protocol; the state of an agent the reference spawned is its state
        there, and the tasks the reference queued for it are counted.

        Raises:
            InvalidArgumentError / CoordinatorError: as the protocol.
        """
        ids = _ids(agent_ids)
        snapshot = self._sync(ids)
        statuses = self.inner.status(ids)
        unknown = [i for i in ids if statuses[i].state == AgentState.UNKNOWN]
        for agent_id, agent in self._reference_agents(snapshot, unknown).items():
            statuses[agent_id] = attrs.evolve(statuses[agent_id], state=agent.state)
        return statuses

    def _reference_agents(
        self, snapshot: Mapping[str, Any], agent_ids: Iterable[str]
    ) -> dict[str, Agent]:
        contexts = snapshot["agent_contexts"]
        out = {}
        for agent_id in agent_ids:
            context = contexts.get(agent_id)
            if isinstance(context, dict):
                state = (
                    AgentState.TERMINATED
                    if context.get("status") == "terminated"
                    else AgentState.ALIVE
                )
                out[agent_id] = Agent(agent_id, spec_of(context), state)
        return out

    def _sync(self, agent_ids: Sequence[str]) -> dict[str, Any]:
        """Take in the reference's queued tasks of these agents (keeping their IDs), and
        drop from its queue their tasks that are no longer pending here.

        Returns the snapshot as read before any change.
        """
        snapshot = self.runtime.load()
        wanted = set(agent_ids)
        queued = [t for t in _queued(snapshot) if t.agent_id in wanted]
        if not queued:
            return snapshot
        states = self.inner.task_states([t.task_id for t in queued])
        foreign = [t for t in queued if t.task_id not in states]
        if foreign:
            self.inner.adopt([(t.agent_id, _as_task(t)) for t in foreign])
            states.update(self.inner.task_states([t.task_id for t in foreign]))
        if any(state != TaskState.PENDING for state in states.values()):
            with self.runtime.transaction() as current:
                # Checked again under the lock: a release may have made one pending.
                entries = current["task_queue"]
                mine = [t.task_id for t in _queued(current) if t.agent_id in wanted]
                now_states = self.inner.task_states(mine)
                current["task_queue"] = [
                    entry
                    for entry, task in zip(entries, _queued(current), strict=True)
                    if not (
                        task.agent_id in wanted
                        and now_states.get(task.task_id, TaskState.PENDING) != TaskState.PENDING
                    )
                ]
        return snapshot

    # -- tasks

    def dispatch(
        self,
        agent_ids: Sequence[str],
        task: Task,
        *,
        worker: str | None = None,
        lease: float = DEFAULT_LEASE,
    ) -> dict[str, DispatchResult]:
        """As the protocol; pending tasks are queued in the reference's file too (same
        IDs), and an agent the reference marked ``terminated`` gets an error result.

        Raises:
            InvalidArgumentError / CoordinatorError: as the protocol.
        """
        ids = _ids(agent_ids)
        check_lease(lease)
        refused = self._terminated_there(ids)
        allowed = [i for i in ids if i not in refused]
        results = self.inner.dispatch(allowed, task, worker=worker, lease=lease) if allowed else {}
        if worker is None:
            self.runtime.enqueue_tasks(
                [
                    QueuedTask(agent_id, r.task.task_id, r.task.description, _priority(r.task))
                    for agent_id, r in results.items()
                    if r.task is not None
                ]
            )
        return {
            agent_id: results[agent_id]
            if agent_id in results
            else DispatchResult(agent_id, error=refused_error(agent_id))
            for agent_id in ids
        }

    def _terminated_there(self, ids: list[str]) -> set[str]:
        """Those of ``ids`` that the reference spawned and marked ``terminated``."""
        if not ids:
            return set()
        found = self.inner.agents(ids)
        theirs = self._reference_agents(
            self.runtime.load(), [i for i in ids if _external_or_missing(found.get(i))]
        )
        return {i for i, agent in theirs.items() if agent.state == AgentState.TERMINATED}

    def claim(
        self,
        agent_ids: Sequence[str],
        worker: str,
        limit: int,
        *,
        lease: float = DEFAULT_LEASE,
    ) -> list[ClaimedTask]:
        """As the protocol; tasks the reference queued for these agents are taken in
        first, and a claimed task leaves the reference's queue. A task for an agent
        the reference spawned carries that agent as the reference stored it.

        Raises:
            InvalidArgumentError / CoordinatorError: as the protocol.
        """
        ids = _ids(agent_ids)
        check_lease(lease)
        if limit < 1 or not ids:
            return []
        snapshot = self._sync(ids)
        refused = self._terminated_there(ids)
        claimed = self.inner.claim([i for i in ids if i not in refused], worker, limit, lease=lease)
        if not claimed:
            return claimed
        theirs = self._reference_agents(
            snapshot,
            {c.agent.agent_id for c in claimed if _external_or_missing(c.agent)},
        )
        with contextlib.suppress(CoordinatorError):
            # Claimed here already; a queue entry left by a failed write is dropped
            # by the next call that looks at this agent.
            self.runtime.remove([c.task.task_id for c in claimed])
        return [
            attrs.evolve(c, agent=theirs[c.agent.agent_id]) if c.agent.agent_id in theirs else c
            for c in claimed
        ]

    def renew(
        self, task_ids: Sequence[str], worker: str, lease: float = DEFAULT_LEASE
    ) -> list[str]:
        """As the protocol.

        Raises:
            InvalidArgumentError / CoordinatorError: as the protocol.
        """
        return self.inner.renew(task_ids, worker, lease)

    def finish(self, outcome: TaskOutcome, worker: str) -> FinishStatus:
        """As the protocol.

        Raises:
            CoordinatorError: as the protocol.
        """
        return self.finish_many([outcome], worker)[outcome.task_id]

    def finish_many(self, outcomes: Sequence[TaskOutcome], worker: str) -> dict[str, FinishStatus]:
        """As the protocol; each recorded outcome is written into its agent's task list
        in the reference's file too (after it is recorded here).

        Raises:
            CoordinatorError: as the protocol.
        """
        statuses = self.inner.finish_many(outcomes, worker)
        done = []
        seen = set()
        for outcome in outcomes:
            if outcome.task_id in seen or statuses.get(outcome.task_id) != FinishStatus.RECORDED:
                continue
            seen.add(outcome.task_id)
            record = self.inner.task(outcome.task_id)
            if record is None:
                continue
            queued = QueuedTask(
                record.agent_id,
                record.task_id,
                record.task.description,
                _priority(record.task),
                _rfc3339(record.enqueued_at),
            )
            done.append((queued, outcome.ok, record.result if outcome.ok else record.error))
        with contextlib.suppress(CoordinatorError):
            # The outcome is recorded here; a mirror that cannot be written must not undo it.
            self.runtime.record_many(done)
        return statuses

    def release(self, task_ids: Sequence[str], worker: str) -> None:
        """As the protocol; a task put back to pending is queued in the reference's
        file again (``dal agent task list`` shows it).

        Raises:
            InvalidArgumentError / CoordinatorError: as the protocol.
        """
        ids = _ids(task_ids)
        self.inner.release(ids, worker)
        back = [
            record
            for task_id, state in self.inner.task_states(ids).items()
            if state == TaskState.PENDING and (record := self.inner.task(task_id)) is not None
        ]
        if not back:
            return
        # Released here already; the reference's queue is a view of it.
        with contextlib.suppress(CoordinatorError), self.runtime.transaction() as snapshot:
            present = {t.task_id for t in _queued(snapshot)}
            when = _now()
            for record in back:
                if record.task_id not in present:
                    stored = _task(
                        record.task_id,
                        record.task.description,
                        _priority(record.task),
                        _rfc3339(record.enqueued_at) or when,
                    )
                    snapshot["task_queue"].append([record.agent_id, stored])
            del snapshot["task_queue"][:-MAX_QUEUE_LEN]

    def task_counts(self, agent_ids: Sequence[str]) -> TaskCounts:
        """As the protocol; tasks the reference queued for these agents count as pending.

        Raises:
            InvalidArgumentError / CoordinatorError: as the protocol.
        """
        ids = _ids(agent_ids)
        self._sync(ids)
        return self.inner.task_counts(ids)

    def tasks(self, agent_id: str) -> list[TaskRecord]:
        """As the protocol; tasks the reference queued for this agent are included.

        Raises:
            CoordinatorError: as the protocol.
        """
        self._sync([agent_id])
        return self.inner.tasks(agent_id)

    def task(self, task_id: str) -> TaskRecord | None:
        """As the protocol; a task only the reference has queued so far is found too.

        Raises:
            CoordinatorError: as the protocol.
        """
        record = self.inner.task(task_id)
        if record is not None:
            return record
        owners = [t.agent_id for t in _queued(self.runtime.load()) if t.task_id == task_id]
        if not owners:
            return None
        self._sync(owners)
        return self.inner.task(task_id)

    def close(self) -> None:
        """Release the database connection. Never raises."""
        self.inner.close()


def _external_or_missing(agent: Agent | None) -> bool:
    return agent is None or agent.spec.metadata.get(EXTERNAL_KEY) == "true"


def _priority(task: Task) -> str:
    """The task's priority as the reference's queue spells it (``medium`` if another)."""
    return task.priority if task.priority in _PRIORITIES else "medium"


def _as_task(queued: QueuedTask) -> Task:
    priority = queued.priority if queued.priority in _PRIORITIES else "medium"
    return Task(task_id=queued.task_id, description=queued.description, priority=priority)


def _rfc3339(stamp: float | None) -> str:
    """Seconds since the epoch as the reference writes times ('' for None)."""
    if stamp is None:
        return ""
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).isoformat()


def coordinator_for_base(
    base: str | os.PathLike[str],
    trust_level: str,
    runtime: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Coordinator:
    """The default coordinator of a project directory (SPEC §5, reference runtime).

    ``runtime`` (else ``$DALFLEET_RUNTIME``, else ``auto``): ``reference`` shares the
    reference's ``.dal/agent_runtime.json`` (a :class:`ReferenceCoordinator`, which
    creates the file when it first writes); ``local`` uses the SQLite coordinator
    only; ``auto`` shares the reference's file when it exists. Nothing is opened yet.

    Raises:
        InvalidArgumentError: ``runtime`` (or the variable) is not one of those three.
    """
    from dalfleet.coordinator.local import LocalCoordinator

    env = os.environ if environ is None else environ
    chosen = runtime if runtime is not None else (env.get(RUNTIME_ENV) or "auto")
    if chosen not in _RUNTIMES:
        source = "runtime" if runtime is not None else f"${RUNTIME_ENV}"
        raise InvalidArgumentError(
            f"{source} must be one of {', '.join(_RUNTIMES)}, not {quote(chosen)}"
        )
    if chosen == "reference" or (
        chosen == "auto" and ReferenceRuntime(base, path=runtime_path(base, env)).exists()
    ):
        return ReferenceCoordinator(
            base, trust_level, runtime=ReferenceRuntime(base, path=runtime_path(base, env))
        )
    return LocalCoordinator(base, trust_level=trust_level)
