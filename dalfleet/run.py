"""Execution: ``run`` with a handler, the worker loop, leases and outcome recording.

This is where a coordinator (state) meets an executor (where handlers run):

* tasks are claimed (or dispatched already claimed) with a **lease**, renewed on
  a heartbeat while their handlers run, so a worker that dies (SIGKILL, lost
  host) loses its tasks to another worker once the lease expires;
* outcomes are recorded **once**, in batches (``finish_many``), off the thread
  that runs the handlers;
* tasks not finished when a run or worker stops (a signal, Ctrl-C) are given
  back (``release``) for another worker.

:class:`~dalfleet.client.Client` keeps thin methods that call these functions.
"""

from __future__ import annotations

import builtins
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import attrs

from dalfleet.coordinator.base import (
    DEFAULT_LEASE,
    ClaimedTask,
    Coordinator,
    FinishStatus,
    TaskOutcome,
    check_lease,
    count_open_tasks,
    new_task_id,
    worker_identity,
)
from dalfleet.defaults import DEFAULT_POLL_INTERVAL
from dalfleet.errors import InvalidArgumentError
from dalfleet.executor.base import (
    DEFAULT_CONCURRENCY,
    Executor,
    Handler,
    check_options,
    load_handler,
    log,
)
from dalfleet.models import DisplayList, Fleet, OutcomeStatus
from dalfleet.records import MemberOutcome, RunReport, Task

if TYPE_CHECKING:
    from dalfleet.client import Client, Progress

__all__ = ["WorkStats", "run", "work"]


def _outcome_tuple(outcomes: Iterable[MemberOutcome]) -> tuple[MemberOutcome, ...]:
    return tuple(outcomes)


@attrs.frozen
class WorkStats:
    """What a worker did before it stopped.

    ``recovered`` counts tasks it took over from a worker whose lease expired;
    ``released`` those it gave back unfinished when it stopped.
    """

    fleet_name: str
    executed: int
    succeeded: int
    failed: int
    released: int
    recovered: int = 0
    outcomes: tuple[MemberOutcome, ...] = attrs.field(default=(), converter=_outcome_tuple)


# How long the recorder collects outcomes into one batch after the first arrives.
# Short next to a lease (a third of which is the renewal beat) and to a person
# watching progress; long enough to make one transaction of a wave of outcomes.
_BATCH_WINDOW = 0.05


