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
from typing import Any

import attrs

from dalfleet.coordinator import Coordinator, MemoryCoordinator
from dalfleet.coordinator.base import DEFAULT_LEASE
from dalfleet.coordinator.reference import coordinator_for_base
from dalfleet.errors import FleetExistsError, FleetNotFoundError, InvalidArgumentError
from dalfleet.executor.base import DEFAULT_CONCURRENCY, Executor, Handler
from dalfleet.manifest import Change, FleetSpec, parse_manifest, plan
from dalfleet.models import (
    AgentState,
    ExportFormat,
    Fleet,
    FleetHealth,
    MemberHealth,
    MemberOutcome,
    Revision,
    RunReport,
)
from dalfleet.mold import (
    Mold,
    agent_type_of,
    load_mold,
    memory_limit_bytes,
    parse_params,
    principal_trust_level,
    render,
)
from dalfleet.run import WorkStats
from dalfleet.store import JsonFileStore, MemoryStore, Store
from dalfleet.validate import (
    DEFAULT_MAX_COUNT,
    show_value,
    validate_agent_id,
    validate_count,
    validate_name,
    validate_size,
    validate_task,
    validate_text,
)

__all__ = ["HISTORY_LIMIT", "Client", "Progress", "WorkStats", "fleet_not_found"]

Params = Mapping[str, object] | Iterable[str] | None
Progress = Callable[[int, int], None]
HISTORY_LIMIT = 50
_SPAWN_CHUNK = 100


def fleet_not_found(name: str) -> FleetNotFoundError:
    """The one ``fleet 'NAME' not found`` error (returned, not raised). Never raises."""
    return FleetNotFoundError(f"fleet {show_value(name)} not found")


_not_found = fleet_not_found


def _exists(name: str) -> FleetExistsError:
    return FleetExistsError(f"fleet {show_value(name)} already exists")


def _check_source(mold_source: object) -> str:
    if isinstance(mold_source, os.PathLike):
        mold_source = os.fspath(mold_source)
    if not isinstance(mold_source, str) or not mold_source.strip():
        raise InvalidArgumentError("mold source cannot be empty")
    return validate_text(mold_source, "mold source")


def _lookup_name(name: object) -> str:
    # Existing fleets may have names the reference allowed and we would not create.
    if not isinstance(name, str):
        raise InvalidArgumentError(f"fleet name must be a string, not {type(name).__name__}")
    return validate_text(name, "fleet name")


