"""The one converter between fleet-file JSON and :class:`~dalfleet.models.Fleet`.

The file shape is the reference's (SPEC §3): ``mold_source`` always present,
``last_deployed_task`` / ``last_deployed_at`` / ``last_create_params`` omitted
when unset. Keys we do not know are kept in ``Fleet.extra`` and written back
after ours, so a read-modify-write never drops them.
"""

from __future__ import annotations

from typing import Any

import cattrs

from dalfleet.models import Fleet, Revision

__all__ = ["HISTORY_KEY", "FleetFormatError", "converter", "structure_fleet", "unstructure_fleet"]

HISTORY_KEY = "dalfleet_history"
_KNOWN = (
    "name",
    "mold_source",
    "member_ids",
    "last_deployed_task",
    "last_deployed_at",
    "last_create_params",
    HISTORY_KEY,
)


class FleetFormatError(ValueError):
    """A fleet entry does not have the fleet-file shape (the store adds the file name)."""


converter = cattrs.Converter(forbid_extra_keys=False)


def _opt_str(entry: dict[str, Any], key: str, name: str, *, numbers: bool = False) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        # last_deployed_at is opaque; a number written by another tool is still a time.
        return str(value)
    if not isinstance(value, str):
        raise FleetFormatError(
            f"fleet '{name}': {key} must be a string, not {type(value).__name__}"
        )
    return value


def _param_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def structure_fleet(entry: Any, key: str) -> Fleet:
    """Build a :class:`Fleet` from one fleet-file entry stored under ``key``.

    Raises:
        FleetFormatError: the entry does not have the fleet-file shape.
    """
    if not isinstance(entry, dict):
        raise FleetFormatError(f"fleet '{key}': expected an object, not {type(entry).__name__}")
    name = entry.get("name", key)
    if not isinstance(name, str):
        raise FleetFormatError(f"fleet '{key}': name must be a string, not {type(name).__name__}")
    if name != key:
        raise FleetFormatError(f"fleet '{key}': stored under '{key}' but named '{name}'")
    members = entry.get("member_ids", [])
    # C-level pass: a fleet file may hold a million member IDs.
    if not isinstance(members, list) or not all(map(str.__instancecheck__, members)):
        raise FleetFormatError(f"fleet '{name}': member_ids must be a list of strings")
    # Duplicate IDs (another tool may write them) are the store's to warn about and drop.
    params = entry.get("last_create_params")
    if params is not None:
        if not isinstance(params, dict) or not all(
            isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in params.items()
        ):
            raise FleetFormatError(
                f"fleet '{name}': last_create_params must be an object of strings"
            )
        params = {k: _param_text(v) for k, v in params.items()}
    history_raw = entry.get(HISTORY_KEY, [])
    try:
        # Most fleets have none; cattrs costs more than the rest of the entry.
        history = [] if history_raw == [] else converter.structure(history_raw, list[Revision])
    except Exception as exc:  # cattrs raises a class group; the message is what matters
        raise FleetFormatError(f"fleet '{name}': {HISTORY_KEY} is malformed ({exc})") from None
    return Fleet(
        name=name,
        member_ids=members,
        mold_source=_opt_str(entry, "mold_source", name),
        last_deployed_task=_opt_str(entry, "last_deployed_task", name),
        last_deployed_at=_opt_str(entry, "last_deployed_at", name, numbers=True),
        last_create_params=params,
        history=history,
        extra={k: v for k, v in entry.items() if k not in _KNOWN},
    )


def unstructure_fleet(fleet: Fleet) -> dict[str, Any]:
    """The fleet-file entry for ``fleet``, keys in the reference's order, ours after.

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
        out["last_create_params"] = dict(fleet.last_create_params)
    if fleet.history:
        out[HISTORY_KEY] = converter.unstructure(fleet.history)
    for k, v in fleet.extra.items():
        if k not in out:
            out[k] = v
    return out


converter.register_unstructure_hook(Fleet, unstructure_fleet)
converter.register_structure_hook(Fleet, lambda obj, _t: structure_fleet(obj, obj.get("name", "")))