class _Recorder:
    """Records outcomes in batches on its own thread and keeps leases alive.

    ``add`` only queues (it is called from the executor, maybe on the event loop's
    thread); the thread records everything queued so far with one ``finish_many``
    and renews the leases of the tasks still in flight every third of a lease.
    """

    def __init__(
        self,
        coordinator: Coordinator,
        worker: str,
        lease: float,
        on_recorded: Callable[[MemberOutcome], None] | None = None,
    ) -> None:
        self._coordinator = coordinator
        self._worker = worker
        self._lease = lease
        self._on_recorded = on_recorded
        self._queue: queue.SimpleQueue[MemberOutcome | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._error: BaseException | None = None
        self.recorded: list[MemberOutcome] = []
        self.lost: list[str] = []  # outcomes not recorded: the task was taken over
        self._thread = threading.Thread(target=self._loop, name="dalfleet-recorder", daemon=True)
        self._thread.start()

    def hold(self, task_ids: Sequence[str]) -> None:
        """Keep renewing these tasks' leases until their outcome is added."""
        with self._lock:
            self._in_flight.update(task_ids)

    def add(self, outcome: MemberOutcome) -> None:
        """Queue one outcome for recording. Never raises."""
        self._queue.put(outcome)

    def close(self) -> None:
        """Record what is queued, stop the thread; re-raise a recording failure.

        Raises:
            CoordinatorError: the coordinator failed to record outcomes.
        """
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        interval = self._lease / 3
        next_renew = time.monotonic() + interval
        while True:
            try:
                first = self._queue.get(timeout=max(0.0, next_renew - time.monotonic()))
            except queue.Empty:
                self._renew()
                next_renew = time.monotonic() + interval
                continue
            batch: list[MemberOutcome] = []
            done = first is None
            if first is not None:
                batch.append(first)
            # Everything that arrives within the window goes in the same batch (one
            # transaction): recording as each outcome came made hundreds of small
            # transactions per run, and this thread's share of the GIL and of a busy
            # machine's CPU slowed the handlers' threads and the event loop.
            window_ends = time.monotonic() + _BATCH_WINDOW
            while not done:
                try:
                    more = self._queue.get(timeout=max(0.0, window_ends - time.monotonic()))
                except queue.Empty:
                    break
                if more is None:
                    done = True  # closing: record what came, without waiting
                else:
                    batch.append(more)
            if batch:
                self._record(batch)
            if done:
                return
            if time.monotonic() >= next_renew:
                self._renew()
                next_renew = time.monotonic() + interval

    def _record(self, batch: list[MemberOutcome]) -> None:
        outcomes = [
            TaskOutcome(o.task_id or "", ok=o.ok, result=o.result, error=o.error) for o in batch
        ]
        try:
            statuses = self._coordinator.finish_many(outcomes, self._worker)
        except BaseException as exc:  # re-raised by close(), in the caller's thread
            if self._error is None:
                self._error = exc
            return
        with self._lock:
            self._in_flight.difference_update(o.task_id for o in outcomes)
        for outcome in batch:
            status = statuses.get(outcome.task_id or "")
            if status is FinishStatus.LEASE_LOST:
                self.lost.append(outcome.task_id or "")
                log.warning(
                    "task %s was taken over by another worker; its outcome here is dropped",
                    outcome.task_id,
                )
            self.recorded.append(outcome)
            if self._on_recorded is not None:
                try:
                    self._on_recorded(outcome)
                except BaseException as exc:  # a caller's callback: report it, keep recording
                    if self._error is None:
                        self._error = exc

    def _renew(self) -> None:
        with self._lock:
            held = sorted(self._in_flight)
        if not held:
            return
        try:
            kept = set(self._coordinator.renew(held, self._worker, self._lease))
        except Exception as exc:  # try again next beat; the lease still has 2/3 left
            log.warning("renewing leases failed: %s", exc)
            return
        gone = [t for t in held if t not in kept]
        if gone:
            with self._lock:
                self._in_flight.difference_update(gone)


def _execute(
    client: Client,
    executor: Executor,
    claimed: Sequence[ClaimedTask],
    handler: Handler,
    *,
    worker: str,
    lease: float,
    concurrency: int,
    timeout: float | None,
    on_recorded: Callable[[MemberOutcome], None] | None,
    stop: threading.Event | None,
) -> tuple[list[MemberOutcome], int]:
    """Run ``claimed`` on ``executor``, recording outcomes and renewing leases.

    Returns the outcomes (in ``claimed`` order) and how many unfinished tasks were
    given back. Whatever happens (Ctrl-C included), every outcome that came back
    is recorded and every other task of ``claimed`` is released.
    """
    recorder = _Recorder(client.coordinator, worker, lease, on_recorded)
    recorder.hold([item.task.task_id for item in claimed])
    released = 0
    try:
        executor.execute(
            claimed,
            handler,
            concurrency=concurrency,
            timeout=timeout,
            on_outcome=recorder.add,
            stop=stop,
        )
    finally:
        try:
            recorder.close()
        finally:
            done = {o.task_id for o in recorder.recorded}
            unfinished = [i.task.task_id for i in claimed if i.task.task_id not in done]
            if unfinished:
                released = len(unfinished)
                client.coordinator.release(unfinished, worker)
    order = {item.task.task_id: i for i, item in enumerate(claimed)}
    outcomes = sorted(recorder.recorded, key=lambda o: order.get(o.task_id or "", len(order)))
    return outcomes, released


def _executor_of(client: Client, executor: Executor | None) -> Executor:
    return executor if executor is not None else client.executor


def _ensure_member(client: Client, fleet: Fleet) -> Fleet:
    """The fleet with one member from its mold if it (still) has none.

    "Empty" is decided under the store's lock, so concurrent runs of an empty
    fleet add exactly one member between them.
    """
    assert fleet.mold_source is not None
    from dalfleet.mold import parse_params

    mold = client.load_mold(fleet.mold_source, confine=True)
    spawned: list[str] = []
    try:
        with client.store.transaction() as fleets:
            current = fleets.get(fleet.name)
            if current is None:
                from dalfleet.client import fleet_not_found

                raise fleet_not_found(fleet.name, fleets)
            if current.member_ids:
                return current
            params = parse_params(current.last_create_params)
            spawned = client._spawn(current.name, mold, 0, 1, params, None)
            updated = attrs.evolve(current, member_ids=[*current.member_ids, *spawned])
            fleets[current.name] = updated
    except BaseException:
        client._terminate_quietly(spawned)
        raise
    return updated


def run(
    client: Client,
    name: str | None = None,
    *,
    handler: Handler | str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
    lease: float = DEFAULT_LEASE,
) -> builtins.list[RunReport]:
    """Dispatch each fleet's deployed task to every member (all fleets, or the one named).

    Fleets with no deployed task are skipped. A fleet with no members but a mold
    first gets one member from it (exactly one, however many runs race). Without
    a handler the task is enqueued in each member's inbox (the reference's
    behaviour); with one, it runs now on ``executor`` (the client's by default),
    at most ``concurrency`` at once, each bounded by ``timeout`` seconds, under a
    ``lease`` renewed while it runs; each member's outcome is recorded once and is
    in the report. The reports come in a :class:`~dalfleet.models.DisplayList` (a
    ``list`` that Jupyter shows as one table).

    Raises:
        FleetNotFoundError: the named fleet does not exist.
        InvalidArgumentError: a fleet to run has no members and no mold, or a bad
            concurrency / timeout / lease.
        HandlerError: ``handler`` cannot be loaded.
        MoldError / MoldNotFoundError / CoordinatorError / StoreError: as for add_from_mold.
        KeyboardInterrupt: Ctrl-C; unfinished tasks were given back first.
    """
    from dalfleet.client import _lookup_name, fleet_not_found
    from dalfleet.errors import quote as show_value

    call = load_handler(handler) if handler is not None else None
    if call is not None:
        check_options(concurrency, timeout)
        lease = check_lease(lease)
    if name is not None:
        one = client._fleet(_lookup_name(name))
        if one is None:
            raise fleet_not_found(name, client.store.load())
        targets = [one]
    else:
        fleets = client.store.load()
        targets = [fleets[n] for n in sorted(fleets)]
    targets = [f for f in targets if f.last_deployed_task]
    for fleet in targets:
        if not fleet.member_ids and fleet.mold_source is None:
            raise InvalidArgumentError(
                f"fleet {show_value(fleet.name)} has no members and no mold_source; "
                "add members (add-member, add-from-mold) or create it from a mold first"
            )
    # A list that Jupyter shows as one table (SPEC §11).
    reports: DisplayList[RunReport] = DisplayList()
    for fleet in targets:
        if not fleet.member_ids:
            fleet = _ensure_member(client, fleet)
        reports.append(
            _run_fleet(
                client,
                fleet,
                call,
                concurrency=concurrency,
                timeout=timeout,
                progress=progress,
                executor=executor,
                lease=lease,
            )
        )
    return reports


def _run_fleet(
    client: Client,
    fleet: Fleet,
    handler: Handler | None,
    *,
    concurrency: int,
    timeout: float | None,
    progress: Progress | None,
    executor: Executor | None,
    lease: float,
) -> RunReport:
    assert fleet.last_deployed_task is not None
    started = time.time()
    task = Task(task_id=new_task_id(), description=fleet.last_deployed_task, fleet=fleet.name)
    worker = worker_identity() if handler is not None else None
    # Counted before dispatching, so the report can say a queue is growing run by run.
    before = count_open_tasks(client.coordinator, fleet.member_ids)
    dispatched = client.coordinator.dispatch(fleet.member_ids, task, worker=worker, lease=lease)
    errors: builtins.list[str] = []
    outcomes: builtins.list[MemberOutcome] = []
    claimed: builtins.list[ClaimedTask] = []
    agents = client.coordinator.agents(fleet.member_ids) if handler is not None else {}
    expires = time.time() + lease
    queued = OutcomeStatus.QUEUED
    for agent_id in fleet.member_ids:
        got = dispatched.get(agent_id)
        if got is None or got.task is None:
            error = got.error if got is not None and got.error else "was not dispatched"
            errors.append(f"{agent_id}: {error}")
            outcomes.append(
                MemberOutcome(agent_id=agent_id, ok=False, status=OutcomeStatus.ERROR, error=error)
            )
        elif handler is None:
            # Positional: a tenth of an enqueue to 10,000 members was building these.
            outcomes.append(MemberOutcome(agent_id, True, queued, got.task.task_id))
        else:
            assert worker is not None
            claimed.append(ClaimedTask(agents[agent_id], got.task, worker, expires, 1))
    if handler is None or worker is None:
        if progress is not None:
            progress(len(fleet.member_ids), len(fleet.member_ids))
        log.info(
            "fleet %s: queued the task for %d member(s) (%d task(s) were already pending)",
            fleet.name,
            len(fleet.member_ids) - len(errors),
            before,
        )
        if errors:
            log.warning("fleet %s: %d member(s) were not dispatched to", fleet.name, len(errors))
        return RunReport(
            fleet_name=fleet.name,
            members_dispatched=len(fleet.member_ids) - len(errors),
            errors=errors,
            task=fleet.last_deployed_task,
            outcomes=outcomes,
            started_at=started,
            finished_at=time.time(),
            executed=False,
            already_pending=before,
        )
    done = [0]

    def recorded(_outcome: MemberOutcome) -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], len(claimed))

    finished, _released = _execute(
        client,
        _executor_of(client, executor),
        claimed,
        handler,
        worker=worker,
        lease=lease,
        concurrency=concurrency,
        timeout=timeout,
        on_recorded=recorded,
        stop=None,
    )
    for outcome in finished:
        outcomes.append(outcome)
        if not outcome.ok:
            errors.append(f"{outcome.agent_id}: {outcome.error}")
    order = {agent_id: i for i, agent_id in enumerate(fleet.member_ids)}
    outcomes.sort(key=lambda o: order.get(o.agent_id, len(order)))
    ok = sum(1 for o in outcomes if o.ok)
    log.info(
        "fleet %s: ran the task on %d member(s): %d ok, %d failed",
        fleet.name,
        len(outcomes),
        ok,
        len(outcomes) - ok,
    )
    return RunReport(
        fleet_name=fleet.name,
        members_dispatched=ok,
        errors=errors,
        task=fleet.last_deployed_task,
        outcomes=outcomes,
        started_at=started,
        finished_at=time.time(),
        executed=True,
        already_pending=before,
    )


