"""Where handlers run: the :class:`Executor` protocol and its implementations.

* :class:`~dalfleet.executor.local.LocalExecutor`: this process (asyncio + a
  bounded pool of threads for sync handlers); the default.
* :class:`~dalfleet.executor.ray.RayExecutor`: a Ray cluster, in batches
  (``pip install 'dalfleet[ray]'``; imported only when used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dalfleet.executor.base import DEFAULT_CONCURRENCY, Executor, Handler, load_handler

if TYPE_CHECKING:
    from dalfleet.executor.local import LocalExecutor
    from dalfleet.executor.ray import RayExecutor

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Executor",
    "Handler",
    "LocalExecutor",
    "RayExecutor",
    "load_handler",
]


def __getattr__(name: str) -> Any:
    # asyncio (and Ray) load when an executor is first used, not with the CLI.
    if name == "LocalExecutor":
        from dalfleet.executor.local import LocalExecutor

        return LocalExecutor
    if name == "RayExecutor":
        from dalfleet.executor.ray import RayExecutor

        return RayExecutor
    raise AttributeError(f"module 'dalfleet.executor' has no attribute {name!r}")
