"""The local executor: handlers run in this process.

Async handlers run on an asyncio event loop; sync handlers run on one bounded
pool of reused daemon threads (a stuck handler can never keep a stopping process
alive). The caller's :mod:`contextvars` context reaches every handler, so a
``with fleet.using(...)`` block around a run is in force inside its handlers, on
every thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import inspect
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from dalfleet.coordinator.base import ClaimedTask
from dalfleet.executor.base import (
    DEFAULT_CONCURRENCY,
    Execution,
    Handler,
    OutcomeCallback,
    check_options,
    failed_outcome,
    in_order,
    load_handler,
    log,
    ok_outcome,
    timeout_outcome,
)
from dalfleet.records import MemberOutcome

__all__ = ["LocalExecutor"]


class _Job:
    __slots__ = ("abandoned", "call", "future")

    def __init__(self, call: Callable[[], Any]) -> None:
        self.call = call
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.abandoned = False


class _ThreadPool:
    """Daemon threads that take jobs from one queue and are reused.

    At most ``size`` threads run jobs at once, plus one for each job whose caller
    gave up on it (timed out or stopped): such a thread may be stuck for good, and
    must not eat into the bound.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._size = 0
        self._threads = 0
        self._idle = 0
        self._waiting = 0  # jobs queued and not yet taken by a thread
        self._abandoned = 0

    def submit(self, call: Callable[[], Any], size: int) -> _Job:
        job = _Job(call)
        with self._lock:
            self._size = max(self._size, size)
            self._waiting += 1
            # A thread for every job no idle thread will take. Comparing with the
            # jobs still queued (not "is any thread idle") matters when many jobs
            # come at once: a thread just started counts as idle until it takes its
            # first job, and must not stand for all the others - the pool would
            # then run a handful of jobs at a time instead of ``size``.
            start = self._waiting > self._idle and self._threads < self._size + self._abandoned
            if start:
                self._threads += 1
                self._idle += 1  # counted as idle until it takes its first job
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._work, name="dalfleet-handler", daemon=True).start()
        return job

    def abandon(self, job: _Job) -> None:
        with self._lock:
            if not job.abandoned and not job.future.done():
                job.abandoned = True
                self._abandoned += 1

    def shutdown(self) -> None:
        with self._lock:
            idle = self._idle
        for _ in range(idle):
            self._jobs.put(None)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
                if job is not None:
                    self._waiting -= 1
            if job is None:
                with self._lock:
                    self._threads -= 1
                return
            if job.future.set_running_or_notify_cancel():
                try:
                    result = job.call()
                except BaseException as exc:  # handed to the awaiting coroutine
                    job.future.set_exception(exc)
                else:
                    job.future.set_result(result)
            with self._lock:
                if job.abandoned:
                    self._abandoned -= 1
                self._idle += 1


