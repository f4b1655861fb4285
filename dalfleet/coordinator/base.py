"""The Coordinator protocol: the cut-off between the fleet API and where agents live.

A coordinator is *state*: agents, their inboxes, task states, leases and outcomes.
It knows nothing of fleets, fleet files or handlers (handlers run in an
:mod:`executor <dalfleet.executor>`). A new backend is one class with the methods
of :class:`Coordinator`, proven by :class:`dalfleet.testing.CoordinatorContract`.

Tasks
-----
Every dispatched task belongs to one agent and moves through :class:`TaskState`::

    pending --claim--> running --finish(ok)-----> completed
       ^                 | |    --finish(error)--> failed
       +----release------+ +--lease expired--> claimed again by anyone (attempt + 1),
                                              or failed once max_attempts are used

* A **claim** takes a pending task, or a running task whose lease has expired,
  for one ``worker`` (any string naming the claimant) until ``now + lease``
  seconds, and counts one **attempt**. The worker keeps the task by calling
  :meth:`Coordinator.renew` before the lease runs out.
* An outcome is recorded **once**: the first :meth:`Coordinator.finish_many` of a
  running task by the worker that holds it makes it ``completed`` or ``failed``;
  any later finish of that task, or a finish by a worker whose task was taken
  over (or released), changes nothing and is answered with a
  :class:`FinishStatus` saying why. Delivery is therefore at-least-once (a
  handler may run again after its worker lost the lease) while the recorded
  outcome is exactly-once.
* A task whose lease expired is claimed again by any worker; once it has used
  ``max_attempts`` attempts it is failed instead, with its last error (or a
  message saying the lease expired). This recovery happens inside the
  coordinator, during :meth:`Coordinator.claim`; no caller inspects processes.
* Terminating an agent fails its pending tasks (error :data:`TERMINATED_ERROR`).

Rules every implementation follows
-----------------------------------
* **Atomic calls.** Each method is one atomic step (one transaction): when it
  raises, nothing it would have changed has changed; when it returns, what it
  wrote is visible to every other instance on the same state (other threads,
  processes or hosts). Nothing is isolated across two calls.
* **Thread-safe, not re-entrant by design.** Methods may be called from any
  thread. They never call back into user code, so no re-entrancy arises.
* **Values out.** Everything returned is a fresh immutable value or a new
  container; changing it never changes the coordinator's state.
* **Text in.** Any ``str`` is accepted, including text that is not valid UTF-8
  (lone surrogates from ``os.fsdecode``): a backend that cannot store it stores
  :func:`storable_text` of it, so an outcome is never lost to its text.
* **ID lists.** Parameters named ``agent_ids`` / ``task_ids`` are sequences of
  strings; duplicates count once; a bare ``str`` is refused with
  :class:`~dalfleet.errors.InvalidArgumentError` (it is a sequence of characters).
* **Errors.** Backend failures (database, network) raise
  :class:`~dalfleet.errors.CoordinatorError`; nothing else is raised except
  where a docstring says so.
* **Clock.** Lease times are wall-clock seconds since the epoch (``time.time()``),
  since leases are compared across processes and hosts.

A coordinator may also offer ``open_task_count(agent_ids) -> int``, the number of
those agents' tasks that are pending or running, when it can count them more
cheaply than :meth:`Coordinator.task_counts` counts every state (finished tasks
accumulate; open ones come and go). :func:`count_open_tasks` uses it when present.
"""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol, runtime_checkable

import attrs

from dalfleet.defaults import DEFAULT_LEASE, DEFAULT_MAX_ATTEMPTS  # re-exported for backends
from dalfleet.errors import CoordinatorError, InvalidArgumentError, quote
from dalfleet.models import AgentState
from dalfleet.records import Agent, AgentSpec, Task

__all__ = [
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
    "check_writable",
    "count_open_tasks",
    "new_task_id",
    "new_task_ids",
    "worker_identity",
]


