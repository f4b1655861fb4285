"""The Ray coordinator: agents live in a Ray cluster, in a bounded set of host actors.

Agents are not processes. A namespace of the cluster holds ``hosts`` named,
detached actors (``dalfleet-host-0`` …), each wrapping one
:class:`~dalfleet.coordinator.memory.MemoryCoordinator`; every agent lives in one
of them, with its task queue and results. Detached actors belong to the cluster,
not to the driver, so agents outlive the process that spawned them and any other
driver connected to the same namespace sees them; with more nodes, the host
actors are spread over them.

Routing: an agent or task ID lives on host ``crc32(id) % hosts``
(:func:`host_of`). A host makes its own IDs and draws fresh ones (same
``agent_…``/``task_…`` shape) until they route back to it, so any driver finds
any agent or task from its ID alone, with no directory to consult.

Ray is optional: this module imports it only when a :class:`RayCoordinator` is
made (``pip install 'dalfleet[ray]'``).
"""

from __future__ import annotations

import contextlib
import heapq
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

import attrs

from dalfleet.coordinator.base import AgentStatus, ClaimedTask, new_agent_id, new_task_id
from dalfleet.coordinator.memory import (
    MemoryCoordinator,
    decode_result,
    encode_result,
    encode_spec,
    unique_ids,
)
from dalfleet.defaults import DEFAULT_TRUST_LEVEL
from dalfleet.errors import CoordinatorError, FleetError, InvalidArgumentError
from dalfleet.models import Agent, AgentSpec, AgentState, MemberOutcome, Task

__all__ = ["HOST_NAME", "WHERE", "RayCoordinator", "host_of"]

HOST_NAME: Final = "dalfleet-host-{index}"  # actor name of host ``index`` in the namespace
WHERE: Final = "the Ray cluster"  # how "not found" errors name this coordinator

_MISSING_RAY: Final = "the Ray backend needs Ray: pip install 'dalfleet[ray]'"

_T = TypeVar("_T")

# (batch time in ns, position in the batch): orders agents of all hosts by spawn.
SpawnKey = tuple[int, int]


def host_of(some_id: str, hosts: int) -> int:
    """The host (``0 … hosts-1``) where the agent or task ``some_id`` lives.

    Raises:
        ZeroDivisionError: ``hosts`` is 0.
        UnicodeEncodeError: ``some_id`` is not valid UTF-8 text (lone surrogates).
    """
    return zlib.crc32(some_id.encode()) % hosts


def _routed(factory: Callable[[], str], index: int, hosts: int) -> Callable[[], str]:
    """IDs from ``factory`` that route to host ``index`` (``hosts`` draws each, on average)."""

    def make() -> str:
        while host_of(candidate := factory(), hosts) != index:
            pass
        return candidate

    return make


