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
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from dalfleet._gcpause import gc_paused
from dalfleet.defaults import (
    DEFAULT_CONCURRENCY,
    DEFAULT_IMAGE,
    DEFAULT_LEASE,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TRUST_LEVEL,
    DEFAULT_WORKLOAD,
    LOGGER_NAME,
    MAX_COUNT,
    RUNTIME_ENV,
)
from dalfleet.errors import (
    CoordinatorError,
    FleetNotFoundError,
    InvalidArgumentError,
    fleet_exists,
    fleet_not_found,
    quote,
)
from dalfleet.models import (
    AgentState,
    ExportFormat,
    Fleet,
    HealthStatus,
    Revision,
    with_deployment,
)
from dalfleet.rules import (
    check_agent_id,
    check_base,
    check_count,
    check_existing_name,
    check_growth,
    check_mold_source,
    check_name,
    check_size,
    check_task,
    parse_params,
)

# The coordinators (SQLite), the mold parser, the executor and the runner are
# imported where they are used: a command such as ``deploy`` needs none of them, and
# importing them is a large part of a short command's start-up time.
if TYPE_CHECKING:
    import logging

    from dalfleet.coordinator import Coordinator
    from dalfleet.executor.base import Executor, Handler
    from dalfleet.mold import Mold
    from dalfleet.records import FleetHealth, MemberAdded, MemberOutcome, RunReport
    from dalfleet.rollout import Change, FleetSpec
    from dalfleet.run import WorkStats
    from dalfleet.store import Store

__all__ = [
    "Client",
    "MoldSource",
    "Params",
    "Progress",
    "WorkStats",
    "fleet_not_found",
]


def _log() -> logging.Logger:
    # logging (with traceback, string, …) loads on the first message, not for every command.
    import logging

    return logging.getLogger(LOGGER_NAME)


