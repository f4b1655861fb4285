"""The data dalfleet works with: fleets, agents, tasks, reports.

Every class is a frozen, slotted attrs class whose fields are themselves
immutable: sequences are tuples and mappings are :class:`FrozenDict`. A value
handed out can therefore never alias a cache or change what is stored, and every
model is hashable. Converters accept what callers naturally pass (lists, dicts,
plain strings for statuses), so ``Fleet(name="w", member_ids=["a"])`` works.

(Un)structuring to the fleet file, ``--json`` documents and DAL maps lives in
:mod:`dalfleet.convert`, not here.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

import attrs

from dalfleet.defaults import DEFAULT_TRUST_LEVEL, HISTORY_LIMIT

__all__ = [
    "Agent",
    "AgentSpec",
    "AgentState",
    "DisplayList",
    "ExportFormat",
    "Fleet",
    "FleetHealth",
    "FrozenDict",
    "HealthStatus",
    "MemberAdded",
    "MemberHealth",
    "MemberOutcome",
    "OutcomeStatus",
    "StatusEnum",
    "Revision",
    "RunReport",
    "Task",
    "freeze",
    "freeze_params",
    "with_deployment",
]

_K = TypeVar("_K")
_V = TypeVar("_V")
_T = TypeVar("_T")

#: How many members a repr names before it only counts them.
_REPR_MEMBERS = 3
_REPR_TEXT = 40


class FrozenDict(Mapping[_K, _V]):
    """A read-only, hashable, insertion-ordered mapping.

    Compares equal to any mapping with the same items (a ``dict`` included), so
    ``fleet.last_create_params == {"env": "prod"}`` holds. Hashable when its values
    are (the models only put immutable values in one).
    """

    __slots__ = ("_data", "_hash")

    _data: dict[_K, _V]
    _hash: int | None

    def __init__(self, data: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = (), /) -> None:
        object.__setattr__(self, "_data", dict(data))
        object.__setattr__(self, "_hash", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __getitem__(self, key: _K) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[_K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return self._data == other._data
        if isinstance(other, dict):
            return self._data == other
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        if self._hash is None:
            object.__setattr__(self, "_hash", hash(frozenset(self._data.items())))
        assert self._hash is not None
        return self._hash

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def __reduce__(self) -> tuple[type[FrozenDict[_K, _V]], tuple[dict[_K, _V]]]:
        return (type(self), (self._data,))

    def __or__(self, other: Mapping[_K, _V]) -> FrozenDict[_K, _V]:
        return FrozenDict({**self._data, **other})

    def to_dict(self) -> dict[_K, _V]:
        """A new, mutable ``dict`` with the same items (shallow). Never raises."""
        return dict(self._data)


class DisplayList(list[_T]):
    """A plain ``list`` (of fleets, health values or run reports) that shows as one
    compact HTML table in Jupyter and keeps its plain ``repr`` short (at most 400
    characters, naming the first items). Everything else is ``list``'s own:
    equality, JSON, slicing, mutation."""

    __slots__ = ()

    def __repr__(self) -> str:
        from dalfleet import display

        return display.short_repr(list(self))

    def _repr_html_(self) -> str:
        from dalfleet import display

        return display.list_html(self)


_ATOMS = frozenset({str, int, float, bool})


def freeze(value: Any) -> Any:
    """``value`` with every list, dict and set inside it replaced by a tuple,
    :class:`FrozenDict` or frozenset (other values unchanged).

    Never raises: a value nested too deeply to walk (or whose items cannot be
    frozen) is returned as it is, so recording a handler's odd result never fails.
    """
    if value is None or type(value) in _ATOMS:
        return value  # most results: no walk, no frame for the try
    try:
        return _freeze(value)
    except Exception:  # too deep, or a mapping whose items() raises: keep it as given
        return value


def _freeze(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool, type(None), FrozenDict)):
        return value
    if isinstance(value, Mapping):
        return FrozenDict({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(_freeze(v) for v in value)
    return value


# -- attrs converters: accept lists and dicts, store tuples and FrozenDicts ---------------


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    # A tuple passes through as is; a list is copied in C (1M members in milliseconds).
    return value if type(value) is tuple else tuple(value)


def _str_map(value: Mapping[str, str]) -> FrozenDict[str, str]:
    return value if type(value) is FrozenDict else FrozenDict(value)


def freeze_params(value: Mapping[str, str] | None) -> FrozenDict[str, str] | None:
    """``None``, or ``value`` as a :class:`FrozenDict` (the converter of params fields).

    Never raises.
    """
    return None if value is None else _str_map(value)


def _any_map(value: Mapping[str, Any]) -> FrozenDict[str, Any]:
    frozen: FrozenDict[str, Any] = freeze(value)
    return frozen


def _revisions(value: Iterable[Revision]) -> tuple[Revision, ...]:
    return value if type(value) is tuple else tuple(value)


def _member_healths(value: Iterable[MemberHealth]) -> tuple[MemberHealth, ...]:
    return value if type(value) is tuple else tuple(value)


def _outcomes(value: Iterable[MemberOutcome]) -> tuple[MemberOutcome, ...]:
    return value if type(value) is tuple else tuple(value)


def _short(text: str | None) -> str | None:
    if text is None or len(text) <= _REPR_TEXT:
        return text
    return text[: _REPR_TEXT - 1] + "…"


class StatusEnum(str, enum.Enum):
    """A string-valued enum: compares equal to its value, prints as its value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class AgentState(StatusEnum):
    """Live state of a member as the coordinator sees it."""

    ALIVE = "alive"
    TERMINATED = "terminated"
    UNKNOWN = "unknown"


