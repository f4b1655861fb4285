"""The values operations hand back besides fleets: agents and their tasks, what a
run did to each member, a fleet's health, what ``ensure_member`` did.

Like :mod:`dalfleet.models` (which also offers every name here), each is a
frozen, slotted attrs class whose fields are themselves immutable. They live in
a module of their own because a command that only reads or writes the fleet file
(``deploy``, ``show``) needs none of them: defining them is a few milliseconds of
every such command's start-up.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from dalfleet.defaults import DEFAULT_TRUST_LEVEL
from dalfleet.models import (
    AgentState,
    Fleet,
    FrozenDict,
    HealthStatus,
    OutcomeStatus,
    _short,
    _str_map,
    _str_tuple,
    freeze,
)

__all__ = [
    "Agent",
    "AgentSpec",
    "FleetHealth",
    "MemberAdded",
    "MemberHealth",
    "MemberOutcome",
    "RunReport",
    "Task",
]


# attrs converters: a tuple passes through as it is.


def _member_healths(value: Iterable[MemberHealth]) -> tuple[MemberHealth, ...]:
    return value if type(value) is tuple else tuple(value)


def _outcomes(value: Iterable[MemberOutcome]) -> tuple[MemberOutcome, ...]:
    return value if type(value) is tuple else tuple(value)


# attrs converters to the enums: a member passes through as it is, without the enum's
# ``__call__`` (a health report of 1M members builds a million states).


def _agent_state(value: Any) -> AgentState:
    return value if type(value) is AgentState else AgentState(value)


def _outcome_status(value: Any) -> OutcomeStatus:
    return value if type(value) is OutcomeStatus else OutcomeStatus(value)


def _health_status(value: Any) -> HealthStatus:
    return value if type(value) is HealthStatus else HealthStatus(value)


@attrs.frozen
class MemberAdded:
    """What :meth:`~dalfleet.client.Client.ensure_member` did: the fleet after the
    call, and whether ``agent_id`` was added (False: it was already a member, and
    nothing changed)."""

    fleet: Fleet
    agent_id: str
    added: bool


@attrs.frozen
class AgentSpec:
    """A mold rendered with create-time params: what a coordinator spawns."""

    name: str
    mold_name: str = ""
    mold_version: str = "1.0"
    agent_type: str = "AI"
    role: str = ""
    capabilities: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    skills: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    memory_limit: str | None = None
    learning: bool = False
    communication: bool = False
    coordination: bool = False
    trust_level: str = DEFAULT_TRUST_LEVEL
    metadata: FrozenDict[str, str] = attrs.field(factory=FrozenDict, converter=_str_map)
    lifecycle: FrozenDict[str, str] = attrs.field(factory=FrozenDict, converter=_str_map)


@attrs.frozen
class Agent:
    """A runtime entity owned by a coordinator."""

    agent_id: str
    spec: AgentSpec
    state: AgentState = attrs.field(default=AgentState.ALIVE, converter=_agent_state)

    @property
    def name(self) -> str:
        """The agent's name (``FLEET_i`` for fleet members)."""
        return self.spec.name

    @property
    def metadata(self) -> FrozenDict[str, str]:
        """The agent's metadata (mold name and version, create-time params)."""
        return self.spec.metadata


@attrs.frozen
class Task:
    """One task dispatched to one agent."""

    task_id: str
    description: str
    priority: str = "medium"
    coordination_type: str = "task_distribution"
    fleet: str | None = None


@attrs.frozen
class MemberOutcome:
    """What happened to one member's task in a run.

    ``result`` is the handler's return value, frozen (lists become tuples, dicts
    :class:`FrozenDict`).
    """

    agent_id: str
    ok: bool
    status: OutcomeStatus = attrs.field(converter=_outcome_status)
    task_id: str | None = None
    result: Any = attrs.field(default=None, converter=freeze)
    error: str | None = None
    duration: float = 0.0
    traceback: str | None = None  # the handler's traceback when it raised


@attrs.frozen(repr=False)
class RunReport:
    """The outcome of running a fleet's deployed task."""

    fleet_name: str
    members_dispatched: int
    errors: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    task: str | None = None
    outcomes: tuple[MemberOutcome, ...] = attrs.field(default=(), converter=_outcomes)
    started_at: float = 0.0
    finished_at: float = 0.0
    executed: bool = False
    #: Tasks the members had queued or running before this run added its own.
    already_pending: int = 0

    @property
    def ok(self) -> bool:
        """True when no member failed."""
        return not self.errors

    def __repr__(self) -> str:
        return (
            f"RunReport(fleet_name={_short(self.fleet_name)!r}, "
            f"members_dispatched={self.members_dispatched}, errors={len(self.errors)}, "
            f"task={_short(self.task)!r}, executed={self.executed})"
        )

    def _repr_html_(self) -> str:
        from dalfleet import display

        return display.report_html(self)


@attrs.frozen
class MemberHealth:
    """Live state of one member."""

    agent_id: str
    state: AgentState = attrs.field(converter=_agent_state)
    pending_tasks: int = 0
    failed_tasks: int = 0
    completed_tasks: int = 0
    last_result_at: float | None = None


@attrs.frozen(repr=False)
class FleetHealth:
    """Health of a fleet: the reference's summary plus live member states, and the
    fleet's tasks by state (``pending_tasks`` … ``failed_tasks``, summed over members;
    a member's own ``pending_tasks`` counts its queued and running tasks together)."""

    name: str
    member_count: int
    has_mold: bool
    last_deployed_task: str | None
    last_deployed_at: str | None
    status: HealthStatus = attrs.field(converter=_health_status)
    members: tuple[MemberHealth, ...] = attrs.field(default=(), converter=_member_healths)
    pending_tasks: int = 0
    running_tasks: int = 0
    completed_tasks: int = 0
    failed_tasks: int = 0

    @property
    def alive_count(self) -> int:
        """Members the coordinator reports alive."""
        return sum(1 for m in self.members if m.state is AgentState.ALIVE)

    def __repr__(self) -> str:
        return (
            f"FleetHealth(name={_short(self.name)!r}, status={self.status.value!r}, "
            f"member_count={self.member_count}, alive={self.alive_count}, "
            f"has_mold={self.has_mold}, last_deployed_task={_short(self.last_deployed_task)!r}, "
            f"pending_tasks={self.pending_tasks}, failed_tasks={self.failed_tasks})"
        )

    def _repr_html_(self) -> str:
        from dalfleet import display

        return display.health_html(self)
