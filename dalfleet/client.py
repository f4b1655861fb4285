"""The client: one store plus one coordinator, and every fleet operation, once.

The module functions in :mod:`dalfleet.fleet` delegate here, as ``httpx.get``
delegates to ``httpx.Client``. The store knows fleets, the coordinator knows
agents; this is the only place where the two meet.

Every mutating operation checks its arguments first, then checks its
preconditions on a lock-free snapshot (so bad input never touches the disk),
then does the change inside one store transaction, re-checking there. Agents
spawned by a change that then fails are terminated again.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from dalfleet import rollout
from dalfleet.coordinator import (
    ClaimedTask,
    Coordinator,
    LocalCoordinator,
    MemoryCoordinator,
    is_orphaned,
    new_task_id,
    worker_identity,
)
from dalfleet.defaults import (
    DEFAULT_CONCURRENCY,
    DEFAULT_IMAGE,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TRUST_LEVEL,
    DEFAULT_WORKLOAD,
    MAX_COUNT,
)
from dalfleet.errors import (
    FleetNotFoundError,
    InvalidArgumentError,
    fleet_exists,
    fleet_not_found,
    quote,
)
from dalfleet.execute import Handler, execute, load_handler
from dalfleet.models import (
    AgentState,
    ExportFormat,
    Fleet,
    FleetHealth,
    HealthStatus,
    MemberHealth,
    MemberOutcome,
    Revision,
    RunReport,
    Task,
)
from dalfleet.mold import Mold, load_mold, render
from dalfleet.rules import (
    check_agent_id,
    check_concurrency,
    check_count,
    check_existing_name,
    check_mold_source,
    check_name,
    check_poll_interval,
    check_size,
    check_task,
    check_timeout,
    parse_params,
)
from dalfleet.store import JsonFileStore, MemoryStore, Store

if TYPE_CHECKING:
    from dalfleet.rollout import Change, FleetSpec

__all__ = ["Client", "MoldSource", "Params", "Progress", "WorkStats", "fleet_not_found"]

#: Create-time params: a mapping, or ``"KEY=VALUE"`` strings.
Params = Mapping[str, object] | Iterable[str] | None
#: Called as ``progress(done, total)`` while agents are spawned or tasks run.
Progress = Callable[[int, int], None]
#: A mold file path or mold name.
MoldSource = str | os.PathLike[str]
_SPAWN_CHUNK = 100


def _outcome_tuple(outcomes: Iterable[MemberOutcome]) -> tuple[MemberOutcome, ...]:
    return tuple(outcomes)


@attrs.frozen
class WorkStats:
    """What a worker did before it stopped."""

    fleet_name: str
    executed: int
    succeeded: int
    failed: int
    released: int
    recovered: int = 0
    outcomes: tuple[MemberOutcome, ...] = attrs.field(default=(), converter=_outcome_tuple)


_not_found = fleet_not_found
_exists = fleet_exists
_lookup_name = check_existing_name


class Client:
    """An explicit fleet context: a store, a coordinator and a base for molds.

    Args:
        store: where fleets persist.
        coordinator: where agents live.
        base: directory molds are resolved against; ``None`` means the current
            working directory at call time.
        max_count: the cap on fleet size and on agents spawned per call.
    """

    def __init__(
        self,
        store: Store,
        coordinator: Coordinator,
        *,
        base: str | os.PathLike[str] | None = None,
        max_count: int = MAX_COUNT,
    ) -> None:
        self.store = store
        self.coordinator = coordinator
        self._base = Path(base) if base is not None else None
        self.max_count = max_count

    @classmethod
    def for_base(
        cls, base: str | os.PathLike[str] | None = None, *, trust_level: str = DEFAULT_TRUST_LEVEL
    ) -> Client:
        """The default pair for a project directory: the JSON fleet file and the local
        SQLite coordinator under ``<base>/.dal/`` (``base=None``: the current directory).

        Nothing is opened yet: the store and coordinator touch the disk on first use.

        Raises:
            FileNotFoundError: ``base`` is None and the current directory no longer exists.
        """
        root = Path(base) if base is not None else Path.cwd()
        return cls(JsonFileStore(root), LocalCoordinator(root, trust_level=trust_level), base=root)

    @classmethod
    def in_memory(
        cls, base: str | os.PathLike[str] | None = None, *, trust_level: str = DEFAULT_TRUST_LEVEL
    ) -> Client:
        """A client that keeps fleets and agents in memory (tests, notebooks). Never raises."""
        return cls(MemoryStore(), MemoryCoordinator(trust_level=trust_level), base=base)

    @property
    def base(self) -> Path:
        """The directory molds are resolved against."""
        return self._base if self._base is not None else Path.cwd()

    def close(self) -> None:
        """Release the coordinator's and the store's resources. The client can still
        be used after (they reopen on next use).

        Raises:
            Exception: whatever the coordinator's or store's ``close`` raises; the
                built-in ones raise nothing.
        """
        try:
            self.coordinator.close()
        finally:
            self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Client(store={self.store.location!r}, coordinator={type(self.coordinator).__name__})"
        )

    # -- helpers -----------------------------------------------------------------

    def _require(self, name: str) -> Fleet:
        fleet = self.store.load().get(name)
        if fleet is None:
            raise _not_found(name)
        return fleet

    def load_mold(self, source: MoldSource) -> Mold:
        """The mold ``source`` names, resolved against :attr:`base`.

        Raises:
            MoldSourceError: the source is blank.
            MoldNotFoundError / MoldError: it does not resolve, or cannot be read or parsed.
        """
        return load_mold(check_mold_source(source), self.base)

    def _spawn(
        self,
        fleet_name: str,
        mold: Mold,
        start: int,
        count: int,
        params: Mapping[str, str] | None,
        progress: Progress | None,
    ) -> list[str]:
        trust = self.coordinator.trust_level
        spawned: list[str] = []
        try:
            for chunk in range(start, start + count, _SPAWN_CHUNK):
                stop = min(chunk + _SPAWN_CHUNK, start + count)
                specs = [
                    render(mold, f"{fleet_name}_{i}", params, trust) for i in range(chunk, stop)
                ]
                spawned.extend(self.coordinator.spawn(specs))
                if progress is not None:
                    progress(len(spawned), count)
        except BaseException:
            self._terminate_quietly(spawned)
            raise
        return spawned

    def _terminate_quietly(self, agent_ids: Sequence[str]) -> None:
        if agent_ids:
            # The original error is the one to report; a failing cleanup must not hide it.
            with contextlib.suppress(Exception):
                self.coordinator.terminate(agent_ids)

    # -- the twelve operations -----------------------------------------------------

    def create(self, name: str) -> Fleet:
        """Create an empty fleet.

        Raises:
            InvalidArgumentError: the name is not valid.
            FleetExistsError: ``fleet 'NAME' already exists``.
            StoreError: the store cannot be read or written.
        """
        check_name(name)
        if name in self.store.load():
            raise _exists(name)
        with self.store.transaction() as fleets:
            if name in fleets:
                raise _exists(name)
            fleet = Fleet(name=name)
            fleets[name] = fleet
        return fleet

    def create_from_mold(
        self,
        name: str,
        mold_source: MoldSource,
        count: int = 1,
        params: Params = None,
        *,
        progress: Progress | None = None,
    ) -> Fleet:
        """Create a fleet of ``count`` agents spawned from a mold, named ``NAME_0 …``.

        Raises:
            InvalidArgumentError: bad name, count (< 1 or above the cap) or params.
            FleetExistsError: the fleet exists.
            MoldError / MoldNotFoundError: the mold cannot be found or parsed.
            CoordinatorError: spawning failed (nothing is left behind).
            StoreError: the store cannot be read or written.
        """
        check_name(name)
        check_count(count, self.max_count)
        parsed = parse_params(params)
        source = check_mold_source(mold_source)
        if name in self.store.load():
            raise _exists(name)
        mold = self.load_mold(source)
        spawned: list[str] = []
        try:
            with self.store.transaction() as fleets:
                if name in fleets:
                    raise _exists(name)
                spawned = self._spawn(name, mold, 0, count, parsed, progress)
                fleet = Fleet(
                    name=name,
                    member_ids=spawned,
                    mold_source=source,
                    last_create_params=parsed,
                )
                fleets[name] = fleet
        except BaseException:
            self._terminate_quietly(spawned)
            raise
        return fleet

    def add_from_mold(
        self,
        name: str,
        mold_source: MoldSource,
        count: int,
        params: Params = None,
        *,
        progress: Progress | None = None,
    ) -> Fleet:
        """Append ``count`` agents spawned from a mold; numbering continues from the size.

        ``mold_source`` and ``last_create_params`` are set only if they were unset.

        Raises:
            InvalidArgumentError: bad count or params.
            FleetNotFoundError: the fleet does not exist.
            MoldError / MoldNotFoundError: the mold cannot be found or parsed.
            CoordinatorError: spawning failed (nothing is left behind).
            StoreError: the store cannot be read or written.
        """
        _lookup_name(name)
        check_count(count, self.max_count)
        parsed = parse_params(params)
        source = check_mold_source(mold_source)
        self._require(name)
        mold = self.load_mold(source)
        spawned: list[str] = []
        try:
            with self.store.transaction() as fleets:
                current = fleets.get(name)
                if current is None:
                    raise _not_found(name)
                start = len(current.member_ids)
                spawned = self._spawn(name, mold, start, count, parsed, progress)
                fleet = attrs.evolve(
                    current,
                    member_ids=[*current.member_ids, *spawned],
                    mold_source=current.mold_source if current.mold_source is not None else source,
                    last_create_params=(
                        current.last_create_params
                        if current.last_create_params is not None
                        else parsed
                    ),
                )
                fleets[name] = fleet
        except BaseException:
            self._terminate_quietly(spawned)
            raise
        return fleet

    def add_member(self, name: str, agent_id: str) -> Fleet:
        """Register an existing agent ID; adding one already present changes nothing.

        Raises:
            InvalidArgumentError: the ID is blank or not printable.
            FleetNotFoundError: the fleet does not exist.
            StoreError: the store cannot be read or written.
        """
        _lookup_name(name)
        agent = check_agent_id(agent_id)
        snapshot = self._require(name)
        if agent in snapshot.member_ids:
            return snapshot
        with self.store.transaction() as fleets:
            current = fleets.get(name)
            if current is None:
                raise _not_found(name)
            if agent in current.member_ids:
                return current
            fleet = attrs.evolve(current, member_ids=[*current.member_ids, agent])
            fleets[name] = fleet
        return fleet

    def deploy(self, name: str, task: str) -> Fleet:
        """Record ``task.strip()`` as the fleet's task, with the time; executes nothing.

        Also appends a numbered revision to the fleet's history (last 50 kept).

        Raises:
            InvalidArgumentError: ``deploy task cannot be empty``, or the task is too long.
            FleetNotFoundError: the fleet does not exist.
            StoreError: the store cannot be read or written.
        """
        _lookup_name(name)
        text = check_task(task)
        self._require(name)
        with self.store.transaction() as fleets:
            current = fleets.get(name)
            if current is None:
                raise _not_found(name)
            fleet = rollout.with_deployment(current, text)
            fleets[name] = fleet
        return fleet

    def list(self) -> builtins.list[str]:
        """Fleet names, sorted.

        Raises:
            StoreError: the store cannot be read.
        """
        return sorted(self.store.load())

    def fleets(self) -> dict[str, Fleet]:
        """Every fleet by name, in one read.

        Raises:
            StoreError: the store cannot be read.
        """
        return self.store.load()

    def get(self, name: str) -> Fleet:
        """The fleet of that name.

        Raises:
            FleetNotFoundError: ``fleet 'NAME' not found``.
            StoreError: the store cannot be read.
        """
        return self._require(_lookup_name(name))

    def show(self, name: str) -> Fleet | None:
        """The fleet, or ``None`` when there is none of that name.

        Raises:
            StoreError: the store cannot be read.
        """
        return self.store.load().get(_lookup_name(name))

    def delete(self, name: str, *, teardown: bool = False) -> bool:
        """Remove a fleet; True if removed, False if absent.

        Metadata only, unless ``teardown=True``: then its members are terminated.

        Raises:
            StoreError: the store cannot be read or written.
        """
        _lookup_name(name)
        if name not in self.store.load():
            return False
        with self.store.transaction() as fleets:
            removed = fleets.pop(name, None)
        if removed is None:
            return False
        if teardown:
            self.coordinator.terminate(removed.member_ids)
        return True

    def scale(self, name: str, n: int, *, progress: Progress | None = None) -> Fleet:
        """Set the fleet's size to ``n``.

        Down: keeps the first ``n`` members and terminates the removed ones. Up:
        spawns the missing ones from ``mold_source`` with ``last_create_params``.

        Raises:
            InvalidArgumentError: ``n`` negative or above the cap, or scaling up a
                fleet with no mold (``fleet 'NAME' has no mold; cannot scale up …``).
            FleetNotFoundError: the fleet does not exist.
            MoldError / MoldNotFoundError: the mold cannot be found or parsed.
            CoordinatorError: spawning failed (nothing is left behind).
            StoreError: the store cannot be read or written.
        """
        _lookup_name(name)
        size = check_size(n, self.max_count)
        current = self._require(name)
        if size == len(current.member_ids):
            return current
        mold: Mold | None = None
        if size > len(current.member_ids):
            mold = self.mold_for_scale_up(current)
        removed: builtins.list[str] = []
        spawned: builtins.list[str] = []
        try:
            with self.store.transaction() as fleets:
                current = fleets.get(name) or _raise(_not_found(name))
                have = len(current.member_ids)
                if size == have:
                    return current
                if size < have:
                    removed = builtins.list(current.member_ids[size:])
                    fleet = attrs.evolve(current, member_ids=current.member_ids[:size])
                else:
                    if mold is None or current.mold_source is None:
                        mold = self.mold_for_scale_up(current)
                    spawned = self._spawn(
                        name, mold, have, size - have, current.last_create_params, progress
                    )
                    fleet = attrs.evolve(current, member_ids=[*current.member_ids, *spawned])
                fleets[name] = fleet
        except BaseException:
            self._terminate_quietly(spawned)
            raise
        if removed:
            self.coordinator.terminate(removed)
        return fleet

    def mold_for_scale_up(self, fleet: Fleet) -> Mold:
        """The mold new members of ``fleet`` come from.

        Raises:
            InvalidArgumentError: the fleet has no mold (``… cannot scale up``).
            MoldNotFoundError / MoldError: the mold does not resolve, or cannot be read.
        """
        if fleet.mold_source is None:
            raise InvalidArgumentError(
                f"fleet {quote(fleet.name)} has no mold; cannot scale up (create from mold first)"
            )
        return self.load_mold(fleet.mold_source)

    def run(
        self,
        name: str | None = None,
        *,
        handler: Handler | str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float | None = None,
        progress: Progress | None = None,
    ) -> builtins.list[RunReport]:
        """Dispatch each fleet's deployed task to every member (all fleets, or the one named).

        Fleets with no deployed task are skipped. A fleet with no members but a
        mold first gets one member from it. Without a handler the task is
        enqueued in each member's inbox (the reference's behaviour); with one,
        it runs now, at most ``concurrency`` at once, each bounded by ``timeout``
        seconds, and each member's outcome is in the report.

        Raises:
            FleetNotFoundError: the named fleet does not exist.
            InvalidArgumentError: a fleet to run has no members and no mold, or a bad
                concurrency / timeout.
            HandlerError: ``handler`` cannot be loaded.
            MoldError / MoldNotFoundError / CoordinatorError / StoreError: as for add_from_mold.
        """
        call = load_handler(handler) if handler is not None else None
        if call is not None:
            check_concurrency(concurrency)
            check_timeout(timeout)
        fleets = self.store.load()
        if name is not None:
            _lookup_name(name)
            if name not in fleets:
                raise _not_found(name)
            targets = [fleets[name]]
        else:
            targets = [fleets[n] for n in sorted(fleets)]
        targets = [f for f in targets if f.last_deployed_task]
        for fleet in targets:
            if not fleet.member_ids and fleet.mold_source is None:
                raise InvalidArgumentError(
                    f"fleet {quote(fleet.name)} has no members and no mold_source; "
                    "add members (add-member, add-from-mold) or create it from a mold first"
                )
        reports = []
        for fleet in targets:
            if not fleet.member_ids:
                assert fleet.mold_source is not None
                fleet = self.add_from_mold(
                    fleet.name, fleet.mold_source, 1, fleet.last_create_params
                )
            reports.append(self._run_fleet(fleet, call, concurrency, timeout, progress))
        return reports

    def _run_fleet(
        self,
        fleet: Fleet,
        handler: Handler | None,
        concurrency: int,
        timeout: float | None,
        progress: Progress | None,
    ) -> RunReport:
        assert fleet.last_deployed_task is not None
        started = time.time()
        task = Task(task_id=new_task_id(), description=fleet.last_deployed_task, fleet=fleet.name)
        worker = worker_identity() if handler is not None else None
        dispatched = self.coordinator.dispatch(fleet.member_ids, task, claimed_by=worker)
        errors: builtins.list[str] = []
        outcomes: builtins.list[MemberOutcome] = []
        claimed: builtins.list[ClaimedTask] = []
        agents = self.coordinator.agents(fleet.member_ids) if handler is not None else {}
        for agent_id in fleet.member_ids:
            got = dispatched.get(agent_id, f"agent {quote(agent_id)} was not dispatched")
            if isinstance(got, str):
                errors.append(f"{agent_id}: {got}")
                outcomes.append(
                    MemberOutcome(agent_id=agent_id, ok=False, status="error", error=got)
                )
            elif handler is None:
                outcomes.append(
                    MemberOutcome(agent_id=agent_id, ok=True, status="queued", task_id=got.task_id)
                )
            else:
                claimed.append(ClaimedTask(agent=agents[agent_id], task=got))
        if handler is None:
            if progress is not None:
                progress(len(fleet.member_ids), len(fleet.member_ids))
            return RunReport(
                fleet_name=fleet.name,
                members_dispatched=len(fleet.member_ids) - len(errors),
                errors=errors,
                task=fleet.last_deployed_task,
                outcomes=outcomes,
                started_at=started,
                finished_at=time.time(),
                executed=False,
            )
        done = [0]

        def record(outcome: MemberOutcome) -> None:
            assert outcome.task_id is not None
            self.coordinator.finish(
                outcome.task_id, ok=outcome.ok, result=outcome.result, error=outcome.error
            )
            done[0] += 1
            if progress is not None:
                progress(done[0], len(claimed))

        finished, unfinished = self._execute(
            claimed, handler, concurrency=concurrency, timeout=timeout, on_outcome=record
        )
        if unfinished:
            self.coordinator.release(unfinished)
        by_id = {o.agent_id: o for o in finished}
        for item in claimed:
            outcome = by_id[item.agent.agent_id]
            outcomes.append(outcome)
            if not outcome.ok:
                errors.append(f"{outcome.agent_id}: {outcome.error}")
        order = {agent_id: i for i, agent_id in enumerate(fleet.member_ids)}
        outcomes.sort(key=lambda o: order.get(o.agent_id, len(order)))
        return RunReport(
            fleet_name=fleet.name,
            members_dispatched=sum(1 for o in outcomes if o.ok),
            errors=errors,
            task=fleet.last_deployed_task,
            outcomes=outcomes,
            started_at=started,
            finished_at=time.time(),
            executed=True,
        )

    def _execute(
        self,
        claimed: Sequence[ClaimedTask],
        handler: Handler,
        *,
        concurrency: int,
        timeout: float | None,
        on_outcome: Callable[[MemberOutcome], None],
        stop: threading.Event | None = None,
    ) -> tuple[builtins.list[MemberOutcome], builtins.list[str]]:
        # A coordinator that can run handlers where its agents live (Ray) does;
        # otherwise they run here.
        remote = getattr(self.coordinator, "execute", None)
        runner = remote if callable(remote) else execute
        result: tuple[builtins.list[MemberOutcome], builtins.list[str]] = runner(
            claimed,
            handler,
            concurrency=concurrency,
            timeout=timeout,
            on_outcome=on_outcome,
            stop=stop,
        )
        return result

    def health(self, name: str) -> FleetHealth:
        """Health of a fleet: the reference's summary plus live member states.

        Status is ``empty`` with no members and no mold, ``degraded`` when some
        member is terminated, else ``ok``. Members the coordinator does not know
        (registered with add_member from elsewhere) are reported ``unknown``.

        Raises:
            FleetNotFoundError: the fleet does not exist.
            StoreError / CoordinatorError: state cannot be read.
        """
        fleet = self._require(_lookup_name(name))
        statuses = self.coordinator.status(builtins.list(fleet.member_ids))
        members = [
            MemberHealth(
                agent_id=s.agent_id,
                state=s.state,
                pending_tasks=s.pending_tasks + s.running_tasks,
                failed_tasks=s.failed_tasks,
                completed_tasks=s.completed_tasks,
                last_result_at=s.last_result_at,
            )
            for s in (statuses[agent_id] for agent_id in fleet.member_ids)
        ]
        if not fleet.member_ids and fleet.mold_source is None:
            status = HealthStatus.EMPTY
        elif any(m.state is AgentState.TERMINATED for m in members):
            status = HealthStatus.DEGRADED
        else:
            status = HealthStatus.OK
        return FleetHealth(
            name=fleet.name,
            member_count=len(fleet.member_ids),
            has_mold=fleet.mold_source is not None,
            last_deployed_task=fleet.last_deployed_task,
            last_deployed_at=fleet.last_deployed_at,
            status=status,
            members=members,
        )

    def export(
        self,
        name: str | None = None,
        format: ExportFormat | str = "k8s",
        *,
        image: str = DEFAULT_IMAGE,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        workload: str = DEFAULT_WORKLOAD,
    ) -> str:
        """YAML manifests for one fleet or all (see :mod:`dalfleet.export`).

        Raises:
            InvalidArgumentError: unknown format, bad image, namespace, labels or workload.
            FleetNotFoundError: ``fleet 'NAME' not found``; ``no fleets to export``.
            StoreError: the store cannot be read.
        """
        from dalfleet.export import export_yaml, parse_format

        fmt = parse_format(format)
        fleets = self.store.load()
        if name is not None:
            _lookup_name(name)
            if name not in fleets:
                raise _not_found(name)
            targets = [fleets[name]]
        else:
            targets = [fleets[n] for n in sorted(fleets)]
        if not targets:
            raise FleetNotFoundError("no fleets to export")
        memory: dict[str, str | None] = {}
        for fleet in targets:
            memory[fleet.name] = self._memory_limit(fleet)
        return export_yaml(
            targets,
            fmt,
            memory_limits=memory,
            image=image,
            namespace=namespace,
            labels=labels,
            workload=workload,
        )

    def _memory_limit(self, fleet: Fleet) -> str | None:
        from dalfleet.errors import MoldError

        if fleet.mold_source is None:
            return None
        try:
            return self.load_mold(fleet.mold_source).memory_limit
        except MoldError:
            # The mold may have moved since the fleet was created; export without a limit.
            return None

    # -- beyond the reference: history, rollback, apply, shift (see dalfleet.rollout) --------

    def history(self, name: str) -> tuple[Revision, ...]:
        """The fleet's deployment revisions, oldest first (see :func:`dalfleet.rollout.history`).

        Raises:
            FleetNotFoundError: the fleet does not exist.
            StoreError: the store cannot be read.
        """
        return rollout.history(self, name)

    def rollback(self, name: str, *, to_revision: int | None = None) -> Fleet:
        """Redeploy the previous revision's task, or revision ``to_revision``'s
        (see :func:`dalfleet.rollout.rollback`).

        Raises:
            FleetNotFoundError: the fleet does not exist.
            InvalidArgumentError: a bad revision number; no previous revision, or no such one.
            StoreError: the store cannot be read or written.
        """
        return rollout.rollback(self, name, to_revision=to_revision)

    def apply(
        self,
        manifest: str | Mapping[str, Any] | Sequence[FleetSpec],
        *,
        dry_run: bool = False,
        prune: bool = False,
        progress: Progress | None = None,
    ) -> builtins.list[Change]:
        """Make the fleets match a manifest (see :func:`dalfleet.rollout.apply`).

        Raises:
            InvalidArgumentError: the manifest is not valid or cannot be applied.
            MoldError / MoldNotFoundError: a mold does not resolve or parse.
            CoordinatorError / StoreError: as for create_from_mold and scale.
        """
        return rollout.apply(self, manifest, dry_run=dry_run, prune=prune, progress=progress)

    def shift(
        self,
        source: str,
        target: str,
        count: int | None = None,
        *,
        task: str | None = None,
        progress: Progress | None = None,
    ) -> tuple[Fleet, Fleet]:
        """Blue/green: move ``count`` (default all) of ``source``'s size to ``target``
        (see :func:`dalfleet.rollout.shift`); returns ``(source, target)``.

        Raises:
            FleetNotFoundError: either fleet does not exist.
            InvalidArgumentError: same fleet, bad count, target without a mold, bad task.
            MoldError / CoordinatorError / StoreError: as for scale.
        """
        return rollout.shift(self, source, target, count, task=task, progress=progress)

    # -- beyond the reference: the worker -----------------------------------------------

    def recover_orphans(self, name: str) -> int:
        """Put back in the queue the fleet's tasks claimed by worker processes of this
        host that no longer exist (killed mid-task); returns how many.

        Raises:
            FleetNotFoundError: the fleet does not exist.
            StoreError / CoordinatorError: state cannot be read or written.
        """
        fleet = self._require(_lookup_name(name))
        running = self.coordinator.running(fleet.member_ids)
        orphans = [task_id for task_id, owner in running.items() if is_orphaned(owner)]
        if orphans:
            self.coordinator.release(orphans)
        return len(orphans)

    def work(
        self,
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
    ) -> WorkStats:
        """Execute the fleet members' queued tasks as they arrive, until stopped.

        Claims up to ``concurrency`` tasks at a time, runs them with ``handler``,
        records each result in the coordinator. A raising handler is recorded as a
        failed task; the worker goes on. With ``once`` it stops when the queue is
        empty; otherwise when ``stop`` is set (the CLI sets it on SIGINT/SIGTERM)
        or after ``max_tasks``. Tasks claimed but not finished when it stops go
        back to the queue, and at start tasks left running by a killed worker
        process of this host are put back too (:meth:`recover_orphans`). The
        roster is re-read each round, so members added while it runs are served.

        Raises:
            FleetNotFoundError: the fleet does not exist when the worker starts.
            HandlerError: ``handler`` cannot be loaded.
            InvalidArgumentError: bad concurrency, timeout or poll interval.
            StoreError / CoordinatorError: state cannot be read or written.
        """
        call = load_handler(handler)
        check_concurrency(concurrency)
        check_poll_interval(poll_interval)
        fleet = self._require(_lookup_name(name))
        stop_event = stop if stop is not None else threading.Event()
        me = worker_identity()
        outcomes: builtins.list[MemberOutcome] = []
        released = 0
        recovered = self.recover_orphans(name)

        def record(outcome: MemberOutcome) -> None:
            assert outcome.task_id is not None
            self.coordinator.finish(
                outcome.task_id, ok=outcome.ok, result=outcome.result, error=outcome.error
            )
            if on_outcome is not None:
                on_outcome(outcome)

        while not stop_event.is_set():
            limit = concurrency
            if max_tasks is not None:
                limit = min(limit, max_tasks - len(outcomes))
                if limit <= 0:
                    break
            fleet = self.store.load().get(name, fleet)
            claimed = self.coordinator.claim(fleet.member_ids, me, limit)
            if not claimed:
                if once:
                    break
                stop_event.wait(poll_interval)
                continue
            finished, unfinished = self._execute(
                claimed,
                call,
                concurrency=concurrency,
                timeout=timeout,
                on_outcome=record,
                stop=stop_event,
            )
            outcomes.extend(finished)
            if unfinished:
                self.coordinator.release(unfinished)
                released += len(unfinished)
        succeeded = sum(1 for o in outcomes if o.ok)
        return WorkStats(
            fleet_name=name,
            executed=len(outcomes),
            succeeded=succeeded,
            failed=len(outcomes) - succeeded,
            released=released,
            recovered=recovered,
            outcomes=outcomes,
        )


def _raise(exc: BaseException) -> Any:
    raise exc
