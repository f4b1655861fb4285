"""The Ray executor: handlers run on a Ray cluster, in batches.

Ray is only *where handlers run*: agents, tasks and outcomes stay in the
coordinator (an actor's memory is not durable). The claimed tasks are split into
one batch per CPU of the cluster; each batch is one Ray task that runs its
handlers with the :class:`~dalfleet.executor.local.LocalExecutor` of the node it
lands on and sends all its outcomes back at once, so results come back (and are
recorded, with ``finish_many``) in batches, with no round trip per task.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

from dalfleet.coordinator.base import ClaimedTask
from dalfleet.errors import CoordinatorError, FleetError
from dalfleet.executor.base import (
    DEFAULT_CONCURRENCY,
    Execution,
    Handler,
    OutcomeCallback,
    check_options,
    failed_outcome,
    in_order,
    load_handler,
)
from dalfleet.records import MemberOutcome

__all__ = ["RayExecutor"]

_MISSING_RAY: Final = "the Ray executor needs Ray: pip install 'dalfleet[ray]'"


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

    try:
        call = load_handler(handler)
    except FleetError as exc:  # e.g. the module is not importable on this node
        return [failed_outcome(item, exc, 0.0) for item in items]
    outcomes: list[MemberOutcome] = _node_executor().execute(
        items, call, concurrency=concurrency, timeout=timeout
    )[0]
    return outcomes


_node: list[Any] = []  # the LocalExecutor of this Ray worker process, made once


def _node_executor() -> Any:
    from dalfleet.executor.local import LocalExecutor

    if not _node:
        _node.append(LocalExecutor())
    return _node[0]


_remotes: dict[Any, Any] = {}  # target -> ray.remote(target), made once per process


def _remote(ray: Any, target: Any) -> Any:
    """``ray.remote(target)``, made once per process (Ray registers each one it makes)."""
    if target not in _remotes:
        _remotes[target] = ray.remote(target)
    return _remotes[target]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


class RayExecutor:
    """Runs handlers on a Ray cluster, in batches.

    Args:
        address: the cluster to join: ``"host:port"``, ``"auto"`` (an existing
            cluster found on this machine, else an error) or ``None`` (an existing
            one if found, else Ray **starts a local cluster in this process**, which
            ends with it). Ignored when Ray is already initialized in this process.
        init_kwargs: extra arguments for ``ray.init`` (``num_cpus``, ``runtime_env`` …).

    The cluster is joined on first use. A handler is a callable (shipped with
    Ray's pickling) or a ``"module:function"`` string imported on the node; a node
    that cannot load it reports a failed outcome for each task of its batch.
    Context variables (``with fleet.using(...)``) do not travel to the cluster.

    Raises:
        CoordinatorError: Ray is not installed.
    """

    def __init__(self, address: str | None = None, *, init_kwargs: Mapping[str, Any] | None = None):
        self._ray = _import_ray()
        self.address = address
        self.init_kwargs = dict(init_kwargs or {})
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r})"

    def _connect(self) -> None:
        """Join the cluster (once per process).

        Raises:
            CoordinatorError: the cluster cannot be reached.
        """
        ray = self._ray
        with self._lock:
            if ray.is_initialized():
                return
            try:
                ray.init(address=self.address, ignore_reinit_error=True, **self.init_kwargs)
            except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError …
                where = "a local Ray cluster" if self.address is None else repr(self.address)
                raise CoordinatorError(f"cannot connect to {where}: {_one_line(exc)}") from exc

    def _get(self, ref: Any) -> list[MemberOutcome]:
        """The outcomes of one finished batch.

        Raises:
            CoordinatorError: Ray failed (a worker died, the cluster is gone).
        """
        exceptions = self._ray.exceptions
        try:
            outcomes: list[MemberOutcome] = self._ray.get(ref)
        except (exceptions.RayError, ConnectionError) as exc:
            raise CoordinatorError(f"the Ray cluster failed: {_one_line(exc)}") from exc
        return outcomes

    def execute(
        self,
        claimed: Sequence[ClaimedTask],
        handler: Handler | str,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float | None = None,
        on_outcome: OutcomeCallback | None = None,
        stop: threading.Event | None = None,
    ) -> Execution:
        """Run the handler on the cluster, one batch per CPU (at most one per task),
        ``concurrency`` shared out between the batches; see
        :meth:`Executor.execute <dalfleet.executor.base.Executor.execute>`.

        When ``stop`` is set, batches still running are cancelled and their tasks
        returned as unfinished.

        Raises:
            InvalidArgumentError: ``concurrency`` < 1 or ``timeout`` <= 0.
            CoordinatorError: Ray failed (a worker died, the cluster is gone).
        """
        check_options(concurrency, timeout)
        if not claimed:
            return [], []
        self._connect()
        ray = self._ray
        cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
        batches = max(1, min(len(claimed), cpus))
        per_batch = max(1, -(-concurrency // batches))  # the bound is shared, not multiplied
        chunks = [list(claimed[i::batches]) for i in range(batches)]
        remote = _remote(ray, _run_batch)
        pending = [remote.remote(handler, chunk, per_batch, timeout) for chunk in chunks]
        outcomes: list[MemberOutcome] = []
        try:
            while pending:
                if stop is not None and stop.is_set():
                    break
                done, pending = ray.wait(
                    pending, num_returns=1, timeout=None if stop is None else 0.05
                )
                for ref in done:
                    for outcome in self._get(ref):
                        outcomes.append(outcome)
                        if on_outcome is not None:
                            on_outcome(outcome)
        finally:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref)
        return in_order(outcomes, claimed)

    def close(self) -> None:
        """Nothing to release: the cluster connection lives as long as the process
        (``ray.shutdown()`` ends it). Never raises."""
