"""The Executor protocol: where handlers run.

An executor knows handlers and claimed tasks, nothing of fleets or of the
coordinator: it runs ``handler(agent, task)`` for each claimed task and hands
back one :class:`~dalfleet.models.MemberOutcome` per task. Recording outcomes
(once, in batches), renewing leases and putting unfinished tasks back is the
caller's job (:mod:`dalfleet.run`). Any executor works with any coordinator.

Implementations: :class:`~dalfleet.executor.local.LocalExecutor` (asyncio with
one bounded pool of threads for sync handlers) and
:class:`~dalfleet.executor.ray.RayExecutor` (batches on a Ray cluster).

Outcome rules every executor follows:

* Any exception a handler raises, ``SystemExit`` included, whatever its text
  (an exception whose ``str()`` raises, text that is not valid UTF-8), is that
  task's failed outcome (status ``error``) with the traceback text kept in
  ``MemberOutcome.traceback``; nothing else is affected.
* Status ``timeout`` (and the text ``timed out after Ns``) only when the
  executor's own per-task timeout fired, never for a handler's own ``TimeoutError``.
* ``KeyboardInterrupt`` is the user's, not a task's: it stops the batch and is
  raised to the caller, which puts the unfinished tasks back.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
import traceback as tb
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from dalfleet.coordinator.base import ClaimedTask, storable_text
from dalfleet.defaults import DEFAULT_CONCURRENCY, LOGGER_NAME  # DEFAULT_CONCURRENCY re-exported
from dalfleet.errors import HandlerError, InvalidArgumentError, quote
from dalfleet.models import OutcomeStatus
from dalfleet.records import Agent, MemberOutcome, Task

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Execution",
    "Executor",
    "Handler",
    "OutcomeCallback",
    "check_options",
    "error_text",
    "failed_outcome",
    "load_handler",
    "log",
]

Handler = Callable[[Agent, Task], Any]
"""``handler(agent, task) -> result``: sync, or async (returns an awaitable)."""

OutcomeCallback = Callable[[MemberOutcome], None]
"""Called once per finished task, as it finishes, from any thread; must be quick."""

Execution = tuple[list[MemberOutcome], list[str]]
"""What an executor returns: outcomes of finished tasks (input order), and the IDs
of tasks that did not finish because the batch was stopped."""

log = logging.getLogger(LOGGER_NAME)
"""The library's logger: handler failures are logged here (WARNING, with traceback)."""
log.addHandler(logging.NullHandler())  # silent unless the application configures logging


@runtime_checkable
class Executor(Protocol):
    """Runs handlers for claimed tasks, at most ``concurrency`` at once."""

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
        """Run ``handler(task.agent, task.task)`` for every claimed task.

        ``handler`` is a callable or a ``"module:function"`` string. Each task runs
        at most ``timeout`` seconds (None: no limit). ``on_outcome`` gets each
        outcome as it finishes. When ``stop`` is set the executor stops waiting:
        tasks not finished by then are returned as unfinished (their handlers may
        still be running somewhere; they are abandoned, not interrupted).

        Returns ``(outcomes, unfinished_task_ids)``; handler failures and timeouts
        are outcomes (see the module docstring), never exceptions.

        Raises:
            InvalidArgumentError: ``concurrency`` < 1 or ``timeout`` <= 0.
            HandlerError: a handler string cannot be loaded here.
            KeyboardInterrupt: Ctrl-C (or a handler raising it).
            CoordinatorError: a remote executor's cluster failed.
        """
        ...

    def close(self) -> None:
        """Release threads or connections; the executor may be used again after.

        Never raises.
        """
        ...


