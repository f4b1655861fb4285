"""The one converter between dalfleet's values and plain data.

Everything that turns a model into JSON-ready data, or back, goes through the
cattrs :data:`converter` here: the fleet file (:func:`structure_fleet`,
:func:`unstructure_fleet`), ``--json`` documents (:func:`to_json_document`), the
DAL maps (:func:`fleet_map`, :func:`health_map`) and stored agent specs
(:func:`spec_to_data`, :func:`spec_from_data`). Tuples come out as lists,
:class:`~dalfleet.models.FrozenDict` as dicts and enums as their values.

The fleet-file shape is the reference's (SPEC §3): ``mold_source`` always
present, ``last_deployed_task`` / ``last_deployed_at`` / ``last_create_params``
omitted when unset. Keys we do not know are kept in ``Fleet.extra`` and written
back after ours, so a read-modify-write never drops them. Parsing is built for
big rosters: ``member_ids`` is checked with C-level passes (``map``, ``set``) and
copied once into a tuple, never walked element by element in Python.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from dalfleet.errors import quote
from dalfleet.models import (
    AgentSpec,
    Fleet,
    FleetHealth,
    FrozenDict,
    Revision,
    RunReport,
    StatusEnum,
)

__all__ = [
    "HISTORY_KEY",
    "FleetFormatError",
    "converter",
    "fleet_map",
    "health_map",
    "json_default",
    "spec_from_data",
    "spec_to_data",
    "structure_fleet",
    "to_json_document",
    "unstructure_fleet",
]

#: The fleet-file key of our deployment history (the reference ignores it).
HISTORY_KEY = "dalfleet_history"


class FleetFormatError(ValueError):
    """A fleet entry does not have the fleet-file shape (the store adds the file name)."""


#: The one converter. Tuples unstructure to lists so documents are plain JSON.
converter = cattrs.Converter(forbid_extra_keys=False, unstruct_collection_overrides={tuple: list})


# -- FrozenDict ----------------------------------------------------------------------------


def _is_frozen_dict(cls: Any) -> bool:
    return cls is FrozenDict or get_origin(cls) is FrozenDict


def _unstructure_frozen(mapping: FrozenDict[Any, Any]) -> dict[Any, Any]:
    return {k: converter.unstructure(v) for k, v in mapping.items()}


def _structure_frozen(value: Any, cls: Any) -> FrozenDict[Any, Any]:
    args = get_args(cls)
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a mapping, not {type(value).__name__}")
    if not args:
        return FrozenDict(value)
    return FrozenDict(converter.structure(dict(value), dict[args[0], args[1]]))  # type: ignore[valid-type]


converter.register_unstructure_hook_func(_is_frozen_dict, _unstructure_frozen)
converter.register_structure_hook_func(_is_frozen_dict, _structure_frozen)


def _enum_value(member: StatusEnum) -> str:
    return str(member.value)


# Our statuses are str subclasses: without this cattrs's str hook passes the members through.
converter.register_unstructure_hook(StatusEnum, _enum_value)


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


def _history(value: Any, _type: Any) -> tuple[Revision, ...]:
    if value == []:
        return ()  # most fleets have none; cattrs costs more than the rest of the entry
    try:
        revisions: list[Revision] = converter.structure(value, list[Revision])
    except Exception as exc:  # cattrs raises a class group; the message is what matters
        raise FleetFormatError(f"{HISTORY_KEY} is malformed ({exc})") from None
    return tuple(revisions)


_structure_fleet_fields = make_dict_structure_fn(
    Fleet,
    converter,
    _cattrs_forbid_extra_keys=False,
    _cattrs_detailed_validation=False,
    name=override(struct_hook=_opt_str("name")),
    member_ids=override(struct_hook=_members),
    mold_source=override(struct_hook=_opt_str("mold_source")),
    last_deployed_task=override(struct_hook=_opt_str("last_deployed_task")),
    last_deployed_at=override(struct_hook=_opt_str("last_deployed_at", numbers=True)),
    last_create_params=override(struct_hook=_params),
    history=override(rename=HISTORY_KEY, struct_hook=_history),
    extra=override(omit=True),
)

_unstructure_fleet_fields = make_dict_unstructure_fn(
    Fleet,
    converter,
    member_ids=override(unstruct_hook=list),
    last_deployed_task=override(omit_if_default=True),
    last_deployed_at=override(omit_if_default=True),
    last_create_params=override(omit_if_default=True),
    history=override(rename=HISTORY_KEY, omit_if_default=True),
    extra=override(omit=True),
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
    try:
        fleet = _structure_fleet_fields(entry if "name" in entry else {**entry, "name": key}, Fleet)
    except FleetFormatError as exc:
        raise FleetFormatError(f"fleet {quote(name)}: {exc}") from None
    unknown = {k: v for k, v in entry.items() if k not in _KNOWN}
    return attrs.evolve(fleet, extra=unknown) if unknown else fleet


def unstructure_fleet(fleet: Fleet) -> dict[str, Any]:
    """The fleet-file entry for ``fleet``: the reference's keys in its order
    (``name``, ``mold_source``, ``member_ids`` …), ours after, unknown keys last.

    Never raises.
    """
    out: dict[str, Any] = {"name": fleet.name, "mold_source": fleet.mold_source}
    out.update(_unstructure_fleet_fields(fleet))
    for k, v in fleet.extra.items():
        if k not in out:
            out[k] = converter.unstructure(v)
    return out


converter.register_unstructure_hook(Fleet, unstructure_fleet)
converter.register_structure_hook(Fleet, lambda obj, _t: structure_fleet(obj, obj.get("name", "")))


# -- DAL maps ---------------------------------------------------------------------------------

_dal_fleet_map = make_dict_unstructure_fn(
    Fleet,
    converter,
    member_ids=override(unstruct_hook=list),
    mold_source=override(omit_if_default=True),
    last_deployed_task=override(omit_if_default=True),
    last_deployed_at=override(omit_if_default=True),
    last_create_params=override(omit=True),  # not in the reference's map
    history=override(omit=True),
    extra=override(omit=True),
)


def fleet_map(fleet: Fleet) -> dict[str, Any]:
    """A fleet as the reference's DAL map: ``name, member_ids`` and, when set,
    ``mold_source``, ``last_deployed_task``, ``last_deployed_at``.

    Never raises.
    """
    result: dict[str, Any] = _dal_fleet_map(fleet)
    return result


def health_map(health: FleetHealth) -> dict[str, Any]:
    """A health record as a DAL map: plain values, states and status as strings.

    Never raises.
    """
    result: dict[str, Any] = converter.unstructure(health)
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
    if isinstance(value, RunReport):
        document: dict[str, Any] = converter.unstructure(value)
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
    return converter.unstructure(value)


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
    data: dict[str, Any] = converter.unstructure(spec)
    return data


def spec_from_data(data: Any) -> AgentSpec:
    """The spec stored as ``data`` by :func:`spec_to_data`.

    Raises:
        cattrs.BaseValidationError: ``data`` is not a stored spec.
    """
    return converter.structure(data, AgentSpec)