def __getattr__(name: str) -> object:
    """``WorkStats``, re-exported from :mod:`dalfleet.run` on first use (PEP 562).

    Raises:
        AttributeError: no such name.
    """
    if name == "WorkStats":
        from dalfleet.run import WorkStats

        return WorkStats
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Create-time params: a mapping, or ``"KEY=VALUE"`` strings.
Params = Mapping[str, object] | Iterable[str] | None
"""Create-time params: a mapping, or ``"KEY=VALUE"`` strings (or None)."""
Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while agents are spawned or tasks run."""
MoldSource = str | os.PathLike[str]
"""A mold file path or a mold name (a ``str`` or any ``os.PathLike``)."""


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
        executor: where handlers run (:class:`~dalfleet.executor.local.LocalExecutor`,
            made on first use, by default).
    """

    def __init__(
        self,
        store: Store,
        coordinator: Coordinator,
        *,
        base: str | os.PathLike[str] | None = None,
        max_count: int = MAX_COUNT,
        executor: Executor | None = None,
    ) -> None:
        self.store = store
        self._coordinator: Coordinator | None = coordinator
        self._choose_coordinator: Callable[[], Coordinator] | None = None
        self._base = Path(base) if base is not None else None
        self.max_count = max_count
        self._executor = executor

    @property
    def coordinator(self) -> Coordinator:
        """Where agents live. :meth:`for_base` chooses it on first use: a command that
        only reads or writes fleets (``deploy``, ``show``) never loads SQLite or the
        reference runtime."""
        if self._coordinator is None and self._choose_coordinator is not None:
            self._coordinator = self._choose_coordinator()
        if self._coordinator is None:  # pragma: no cover - __init__ always sets one of them
            raise RuntimeError("client has no coordinator")
        return self._coordinator

    @coordinator.setter
    def coordinator(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator

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
            InvalidArgumentError: ``base`` is not an existing directory (a mistyped path
                must not become a new project tree); ``runtime`` (or
                ``$DALFLEET_RUNTIME``) is not ``auto``, ``local`` or ``reference``.
        """
        from dalfleet.store.jsonfile import JsonFileStore

        root = check_base(base, must_exist=False) if base is not None else Path.cwd()

        def choose() -> Coordinator:
            from dalfleet.coordinator.reference import coordinator_for_base
            from dalfleet.mold.principal import principal_trust_level

            # Only agents have a trust level (principal_trust_level never raises).
            trust = principal_trust_level(root) if trust_level is None else trust_level
            # Where the reference keeps its agents, share them (SPEC §5, reference runtime).
            return coordinator_for_base(root, trust, runtime)

        if runtime is None and not os.environ.get(RUNTIME_ENV):
            # ``auto``, which cannot be wrong: choose on first use (importing the
            # coordinators is a large part of a short command's start-up).
            client = cls(JsonFileStore(root), None, base=root, executor=executor)  # type: ignore[arg-type]
            client._choose_coordinator = choose
            return client
        return cls(JsonFileStore(root), choose(), base=root, executor=executor)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        base: str | os.PathLike[str] | None = None,
        trust_level: str = DEFAULT_TRUST_LEVEL,
        max_count: int = MAX_COUNT,
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
        trust_level: str = DEFAULT_TRUST_LEVEL,
        executor: Executor | None = None,
    ) -> Client:
        """A client that keeps fleets and agents in memory (tests, notebooks). Never raises."""
        from dalfleet.coordinator.memory import MemoryCoordinator
        from dalfleet.store.memory import MemoryStore

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
        """Release the coordinator's, the store's and the executor's resources. The
        client can still be used after (they reopen on next use).

        Raises:
            Exception: whatever the coordinator's or store's ``close`` raises; the
                built-in ones raise nothing.
        """
        try:
            if self._coordinator is not None:  # one chosen on first use may never have been
                self._coordinator.close()
        finally:
            self.store.close()
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

    def _fleet(self, name: str) -> Fleet | None:
        # A store may read one fleet without building the others (the fleet file does:
        # a deploy on a 1,000-fleet file builds one); any other loads them all.
        get = getattr(self.store, "get", None)
        if callable(get):
            fleet: Fleet | None = get(name)
            return fleet
        return self.store.load().get(name)

    def _require(self, name: str) -> Fleet:
        fleet = self._fleet(name)
        if fleet is None:
            raise _not_found(name, self.store.load())
        return fleet

    def load_mold(self, source: MoldSource, *, confine: bool = False) -> Mold:
        """The mold ``source`` names, resolved against :attr:`base`; with ``confine``
        (a source from a manifest or a stored fleet, SPEC §4) it must lie inside the
        project or the bundled samples.

        Raises:
            MoldSourceError: the source is blank.
            MoldNotFoundError / MoldError: it does not resolve (or, confined, lies
                outside the project), cannot be read or parsed, or names an unknown
                agent type.
        """
        from dalfleet.mold.model import agent_type_of
        from dalfleet.mold.resolve import load_mold

        mold = load_mold(check_mold_source(source), self.base, confine=confine)
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
        from dalfleet.mold.render import render

        trust = self.coordinator.trust_level
        spawned: list[str] = []
        specs = [
            render(mold, f"{fleet_name}_{i}", params, trust) for i in range(start, start + count)
        ]
        try:
            # One spawn, so one transaction of the coordinator: all or nothing, and at
            # the floor of what a batch insert costs (a call is capped at max_count).
            spawned.extend(self.coordinator.spawn(specs))
            if progress is not None:
                progress(len(spawned), count)
        except BaseException:
            self._terminate_quietly(spawned)
            raise
        _log().info("fleet %s: spawned %d agent(s) from mold %s", fleet_name, count, mold.name)
        return spawned

    def _terminate_quietly(self, agent_ids: Sequence[str]) -> None:
        """Undo a spawn whose change failed or was interrupted: terminate those of
        ``agent_ids`` that no fleet lists.

        The store is read again first: an interrupt can arrive after the new fleet
        file landed (inside the store's commit), and terminating what it lists would
        make ghosts. When the store cannot be read, or the terminate fails, nothing
        is terminated: the agents are orphans, which :meth:`gc` finds.
        """
        if not agent_ids:
            return
        # The original error is the one to report; a failing cleanup must not hide it.
        try:
            listed = {m for fleet in self.store.load().values() for m in fleet.member_ids}
            unlisted = [a for a in agent_ids if a not in listed]
            self.coordinator.terminate(unlisted)
        except Exception as exc:
            _log().warning(
                "could not terminate %d agent(s) spawned by a failed call (orphans now): %s",
                len(agent_ids),
                exc,
            )
        else:
            if unlisted:
                _log().info("terminated %d agent(s) spawned by a failed call", len(unlisted))

    # -- the twelve operations -----------------------------------------------------

    def create(self, name: str) -> Fleet:
        """Create an empty fleet.

        Raises:
            InvalidArgumentError: the name is not valid.
            FleetExistsError: ``fleet 'NAME' already exists``.
            StoreError: the store cannot be read or written.
        """
        check_name(name)
        if self._fleet(name) is not None:
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
        if self._fleet(name) is not None:
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
            InvalidArgumentError: bad count or params, or the fleet would grow past
                the cap (``max_count``; it applies to the fleet's size).
            FleetNotFoundError: the fleet does not exist.
            MoldError / MoldNotFoundError: the mold cannot be found or parsed.
            CoordinatorError: spawning failed (nothing is left behind).
            StoreError: the store cannot be read or written.
        """
        _lookup_name(name)
        check_count(count, self.max_count)
        parsed = parse_params(params)
        source = check_mold_source(mold_source)
        # As in the reference, the cap bounds the agents one call spawns, not the
        # roster: a fleet grows past it by repeated add_from_mold.
        self._require(name)
        mold = self.load_mold(source)
        spawned: list[str] = []
        try:
            with self.store.transaction() as fleets:
                current = fleets.get(name)
                if current is None:
                    raise _not_found(name, fleets)
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
        (:meth:`ensure_member` also tells which of the two happened.)

        Raises:
            InvalidArgumentError: the ID is blank or not printable.
            FleetNotFoundError: the fleet does not exist.
            StoreError: the store cannot be read or written.
        """
        return self.ensure_member(name, agent_id).fleet

    def ensure_member(self, name: str, agent_id: str) -> MemberAdded:
        """Make ``agent_id`` a member, as :meth:`add_member` does, and say whether it
        was added (``added=False``: it already was a member; nothing changed).

        Raises:
            InvalidArgumentError: the ID is blank or not printable, or the fleet is
                at the cap (``max_count``; it applies to the fleet's size).
            FleetNotFoundError: the fleet does not exist.
            StoreError: the store cannot be read or written.
        """
        from dalfleet.records import MemberAdded

        _lookup_name(name)
        agent = check_agent_id(agent_id)
        snapshot = self._require(name)
        if agent in snapshot.member_ids:
            return MemberAdded(snapshot, agent, added=False)
        check_growth(name, len(snapshot.member_ids), 1, self.max_count)
        with self.store.transaction() as fleets:
            current = fleets.get(name)
            if current is None:
                raise _not_found(name, fleets)
            if agent in current.member_ids:
                return MemberAdded(current, agent, added=False)
            check_growth(name, len(current.member_ids), 1, self.max_count)
            fleet = attrs.evolve(current, member_ids=[*current.member_ids, agent])
            fleets[name] = fleet
        return MemberAdded(fleet, agent, added=True)

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
                raise _not_found(name, fleets)
            fleet = with_deployment(current, text)
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
        return self._fleet(_lookup_name(name))

    def delete(self, name: str, *, teardown: bool = False, missing_ok: bool = True) -> bool:
        """Remove a fleet; True if removed, False if absent (``missing_ok=False``:
        absent is an error instead, as ``dalfleet delete`` reports it).

        Metadata only, unless ``teardown=True``: then its members are terminated,
        after the fleet is gone from the store (an interrupt leaves orphans for
        :meth:`gc`, never a fleet listing terminated agents).

        Raises:
            FleetNotFoundError: ``missing_ok=False`` and the fleet does not exist.
            StoreError: the store cannot be read or written.
            CoordinatorError: with ``teardown``, the coordinator is locked by another
                process (nothing changed), or the terminate failed after the fleet was
                deleted (the message says so; :meth:`gc` terminates those agents).
        """
        _lookup_name(name)
        if self._fleet(name) is None:
            if missing_ok:
                return False
            raise _not_found(name, self.store.load())
        torn_down = teardown
        with self.store.transaction() as fleets:
            removed = fleets.pop(name, None)
            if removed is None and not missing_ok:
                raise _not_found(name, fleets)
            if removed is not None and teardown:
                if self._one_transaction():
                    # Fleets and agents change in one database transaction.
                    self.coordinator.terminate(removed.member_ids)
                    teardown = False
                else:
                    # A locked coordinator fails the command before the file changes.
                    from dalfleet.coordinator.base import check_writable

                    check_writable(self.coordinator)
        if removed is None:
            return False
        if teardown:
            # Only now that no fleet lists them: an interrupt leaves orphans, not ghosts.
            self._terminate_removed(removed.member_ids, f"fleet {quote(name)} was deleted")
        _log().info(
            "fleet %s: deleted%s",
            name,
            f"; terminated {len(removed.member_ids)} member(s)" if torn_down else "",
        )
        return True

    def _terminate_removed(self, agent_ids: Sequence[str], what: str) -> None:
        """Terminate agents the fleet file no longer lists.

        Raises:
            CoordinatorError: the terminate failed; the agents are orphans now, and
                the message says so (``what`` happened) and names ``dalfleet gc``.
        """
        try:
            self.coordinator.terminate(agent_ids)
        except CoordinatorError as exc:
            raise CoordinatorError(
                f"{what}, but its {len(agent_ids)} removed agent(s) could not be "
                f"terminated ({exc}); no fleet lists them now: 'dalfleet gc' terminates them"
            ) from exc

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

        A fleet above the cap (the cap was lowered) may always shrink.

        Raises:
            InvalidArgumentError: ``n`` negative or above the cap, or scaling up a
                fleet with no mold (``fleet 'NAME' has no mold; cannot scale up …``).
            FleetNotFoundError: the fleet does not exist.
            MoldError / MoldNotFoundError: the mold cannot be found or parsed.
            CoordinatorError: spawning failed (nothing is left behind); scaling down,
                the coordinator is locked by another process (nothing changed), or the
                terminate failed after the fleet shrank (the message says so; :meth:`gc`
                terminates those agents).
            StoreError: the store cannot be read or written.
        """
        _lookup_name(name)
        check_size(n, sys.maxsize)  # type and sign first; the cap once the size is known
        current = self._require(name)
        size = check_size(n, self.max_count, current=len(current.member_ids))
        if size == len(current.member_ids):
            return current
        mold: Mold | None = None
        if size > len(current.member_ids):
            mold = self.mold_for_scale_up(current)
        removed: builtins.list[str] = []
        spawned: builtins.list[str] = []
        try:
            with self.store.transaction() as fleets:
                current = fleets.get(name) or _raise(_not_found(name, fleets))
                have = len(current.member_ids)
                if size == have:
                    return current
                check_size(size, self.max_count, current=have)
                if size < have:
                    removed = builtins.list(current.member_ids[size:])
                    fleet = attrs.evolve(current, member_ids=current.member_ids[:size])
                    if self._one_transaction():
                        self.coordinator.terminate(removed)
                        removed = []  # done, in the same transaction
                    else:
                        # A locked coordinator fails the command before the file changes.
                        from dalfleet.coordinator.base import check_writable

                        check_writable(self.coordinator)
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
            # Only now that no fleet lists them: an interrupt leaves orphans, not ghosts.
            self._terminate_removed(removed, f"fleet {quote(name)} was scaled to {size}")
        gone = len(current.member_ids) - size
        if gone > 0:
            _log().info(
                "fleet %s: scaled to %d agent(s); terminated %d member(s)", name, size, gone
            )
        return fleet

    def gc(self, *, dry_run: bool = False) -> builtins.list[str]:
        """Find the orphans (alive agents of this coordinator that no fleet lists) and
        terminate them; their IDs, oldest first. ``dry_run`` only finds them.

        Orphans are what an interrupted or failed operation can leave (never ghosts:
        SPEC §5), and the members of a fleet deleted without ``teardown``. They are
        found only here, not by every operation: a sweep reads every agent, which the
        other operations should not pay for.

        It runs inside a store transaction: every operation spawns inside its own
        transaction and lists the new agents before that transaction ends, so while
        gc holds it no agent is spawned-but-not-yet-listed, and a create in progress
        in another process (or on another host) is never mistaken for orphans. Agents
        a reference ``dal`` spawned are not this coordinator's to list
        (:meth:`~dalfleet.coordinator.reference.ReferenceCoordinator.agent_ids`).

        Raises:
            StoreError: the store cannot be read or locked.
            CoordinatorError: the agents cannot be listed or terminated (then
                nothing was terminated).
        """
        with self.store.transaction() as fleets:
            listed = {m for fleet in fleets.values() for m in fleet.member_ids}
            found = [a for a in self.coordinator.agent_ids(AgentState.ALIVE) if a not in listed]
            if found and not dry_run:
                self.coordinator.terminate(found)
        if found and not dry_run:
            _log().info("gc: terminated %d orphaned agent(s)", len(found))
        return found

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
        return self.load_mold(fleet.mold_source, confine=True)

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
        (registered with add_member from elsewhere) are reported ``unknown``. The
        fleet's tasks are counted by state (``pending_tasks``, ``running_tasks``,
        ``completed_tasks``, ``failed_tasks``) on every backend.

        Raises:
            FleetNotFoundError: the fleet does not exist.
            StoreError / CoordinatorError: state cannot be read.
        """
        from dalfleet.records import FleetHealth, MemberHealth

        fleet = self._require(_lookup_name(name))
        with gc_paused():  # two records a member, no cycles: see dalfleet._gcpause
            statuses = self.coordinator.status(builtins.list(fleet.member_ids))
            # Positional, one pass in C over the roster: built once per member of a 1M fleet.
            members = [
                MemberHealth(
                    s.agent_id,
                    s.state,
                    s.pending_tasks + s.running_tasks,
                    s.failed_tasks,
                    s.completed_tasks,
                    s.last_result_at,
                )
                for s in map(statuses.__getitem__, fleet.member_ids)
            ]
        if not fleet.member_ids and fleet.mold_source is None:
            status = HealthStatus.EMPTY
        elif any(m.state is AgentState.TERMINATED for m in members):
            status = HealthStatus.DEGRADED
        else:
            status = HealthStatus.OK
        # The fleet's queue as a whole (one query), so a watcher on any host sees it drain.
        counts = self.coordinator.task_counts(fleet.member_ids)
        return FleetHealth(
            name=fleet.name,
            member_count=len(fleet.member_ids),
            has_mold=fleet.mold_source is not None,
            last_deployed_task=fleet.last_deployed_task,
            last_deployed_at=fleet.last_deployed_at,
            status=status,
            members=members,
            pending_tasks=counts.pending,
            running_tasks=counts.running,
            completed_tasks=counts.completed,
            failed_tasks=counts.failed,
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
                raise _not_found(name, fleets)
            targets = [fleets[name]]
        else:
            targets = [fleets[n] for n in sorted(fleets)]
        if not targets:
            raise FleetNotFoundError("no fleets to export")
        # One resolve and parse per mold, however many fleets share it.
        by_source: dict[str, str | None] = {}
        memory: dict[str, str | None] = {}
        for fleet in targets:
            source = fleet.mold_source
            if source is not None and source not in by_source:
                by_source[source] = self._memory_limit(source)
            memory[fleet.name] = None if source is None else by_source[source]
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

    def _memory_limit(self, mold_source: str) -> str | None:
        from dalfleet.errors import MoldError
        from dalfleet.mold.model import memory_limit_bytes

        try:
            memory = self.load_mold(mold_source, confine=True).memory_limit
            if memory is not None:
                memory_limit_bytes(memory)
            return memory
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
        from dalfleet import rollout

        return rollout.history(self, name)

    def rollback(self, name: str, *, to_revision: int | None = None) -> Fleet:
        """Redeploy the previous revision's task, or revision ``to_revision``'s
        (see :func:`dalfleet.rollout.rollback`).

        Raises:
            FleetNotFoundError: the fleet does not exist.
            InvalidArgumentError: a bad revision number; no previous revision, or no such one.
            StoreError: the store cannot be read or written.
        """
        from dalfleet import rollout

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
        from dalfleet import rollout

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
        from dalfleet import rollout

        return rollout.shift(self, source, target, count, task=task, progress=progress)

    # -- beyond the reference: the worker -----------------------------------------------

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
