"""The fleet namespace: ``import dalfleet.fleet as fleet``.

Plain functions in the reference's parameter order; ``base`` and ``params`` may
be given positionally or by keyword. ``base=None`` means the current default
context: the JSON fleet file and the local coordinator under the current working
directory (evaluated at call time), unless :func:`configure` or :func:`using`
chose another client. An explicit ``base`` always means that directory's fleet
file and local coordinator. Each function delegates to
:class:`dalfleet.client.Client`; see its methods for the full rules.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dalfleet.client import Client, MoldSource, Params, Progress
from dalfleet.defaults import (
    DEFAULT_CONCURRENCY,
    DEFAULT_IMAGE,
    DEFAULT_LEASE,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WORKLOAD,
)
from dalfleet.models import ExportFormat, Fleet, Revision

# Types only: the coordinators, executors, runner and rollouts load when a call needs them.
if TYPE_CHECKING:
    from dalfleet.coordinator import Coordinator
    from dalfleet.executor.base import Executor, Handler
    from dalfleet.records import FleetHealth, MemberAdded, MemberOutcome, RunReport
    from dalfleet.rollout import Change, FleetSpec
    from dalfleet.run import WorkStats
    from dalfleet.store import Store

__all__ = [
    "Client",
    "add_from_mold",
    "add_member",
    "apply",
    "configure",
    "create",
    "create_from_mold",
    "current_client",
    "delete",
    "deploy",
    "ensure_member",
    "export",
    "gc",
    "health",
    "history",
    "list",
    "rollback",
    "run",
    "scale",
    "shift",
    "show",
    "using",
    "work",
]

#: A project directory; ``None`` means the current default context.
Base = str | os.PathLike[str] | None
_T = TypeVar("_T")

_configured: Client | None = None
_scoped: contextvars.ContextVar[Client | None] = contextvars.ContextVar(
    "dalfleet_client", default=None
)


def _build(
    client: Client | str | os.PathLike[str] | None,
    store: Store | None,
    coordinator: Coordinator | None,
    base: Base,
    memory: bool,
    executor: Executor | None = None,
    url: str | None = None,
) -> Client:
    if url is not None:
        if client is not None or store is not None or coordinator is not None or memory:
            raise TypeError("url= already chooses the store and the coordinator")
        return Client.from_url(url, base=base, executor=executor)
    if isinstance(client, (str, os.PathLike)):
        # Shorthands: "memory", or a project directory.
        if client == "memory":
            client, memory = None, True
        else:
            client, base = None, client
    if client is not None:
        if store is not None or coordinator is not None or memory or executor is not None:
            raise TypeError("pass either a client or store/coordinator/executor/memory, not both")
        return client
    if memory:
        if store is not None or coordinator is not None:
            raise TypeError("memory=True already chooses the store and the coordinator")
        return Client.in_memory(base, executor=executor)
    if store is None and coordinator is None:
        return Client.for_base(base, executor=executor)
    default = Client.for_base(base)
    return Client(
        store if store is not None else default.store,
        coordinator if coordinator is not None else default.coordinator,
        base=base,
        executor=executor,
    )


def configure(
    client: Client | str | os.PathLike[str] | None = None,
    *,
    store: Store | None = None,
    coordinator: Coordinator | None = None,
    base: Base = None,
    memory: bool = False,
    executor: Executor | None = None,
    url: str | None = None,
) -> Client | None:
    """Change the default context used when ``base`` is None, for the whole process.

    ``configure(memory=True)`` (or ``configure("memory")``) keeps fleets and agents
    in memory (notebooks, tests); ``configure(store=…, coordinator=…)`` picks
    backends; ``configure(executor=RayExecutor(...))`` picks where handlers run;
    ``configure(url="postgresql://…")`` keeps fleets, agents and tasks in that
    database (nothing under ``.dal/``; molds resolve against ``base`` or the
    current directory); ``configure(path)`` fixes the project directory; ``configure()`` with
    no arguments goes back to the current directory's files. Returns the client now
    in use (None when back to the per-call default).

    Raises:
        TypeError: both a client and backends were given.
        InvalidArgumentError: ``url`` is empty or its scheme is not supported.
        StoreError: ``url`` needs an extra that is not installed (psycopg).
    """
    global _configured
    if (
        client is None
        and store is None
        and coordinator is None
        and base is None
        and not memory
        and executor is None
        and url is None
    ):
        _configured = None
        return None
    _configured = _build(client, store, coordinator, base, memory, executor, url)
    return _configured


@contextlib.contextmanager
def using(
    client: Client | str | os.PathLike[str] | None = None,
    *,
    store: Store | None = None,
    coordinator: Coordinator | None = None,
    base: Base = None,
    memory: bool = False,
    executor: Executor | None = None,
    url: str | None = None,
) -> Iterator[Client]:
    """Use another default context for the block (same arguments as :func:`configure`).

    Example::

        with fleet.using(memory=True):
            fleet.create("scratch")

    Raises:
        TypeError: both a client and backends were given.
        InvalidArgumentError: ``url`` is empty or its scheme is not supported.
        StoreError: ``url`` needs an extra that is not installed (psycopg).
    """
    chosen = _build(client, store, coordinator, base, memory, executor, url)
    token = _scoped.set(chosen)
    try:
        yield chosen
    finally:
        _scoped.reset(token)
        if url is not None:
            chosen.close()  # the block opened the database connections; it closes them


def current_client() -> Client:
    """The client that ``base=None`` means right now (a new one per call by default).

    Raises:
        FileNotFoundError: no client is configured or scoped and the current
            directory no longer exists.
    """
    return _scoped.get() or _configured or Client.for_base(Path.cwd())


def _call(base: Base, op: Callable[[Client], _T]) -> _T:
    if base is not None:
        with Client.for_base(base) as client:
            return op(client)
    chosen = _scoped.get() or _configured
    if chosen is not None:
        return op(chosen)
    with Client.for_base(Path.cwd()) as client:
        return op(client)


def create(name: str, base: Base = None) -> Fleet:
    """Create an empty fleet.

    Raises:
        InvalidArgumentError: the name is not 1-63 of ``[A-Za-z0-9._-]`` starting alphanumeric.
        FleetExistsError: ``fleet 'NAME' already exists``.
        StoreError: the fleet file cannot be read or written (CorruptStoreError if it
            does not parse).
    """
    return _call(base, lambda c: c.create(name))


def create_from_mold(
    name: str,
    mold_source: MoldSource,
    count: int = 1,
    base: Base = None,
    params: Params = None,
    *,
    progress: Progress | None = None,
) -> Fleet:
    """Create a fleet of ``count`` agents from a mold, named ``NAME_0 … NAME_{count-1}``.

    ``mold_source`` (a ``str`` or any ``os.PathLike``) is recorded exactly as given
    (a path as its text) and ``params`` (a mapping or
    ``"k=v"`` strings) as ``last_create_params``.

    Raises:
        InvalidArgumentError: bad name, count < 1 or above the cap (``MAX_COUNT``, 1000), params
            without ``=``; a blank mold source (MoldSourceError).
        FleetExistsError: the fleet exists.
        MoldNotFoundError / MoldError: the mold cannot be found, read or parsed.
        CoordinatorError: spawning failed; no agent and no fleet is left behind.
        StoreError: the fleet file cannot be read or written.
    """
    return _call(
        base, lambda c: c.create_from_mold(name, mold_source, count, params, progress=progress)
    )


def add_from_mold(
    name: str,
    mold_source: MoldSource,
    count: int,
    base: Base = None,
    params: Params = None,
    *,
    progress: Progress | None = None,
) -> Fleet:
    """Append ``count`` agents from a mold; numbering continues from the current size.

    Sets ``mold_source`` and ``last_create_params`` only if they were unset.

    Raises:
        InvalidArgumentError: count < 1 or above the cap, params without ``=``.
        FleetNotFoundError: the fleet does not exist.
        MoldNotFoundError / MoldError: the mold cannot be found, read or parsed.
        CoordinatorError: spawning failed; nothing is left behind.
        StoreError: the fleet file cannot be read or written.
    """
    return _call(
        base, lambda c: c.add_from_mold(name, mold_source, count, params, progress=progress)
    )


def add_member(name: str, agent_id: str, base: Base = None) -> Fleet:
    """Register an existing agent ID; an ID already present changes nothing.

    Raises:
        InvalidArgumentError: the ID is blank.
        FleetNotFoundError: the fleet does not exist.
        StoreError: the fleet file cannot be read or written.
    """
    return _call(base, lambda c: c.add_member(name, agent_id))


def ensure_member(name: str, agent_id: str, base: Base = None) -> MemberAdded:
    """Register an existing agent ID, as :func:`add_member` does, and say whether it
    was added (``added=False``: it already was a member; nothing changed).

    Raises:
        InvalidArgumentError: the ID is blank.
        FleetNotFoundError: the fleet does not exist.
        StoreError: the fleet file cannot be read or written.
    """
    return _call(base, lambda c: c.ensure_member(name, agent_id))


def deploy(name: str, task: str, base: Base = None) -> Fleet:
    """Record ``task.strip()`` as ``last_deployed_task`` with the time; executes nothing.

    Raises:
        InvalidArgumentError: ``deploy task cannot be empty``; a task over 64 KiB.
        FleetNotFoundError: the fleet does not exist.
        StoreError: the fleet file cannot be read or written.
    """
    return _call(base, lambda c: c.deploy(name, task))


def list(base: Base = None) -> builtins.list[str]:
    """Fleet names, sorted.

    Raises:
        StoreError: the fleet file cannot be read.
    """
    return _call(base, lambda c: c.list())


def show(name: str, base: Base = None) -> Fleet | None:
    """The fleet, or None when absent.

    Raises:
        StoreError: the fleet file cannot be read.
    """
    return _call(base, lambda c: c.show(name))


def delete(
    name: str, base: Base = None, *, teardown: bool = False, missing_ok: bool = True
) -> bool:
    """Remove a fleet: True if removed, False if absent (``missing_ok=False``: an
    error instead). ``teardown=True`` also terminates its members (after the fleet
    is gone; see :meth:`Client.delete`).

    Raises:
        FleetNotFoundError: ``missing_ok=False`` and the fleet does not exist.
        StoreError: the fleet file cannot be read or written.
        CoordinatorError: with ``teardown``, the agents' store is locked by another
            process (nothing changed), or their terminate failed after the fleet was
            deleted (they are orphans; :func:`gc` terminates them).
    """
    return _call(base, lambda c: c.delete(name, teardown=teardown, missing_ok=missing_ok))


def gc(base: Base = None, *, dry_run: bool = False) -> builtins.list[str]:
    """Terminate the orphans: alive agents no fleet lists (see :meth:`Client.gc`).
    Returns their IDs; ``dry_run=True`` only lists them.

    Raises:
        StoreError: the fleet file cannot be read or locked.
        CoordinatorError: the agents cannot be listed or terminated.
    """
    return _call(base, lambda c: c.gc(dry_run=dry_run))


def scale(name: str, n: int, base: Base = None, *, progress: Progress | None = None) -> Fleet:
    """Set the fleet's size: down keeps the first ``n`` (the rest are terminated),
    up spawns from the mold with ``last_create_params``.

    Raises:
        InvalidArgumentError: n < 0 or above the cap; scaling up with no mold.
        FleetNotFoundError: the fleet does not exist.
        MoldNotFoundError / MoldError / CoordinatorError / StoreError: as for create_from_mold.
    """
    return _call(base, lambda c: c.scale(name, n, progress=progress))


def run(
    name: str | None = None,
    base: Base = None,
    *,
    handler: Handler | str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
    lease: float = DEFAULT_LEASE,
) -> builtins.list[RunReport]:
    """Dispatch the deployed task of each fleet (or the named one) to every member.

    Without ``handler`` the task is enqueued; with one it runs now (see
    :meth:`Client.run`). The reports come in a
    :class:`~dalfleet.models.DisplayList` (a ``list`` that Jupyter shows as one table).

    Raises:
        FleetNotFoundError: the named fleet does not exist.
        InvalidArgumentError: a fleet has no members and no mold_source.
        HandlerError: the handler cannot be loaded.
        MoldError / CoordinatorError / StoreError: as for add_from_mold.
    """
    return _call(
        base,
        lambda c: c.run(
            name,
            handler=handler,
            concurrency=concurrency,
            timeout=timeout,
            progress=progress,
            executor=executor,
            lease=lease,
        ),
    )


def health(name: str, base: Base = None) -> FleetHealth:
    """Member count, mold, last deployment, status (ok / empty / degraded) and live members.

    Raises:
        FleetNotFoundError: the fleet does not exist.
        StoreError / CoordinatorError: state cannot be read.
    """
    return _call(base, lambda c: c.health(name))


def export(
    name: str | None = None,
    base: Base = None,
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
    """YAML for Kubernetes (``k8s``) or Docker Compose (``docker-compose`` / ``compose``).

    ``workload="worker"`` with ``handler="mod:fn"``: a Deployment of workers per
    fleet, ``DALFLEET_URL`` from a Secret (see :meth:`Client.export`).

    Raises:
        InvalidArgumentError: unknown format; bad image, namespace, labels or workload.
        FleetNotFoundError: ``fleet 'NAME' not found``; ``no fleets to export``.
        StoreError: the fleet file cannot be read.
    """
    return _call(
        base,
        lambda c: c.export(
            name,
            format,
            image=image,
            namespace=namespace,
            labels=labels,
            workload=workload,
            handler=handler,
            url_secret=url_secret,
            replicas=replicas,
        ),
    )


def history(name: str, base: Base = None) -> tuple[Revision, ...]:
    """The fleet's deployment revisions, oldest first.

    Raises:
        FleetNotFoundError: the fleet does not exist.
        StoreError: the fleet file cannot be read.
    """
    return _call(base, lambda c: c.history(name))


def rollback(name: str, base: Base = None, *, to_revision: int | None = None) -> Fleet:
    """Redeploy the previous revision's task, or revision ``to_revision``'s
    (keyword-only, so ``rollback("w", base)`` binds ``base``).

    Raises:
        FleetNotFoundError: the fleet does not exist.
        InvalidArgumentError: a bad revision number; no previous revision / no such revision.
        StoreError: the fleet file cannot be read or written.
    """
    return _call(base, lambda c: c.rollback(name, to_revision=to_revision))


def work(
    name: str,
    handler: Handler | str,
    base: Base = None,
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
    """Run a worker that executes the fleet's queued tasks (see :meth:`Client.work`).

    Raises:
        FleetNotFoundError: the fleet does not exist.
        HandlerError: the handler cannot be loaded.
        InvalidArgumentError / StoreError / CoordinatorError: as for Client.work.
    """
    return _call(
        base,
        lambda c: c.work(
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
        ),
    )


def apply(
    manifest: str | Mapping[str, Any] | Sequence[FleetSpec],
    base: Base = None,
    *,
    dry_run: bool = False,
    prune: bool = False,
    progress: Progress | None = None,
) -> builtins.list[Change]:
    """Make the fleets match a manifest (YAML text or a mapping, see :mod:`dalfleet.manifest`);
    returns the changes. ``dry_run`` only reports them; ``prune`` deletes fleets the
    manifest does not name.

    Raises:
        InvalidArgumentError: the manifest is not valid or cannot be applied.
        MoldError / MoldNotFoundError / CoordinatorError / StoreError: as for create_from_mold.
    """
    return _call(base, lambda c: c.apply(manifest, dry_run=dry_run, prune=prune, progress=progress))


def shift(
    source: str,
    target: str,
    count: int | None = None,
    base: Base = None,
    *,
    task: str | None = None,
    progress: Progress | None = None,
) -> tuple[Fleet, Fleet]:
    """Blue/green: move ``count`` (default all) of ``source``'s size to ``target``,
    deploying ``task`` to ``target`` first; the target grows before the source shrinks.

    Raises:
        FleetNotFoundError: either fleet does not exist.
        InvalidArgumentError: same fleet, bad count, target without a mold, bad task.
        MoldError / CoordinatorError / StoreError: as for scale.
    """
    return _call(base, lambda c: c.shift(source, target, count, task=task, progress=progress))