_IDLE_SLICE = 1.0  # seconds a LISTEN wait blocks before looking at the stop event


def _idle(
    coordinator: object, agent_ids: Sequence[str], stop: threading.Event, poll_interval: float
) -> None:
    """Wait for work: on a coordinator that can be woken (``wait_for_tasks``, e.g.
    PostgreSQL's LISTEN/NOTIFY) until a task may be claimable; otherwise poll."""
    wait_for_tasks = getattr(coordinator, "wait_for_tasks", None)
    if wait_for_tasks is None:
        stop.wait(poll_interval)
        return
    # Slices only so that a stop request is seen within a second; a NOTIFY (or an
    # expiring lease) ends the wait at once.
    while not stop.is_set() and not wait_for_tasks(agent_ids, timeout=_IDLE_SLICE):
        pass


def work(
    client: Client,
    name: str,
    handler: Handler | str,
    *,
    once: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float | None = None,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    stop: threading.Event | None = None,
    max_tasks: int | None = None,
    on_outcome: Callable[[MemberOutcome], None] | None = None,
    executor: Executor | None = None,
    lease: float = DEFAULT_LEASE,
) -> WorkStats:
    """Execute the fleet members' queued tasks as they arrive, until stopped.

    Claims up to ``concurrency`` tasks at a time with a ``lease`` (renewed while
    their handlers run), runs them on ``executor`` and records each outcome once.
    Tasks whose lease expired (their worker died) are claimed like queued ones.
    A raising handler is a failed task; the worker goes on. With ``once`` it stops
    when nothing is left to claim, and never runs one task twice; otherwise when
    ``stop`` is set (the CLI sets it on SIGINT/SIGTERM) or after ``max_tasks``.
    Tasks claimed but not finished when it stops go back to the queue. The roster
    is re-read each round, so members added while it runs are served.
    ``on_outcome`` is called (on a helper thread) after each outcome is recorded.

    Raises:
        FleetNotFoundError: the fleet does not exist when the worker starts.
        HandlerError: ``handler`` cannot be loaded.
        InvalidArgumentError: bad concurrency, timeout, poll interval or lease.
        StoreError / CoordinatorError: state cannot be read or written.
        KeyboardInterrupt: Ctrl-C; unfinished tasks were given back first.
    """
    from dalfleet.client import _lookup_name, fleet_not_found
    from dalfleet.rules import check_poll_interval

    call = load_handler(handler)
    check_options(concurrency, timeout)
    seconds = check_lease(lease)
    poll_interval = check_poll_interval(poll_interval)
    fleet = client._fleet(_lookup_name(name))
    if fleet is None:
        raise fleet_not_found(name, client.store.load())
    stop_event = stop if stop is not None else threading.Event()
    chosen = _executor_of(client, executor)
    me = worker_identity()
    outcomes: builtins.list[MemberOutcome] = []
    seen: set[str] = set()
    released = recovered = 0
    while not stop_event.is_set():
        limit = concurrency
        if max_tasks is not None:
            limit = min(limit, max_tasks - len(outcomes))
            if limit <= 0:
                break
        fleet = client._fleet(name) or fleet
        claimed = client.coordinator.claim(fleet.member_ids, me, limit, lease=seconds)
        if once:
            # A batch never runs a task twice: one whose outcome did not stick is
            # left for another worker rather than looped on.
            again = [c.task.task_id for c in claimed if c.task.task_id in seen]
            if again:
                client.coordinator.release(again, me)
                claimed = [c for c in claimed if c.task.task_id not in seen]
        if not claimed:
            if once:
                break
            _idle(client.coordinator, fleet.member_ids, stop_event, poll_interval)
            continue
        seen.update(c.task.task_id for c in claimed)
        # A task claimed a second time was held by a worker whose lease expired.
        taken_over = sum(1 for c in claimed if c.attempt > 1)
        if taken_over:
            log.info(
                "fleet %s: took over %d task(s) whose lease expired; retrying them",
                name,
                taken_over,
            )
        recovered += taken_over
        finished, gave_back = _execute(
            client,
            chosen,
            claimed,
            call,
            worker=me,
            lease=seconds,
            concurrency=concurrency,
            timeout=timeout,
            on_recorded=on_outcome,
            stop=stop_event,
        )
        outcomes.extend(finished)
        released += gave_back
    succeeded = sum(1 for o in outcomes if o.ok)
    return WorkStats(
        fleet_name=name,
        executed=len(outcomes),
        succeeded=succeeded,
        failed=len(outcomes) - succeeded,
        released=released,
        recovered=recovered,
        outcomes=tuple(outcomes),
    )