class _Host:
    """One host actor: a :class:`MemoryCoordinator` whose IDs route back here.

    A thin wrapper run by Ray one call at a time (``max_concurrency=1``); the only
    state of its own is the spawn order of its agents, so that the driver can list
    the agents of every host oldest first.
    """

    _coord: MemoryCoordinator
    _order: dict[str, SpawnKey]

    def __init__(self, index: int, hosts: int) -> None:
        self.index = index
        self.hosts = hosts
        self.reset()

    def reset(self) -> None:
        """Forget every agent and task, keeping the actor (the tests reuse hosts this way)."""
        self._coord = MemoryCoordinator(
            id_factory=_routed(new_agent_id, self.index, self.hosts),
            task_id_factory=_routed(new_task_id, self.index, self.hosts),
            where=WHERE,
        )
        self._order = {}

    def layout(self) -> tuple[int, int]:
        return self.index, self.hosts

    def spawn(self, specs: list[AgentSpec], trust_level: str, keys: list[SpawnKey]) -> list[str]:
        # Coordinators with different trust levels share this host; calls never overlap.
        self._coord.trust_level = trust_level
        ids = self._coord.spawn(specs)
        self._order.update(zip(ids, keys, strict=True))
        return ids

    def terminate(self, agent_ids: list[str]) -> None:
        self._coord.terminate(agent_ids)

    def dispatch(
        self, agent_ids: list[str], task: Task, claimed_by: str | None
    ) -> dict[str, Task | str]:
        return dict(self._coord.dispatch(agent_ids, task, claimed_by=claimed_by))

    def status(self, agent_ids: list[str]) -> dict[str, AgentStatus]:
        return self._coord.status(agent_ids)

    def agents(self, agent_ids: list[str]) -> dict[str, Agent]:
        return self._coord.agents(agent_ids)

    def claim(
        self, agent_ids: list[str], worker: str, limit: int
    ) -> list[tuple[float, ClaimedTask]]:
        """The claimed tasks, oldest first, each with its enqueue time."""
        out = []
        for claimed in self._coord.claim(agent_ids, worker, limit):
            record = self._coord.task_record(claimed.task.task_id) or {"enqueued_at": 0.0}
            out.append((float(record["enqueued_at"]), claimed))
        return out

    def finish(self, task_id: str, ok: bool, result: Any, error: str | None) -> None:
        self._coord.finish(task_id, ok=ok, result=result, error=error)

    def release(self, task_ids: list[str]) -> None:
        self._coord.release(task_ids)

    def running(self, agent_ids: list[str]) -> dict[str, str]:
        return self._coord.running(agent_ids)

    def task_record(self, task_id: str) -> dict[str, Any] | None:
        return self._coord.task_record(task_id)

    def events(self, agent_id: str) -> list[tuple[str, str]]:
        return self._coord.events(agent_id)

    def agent_ids(self, state: AgentState | None) -> list[tuple[SpawnKey, str]]:
        return [(self._order[i], i) for i in self._coord.agent_ids(state)]