class TaskState(str, enum.Enum):
    """Where a task is in its life: ``pending → running → completed | failed``.

    String-valued, so ``TaskState.PENDING == "pending"`` and JSON keeps working.
    """

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """True for the two final states (``completed``, ``failed``)."""
        return self in (TaskState.COMPLETED, TaskState.FAILED)


class FinishStatus(str, enum.Enum):
    """The answer to one finish: whether the outcome was recorded, and if not why."""

    RECORDED = "recorded"
    """The outcome is now the task's final state."""
    ALREADY_FINISHED = "already_finished"
    """The task had a final outcome already; it is unchanged."""
    LEASE_LOST = "lease_lost"
    """The task is not running under this worker (released, or taken over after
    its lease expired); the current holder will record the outcome."""
    NOT_FOUND = "not_found"
    """No task has this ID."""


@attrs.frozen
class DispatchResult:
    """What :meth:`Coordinator.dispatch` did for one agent: a ``task`` or an ``error``.

    Exactly one of ``task`` and ``error`` is set.
    """

    agent_id: str
    task: Task | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the task was stored."""
        return self.task is not None


@attrs.frozen
class ClaimedTask:
    """A task held by ``worker`` until ``lease_expires_at``, with the agent it is for.

    ``attempt`` counts claims of this task, this one included (1 on the first).
    """

    agent: Agent
    task: Task
    worker: str
    lease_expires_at: float
    attempt: int = 1


@attrs.frozen
class TaskOutcome:
    """The outcome of one task, as a worker reports it to :meth:`Coordinator.finish_many`.

    ``ok`` tasks become ``completed`` with ``result`` (any value; stored as JSON,
    or as its ``repr`` text when JSON cannot hold it); others become ``failed``
    with ``error`` text.
    """

    task_id: str
    ok: bool
    result: Any = None
    error: str | None = None


@attrs.frozen
class TaskCounts:
    """How many tasks are in each state."""

    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        """All tasks counted."""
        return self.pending + self.running + self.completed + self.failed

    @classmethod
    def from_tally(cls, tally: Mapping[str, int]) -> TaskCounts:
        """The counts of a ``{state: count}`` tally (e.g. a ``GROUP BY state``);
        states not in it count 0. Never raises."""
        return cls(
            pending=tally.get(TaskState.PENDING.value, 0),
            running=tally.get(TaskState.RUNNING.value, 0),
            completed=tally.get(TaskState.COMPLETED.value, 0),
            failed=tally.get(TaskState.FAILED.value, 0),
        )


@attrs.frozen
class AgentStatus:
    """What a coordinator knows about one agent right now.

    ``last_result_at`` is when its latest task finished (None if none has).
    """

    agent_id: str
    state: AgentState
    pending_tasks: int = 0
    running_tasks: int = 0
    completed_tasks: int = 0
    failed_tasks: int = 0
    last_result_at: float | None = None


@attrs.frozen
class TaskRecord:
    """One stored task as :meth:`Coordinator.tasks` and :meth:`Coordinator.task` show it.

    ``worker`` and ``lease_expires_at`` describe the current (or last) claim
    (None while pending); ``attempts`` counts claims so far (a release gives one
    back); ``result`` is the stored result read back (JSON values), ``error`` the
    failure text of a failed task.
    """

    task: Task
    agent_id: str
    state: TaskState
    enqueued_at: float
    worker: str | None = None
    attempts: int = 0
    lease_expires_at: float | None = None
    result: Any = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def task_id(self) -> str:
        """The task's ID."""
        return self.task.task_id


