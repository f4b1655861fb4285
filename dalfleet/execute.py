"""Executing tasks with a handler: bounded concurrency, per-task timeout, one outcome each.

A handler is a Python callable, sync or async, or a ``"module:function"`` string,
called as ``handler(agent, task)``. Async handlers run on an event loop; sync
handlers run on daemon threads, at most the same bound at once. One member's failure or
timeout never stops the others. Nothing from a mold or a task is evaluated:
the task is data handed to the handler the caller chose.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import inspect
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from dalfleet.coordinator.base import ClaimedTask
from dalfleet.defaults import DEFAULT_CONCURRENCY
from dalfleet.errors import HandlerError
from dalfleet.models import Agent, MemberOutcome, Task

__all__ = ["DEFAULT_CONCURRENCY", "Handler", "execute", "load_handler"]

Handler = Callable[[Agent, Task], Any]
_T = TypeVar("_T")


def load_handler(handler: Handler | str) -> Handler:
    """Return ``handler`` itself, or the function a ``"module:function"`` string names.

    Raises:
        HandlerError: the string is malformed, the module cannot be imported, the
            attribute does not exist, or it is not callable.
    """
    if callable(handler):
        return handler
    if not isinstance(handler, str):
        raise HandlerError(f"handler must be a callable or 'module:function', not {handler!r}")
    module_name, sep, attr_path = handler.partition(":")
    if not sep or not module_name.strip() or not attr_path.strip():
        raise HandlerError(f"invalid handler '{handler}': expected 'module:function'")
    try:
        target: Any = importlib.import_module(module_name.strip())
    except Exception as exc:
        raise HandlerError(
            f"cannot load handler '{handler}': importing {module_name} failed "
            f"({type(exc).__name__}: {exc})"
        ) from None
    for part in attr_path.strip().split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise HandlerError(
                f"cannot load handler '{handler}': {module_name} has no attribute '{attr_path}'"
            ) from None
    if not callable(target):
        raise HandlerError(f"cannot load handler '{handler}': '{attr_path}' is not callable")
    loaded: Handler = target
    return loaded


def _is_async(handler: Handler) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - async callable objects
    )


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _execute_async(
    claimed: Sequence[ClaimedTask],
    handler: Handler,
    concurrency: int,
    timeout: float | None,
    on_outcome: Callable[[MemberOutcome], None] | None,
    stop: threading.Event | None,
) -> tuple[list[MemberOutcome | None], list[str]]:
    loop = asyncio.get_running_loop()
    semaphore = asyncio.Semaphore(concurrency)
    is_async = _is_async(handler)
    outcomes: list[MemberOutcome | None] = [None] * len(claimed)

    async def call(item: ClaimedTask) -> Any:
        if is_async:
            result = handler(item.agent, item.task)
        else:
            result = await _in_daemon_thread(
                loop, functools.partial(handler, item.agent, item.task)
            )
        if inspect.isawaitable(result):
            result = await result
        return result

    async def one(index: int, item: ClaimedTask) -> None:
        async with semaphore:
            started = time.perf_counter()
            try:
                if timeout is not None:
                    result = await asyncio.wait_for(call(item), timeout)
                else:
                    result = await call(item)
            except asyncio.TimeoutError:
                outcome = MemberOutcome(
                    agent_id=item.agent.agent_id,
                    ok=False,
                    status="timeout",
                    task_id=item.task.task_id,
                    error=f"timed out after {timeout:g}s",
                    duration=time.perf_counter() - started,
                )
            except Exception as exc:
                outcome = MemberOutcome(
                    agent_id=item.agent.agent_id,
                    ok=False,
                    status="error",
                    task_id=item.task.task_id,
                    error=_error_text(exc),
                    duration=time.perf_counter() - started,
                )
            else:
                outcome = MemberOutcome(
                    agent_id=item.agent.agent_id,
                    ok=True,
                    status="ok",
                    task_id=item.task.task_id,
                    result=result,
                    duration=time.perf_counter() - started,
                )
            outcomes[index] = outcome
            if on_outcome is not None:
                on_outcome(outcome)

    jobs = [asyncio.ensure_future(one(i, item)) for i, item in enumerate(claimed)]
    if stop is None:
        await asyncio.gather(*jobs)
    else:
        pending = set(jobs)
        while pending and not stop.is_set():
            _done, pending = await asyncio.wait(pending, timeout=0.05)
        for job in pending:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
    unfinished = [claimed[i].task.task_id for i, o in enumerate(outcomes) if o is None]
    return outcomes, unfinished


def _in_daemon_thread(loop: asyncio.AbstractEventLoop, call: Callable[[], Any]) -> Any:
    """Run a sync handler on its own daemon thread; a future for its result.

    Not a ThreadPoolExecutor: Python joins pool threads at exit, so a handler that
    overran its timeout, or was abandoned by a stopping worker, would keep the
    process alive until it returned. A daemon thread cannot be interrupted either,
    but it never holds the process.
    """
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():  # cancelled: timed out or stopping
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        try:
            outcome = (True, call())
        except BaseException as exc:  # handed to the awaiting coroutine
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop may be closed by now
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=target, name="dalfleet-task", daemon=True).start()
    return future


def _run_coroutine(factory: Callable[[], Any]) -> Any:
    """Run a coroutine to completion, also from inside a running loop (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(factory())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="dalfleet-run")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def execute(
    claimed: Sequence[ClaimedTask],
    handler: Handler,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float | None = None,
    on_outcome: Callable[[MemberOutcome], None] | None = None,
    stop: threading.Event | None = None,
) -> tuple[list[MemberOutcome], list[str]]:
    """Run ``handler(agent, task)`` for every claimed task, at most ``concurrency`` at once.

    Returns the outcomes of the tasks that finished (in input order) and the IDs of
    tasks that did not start or finish because ``stop`` was set (the caller puts
    them back in the queue). ``on_outcome`` is called once per finished task as
    it finishes. Handler exceptions and timeouts become outcomes, never raise.

    Raises:
        InvalidArgumentError: ``concurrency`` < 1 or ``timeout`` <= 0.
    """
    from dalfleet.errors import InvalidArgumentError

    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidArgumentError(f"concurrency must be >= 1 (got {concurrency!r})")
    if timeout is not None and not timeout > 0:
        raise InvalidArgumentError(f"timeout must be > 0 seconds (got {timeout!r})")
    if not claimed:
        return [], []
    outcomes, unfinished = _run_coroutine(
        lambda: _execute_async(claimed, handler, concurrency, timeout, on_outcome, stop)
    )
    return [o for o in outcomes if o is not None], unfinished