def _outcome_of(
    context: contextvars.Context, handler: Handler, item: ClaimedTask
) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, exception)``: the exception travels as a value,
    since a future converts some (``TimeoutError``) into new ones without traceback."""
    try:
        return True, context.run(handler, item.agent, item.task)
    except BaseException as exc:  # handed to the awaiting coroutine as is
        return False, exc


def _is_async(handler: Handler) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - async callable objects
    )


class LocalExecutor:
    """Runs handlers in this process: asyncio for async ones, a thread pool for sync ones.

    The pool is made on first use, reused by every later batch and grows to the
    largest ``concurrency`` asked for. Its threads are daemons, so a handler that
    never returns does not keep the process alive.
    """

    def __init__(self) -> None:
        self._pool = _ThreadPool()

    def __repr__(self) -> str:
        return "LocalExecutor()"

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
        """Run ``handler(agent, task)`` for every claimed task, at most ``concurrency``
        at once, each bounded by ``timeout`` seconds.

        See :meth:`Executor.execute <dalfleet.executor.base.Executor.execute>`.

        Raises:
            InvalidArgumentError: ``concurrency`` < 1 or ``timeout`` <= 0.
            HandlerError: a handler string cannot be loaded.
            KeyboardInterrupt: Ctrl-C, or a handler raising it.
        """
        check_options(concurrency, timeout)
        call = load_handler(handler)
        if not claimed:
            return [], []
        context = contextvars.copy_context()
        # Sync handlers without a timer run as chains on the pool: see _chained.
        batch = self._chained if timeout is None and not _is_async(call) else self._batch
        outcomes, interrupt = _run_coroutine(
            context,
            lambda: batch(claimed, call, context, concurrency, timeout, on_outcome, stop),
        )
        if interrupt is not None:
            raise interrupt
        return in_order(outcomes, claimed)

    def close(self) -> None:
        """Let the idle threads of the pool end; busy ones end when their handler
        returns. The executor can still be used. Never raises."""
        self._pool.shutdown()

    async def _batch(
        self,
        claimed: Sequence[ClaimedTask],
        handler: Handler,
        context: contextvars.Context,
        concurrency: int,
        timeout: float | None,
        on_outcome: OutcomeCallback | None,
        stop: threading.Event | None,
    ) -> tuple[list[MemberOutcome], KeyboardInterrupt | None]:
        """The outcomes delivered, and the Ctrl-C that stopped the batch (raised by
        the caller once the loop is closed, so no task is left holding it)."""
        semaphore = asyncio.Semaphore(concurrency)
        is_async = _is_async(handler)
        outcomes: list[MemberOutcome] = []
        interrupts: list[KeyboardInterrupt] = []
        halted = [False]  # once set, nothing more is delivered or started

        async def guarded(item: ClaimedTask, jobs: list[_Job]) -> MemberOutcome:
            started = time.perf_counter()
            try:
                if is_async:
                    result = handler(item.agent, item.task)
                else:
                    # One copy of the caller's context per call: a context can be
                    # entered by one thread at a time.
                    job = self._pool.submit(
                        lambda: _outcome_of(context.copy(), handler, item), concurrency
                    )
                    jobs.append(job)
                    ok, result = await asyncio.wrap_future(job.future)
                    if not ok:
                        raise result
                if inspect.isawaitable(result):
                    result = await result
            except KeyboardInterrupt:
                raise  # Ctrl-C is the user's, not this task's
            except BaseException as exc:  # SystemExit too: one member's failure
                return failed_outcome(item, exc, time.perf_counter() - started)
            return ok_outcome(item, result, time.perf_counter() - started)

        def deliver(outcome: MemberOutcome) -> None:
            if halted[0]:
                return  # the caller gives this task back
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)

        def abandon(jobs: list[_Job]) -> None:
            for job in jobs:
                self._pool.abandon(job)

        async def one(item: ClaimedTask) -> None:
            async with semaphore:
                if halted[0]:
                    return
                started = time.perf_counter()
                jobs: list[_Job] = []
                try:
                    if timeout is None:  # no timer, so no second task to race against it
                        outcome = await guarded(item, jobs)
                    else:
                        inner = asyncio.ensure_future(guarded(item, jobs))
                        try:
                            done, _ = await asyncio.wait({inner}, timeout=timeout)
                        finally:
                            if not inner.done():
                                inner.cancel()
                        if inner in done:
                            outcome = inner.result()
                        else:
                            # Our timer fired (the only way here): a sentinel, not a
                            # TimeoutError that a handler could raise too.
                            abandon(jobs)
                            outcome = timeout_outcome(item, timeout, time.perf_counter() - started)
                except KeyboardInterrupt as exc:
                    interrupts.append(exc)
                    halt()
                    return
                except asyncio.CancelledError:
                    abandon(jobs)
                    raise
                if halted[0]:  # stopped while running: a sync handler may still be busy
                    abandon(jobs)
                deliver(outcome)

        tasks = [asyncio.ensure_future(one(item)) for item in claimed]

        def halt() -> None:
            halted[0] = True
            for task in tasks:
                task.cancel()

        if stop is None:
            await asyncio.wait(tasks)
        else:
            pending: set[asyncio.Task[None]] = set(tasks)
            while pending and not halted[0] and not stop.is_set():
                _, pending = await asyncio.wait(pending, timeout=0.05)
        halt()
        await asyncio.gather(*tasks, return_exceptions=True)
        return list(outcomes), (interrupts[0] if interrupts else None)

    async def _chained(
        self,
        claimed: Sequence[ClaimedTask],
        handler: Handler,
        context: contextvars.Context,
        concurrency: int,
        timeout: float | None,
        on_outcome: OutcomeCallback | None,
        stop: threading.Event | None,
    ) -> tuple[list[MemberOutcome], KeyboardInterrupt | None]:
        """:meth:`_batch` for sync handlers without a timeout: the same outcomes,
        with the event loop off the path from one handler to the next.

        Each pool thread that finishes a task starts the next one itself, so
        ``concurrency`` chains of tasks run back to back; the loop only delivers
        outcomes. Going through the loop (future, wake-up, semaphore, submit)
        between two tasks cost a few milliseconds per wave of handlers, far more
        on a busy machine, where the loop's thread waits for a core. A handler
        whose result is awaitable keeps its slot until the loop has awaited it,
        as in :meth:`_batch`.
        """
        assert timeout is None
        loop = asyncio.get_running_loop()
        outcomes: list[MemberOutcome] = []
        interrupts: list[KeyboardInterrupt] = []
        lock = threading.Lock()
        queued = iter(enumerate(claimed))
        running: dict[int, _Job] = {}  # by position in ``claimed``, to abandon on halt
        halted = [False]  # once set, nothing more is delivered or started
        left = [len(claimed)]
        finished: asyncio.Future[None] = loop.create_future()
        awaiting: set[asyncio.Task[None]] = set()

        def start_next() -> None:  # any thread
            with lock:
                if halted[0]:
                    return
                nxt = next(queued, None)
                if nxt is None:
                    return
                index, item = nxt
                started = time.perf_counter()
                running[index] = self._pool.submit(
                    lambda: run_on_thread(index, item, started), concurrency
                )

        def run_on_thread(index: int, item: ClaimedTask, started: float) -> None:
            # One copy of the caller's context per call: a context can be entered
            # by one thread at a time.
            ok, result = _outcome_of(context.copy(), handler, item)
            # The next task starts here unless the loop must act first: await the
            # result (the slot stays taken meanwhile), or halt on Ctrl-C.
            chained = (
                not inspect.isawaitable(result) if ok else not isinstance(result, KeyboardInterrupt)
            )
            if chained:
                start_next()
            with contextlib.suppress(RuntimeError):  # the loop is gone: the run halted
                loop.call_soon_threadsafe(
                    done, index, item, ok, result, time.perf_counter() - started, chained
                )

        def done(
            index: int, item: ClaimedTask, ok: bool, result: Any, duration: float, chained: bool
        ) -> None:
            with lock:
                running.pop(index, None)
            if halted[0]:
                return  # the caller gives this task back
            if ok and not chained:
                task = loop.create_task(await_result(item, result, duration))
                awaiting.add(task)
                task.add_done_callback(awaiting.discard)
                return
            if ok:
                deliver(ok_outcome(item, result, duration))
            elif isinstance(result, KeyboardInterrupt):
                interrupts.append(result)  # Ctrl-C is the user's, not this task's
                halt()
            else:  # SystemExit too: one member's failure
                deliver(failed_outcome(item, result, duration))

        async def await_result(item: ClaimedTask, result: Any, duration: float) -> None:
            started = time.perf_counter() - duration
            try:
                value = await result
            except KeyboardInterrupt as exc:
                interrupts.append(exc)
                halt()
                return
            except BaseException as exc:
                outcome = failed_outcome(item, exc, time.perf_counter() - started)
            else:
                outcome = ok_outcome(item, value, time.perf_counter() - started)
            start_next()
            deliver(outcome)

        def deliver(outcome: MemberOutcome) -> None:
            if halted[0]:
                return
            outcomes.append(outcome)
            try:
                if on_outcome is not None:
                    on_outcome(outcome)
            except Exception:  # the caller's callback; the batch goes on (as in _batch)
                log.exception("on_outcome raised for task %s", outcome.task_id)
            finally:
                left[0] -= 1
                if left[0] == 0 and not finished.done():
                    finished.set_result(None)

        def halt() -> None:
            with lock:
                halted[0] = True
                jobs = list(running.values())
                running.clear()
            for job in jobs:  # still running: its thread may be stuck for good
                self._pool.abandon(job)
            for task in list(awaiting):
                task.cancel()
            if not finished.done():
                finished.set_result(None)

        try:
            for _ in range(min(concurrency, len(claimed))):
                start_next()
            if stop is None:
                await finished
            else:
                while not finished.done() and not stop.is_set():
                    await asyncio.wait({finished}, timeout=0.05)
        finally:
            halt()
            if awaiting:
                await asyncio.gather(*awaiting, return_exceptions=True)
        return list(outcomes), (interrupts[0] if interrupts else None)


def _run_coroutine(context: contextvars.Context, factory: Callable[[], Any]) -> Any:
    """Run a coroutine to completion in ``context``, also from inside a running loop
    (Jupyter), where it runs on a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = context.run(asyncio.run, factory())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="dalfleet-run")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