@runtime_checkable
class Coordinator(Protocol):
    """Where agents live: spawn, terminate, dispatch, claim, finish, report.

    Implementations: :class:`~dalfleet.coordinator.memory.MemoryCoordinator`
    (in-process), :class:`~dalfleet.coordinator.local.LocalCoordinator` (SQLite
    under ``<base>/.dal/``) and :class:`~dalfleet.coordinator.postgres.PostgresCoordinator`
    (one PostgreSQL database shared by many hosts). See the module docstring for the
    rules every method follows (atomic, thread-safe, values out, any text in, ID lists).
    """

    trust_level: str
    """Every spawned agent's spec carries this trust level, whatever it asked for."""

    max_attempts: int
    """Claims a task gets before an expired lease fails it (>= 1)."""

    # -- agents -----------------------------------------------------------------

    def spawn(self, specs: Sequence[AgentSpec]) -> list[str]:
        """Create one alive agent per spec; return their new, unique IDs in order.

        All or nothing. The stored spec has ``trust_level`` set to this
        coordinator's. A mold's lifecycle hooks are recorded, never executed.
        An empty ``specs`` returns ``[]`` and changes nothing.

        Raises:
            CoordinatorError: a spec cannot be stored, or the backend fails; no
                agent of this call exists afterwards.
        """
        ...

    def terminate(self, agent_ids: Sequence[str]) -> None:
        """Terminate these agents; unknown or already terminated IDs are ignored.

        Their pending tasks become ``failed`` with error :data:`TERMINATED_ERROR`;
        running tasks keep running and may still be finished.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string.
            CoordinatorError: the backend fails.
        """
        ...

    def agents(self, agent_ids: Sequence[str]) -> dict[str, Agent]:
        """The known agents among ``agent_ids``, in input order; unknown IDs are left out.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string.
            CoordinatorError: the backend fails.
        """
        ...

    def agent_ids(self, state: AgentState | None = None) -> list[str]:
        """IDs of every agent known here (spawned, or given an inbox by
        :meth:`dispatch`), oldest first; only those in ``state`` if given.

        Used to find agents no fleet lists (orphans) and terminate them.

        Raises:
            CoordinatorError: the backend fails.
        """
        ...

    def status(self, agent_ids: Sequence[str]) -> dict[str, AgentStatus]:
        """Live status of every given agent, in input order, with its task counts.

        An ID never seen gets state ``unknown`` and zero counts.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string.
            CoordinatorError: the backend fails.
        """
        ...

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

        ``task.task_id`` is a template's and is not used. Returns one
        :class:`DispatchResult` per agent, in input order. A terminated agent the
        coordinator spawned gets an error result (no task). An ID the coordinator
        did not spawn (an agent that lives elsewhere, registered with
        ``add_member``) gets an inbox and state ``unknown``, as in the reference;
        its inbox reopens if it was terminated (its life is not ours to end).

        Without ``worker`` the tasks are ``pending``. With ``worker`` they are
        created ``running``, claimed by that worker for ``lease`` seconds with
        attempt 1, exactly as if :meth:`claim` had taken them (used to execute
        right away).

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string, or ``lease`` is not > 0.
            CoordinatorError: the backend fails; no task of this call exists afterwards.
        """
        ...

    def claim(
        self,
        agent_ids: Sequence[str],
        worker: str,
        limit: int,
        *,
        lease: float = DEFAULT_LEASE,
    ) -> list[ClaimedTask]:
        """Take up to ``limit`` tasks of these (not terminated) agents for ``worker``.

        Candidates, oldest dispatch first: ``pending`` tasks, and ``running`` tasks
        whose lease has expired. Each taken task becomes ``running`` under
        ``worker`` until ``now + lease`` and its attempt count goes up by one. An
        expired or pending candidate that has already used ``max_attempts``
        attempts is not taken but ``failed`` with its last error. Two concurrent
        claims (threads, processes, hosts) never take the same task while its
        lease runs. ``limit < 1`` takes nothing.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string, or ``lease`` is not > 0.
            CoordinatorError: the backend fails; nothing was claimed.
        """
        ...

    def renew(
        self, task_ids: Sequence[str], worker: str, lease: float = DEFAULT_LEASE
    ) -> list[str]:
        """Extend ``worker``'s leases on these running tasks to ``now + lease``.

        Returns the IDs still held (renewed), in input order; a task not running
        under ``worker`` (finished, released, taken over, unknown) is left out,
        which tells the worker its outcome will not be recorded.

        Raises:
            InvalidArgumentError: ``task_ids`` is a string, or ``lease`` is not > 0.
            CoordinatorError: the backend fails.
        """
        ...

    def finish(self, outcome: TaskOutcome, worker: str) -> FinishStatus:
        """Record one task's outcome; the same as ``finish_many([outcome], worker)``.

        Raises:
            CoordinatorError: the backend fails; nothing was recorded.
        """
        ...

    def finish_many(self, outcomes: Sequence[TaskOutcome], worker: str) -> dict[str, FinishStatus]:
        """Record outcomes of tasks ``worker`` holds, all in one atomic step.

        An outcome is recorded only for a task that is ``running`` under
        ``worker`` (its lease may have run out, as long as no one took it over);
        otherwise the task is unchanged. Returns the :class:`FinishStatus` per task
        ID, in input order (a task ID given twice: only its first outcome counts).
        Error and result text that the backend cannot store as is are stored as
        :func:`storable_text`.

        Raises:
            CoordinatorError: the backend fails; nothing of this call was recorded.
        """
        ...

    def release(self, task_ids: Sequence[str], worker: str) -> None:
        """Put back to ``pending`` these tasks that are running under ``worker``.

        The attempt the claim counted is given back (a worker that stops cleanly
        costs a task no attempt). Other tasks are ignored.

        Raises:
            InvalidArgumentError: ``task_ids`` is a string.
            CoordinatorError: the backend fails.
        """
        ...

    def task_counts(self, agent_ids: Sequence[str]) -> TaskCounts:
        """How many tasks of these agents are in each state (summed over agents).

        A running task whose lease expired still counts as ``running`` until a
        claim recovers it.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a string.
            CoordinatorError: the backend fails.
        """
        ...

    def tasks(self, agent_id: str) -> list[TaskRecord]:
        """Every task of one agent, oldest dispatch first (empty for an unknown ID).

        Raises:
            CoordinatorError: the backend fails.
        """
        ...

    def task(self, task_id: str) -> TaskRecord | None:
        """The stored task with this ID, or None.

        Raises:
            CoordinatorError: the backend fails.
        """
        ...

    def close(self) -> None:
        """Release resources (connections). Calling it again does nothing; a later
        call of another method may reopen them. Never raises.
        """
        ...


# -- helpers shared by implementations (pure: no I/O, no state) -----------------


def new_agent_id() -> str:
    """A fresh, globally unique agent ID in the reference's ``agent_…`` shape. Never raises."""
    return f"agent_{os.urandom(10).hex()}"