class Client:
    """An explicit fleet context: a store, a coordinator and a base for molds.

    Args:
        store: where fleets persist.
        coordinator: where agents live.
        base: directory molds are resolved against; ``None`` means the current
            working directory at call time.
        max_count: the cap on fleet size and on agents spawned per call.
        executor: where handlers run (:class:`~dalfleet.executor.local.LocalExecutor`,
            made on first use, by default).
    """

    def __init__(
        self,
        store: Store,
        coordinator: Coordinator,
        *,
        base: str | os.PathLike[str] | None = None,
        max_count: int = DEFAULT_MAX_COUNT,
        executor: Executor | None = None,
    ) -> None:
        self.store = store
        self.coordinator = coordinator
        self._base = Path(base) if base is not None else None
        self.max_count = max_count
        self._executor = executor

    @property
    def executor(self) -> Executor:
        """Where this client's handlers run (the local executor unless one was given)."""
        if self._executor is None:
            from dalfleet.executor.local import LocalExecutor

            self._executor = LocalExecutor()
        return self._executor

    @classmethod
    def for_base(
        cls,
        base: str | os.PathLike[str] | None = None,
        *,
        trust_level: str | None = None,
        executor: Executor | None = None,
        runtime: str | None = None,
    ) -> Client:
        """The default pair for a project directory: the JSON fleet file and the local
        SQLite coordinator under ``<base>/.dal/`` (``base=None``: the current directory).

        Agents are spawned with ``trust_level``; by default the principal's, read as
        the reference reads it (:func:`dalfleet.mold.principal_trust_level`:
        ``DAL_AGENT_SHELL_TRUST``, else ``agent.toml`` / ``dal.toml``, else ``sandboxed``).

        When the reference's ``.dal/agent_runtime.json`` exists (or ``runtime="reference"``,
        or ``$DALFLEET_RUNTIME`` is ``reference``), the coordinator is a
        :class:`~dalfleet.coordinator.reference.ReferenceCoordinator`, so agents and
        queued tasks are shared with ``dal agent`` commands on the same directory;
        ``runtime="local"`` never shares them
        (:func:`~dalfleet.coordinator.reference.coordinator_for_base`).

        Nothing is opened yet: the store and coordinator touch the disk on first use.

        Raises:
            FileNotFoundError: ``base`` is None and the current directory no longer exists.
            InvalidArgumentError: ``runtime`` (or ``$DALFLEET_RUNTIME``) is not ``auto``,
                ``local`` or ``reference``.
        """
        root = Path(base) if base is not None else Path.cwd()
        trust = principal_trust_level(root) if trust_level is None else trust_level
        # Where the reference keeps its agents, share them (SPEC §5, reference runtime).
        coordinator = coordinator_for_base(root, trust, runtime)
        return cls(JsonFileStore(root), coordinator, base=root, executor=executor)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        base: str | os.PathLike[str] | None = None,
        trust_level: str = "sandboxed",
        max_count: int = DEFAULT_MAX_COUNT,
        executor: Executor | None = None,
    ) -> Client:
        """A client whose fleets, agents and tasks live at ``url`` (``postgresql://…``).

        Nothing is written under ``.dal/``; molds still resolve against ``base``
        (``None``: the current directory at call time). Nothing connects yet.
        ``executor`` is where handlers run (default: the local executor).

        Raises:
            InvalidArgumentError: the URL is empty or its scheme is not supported.
            StoreError: the URL needs an extra that is not installed (psycopg).
        """
        from dalfleet.backends import open_url

        store, coordinator = open_url(url, trust_level=trust_level)
        return cls(store, coordinator, base=base, max_count=max_count, executor=executor)

    @classmethod
    def in_memory(
        cls,
        base: str | os.PathLike[str] | None = None,
        *,
        trust_level: str = "sandboxed",
        executor: Executor | None = None,
    ) -> Client:
        """A client that keeps fleets and agents in memory (tests, notebooks). Never raises."""
        return cls(
            MemoryStore(),
            MemoryCoordinator(trust_level=trust_level),
            base=base,
            executor=executor,
        )

    @property
    def base(self) -> Path:
        """The directory molds are resolved against."""
        return self._base if self._base is not None else Path.cwd()

    def close(self) -> None:
        """Release the coordinator's (and executor's) resources. The client can still
        be used after.

        Raises:
            Exception: whatever the coordinator's ``close`` raises; the built-in
                coordinators raise nothing.
        """
        try:
            self.coordinator.close()
        finally:
            if self._executor is not None:
                self._executor.close()

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

    def _load_mold(self, source: str, *, confine: bool = False) -> Mold:
        # A source from a manifest or a stored fleet is confined to the project (SPEC §4).
        mold = load_mold(source, self.base, confine=confine)
        agent_type_of(mold)
        return mold

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
        validate_name(name)
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
        mold_source: str | os.PathLike[str],
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
        validate_name(name)
        validate_count(count, self.max_count)
        parsed = parse_params(params)
        mold_source = _check_source(mold_source)
        if name in self.store.load():
            raise _exists(name)
        mold = self._load_mold(mold_source)
        spawned: list[str] = []
        try:
            with self.store.transaction() as fleets:
                if name in fleets:
                    raise _exists(name)
                spawned = self._spawn(name, mold, 0, count, parsed, progress)
                fleet = Fleet(
                    name=name,
                    member_ids=spawned,
                    mold_source=mold_source,
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
        mold_source: str | os.PathLike[str],
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
        validate_count(count, self.max_count)
        parsed = parse_params(params)
        mold_source = _check_source(mold_source)
        self._require(name)
        mold = self._load_mold(mold_source)
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
                    mold_source=current.mold_source
                    if current.mold_source is not None
                    else mold_source,
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
        agent = validate_agent_id(agent_id)
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
        text = validate_task(task)
        self._require(name)
        with self.store.transaction() as fleets:
            current = fleets.get(name)
            if current is None:
                raise _not_found(name)
            fleet = self._with_deployment(current, text)
            fleets[name] = fleet
        return fleet

    @staticmethod
    def _with_deployment(current: Fleet, task: str) -> Fleet:
        stamp = str(int(time.time()))
        number = current.history[-1].revision + 1 if current.history else 1
        revision = Revision(
            revision=number,
            task=task,
            deployed_at=stamp,
            mold_source=current.mold_source,
            params=current.last_create_params,
        )
        history = [*current.history, revision][-HISTORY_LIMIT:]
        return attrs.evolve(
            current, last_deployed_task=task, last_deployed_at=stamp, history=history
        )

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
            if removed is not None and teardown and self._one_transaction():
                self.coordinator.terminate(removed.member_ids)
                teardown = False  # done, in the same transaction
        if removed is None:
            return False
        if teardown:
            self.coordinator.terminate(removed.member_ids)
        return True

    def _one_transaction(self) -> bool:
        """True when coordinator calls inside a store transaction join it (one
        database holds both), so fleets and agents change together or not at all.
        Otherwise agents are terminated only after the fleet no longer lists them,
        so an interrupt can leave an orphan, never a ghost."""
        shares = getattr(self.store, "shares_transactions_with", None)
        return bool(shares is not None and shares(self.coordinator))

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
        size = validate_size(n, self.max_count)
        current = self._require(name)
        if size == len(current.member_ids):
            return current
        mold: Mold | None = None
        if size > len(current.member_ids):
            mold = self._mold_for_scale_up(current)
        removed: builtins.list[str] = []
        spawned: builtins.list[str] = []
        try:
            with self.store.transaction() as fleets:
                current = fleets.get(name) or _raise(_not_found(name))
                have = len(current.member_ids)
                if size == have:
                    return current
                if size < have:
                    removed = current.member_ids[size:]
                    fleet = attrs.evolve(current, member_ids=current.member_ids[:size])
                    if self._one_transaction():
                        self.coordinator.terminate(removed)
                        removed = []  # done, in the same transaction
                else:
                    if mold is None or current.mold_source is None:
                        mold = self._mold_for_scale_up(current)
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

    def _mold_for_scale_up(self, fleet: Fleet) -> Mold:
        if fleet.mold_source is None:
            raise InvalidArgumentError(
                f"fleet {show_value(fleet.name)} has no mold; cannot scale up "
                "(create from mold first)"
            )
        return self._load_mold(fleet.mold_source, confine=True)

    def run(
        self,
        name: str | None = None,
        *,
        handler: Handler | str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float | None = None,
        progress: Progress | None = None,
        executor: Executor | None = None,
        lease: float = DEFAULT_LEASE,
    ) -> builtins.list[RunReport]:
        """Dispatch each fleet's deployed task to every member (all fleets, or the one
        named); with a handler, execute it now. See :func:`dalfleet.run.run`.

        Raises:
            FleetNotFoundError: the named fleet does not exist.
            InvalidArgumentError: a fleet to run has no members and no mold, or a bad
                concurrency / timeout / lease.
            HandlerError: ``handler`` cannot be loaded.
            MoldError / MoldNotFoundError / CoordinatorError / StoreError: as for add_from_mold.
        """
        from dalfleet import run as running

        return running.run(
            self,
            name,
            handler=handler,
            concurrency=concurrency,
            timeout=timeout,
            progress=progress,
            executor=executor,
            lease=lease,
        )

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
        statuses = self.coordinator.status(fleet.member_ids)
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
            status = "empty"
        elif any(m.state is AgentState.TERMINATED for m in members):
            status = "degraded"
        else:
            status = "ok"
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
        image: str = "dal-agent:latest",
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        workload: str = "job",
        handler: str | None = None,
        url_secret: str | None = None,
        replicas: int = 1,
    ) -> str:
        """YAML manifests for one fleet or all (see :mod:`dalfleet.export`).

        ``workload="worker"`` (k8s) exports a Deployment of ``replicas`` pods per
        fleet running ``dalfleet worker FLEET --handler HANDLER``, ``DALFLEET_URL``
        from the Secret ``url_secret`` (default ``dalfleet-database``, key ``url``).

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
            handler=handler,
            replicas=replicas,
            **({} if url_secret is None else {"url_secret": url_secret}),
        )

    def _memory_limit(self, fleet: Fleet) -> str | None:
        from dalfleet.errors import MoldError

        if fleet.mold_source is None:
            return None
        try:
            memory = self._load_mold(fleet.mold_source, confine=True).memory_limit
            if memory is not None:
                memory_limit_bytes(memory)
            return memory
        except MoldError:
            # The mold may have moved since the fleet was created; export without a limit.
            return None

    # -- beyond the reference: history, rollback, worker ------------------------------

    def history(self, name: str) -> builtins.list[Revision]:
        """The fleet's deployment revisions, oldest first.

        Raises:
            FleetNotFoundError: the fleet does not exist.
            StoreError: the store cannot be read.
        """
        return builtins.list(self._require(_lookup_name(name)).history)

    def rollback(self, name: str, to_revision: int | None = None) -> Fleet:
        """Redeploy the previous revision's task (or revision ``to_revision``'s).

        The rollback is itself recorded as a new revision.

        Raises:
            FleetNotFoundError: the fleet does not exist.
            InvalidArgumentError: there is no previous revision, or no such revision.
            StoreError: the store cannot be read or written.
        """
        _lookup_name(name)
        if to_revision is not None and (
            isinstance(to_revision, bool) or not isinstance(to_revision, int)
        ):
            raise InvalidArgumentError(f"revision must be a whole number, not {to_revision!r}")
        target = self._rollback_target(self._require(name), to_revision)
        with self.store.transaction() as fleets:
            current = fleets.get(name) or _raise(_not_found(name))
            target = self._rollback_target(current, to_revision)
            fleet = self._with_deployment(current, target.task)
            fleets[name] = fleet
        return fleet

    @staticmethod
    def _rollback_target(fleet: Fleet, to_revision: int | None) -> Revision:
        if to_revision is None:
            if len(fleet.history) < 2:
                raise InvalidArgumentError(
                    f"fleet {show_value(fleet.name)} has no previous revision to roll back to"
                )
            return fleet.history[-2]
        for revision in fleet.history:
            if revision.revision == to_revision:
                return revision
        known = ", ".join(str(r.revision) for r in fleet.history) or "none"
        raise InvalidArgumentError(
            f"fleet {show_value(fleet.name)} has no revision {to_revision} (known: {known})"
        )

    def apply(
        self,
        manifest: str | Mapping[str, Any] | Sequence[FleetSpec],
        *,
        dry_run: bool = False,
        prune: bool = False,
        progress: Progress | None = None,
    ) -> builtins.list[Change]:
        """Make the fleets match a manifest (YAML text, a mapping, or parsed specs).

        Creates, scales and deploys as :func:`dalfleet.manifest.plan` says, and
        returns the changes (with ``dry_run`` nothing is changed). Everything is
        checked first — the manifest, names, counts, tasks, params and that every
        mold resolves — so bad input changes nothing. A failure while applying
        leaves the steps before it applied, as ``kubectl apply`` does.

        Raises:
            InvalidArgumentError: the manifest is not valid or cannot be applied.
            MoldError / MoldNotFoundError: a mold does not resolve or parse.
            CoordinatorError / StoreError: as for create_from_mold and scale.
        """
        if isinstance(manifest, (str, Mapping)):
            specs = parse_manifest(manifest)
        else:
            specs = builtins.list(manifest)
        changes = plan(specs, self.store.load(), prune=prune)
        for change in changes:
            if change.mold is not None:
                self._load_mold(change.mold, confine=True)
        if dry_run:
            return changes
        for change in changes:
            if change.action == "create" and change.mold is not None:
                assert change.count is not None
                self.create_from_mold(
                    change.fleet, change.mold, change.count, change.params, progress=progress
                )
            elif change.action == "create":
                self.create(change.fleet)
            elif change.action == "scale":
                assert change.count is not None
                have = len(self.get(change.fleet).member_ids)
                if change.mold is not None and change.count > have:
                    self.add_from_mold(
                        change.fleet,
                        change.mold,
                        change.count - have,
                        change.params,
                        progress=progress,
                    )
                else:
                    self.scale(change.fleet, change.count, progress=progress)
            elif change.action == "deploy":
                assert change.task is not None
                self.deploy(change.fleet, change.task)
            elif change.action == "delete":
                self.delete(change.fleet, teardown=True)
        return changes

    def shift(
        self,
        source: str,
        target: str,
        count: int | None = None,
        *,
        task: str | None = None,
        progress: Progress | None = None,
    ) -> tuple[Fleet, Fleet]:
        """Blue/green: move ``count`` members' worth of size (default: all) from
        ``source`` to ``target``, deploying ``task`` to ``target`` first if given.

        The target grows (from its mold) before the source shrinks, so capacity
        never drops below the start; the source's removed members are terminated.

        Raises:
            FleetNotFoundError: either fleet does not exist.
            InvalidArgumentError: the fleets are the same, ``count`` is not between 1
                and the source's size, the target has no mold, the target would
                exceed the cap, or the task is not valid.
            MoldError / CoordinatorError / StoreError: as for scale.
        """
        _lookup_name(source)
        _lookup_name(target)
        if source == target:
            raise InvalidArgumentError("shift needs two different fleets")
        text = validate_task(task) if task is not None else None
        src, dst = self.get(source), self.get(target)
        have = len(src.member_ids)
        if not have:
            raise InvalidArgumentError(
                f"fleet {show_value(source)} has no members to shift "
                f"(scale it up first, or shift from a fleet that has members)"
            )
        n = have if count is None else validate_size(count, self.max_count)
        if not 1 <= n <= have:
            raise InvalidArgumentError(
                f"shift count must be between 1 and {have} "
                f"(the size of fleet {show_value(source)}), got {n}"
            )
        grown = len(dst.member_ids) + n
        validate_size(grown, self.max_count)
        self._mold_for_scale_up(dst)
        if text is not None:
            self.deploy(target, text)
        dst = self.scale(target, grown, progress=progress)
        src = self.scale(source, have - n)
        return src, dst

    def work(
        self,
        name: str,
        handler: Handler | str,
        *,
        once: bool = False,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        stop: threading.Event | None = None,
        max_tasks: int | None = None,
        on_outcome: Callable[[MemberOutcome], None] | None = None,
        executor: Executor | None = None,
        lease: float = DEFAULT_LEASE,
    ) -> WorkStats:
        """Execute the fleet members' queued tasks as they arrive, until stopped.
        See :func:`dalfleet.run.work`.

        Raises:
            FleetNotFoundError: the fleet does not exist when the worker starts.
            HandlerError: ``handler`` cannot be loaded.
            InvalidArgumentError: bad concurrency, timeout, poll interval or lease.
            StoreError / CoordinatorError: state cannot be read or written.
        """
        from dalfleet import run as running

        return running.work(
            self,
            name,
            handler,
            once=once,
            concurrency=concurrency,
            timeout=timeout,
            poll_interval=poll_interval,
            stop=stop,
            max_tasks=max_tasks,
            on_outcome=on_outcome,
            executor=executor,
            lease=lease,
        )


def _raise(exc: BaseException) -> Any:
    raise exc