def _import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        CoordinatorError: Ray is not installed.
    """
    try:
        import ray
    except ImportError as exc:
        raise CoordinatorError(_MISSING_RAY) from exc
    return ray


def _run_batch(
    handler: Any, items: list[ClaimedTask], concurrency: int, timeout: float | None
) -> list[MemberOutcome]:
    """Runs in a Ray worker: execute one batch of claimed tasks with the handler."""
    from dalfleet.execute import execute, load_handler

    try:
        call = load_handler(handler)
    except FleetError as exc:  # e.g. the module is not importable on this node
        return [
            MemberOutcome(
                agent_id=item.agent.agent_id,
                ok=False,
                status="error",
                task_id=item.task.task_id,
                error=str(exc),
            )
            for item in items
        ]
    outcomes, _unfinished = execute(items, call, concurrency=concurrency, timeout=timeout)
    return outcomes


_remotes: dict[Any, Any] = {}  # target -> ray.remote(target), made once per process


def _remote(ray: Any, target: Any) -> Any:
    """``ray.remote(target)``, made once per process (Ray registers each one it makes)."""
    if target not in _remotes:
        _remotes[target] = ray.remote(target)
    return _remotes[target]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


class RayCoordinator:
    """Agents in a Ray cluster, in ``hosts`` named, detached host actors per namespace.

    Args:
        address: the cluster to join: ``"host:port"``, ``"auto"`` (an existing
            cluster found on this machine, else an error) or ``None`` (an existing
            one if found, else Ray **starts a local cluster in this process**, which
            ends with it). Ignored when Ray is already initialized in this process.
        namespace: the Ray namespace holding the host actors; drivers sharing a
            namespace share the agents.
        hosts: the number of host actors; every driver of a namespace must use
            the same number (checked on connect), since it decides where IDs live.
        trust_level: stamped on every spawned agent's spec, whatever it says.
        init_kwargs: extra arguments for ``ray.init`` (``num_cpus``, ``runtime_env`` …).

    The cluster is joined, and the host actors made or found, on first use. Every
    call waits for the hosts it needs, which run in parallel. Errors of Ray itself
    (a host actor died, the cluster is gone) are raised as
    :class:`~dalfleet.errors.CoordinatorError`.

    Raises:
        CoordinatorError: Ray is not installed.
        InvalidArgumentError: ``hosts`` is not a positive integer.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        namespace: str = "dalfleet",
        hosts: int = 4,
        trust_level: str = DEFAULT_TRUST_LEVEL,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(hosts, bool) or not isinstance(hosts, int) or hosts < 1:
            raise InvalidArgumentError(f"hosts must be a positive integer, not {hosts!r}")
        self._ray = _import_ray()
        self.address = address
        self.namespace = namespace
        self.hosts = hosts
        self.trust_level = trust_level
        self.init_kwargs = dict(init_kwargs or {})
        self._lock = threading.Lock()
        self._handles: list[Any] | None = None

    def __repr__(self) -> str:
        return (
            f"RayCoordinator(address={self.address!r}, namespace={self.namespace!r}, "
            f"hosts={self.hosts}, trust_level={self.trust_level!r})"
        )

    # -- connection -------------------------------------------------------------

    def _init_ray(self) -> None:
        ray = self._ray
        if ray.is_initialized():
            return
        try:
            ray.init(
                address=self.address,
                namespace=self.namespace,
                ignore_reinit_error=True,
                **self.init_kwargs,
            )
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError …
            where = "a local Ray cluster" if self.address is None else repr(self.address)
            raise CoordinatorError(f"cannot connect to {where}: {_one_line(exc)}") from exc

    def _host(self, index: int) -> Any:
        """Host ``index``: the existing actor of that name, or a new one."""
        return (
            _remote(self._ray, _Host)
            .options(
                name=HOST_NAME.format(index=index),
                namespace=self.namespace,
                lifetime="detached",
                get_if_exists=True,
                num_cpus=0,
                max_concurrency=1,  # one call at a time: each host's state stays consistent
                max_restarts=0,  # a restarted host would be empty; better to fail loudly
                scheduling_strategy="SPREAD",  # over the nodes of a multi-node cluster
            )
            .remote(index, self.hosts)
        )

    def _connect(self) -> list[Any]:
        """Handles of every host actor, joining the cluster and making them if needed.

        Raises:
            CoordinatorError: the cluster cannot be reached, or the namespace's hosts
                were made with another ``hosts``.
        """
        with self._lock:
            if self._handles is not None:
                return self._handles
            self._init_ray()
            # Host 0 first: a namespace made with another host count must not get
            # stray extra hosts before the mismatch is found.
            first = self._host(0)
            _, existing = self._wait([first.layout.remote()])[0]
            if existing != self.hosts:
                raise CoordinatorError(
                    f"the Ray namespace {self.namespace!r} holds agents on {existing} "
                    f"host actors, not {self.hosts}: use RayCoordinator(hosts={existing})"
                )
            handles = [first, *(self._host(i) for i in range(1, self.hosts))]
            self._wait([h.layout.remote() for h in handles[1:]])
            self._handles = handles
            return handles

    def _wait(self, refs: list[Any]) -> list[Any]:
        """``ray.get(refs)``, with errors raised as our own.

        Raises:
            FleetError: the error a host raised (CoordinatorError, InvalidArgumentError …).
            CoordinatorError: Ray failed (a host actor died, the cluster is gone …).
        """
        exceptions = self._ray.exceptions
        try:
            return list(self._ray.get(refs))
        except exceptions.RayTaskError as exc:
            if isinstance(exc.cause, FleetError):
                raise exc.cause from None
            raise CoordinatorError(
                f"a dalfleet host actor failed in Ray namespace {self.namespace!r}: "
                f"{_one_line(exc)}"
            ) from exc
        except exceptions.RayActorError as exc:
            self._handles = None  # find or remake the hosts on the next call
            raise CoordinatorError(
                f"a dalfleet host actor in Ray namespace {self.namespace!r} is gone "
                f"(its agents are lost): {_one_line(exc)}"
            ) from exc
        except (exceptions.RayError, ConnectionError) as exc:
            raise CoordinatorError(f"the Ray cluster failed: {_one_line(exc)}") from exc

    def _by_host(self, ids: Iterable[str]) -> dict[int, list[str]]:
        """``ids`` grouped by the host they live on (hosts in first-seen order)."""
        groups: dict[int, list[str]] = {}
        for some_id in ids:
            groups.setdefault(host_of(some_id, self.hosts), []).append(some_id)
        return groups

    def _fan_out(
        self, groups: Mapping[int, list[str]], call: Callable[[Any, list[str]], Any]
    ) -> list[Any]:
        """``call(host_handle, ids)`` on every host of ``groups`` at once; results in order."""
        if not groups:
            return []
        handles = self._connect()
        return self._wait([call(handles[i], ids) for i, ids in groups.items()])

    @staticmethod
    def _merge(ids: list[str], parts: list[dict[str, _T]]) -> dict[str, _T]:
        """Per-host result dicts merged back into the order of ``ids``."""
        merged: dict[str, _T] = {}
        for part in parts:
            merged.update(part)
        return {i: merged[i] for i in ids if i in merged}

    # -- protocol ---------------------------------------------------------------

    def spawn(self, specs: Sequence[AgentSpec]) -> list[str]:
        """Create one agent per spec and return their IDs in order.

        Specs are spread round-robin over the host actors. The stored spec carries
        this coordinator's ``trust_level``; an ``on_create`` hook is recorded as an
        event, never executed.

        Raises:
            CoordinatorError: a spec cannot be stored (nothing is created), or a host
                failed (what the other hosts had spawned is terminated).
        """
        # The stored form first: a bad spec fails before any host is asked, and
        # only plain JSON values travel to the cluster.
        decoded = [encode_spec(attrs.evolve(s, trust_level=self.trust_level))[1] for s in specs]
        if not decoded:
            return []
        handles = self._connect()
        stamp = time.time_ns()
        start = random.randrange(self.hosts)  # so batches of one spread too
        slots: dict[int, list[int]] = {}
        for position in range(len(decoded)):
            slots.setdefault((start + position) % self.hosts, []).append(position)
        refs = {
            index: handles[index].spawn.remote(
                [decoded[p] for p in positions],
                self.trust_level,
                [(stamp, p) for p in positions],
            )
            for index, positions in slots.items()
        }
        spawned: dict[int, list[str]] = {}
        failure: FleetError | None = None
        for index, ref in refs.items():
            try:
                spawned[index] = self._wait([ref])[0]
            except FleetError as exc:
                failure = failure or exc
        if failure is not None:
            # Through the handles of the hosts that worked: a failed one may be dying.
            undo = [handles[index].terminate.remote(ids) for index, ids in spawned.items()]
            with contextlib.suppress(FleetError):  # the first failure is the one to report
                self._wait(undo)
            raise CoordinatorError(
                f"spawn failed; the agents spawned so far were terminated: {failure}"
            ) from failure
        ids = [""] * len(decoded)
        for index, positions in slots.items():
            for position, agent_id in zip(positions, spawned[index], strict=True):
                ids[position] = agent_id
        return ids

    def terminate(self, agent_ids: Sequence[str]) -> None:
        """Terminate the given agents and cancel their queued tasks.

        Unknown and already terminated IDs are ignored. An ``on_destroy`` hook is
        recorded as an event, never executed.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
            CoordinatorError: Ray failed.
        """
        self._fan_out(self._by_host(unique_ids(agent_ids)), lambda h, ids: h.terminate.remote(ids))

    def dispatch(
        self,
        agent_ids: Sequence[str],
        task: Task,
        *,
        claimed_by: str | None = None,
    ) -> Mapping[str, Task | str]:
        """Give ``task`` to every agent, as one task record (own ``task_id``) each.

        Returns, per agent ID in input order (duplicates once), the stored
        :class:`Task` or an error string (``agent 'ID' is terminated``); an agent
        the cluster did not spawn gets an inbox on its host. With ``claimed_by`` the tasks
        start out running, owned by that worker. Hosts stamp their own enqueue
        times, so tasks of one dispatch on different hosts are claimed in no set order.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
            CoordinatorError: Ray failed.
        """
        ids = unique_ids(agent_ids)
        groups = self._by_host(ids)
        results = self._fan_out(groups, lambda h, part: h.dispatch.remote(part, task, claimed_by))
        return self._merge(ids, results)

    def status(self, agent_ids: Sequence[str]) -> dict[str, AgentStatus]:
        """Live status of each agent; unknown IDs get state ``unknown`` and zero counts.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
            CoordinatorError: Ray failed.
        """
        ids = unique_ids(agent_ids)
        groups = self._by_host(ids)
        return self._merge(ids, self._fan_out(groups, lambda h, p: h.status.remote(p)))

    def agents(self, agent_ids: Sequence[str]) -> dict[str, Agent]:
        """The known agents among ``agent_ids``, in input order.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
            CoordinatorError: Ray failed.
        """
        ids = unique_ids(agent_ids)
        groups = self._by_host(ids)
        return self._merge(ids, self._fan_out(groups, lambda h, p: h.agents.remote(p)))

    def claim(self, agent_ids: Sequence[str], worker: str, limit: int) -> list[ClaimedTask]:
        """Take up to ``limit`` queued tasks of these (alive) agents, oldest first.

        Each host claims atomically up to ``limit`` of its own tasks; of those, the
        ``limit`` oldest by enqueue time are kept and the others released at once
        (back at their place in the queue). A task is never claimed twice; while a
        surplus is being released another worker may find it taken.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
            CoordinatorError: Ray failed.
        """
        groups = self._by_host(unique_ids(agent_ids))
        if limit < 1:
            return []
        parts: list[list[tuple[float, ClaimedTask]]] = self._fan_out(
            groups, lambda h, p: h.claim.remote(p, worker, limit)
        )
        # Each part is oldest first already; merge them by enqueue time.
        merged = list(heapq.merge(*parts, key=lambda pair: pair[0]))
        kept = [claimed for _, claimed in merged[:limit]]
        surplus = [claimed.task.task_id for _, claimed in merged[limit:]]
        if surplus:
            self.release(surplus)
        return kept

    def finish(
        self, task_id: str, *, ok: bool, result: Any = None, error: str | None = None
    ) -> None:
        """Record the outcome of a task: ``done`` if ``ok`` else ``failed``.

        ``result`` is stored as JSON (its ``repr`` text when JSON cannot hold it).

        Raises:
            CoordinatorError: no task has this ID, or Ray failed.
        """
        # Only the JSON form travels: what the host stores is what JSON can hold.
        plain = decode_result(encode_result(result))
        handle = self._connect()[host_of(task_id, self.hosts)]
        self._wait([handle.finish.remote(task_id, ok, plain, error)])

    def release(self, task_ids: Sequence[str]) -> None:
        """Put running tasks back in the queue (at their old place); others are ignored.

        Raises:
            InvalidArgumentError: ``task_ids`` is a single string.
            CoordinatorError: Ray failed.
        """
        groups = self._by_host(unique_ids(task_ids, "task_ids"))
        self._fan_out(groups, lambda h, p: h.release.remote(p))

    def running(self, agent_ids: Sequence[str]) -> dict[str, str]:
        """Running tasks of these agents: task ID -> the worker that claimed it.

        Raises:
            InvalidArgumentError: ``agent_ids`` is a single string.
            CoordinatorError: Ray failed.
        """
        groups = self._by_host(unique_ids(agent_ids))
        out: dict[str, str] = {}
        for part in self._fan_out(groups, lambda h, p: h.running.remote(p)):
            out.update(part)
        return out

    def close(self) -> None:
        """Forget the host handles; the next call finds the hosts again.

        Leaves the cluster alone: the host actors and their agents live on, and a
        cluster that ``ray.init`` started in this process stops only with
        ``ray.shutdown()`` or the process (see :meth:`shutdown_hosts`). Never raises.
        """
        with self._lock:
            self._handles = None

    # -- extras -----------------------------------------------------------------

    def task_record(self, task_id: str) -> dict[str, Any] | None:
        """The stored task as a dict (state, result, error, agent_id, times), or None.

        Raises:
            CoordinatorError: Ray failed.
        """
        handle = self._connect()[host_of(task_id, self.hosts)]
        record: dict[str, Any] | None = self._wait([handle.task_record.remote(task_id)])[0]
        return record

    def events(self, agent_id: str) -> list[tuple[str, str]]:
        """Lifecycle hooks handed over for ``agent_id``, oldest first, as (kind, hook text).

        Raises:
            CoordinatorError: Ray failed.
        """
        handle = self._connect()[host_of(agent_id, self.hosts)]
        events: list[tuple[str, str]] = self._wait([handle.events.remote(agent_id)])[0]
        return events

    def agent_ids(self, state: AgentState | None = None) -> list[str]:
        """IDs of every agent of the namespace (optionally only those in ``state``), oldest
        first by spawn time of the driver that spawned them.

        Raises:
            CoordinatorError: Ray failed.
        """
        handles = self._connect()
        parts: list[list[tuple[SpawnKey, str]]] = self._wait(
            [h.agent_ids.remote(state) for h in handles]
        )
        return [agent_id for _, agent_id in sorted(pair for part in parts for pair in part)]

    def execute(
        self,
        claimed: Sequence[ClaimedTask],
        handler: Any,
        *,
        concurrency: int,
        timeout: float | None = None,
        on_outcome: Callable[[MemberOutcome], None] | None = None,
        stop: threading.Event | None = None,
    ) -> tuple[list[MemberOutcome], list[str]]:
        """Run the handler on the cluster: the claimed tasks are split into one batch
        per CPU of the cluster (at most one per task), each batch runs as a Ray task
        on whichever node has room, with ``concurrency`` shared out between batches.

        ``handler`` is a callable (shipped with Ray's pickling) or a
        ``"module:function"`` string imported on the node; a node that cannot
        load it reports an error outcome for each task of its batch. Returns the
        outcomes of finished tasks and the IDs of tasks not finished because
        ``stop`` was set (their batches are cancelled). ``on_outcome`` is called as
        batches finish.

        Raises:
            CoordinatorError: Ray failed (a worker died, the cluster is gone).
        """
        if not claimed:
            return [], []
        self._connect()
        ray = self._ray
        cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
        batches = max(1, min(len(claimed), cpus))
        per_batch = max(1, -(-concurrency // batches))  # the bound is shared, not multiplied
        chunks = [list(claimed[i::batches]) for i in range(batches)]
        remote = _remote(ray, _run_batch)
        refs = {remote.remote(handler, chunk, per_batch, timeout): chunk for chunk in chunks}
        outcomes: list[MemberOutcome] = []
        pending = list(refs)
        while pending:
            if stop is not None and stop.is_set():
                for ref in pending:
                    with contextlib.suppress(Exception):
                        ray.cancel(ref)
                break
            done, pending = ray.wait(pending, num_returns=1, timeout=0.05)
            for ref in done:
                for outcome in self._wait([ref])[0]:
                    outcomes.append(outcome)
                    if on_outcome is not None:
                        on_outcome(outcome)
        finished = {o.task_id for o in outcomes}
        order = {item.task.task_id: i for i, item in enumerate(claimed)}
        outcomes.sort(key=lambda o: order.get(o.task_id or "", len(order)))
        unfinished = [item.task.task_id for item in claimed if item.task.task_id not in finished]
        return outcomes, unfinished

    def shutdown_hosts(self) -> None:
        """Kill the host actors of this namespace: **every agent and task in it is lost**.

        For tests and cleanup. Every ``dalfleet-host-*`` actor of the namespace is
        killed, whatever its count; the next call makes new, empty ones.

        Raises:
            CoordinatorError: the cluster cannot be reached.
        """
        ray = self._ray
        prefix = HOST_NAME.format(index="")
        with self._lock:
            self._init_ray()
            self._handles = None
            for entry in ray.util.list_named_actors(all_namespaces=True):
                if entry["namespace"] != self.namespace or not entry["name"].startswith(prefix):
                    continue
                try:
                    actor = ray.get_actor(entry["name"], namespace=self.namespace)
                except ValueError:  # gone meanwhile
                    continue
                ray.kill(actor, no_restart=True)