def check_options(concurrency: int, timeout: float | None) -> None:
    """Check the bounds every executor takes.

    Raises:
        InvalidArgumentError: ``concurrency`` is not an int >= 1, or ``timeout`` is
            not None and not a number > 0.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidArgumentError(f"concurrency must be >= 1 (got {quote(concurrency)})")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
    ):
        raise InvalidArgumentError(f"timeout must be > 0 seconds (got {quote(timeout)})")


def load_handler(handler: Handler | str) -> Handler:
    """Return ``handler`` itself, or the function a ``"module:function"`` string names.

    Raises:
        HandlerError: the string is malformed, the module cannot be imported, the
            attribute does not exist, or it is not callable.
    """
    if callable(handler):
        return handler
    if not isinstance(handler, str):
        raise HandlerError(f"handler must be a callable or 'module:function', not {quote(handler)}")
    module_name, sep, attr_path = handler.partition(":")
    if not sep or not module_name.strip() or not attr_path.strip():
        raise HandlerError(f"invalid handler {quote(handler)}: expected 'module:function'")
    try:
        target: Any = importlib.import_module(module_name.strip())
    except Exception as exc:
        raise HandlerError(
            f"cannot load handler {quote(handler)}: importing {module_name} failed "
            f"({type(exc).__name__}: {error_text(exc)})"
        ) from None
    for part in attr_path.strip().split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise HandlerError(
                f"cannot load handler {quote(handler)}: {module_name} has no attribute "
                f"{quote(attr_path)}"
            ) from None
    if not callable(target):
        raise HandlerError(
            f"cannot load handler {quote(handler)}: {quote(attr_path)} is not callable"
        )
    loaded: Handler = target
    return loaded


def error_text(exc: BaseException) -> str:
    """``TypeName: message`` on one line, valid UTF-8, for any exception.

    An exception whose ``str()`` raises gets a note saying so. Never raises.
    """
    name = type(exc).__name__
    try:
        text = str(exc)
    except BaseException:  # a broken __str__ must not lose the outcome
        return f"{name} (its message could not be rendered)"
    if not isinstance(text, str):  # pragma: no cover - str() always returns str
        return name
    text = storable_text(" ".join(text.split()))
    return f"{name}: {text}" if text else name


def traceback_text(exc: BaseException) -> str:
    """The formatted traceback of ``exc``, valid UTF-8. Never raises."""
    try:
        text = "".join(tb.format_exception(type(exc), exc, exc.__traceback__))
    except BaseException:  # formatting calls str() too
        text = f"{type(exc).__name__} (traceback could not be rendered)\n"
    return storable_text(text)


def failed_outcome(
    item: ClaimedTask, exc: BaseException, duration: float, *, worker: str | None = None
) -> MemberOutcome:
    """The failed outcome of ``item`` whose handler raised ``exc``; logs it.

    Never raises.
    """
    outcome = MemberOutcome(
        agent_id=item.agent.agent_id,
        ok=False,
        status=OutcomeStatus.ERROR,
        task_id=item.task.task_id,
        error=error_text(exc),
        duration=duration,
        traceback=traceback_text(exc),
    )
    with contextlib.suppress(Exception):  # a broken log handler must not lose the outcome
        log.warning(
            "handler failed for agent %s, task %s: %s\n%s",
            storable_text(item.agent.agent_id),
            item.task.task_id,
            outcome.error,
            outcome.traceback,
        )
    return outcome


def timeout_outcome(item: ClaimedTask, timeout: float, duration: float) -> MemberOutcome:
    """The outcome of ``item`` stopped by the executor's own ``timeout``. Never raises."""
    return MemberOutcome(
        agent_id=item.agent.agent_id,
        ok=False,
        status="timeout",
        task_id=item.task.task_id,
        error=f"timed out after {timeout:g}s",
        duration=duration,
    )


def ok_outcome(item: ClaimedTask, result: Any, duration: float) -> MemberOutcome:
    """The successful outcome of ``item``. Never raises."""
    return MemberOutcome(
        agent_id=item.agent.agent_id,
        ok=True,
        status=OutcomeStatus.OK,
        task_id=item.task.task_id,
        result=result,
        duration=duration,
    )


def in_order(outcomes: Sequence[MemberOutcome], claimed: Sequence[ClaimedTask]) -> Execution:
    """``outcomes`` sorted in the order of ``claimed``, and the IDs without one.

    Never raises.
    """
    order = {item.task.task_id: i for i, item in enumerate(claimed)}
    done = sorted(outcomes, key=lambda o: order.get(o.task_id or "", len(order)))
    finished = {o.task_id for o in done}
    return done, [i.task.task_id for i in claimed if i.task.task_id not in finished]