def new_task_id() -> str:
    """A fresh, globally unique task ID: ``task_`` and 80 random bits in hex. Never raises."""
    return new_task_ids(1)[0]


def new_task_ids(count: int) -> list[str]:
    """``count`` fresh task IDs (see :func:`new_task_id`) from one read of the
    system's random source: a run of 10,000 members makes 10,000. Never raises."""
    digits = os.urandom(10 * count).hex()
    return [f"task_{digits[i : i + 20]}" for i in range(0, 20 * count, 20)]


def worker_identity() -> str:
    """A label for a worker of this process, for claims: ``host:pid:nonce``. Never raises."""
    import socket  # only workers need it; not imported with every command

    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def now() -> float:
    """Wall-clock time in seconds, the clock of leases. Never raises."""
    return time.time()


def count_open_tasks(coordinator: Coordinator, agent_ids: Sequence[str]) -> int:
    """How many of these agents' tasks are pending or running: the coordinator's own
    ``open_task_count`` when it offers one, else from :meth:`Coordinator.task_counts`.

    Raises:
        InvalidArgumentError: ``agent_ids`` is a string.
        CoordinatorError: the backend fails.
    """
    own = getattr(coordinator, "open_task_count", None)
    if callable(own):
        return int(own(agent_ids))
    counts = coordinator.task_counts(agent_ids)
    return counts.pending + counts.running


