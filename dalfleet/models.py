"""The data dalfleet works with: fleets, agents, tasks, reports.

Fleets and their revisions are defined here, with the building blocks every
value uses (:class:`FrozenDict`, the statuses); agents, tasks and the reports of
runs and health checks are defined in :mod:`dalfleet.records` and offered here
too (imported on first use, so that a command on the fleet file alone does not
define them).

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

from dalfleet import _lazy
from dalfleet.defaults import HISTORY_LIMIT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dalfleet.records import Agent as Agent
    from dalfleet.records import AgentSpec as AgentSpec
    from dalfleet.records import FleetHealth as FleetHealth
    from dalfleet.records import MemberAdded as MemberAdded
    from dalfleet.records import MemberHealth as MemberHealth
    from dalfleet.records import MemberOutcome as MemberOutcome
    from dalfleet.records import RunReport as RunReport
    from dalfleet.records import Task as Task

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


__getattr__, __dir__ = _lazy.attach(
    __name__,
    dict.fromkeys(
        (
            "Agent",
            "AgentSpec",
            "FleetHealth",
            "MemberAdded",
            "MemberHealth",
            "MemberOutcome",
            "RunReport",
            "Task",
        ),
        "dalfleet.records",
    ),
)