class HealthStatus(StatusEnum):
    """A fleet's health: ``ok``, ``empty`` (no members, no mold) or ``degraded``
    (some member is not alive)."""

    OK = "ok"
    EMPTY = "empty"
    DEGRADED = "degraded"


class OutcomeStatus(StatusEnum):
    """What happened to one member's task: ``queued`` (dispatched, not run here),
    ``ok``, ``error`` or ``timeout``."""

    QUEUED = "queued"
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"


# attrs converters to the enums: a member passes through as it is, without the enum's
# ``__call__`` (a health report of 1M members builds a million states).


def _agent_state(value: Any) -> AgentState:
    return value if type(value) is AgentState else AgentState(value)


def _outcome_status(value: Any) -> OutcomeStatus:
    return value if type(value) is OutcomeStatus else OutcomeStatus(value)


def _health_status(value: Any) -> HealthStatus:
    return value if type(value) is HealthStatus else HealthStatus(value)


class ExportFormat(StatusEnum):
    """Manifest formats understood by :func:`dalfleet.fleet.export`."""

    K8S = "k8s"
    DOCKER_COMPOSE = "docker-compose"


@attrs.frozen
class Revision:
    """One entry of a fleet's deployment history (SPEC §6)."""

    revision: int
    task: str
    deployed_at: str
    mold_source: str | None = None
    params: FrozenDict[str, str] | None = attrs.field(default=None, converter=freeze_params)


@attrs.frozen(repr=False)
class Fleet:
    """A named roster of agent IDs plus deployment metadata.

    ``extra`` holds keys of the fleet file that dalfleet does not know; they are
    written back unchanged.
    """

    name: str
    member_ids: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    mold_source: str | None = None
    last_deployed_task: str | None = None
    last_deployed_at: str | None = None
    last_create_params: FrozenDict[str, str] | None = attrs.field(
        default=None, converter=freeze_params
    )
    history: tuple[Revision, ...] = attrs.field(default=(), converter=_revisions)
    extra: FrozenDict[str, Any] = attrs.field(factory=FrozenDict, converter=_any_map)

    @property
    def size(self) -> int:
        """Number of members."""
        return len(self.member_ids)

    def __repr__(self) -> str:
        shown = ", ".join(repr(_short(m)) for m in self.member_ids[:_REPR_MEMBERS])
        more = len(self.member_ids) - _REPR_MEMBERS
        members = f"({shown}{', …' if more > 0 else ''}) [{len(self.member_ids)}]"
        return (
            f"Fleet(name={_short(self.name)!r}, members={members}, "
            f"mold_source={_short(self.mold_source)!r}, "
            f"last_deployed_task={_short(self.last_deployed_task)!r})"
        )

    def _repr_html_(self) -> str:
        from dalfleet import display

        return display.fleet_html(self)


def with_deployment(current: Fleet, task: str) -> Fleet:
    """``current`` with ``task`` deployed now and recorded as its next revision (the
    last :data:`~dalfleet.defaults.HISTORY_LIMIT` are kept). Never raises.
    """
    stamp = str(int(time.time()))
    number = current.history[-1].revision + 1 if current.history else 1
    revision = Revision(
        revision=number,
        task=task,
        deployed_at=stamp,
        mold_source=current.mold_source,
        params=current.last_create_params,
    )
    return attrs.evolve(
        current,
        last_deployed_task=task,
        last_deployed_at=stamp,
        history=(*current.history, revision)[-HISTORY_LIMIT:],
    )


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