def unique_ids(ids: Sequence[str], what: str = "agent_ids") -> list[str]:
    """``ids`` without duplicates, in first-seen order.

    Raises:
        InvalidArgumentError: ``ids`` is a single string rather than a sequence of IDs.
    """
    if isinstance(ids, str):
        raise InvalidArgumentError(f"{what} must be a sequence of IDs, not the string {quote(ids)}")
    return list(dict.fromkeys(ids))


def check_lease(lease: float) -> float:
    """``lease`` as a float, checked.

    Raises:
        InvalidArgumentError: ``lease`` is not a number > 0 (or is not finite).
    """
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not 0 < lease < 1e12:
        raise InvalidArgumentError(f"lease must be a number of seconds > 0 (got {quote(lease)})")
    return float(lease)


def storable_text(text: str) -> str:
    """``text`` as valid UTF-8 text: lone surrogates become ``\\udcXX`` escapes.

    Text that is already valid comes back unchanged (the same object). Never raises.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def encode_result(result: Any) -> str | None:
    """The stored (JSON, ASCII) form of a task result; ``repr`` text when JSON cannot
    hold it, and a placeholder naming the type when even ``repr`` fails.

    Never raises: a handler's odd result must not keep its outcome from being recorded.
    """
    if result is None:
        return None
    from dalfleet.convert import json_default  # frozen values and models as plain data

    try:
        return json.dumps(result, allow_nan=False, default=json_default)
    except (TypeError, ValueError, RecursionError):  # not JSON, NaN, circular, too deep
        pass
    try:
        return json.dumps(repr(result))
    except Exception:  # a broken __repr__, or one nested too deeply
        return json.dumps(f"<unrepresentable {type(result).__name__}>")


def decode_result(text: str | None) -> Any:
    """The result stored as ``text`` by :func:`encode_result` (None stays None).

    Raises:
        CoordinatorError: ``text`` is not JSON (the stored state is damaged).
    """
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CoordinatorError(f"stored task result is not JSON: {exc}") from exc


# json.dumps(..., sort_keys=True) builds a new encoder per call; a spawn encodes
# one spec per agent.
_SPEC_ENCODER: Final = json.JSONEncoder(sort_keys=True)


def encode_spec(spec: AgentSpec) -> str:
    """The stored (JSON) form of ``spec``.

    Raises:
        CoordinatorError: the spec holds a value that cannot be stored.
    """
    from dalfleet.convert import converter

    try:
        return _SPEC_ENCODER.encode(converter.unstructure(spec))
    except (TypeError, ValueError) as exc:
        raise CoordinatorError(f"agent spec {quote(spec.name)} cannot be stored: {exc}") from exc


def decode_spec(text: str) -> AgentSpec:
    """The spec stored as ``text`` by :func:`encode_spec`.

    Raises:
        CoordinatorError: ``text`` is not a stored spec (the stored state is damaged).
    """
    from dalfleet.convert import converter

    try:
        spec: AgentSpec = converter.structure(json.loads(text), AgentSpec)
    except Exception as exc:  # JSON or cattrs errors, whichever shape is wrong
        raise CoordinatorError(f"stored agent spec cannot be read: {exc}") from exc
    return spec


def external_spec(agent_id: str, trust_level: str) -> AgentSpec:
    """The stand-in spec of an agent the coordinator did not spawn: it gets an
    inbox, and its state stays ``unknown``. Never raises.
    """
    return AgentSpec(name=agent_id, trust_level=trust_level, metadata={EXTERNAL_KEY: "true"})


EXTERNAL_KEY: Final = "external"
"""Metadata key marking an :func:`external_spec`."""


TERMINATED_ERROR: Final = "the agent was terminated before the task ran"
"""The error of a pending task failed by :meth:`Coordinator.terminate`."""


def refused_error(agent_id: str) -> str:
    """The dispatch error for a terminated agent. Never raises."""
    return f"agent '{storable_text(agent_id)}' is terminated"


def expired_error(worker: str | None, attempts: int, last_error: str | None) -> str:
    """The error of a task failed because its leases ran out ``attempts`` times.

    Keeps the last error an attempt reported, if any. Never raises.
    """
    if last_error:
        return last_error
    who = f" (worker '{storable_text(worker)}')" if worker else ""
    return f"lease expired{who}; gave up after {attempts} attempt(s)"


def outcome_columns(outcome: TaskOutcome) -> tuple[TaskState, str | None, str | None]:
    """What finishing with ``outcome`` stores: final state, result JSON, error text.

    The error is :func:`storable_text`; a failure without text gets ``"failed"``.
    Never raises.
    """
    if outcome.ok:
        return TaskState.COMPLETED, encode_result(outcome.result), None
    error = outcome.error if isinstance(outcome.error, str) and outcome.error else "failed"
    return TaskState.FAILED, None, storable_text(error)


class ClaimAction(enum.Enum):
    """What :meth:`Coordinator.claim` does with one candidate task."""

    SKIP = "skip"
    TAKE = "take"
    FAIL = "fail"


def claim_action(
    state: TaskState,
    attempts: int,
    lease_expires_at: float | None,
    at: float,
    max_attempts: int,
) -> ClaimAction:
    """The claim rule for one task of an alive agent at time ``at``. Never raises.

    Pending tasks and running tasks whose lease expired are candidates; a
    candidate with ``attempts >= max_attempts`` is failed, the others are taken.
    """
    if state is TaskState.PENDING:
        expired = True
    elif state is TaskState.RUNNING:
        expired = lease_expires_at is None or lease_expires_at <= at
    else:
        return ClaimAction.SKIP
    if not expired:
        return ClaimAction.SKIP
    return ClaimAction.FAIL if attempts >= max_attempts else ClaimAction.TAKE


def finish_status(state: TaskState, holder: str | None, worker: str) -> FinishStatus:
    """Whether ``worker`` may record the outcome of a task in ``state`` held by ``holder``.

    Returns ``RECORDED`` when it may. Never raises.
    """
    if state.finished:
        return FinishStatus.ALREADY_FINISHED
    if state is TaskState.RUNNING and holder == worker:
        return FinishStatus.RECORDED
    return FinishStatus.LEASE_LOST


def counts_of(states: Iterable[TaskState]) -> TaskCounts:
    """Count ``states`` by kind. Never raises."""
    tally = dict.fromkeys(TaskState, 0)
    for state in states:
        tally[state] += 1
    return TaskCounts(
        pending=tally[TaskState.PENDING],
        running=tally[TaskState.RUNNING],
        completed=tally[TaskState.COMPLETED],
        failed=tally[TaskState.FAILED],
    )


def check_max_attempts(max_attempts: int) -> int:
    """``max_attempts``, checked.

    Raises:
        InvalidArgumentError: it is not an int >= 1.
    """
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise InvalidArgumentError(
            f"max_attempts must be an integer >= 1 (got {quote(max_attempts)})"
        )
    return max_attempts


def check_writable(coordinator: Coordinator) -> None:
    """Check, before changing anything else, that a terminate on ``coordinator`` would
    not fail on a lock held by another process (when the coordinator can tell: a
    ``check_writable()`` method of its own, as the local SQLite one has).

    Fleets drop agents first and terminate them after: this check makes a locked
    coordinator fail the whole command before the fleet file changes, so the only
    failure left after it is a terminate that fails anyway, which leaves orphans
    (agents no fleet lists), never ghosts.

    Raises:
        CoordinatorError: the coordinator cannot be written now.
    """
    own = getattr(coordinator, "check_writable", None)
    if own is not None:
        own()
