"""The data dalfleet works with: fleets, agents, tasks, reports.

All classes are frozen attrs classes. (Un)structuring to the fleet file lives in
:mod:`dalfleet.convert`, not here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import attrs

__all__ = [
    "Agent",
    "AgentSpec",
    "AgentState",
    "ExportFormat",
    "Fleet",
    "FleetHealth",
    "MemberHealth",
    "MemberOutcome",
    "Revision",
    "RunReport",
    "Task",
]


def _as_list(value: Iterable[str]) -> list[str]:
    return list(value)


@attrs.frozen
class Revision:
    """One entry of a fleet's deployment history (SPEC §6)."""

    revision: int
    task: str
    deployed_at: str
    mold_source: str | None = None
    params: dict[str, str] | None = None


@attrs.frozen
class Fleet:
    """A named roster of agent IDs plus deployment metadata.

    ``extra`` holds keys of the fleet file that dalfleet does not know; they are
    written back unchanged.
    """

    name: str
    member_ids: list[str] = attrs.field(factory=list, converter=_as_list)
    mold_source: str | None = None
    last_deployed_task: str | None = None
    last_deployed_at: str | None = None
    last_create_params: dict[str, str] | None = None
    history: list[Revision] = attrs.field(factory=list)
    extra: dict[str, Any] = attrs.field(factory=dict)

    @property
    def size(self) -> int:
        """Number of members."""
        return len(self.member_ids)


class AgentState(str, enum.Enum):
    """Live state of a member as the coordinator sees it."""

    ALIVE = "alive"
    TERMINATED = "terminated"
    UNKNOWN = "unknown"


@attrs.frozen
class AgentSpec:
    """A mold rendered with create-time params: what a coordinator spawns."""

    name: str
    mold_name: str = ""
    mold_version: str = "1.0"
    agent_type: str = "AI"
    role: str = ""
    capabilities: list[str] = attrs.field(factory=list)
    skills: list[str] = attrs.field(factory=list)
    memory_limit: str | None = None
    learning: bool = False
    communication: bool = False
    coordination: bool = False
    trust_level: str = "sandboxed"
    metadata: dict[str, str] = attrs.field(factory=dict)
    lifecycle: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Agent:
    """A runtime entity owned by a coordinator."""

    agent_id: str
    spec: AgentSpec
    state: AgentState = AgentState.ALIVE

    @property
    def name(self) -> str:
        """The agent's name (``FLEET_i`` for fleet members)."""
        return self.spec.name

    @property
    def metadata(self) -> dict[str, str]:
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
    """What happened to one member's task in a run."""

    agent_id: str
    ok: bool
    status: str  # "queued" | "ok" | "error" | "timeout"
    task_id: str | None = None
    result: Any = None
    error: str | None = None
    duration: float = 0.0
    traceback: str | None = None  # the handler's traceback when it raised


@attrs.frozen
class RunReport:
    """The outcome of running a fleet's deployed task."""

    fleet_name: str
    members_dispatched: int
    errors: list[str] = attrs.field(factory=list)
    task: str | None = None
    outcomes: list[MemberOutcome] = attrs.field(factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0
    executed: bool = False

    @property
    def ok(self) -> bool:
        """True when no member failed."""
        return not self.errors


@attrs.frozen
class MemberHealth:
    """Live state of one member."""

    agent_id: str
    state: AgentState
    pending_tasks: int = 0
    failed_tasks: int = 0
    completed_tasks: int = 0
    last_result_at: float | None = None


@attrs.frozen
class FleetHealth:
    """Health of a fleet: the reference's summary plus live member states."""

    name: str
    member_count: int
    has_mold: bool
    last_deployed_task: str | None
    last_deployed_at: str | None
    status: str  # "ok" | "empty" | "degraded"
    members: list[MemberHealth] = attrs.field(factory=list)

    @property
    def alive_count(self) -> int:
        """Members the coordinator reports alive."""
        return sum(1 for m in self.members if m.state is AgentState.ALIVE)


class ExportFormat(str, enum.Enum):
    """Manifest formats understood by :func:`dalfleet.fleet.export`."""

    K8S = "k8s"
    DOCKER_COMPOSE = "docker-compose"
