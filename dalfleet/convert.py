"""The one converter between dalfleet's values and plain data.

Everything that turns a model into JSON-ready data, or back, is here: the cattrs
:data:`converter` (made on first use by :func:`get_converter`) and the functions
that use it or stand in for it: the
fleet file (:func:`structure_fleet`, :func:`unstructure_fleet`), ``--json``
documents (:func:`to_json_document`), the DAL maps (:func:`fleet_map`,
:func:`health_map`) and stored agent specs (:func:`spec_to_data`,
:func:`spec_from_data`). Tuples come out as lists,
:class:`~dalfleet.models.FrozenDict` as dicts and enums as their values.

The fleet-file shape is the reference's (SPEC §3): ``mold_source`` always
present, ``last_deployed_task`` / ``last_deployed_at`` / ``last_create_params``
omitted when unset. Keys we do not know are kept in ``Fleet.extra`` and written
back after ours, so a read-modify-write never drops them. Parsing is built for
big rosters: ``member_ids`` is checked with C-level passes (``map``, ``set``) and
copied once into a tuple, never walked element by element in Python. Fleet
entries and revisions as dalfleet writes them are built and written field by
field, without cattrs (which is then never imported by a command that only reads
or writes the fleet file); anything else about a revision is the converter's.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, get_args, get_origin

import attrs

from dalfleet.errors import quote
from dalfleet.models import Fleet, FrozenDict, Revision, StatusEnum

__all__ = [
    "HISTORY_KEY",
    "FleetFormatError",
    "converter",
    "fleet_map",
    "get_converter",
    "health_map",
    "json_default",
    "revision_data",
    "spec_from_data",
    "spec_to_data",
    "structure_fleet",
    "structure_history",
    "to_json_document",
    "unstructure_fleet",
]

#: The fleet-file key of our deployment history (the reference ignores it).
HISTORY_KEY = "dalfleet_history"


class FleetFormatError(ValueError):
    """A fleet entry does not have the fleet-file shape (the store adds the file name)."""


if TYPE_CHECKING:
    import cattrs

    from dalfleet.records import AgentSpec, FleetHealth

    #: The one converter (see :func:`get_converter`). Tuples unstructure to lists so
    #: documents are plain JSON.
    converter: cattrs.Converter


def __getattr__(name: str) -> object:
    """``converter``, made on first use (PEP 562).

    Raises:
        AttributeError: no such name.
    """
    if name == "converter":
        return get_converter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- FrozenDict ----------------------------------------------------------------------------


def _is_frozen_dict(cls: Any) -> bool:
    return cls is FrozenDict or get_origin(cls) is FrozenDict


def _unstructure_frozen(mapping: FrozenDict[Any, Any]) -> dict[Any, Any]:
    converter = get_converter()
    return {k: converter.unstructure(v) for k, v in mapping.items()}


def _structure_frozen(value: Any, cls: Any) -> FrozenDict[Any, Any]:
    args = get_args(cls)
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a mapping, not {type(value).__name__}")
    if not args:
        return FrozenDict(value)
    converter = get_converter()
    return FrozenDict(converter.structure(dict(value), dict[args[0], args[1]]))  # type: ignore[valid-type]


def _enum_value(member: StatusEnum) -> str:
    return str(member.value)


# -- the fleet file ------------------------------------------------------------------------


def _opt_str(key: str, *, numbers: bool = False) -> Callable[[Any, Any], str | None]:
    def hook(value: Any, _type: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
            # last_deployed_at is opaque; a number written by another tool is still a time.
            return str(value)
        raise FleetFormatError(f"{key} must be a string, not {type(value).__name__}")

    return hook


def _members(value: Any, _type: Any) -> tuple[str, ...]:
    # Two C-level passes (types, duplicates) and one copy: a 1M-member roster stays fast.
    if not isinstance(value, list) or not set(map(type, value)) <= {str}:
        raise FleetFormatError("member_ids must be a list of strings")
    if len(set(value)) != len(value):
        seen: set[str] = set()
        for member in value:
            if member in seen:
                raise FleetFormatError(f"member_ids has duplicate ID {quote(member)}")
            seen.add(member)
    return tuple(value)


def _param_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _params(value: Any, _type: Any) -> FrozenDict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in value.items()
    ):
        raise FleetFormatError("last_create_params must be an object of strings")
    return FrozenDict({k: _param_text(v) for k, v in value.items()})


_REVISION_KEYS = frozenset(("revision", "task", "deployed_at", "mold_source", "params"))


def _plain_revision(value: Any) -> Revision | None:
    """The revision a record as dalfleet writes it holds (known keys, exact types);
    None for anything else, which the converter decides."""
    if type(value) is not dict or not value.keys() <= _REVISION_KEYS:
        return None
    number, task, at = value.get("revision"), value.get("task"), value.get("deployed_at")
    mold, params = value.get("mold_source"), value.get("params")
    if type(number) is not int or type(task) is not str or type(at) is not str:
        return None
    if mold is not None and type(mold) is not str:
        return None
    if params is not None and not (
        type(params) is dict and all(type(k) is str and type(v) is str for k, v in params.items())
    ):
        return None
    return Revision(number, task, at, mold, params)


def revision_data(revision: Revision) -> dict[str, Any]:
    """A revision as plain data, every field present (the history file's record).

    Never raises.
    """
    params = revision.params
    return {
        "revision": _plain(revision.revision),
        "task": _plain(revision.task),
        "deployed_at": _plain(revision.deployed_at),
        "mold_source": _plain(revision.mold_source),
        "params": None if params is None else {k: _plain(v) for k, v in params.items()},
    }


def _history(value: Any, _type: Any) -> tuple[Revision, ...]:
    if value == []:
        return ()  # most fleets have none; cattrs costs more than the rest of the entry
    if type(value) is list:
        plain = [_plain_revision(v) for v in value]
        if None not in plain:
            return tuple(plain)  # type: ignore[arg-type]  # no None, checked above
    try:
        revisions: list[Revision] = get_converter().structure(value, list[Revision])
    except Exception as exc:  # cattrs raises a class group; the message is what matters
        raise FleetFormatError(f"{HISTORY_KEY} is malformed ({exc})") from None
    return tuple(revisions)


def structure_history(value: Any) -> tuple[Revision, ...]:
    """A fleet's revisions from the history file's list of records.

    Raises:
        FleetFormatError: the records do not have the history file's shape.
    """
    return _history(value, None)


# Fleet-file key -> (Fleet field, hook), in the field order; ``name`` is checked first.
_FIELD_HOOKS: tuple[tuple[str, str, Callable[[Any, Any], Any]], ...] = (
    ("member_ids", "member_ids", _members),
    ("mold_source", "mold_source", _opt_str("mold_source")),
    ("last_deployed_task", "last_deployed_task", _opt_str("last_deployed_task")),
    ("last_deployed_at", "last_deployed_at", _opt_str("last_deployed_at", numbers=True)),
    ("last_create_params", "last_create_params", _params),
    (HISTORY_KEY, "history", _history),
)

#: Keys of the fleet file that map to Fleet fields; any other key goes to ``extra``.
_KNOWN = frozenset(
    a.name if a.name != "history" else HISTORY_KEY for a in attrs.fields(Fleet) if a.name != "extra"
)


def structure_fleet(entry: Any, key: str) -> Fleet:
    """Build a :class:`Fleet` from one fleet-file entry stored under ``key``.

    Raises:
        FleetFormatError: the entry does not have the fleet-file shape.
    """
    if not isinstance(entry, dict):
        raise FleetFormatError(
            f"fleet {quote(key)}: expected an object, not {type(entry).__name__}"
        )
    name = entry.get("name", key)
    if not isinstance(name, str):
        raise FleetFormatError(
            f"fleet {quote(key)}: name must be a string, not {type(name).__name__}"
        )
    if name != key:
        raise FleetFormatError(
            f"fleet {quote(key)}: stored under {quote(key)} but named {quote(name)}"
        )
    fields: dict[str, Any] = {}
    try:
        for file_key, field, hook in _FIELD_HOOKS:
            if file_key in entry:
                fields[field] = hook(entry[file_key], None)
    except FleetFormatError as exc:
        raise FleetFormatError(f"fleet {quote(name)}: {exc}") from None
    if not entry.keys() <= _KNOWN:  # a set test in C; most entries have only our keys
        fields["extra"] = {k: v for k, v in entry.items() if k not in _KNOWN}
    return Fleet(name, **fields)


def _plain(value: Any) -> Any:
    # JSON scalars are their own plain data; anything else is the converter's.
    if value is None or type(value) in (str, int, float, bool):
        return value
    return get_converter().unstructure(value)


def unstructure_fleet(fleet: Fleet) -> dict[str, Any]:
    """The fleet-file entry for ``fleet``: the reference's keys in its order
    (``name``, ``mold_source``, ``member_ids`` …), ours after, unknown keys last.

    Never raises.
    """
    out: dict[str, Any] = {
        "name": fleet.name,
        "mold_source": fleet.mold_source,
        "member_ids": list(fleet.member_ids),
    }
    if fleet.last_deployed_task is not None:
        out["last_deployed_task"] = fleet.last_deployed_task
    if fleet.last_deployed_at is not None:
        out["last_deployed_at"] = fleet.last_deployed_at
    if fleet.last_create_params is not None:
        out["last_create_params"] = {k: _plain(v) for k, v in fleet.last_create_params.items()}
    if fleet.history:
        out[HISTORY_KEY] = [revision_data(r) for r in fleet.history]
    for k, v in fleet.extra.items():
        if k not in out:
            out[k] = _plain(v)
    return out


@functools.cache
def get_converter() -> cattrs.Converter:
    """The one cattrs converter, made (and its hooks registered) on first use.

    Never raises.
    """
    import cattrs

    converter = cattrs.Converter(
        forbid_extra_keys=False, unstruct_collection_overrides={tuple: list}
    )
    converter.register_unstructure_hook_func(_is_frozen_dict, _unstructure_frozen)
    converter.register_structure_hook_func(_is_frozen_dict, _structure_frozen)
    # Our statuses are str subclasses: without this cattrs's str hook passes the members
    # through.
    converter.register_unstructure_hook(StatusEnum, _enum_value)
    converter.register_unstructure_hook(Fleet, unstructure_fleet)
    converter.register_unstructure_hook(Revision, revision_data)
    converter.register_structure_hook(
        Fleet, lambda obj, _t: structure_fleet(obj, obj.get("name", ""))
    )
    return converter


def fleet_map(fleet: Fleet) -> dict[str, Any]:
    """A fleet as the reference's DAL map: ``name, member_ids`` and, when set,
    ``mold_source``, ``last_deployed_task``, ``last_deployed_at``.

    Never raises.
    """
    result: dict[str, Any] = {"name": fleet.name, "member_ids": list(fleet.member_ids)}
    if fleet.mold_source is not None:
        result["mold_source"] = fleet.mold_source
    if fleet.last_deployed_task is not None:
        result["last_deployed_task"] = fleet.last_deployed_task
    if fleet.last_deployed_at is not None:
        result["last_deployed_at"] = fleet.last_deployed_at
    return result


def health_map(health: FleetHealth) -> dict[str, Any]:
    """A health record as a DAL map: plain values, states and status as strings.

    Never raises.
    """
    result: dict[str, Any] = get_converter().unstructure(health)
    return result


# -- --json documents and stored specs --------------------------------------------------------


def to_json_document(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, strings, numbers, bools, None).

    A fleet is its fleet-file entry; a run report gets an ``ok`` key; a health
    record is its :func:`health_map` plus ``alive_count``; other models are their
    fields; tuples become lists, read-only mappings dicts, enums their values.
    Lists, tuples and dicts of models are converted item by item.

    Never raises for dalfleet's own values.
    """
    from dalfleet.records import FleetHealth, RunReport

    if isinstance(value, RunReport):
        document: dict[str, Any] = get_converter().unstructure(value)
        document["ok"] = value.ok
        return document
    if isinstance(value, FleetHealth):
        document = health_map(value)
        document["alive_count"] = value.alive_count
        return document
    if isinstance(value, (list, tuple)):
        return [to_json_document(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json_document(v) for k, v in value.items()}
    return get_converter().unstructure(value)


def json_default(value: Any) -> Any:
    """The ``default=`` for :func:`json.dumps`: frozen values and models as plain data.

    Raises:
        TypeError: ``value`` is not one of dalfleet's values (as ``json`` expects).
    """
    if isinstance(value, (FrozenDict, frozenset, enum.Enum)) or attrs.has(type(value)):
        return to_json_document(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def spec_to_data(spec: AgentSpec) -> dict[str, Any]:
    """An agent spec as plain data, for a coordinator to store. Never raises."""
    data: dict[str, Any] = get_converter().unstructure(spec)
    return data


def spec_from_data(data: Any) -> AgentSpec:
    """The spec stored as ``data`` by :func:`spec_to_data`.

    Raises:
        cattrs.BaseValidationError: ``data`` is not a stored spec.
    """
    from dalfleet.records import AgentSpec

    return get_converter().structure(data, AgentSpec)
