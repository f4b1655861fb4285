"""Compact renderings of fleets, health and run reports for notebooks and reprs.

Jupyter shows an object's ``_repr_html_``; the models call the functions here, so a
1,000-member fleet shows as a short table and its plain ``repr`` stays under
:data:`MAX_REPR` characters. Everything that came from a user (names, tasks,
results, errors) is escaped with :func:`html.escape`, so no value can change the
table's markup. Nothing here raises for odd values: a rendering that cannot use a
field shows its ``repr`` instead.
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Iterable, Sequence
from typing import Any

#: Rows shown in a table before the "… N more" line.
MAX_ROWS = 20
#: Upper bound on the length of every plain repr built here.
MAX_REPR = 400
#: Longest text (task, result, error) shown in one table cell or repr field.
MAX_CELL = 80
#: Member IDs listed in a plain repr before "…".
REPR_MEMBERS = 3


def shorten(value: object, limit: int = MAX_CELL) -> str:
    """Return ``str(value)`` cut to ``limit`` characters, ending in ``…`` when cut.

    Never raises: a value whose ``str()`` fails shows as ``<unprintable T>``.
    """
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # any __str__ may fail; a display must not
        text = f"<unprintable {type(value).__name__}>"
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


def iso_time(raw: object) -> str | None:
    """Return a deploy time (Unix seconds as text, or a number) as ISO-8601 UTC.

    ``last_deployed_at`` is an opaque string (the reference writes Unix seconds);
    anything that is not a number is returned unchanged, ``None`` stays ``None``.
    Never raises.
    """
    if raw is None:
        return None
    try:
        seconds = float(str(raw))
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    except (ValueError, OverflowError, OSError):
        return str(raw)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _field(value: object, name: str, default: Any = None) -> Any:
    return getattr(value, name, default)


def _cell(value: object) -> str:
    if value is None:
        return "<td>—</td>"
    return f"<td>{html.escape(shorten(value))}</td>"


def _summary(pairs: Iterable[tuple[str, object]]) -> str:
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(key)}</th>{_cell(value)}</tr>"
        for key, value in pairs
    )
    return f"<table class='dalfleet-summary'>{rows}</table>"


def _rows(columns: Sequence[str], rows: Sequence[Sequence[object]], total: int) -> str:
    """A table of the first :data:`MAX_ROWS` rows, then one "… N more" row."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows[:MAX_ROWS])
    shown = min(len(rows), MAX_ROWS)
    if total > shown:
        body += f"<tr><td colspan='{len(columns)}'>… {total - shown} more</td></tr>"
    return (
        f"<table class='dalfleet-rows'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _wrap(title: str, *parts: str) -> str:
    return f"<div class='dalfleet'><strong>{html.escape(title)}</strong>{''.join(parts)}</div>"


def fleet_html(fleet: Any) -> str:
    """Return a :class:`~dalfleet.Fleet` as a compact HTML table (first 20 members).

    Never raises.
    """
    members = list(_field(fleet, "member_ids", ()))
    summary = _summary(
        [
            ("members", len(members)),
            ("mold", _field(fleet, "mold_source")),
            ("last deployed", _field(fleet, "last_deployed_task")),
            ("deployed at", iso_time(_field(fleet, "last_deployed_at"))),
            ("params", _field(fleet, "last_create_params") or None),
        ]
    )
    table = _rows(
        ["#", "agent ID"], [(i, m) for i, m in enumerate(members[:MAX_ROWS])], len(members)
    )
    return _wrap(f"Fleet {shorten(_field(fleet, 'name', '?'))}", summary, table)


def health_html(health: Any) -> str:
    """Return a :class:`~dalfleet.FleetHealth` as a compact HTML table. Never raises."""
    members = list(_field(health, "members", ()))
    summary = _summary(
        [
            ("status", _field(health, "status")),
            ("members", _field(health, "member_count")),
            ("has mold", _field(health, "has_mold")),
            ("last deployed", _field(health, "last_deployed_task")),
            ("deployed at", iso_time(_field(health, "last_deployed_at"))),
            (
                "tasks",
                f"{_field(health, 'pending_tasks', 0)} pending, "
                f"{_field(health, 'running_tasks', 0)} running, "
                f"{_field(health, 'completed_tasks', 0)} completed, "
                f"{_field(health, 'failed_tasks', 0)} failed",
            ),
        ]
    )
    rows = [
        (
            _field(m, "agent_id"),
            _state(_field(m, "state")),
            _field(m, "pending_tasks", 0),
            _field(m, "completed_tasks", 0),
            _field(m, "failed_tasks", 0),
        )
        for m in members[:MAX_ROWS]
    ]
    table = _rows(["agent ID", "state", "pending", "completed", "failed"], rows, len(members))
    return _wrap(f"Health of {shorten(_field(health, 'name', '?'))}", summary, table)


def _state(state: object) -> object:
    return getattr(state, "value", state)


def _outcome_text(outcome: Any) -> object:
    if _field(outcome, "ok", False):
        return _field(outcome, "result")
    return _field(outcome, "error")


def report_html(report: Any) -> str:
    """Return a :class:`~dalfleet.RunReport` as a compact HTML table. Never raises."""
    outcomes = list(_field(report, "outcomes", ()))
    errors = list(_field(report, "errors", ()))
    ok = sum(1 for o in outcomes if _field(o, "ok", False))
    summary = _summary(
        [
            ("task", _field(report, "task")),
            ("dispatched", _field(report, "members_dispatched")),
            ("executed", _field(report, "executed")),
            ("ok", ok),
            ("errors", len(errors)),
            ("already pending", _field(report, "already_pending", 0)),
        ]
    )
    rows = [
        (
            _field(o, "agent_id"),
            _field(o, "status"),
            _outcome_text(o),
            f"{float(_field(o, 'duration', 0.0) or 0.0):.3f} s",
        )
        for o in outcomes[:MAX_ROWS]
    ]
    table = _rows(["agent ID", "status", "result / error", "duration"], rows, len(outcomes))
    return _wrap(f"Run of {shorten(_field(report, 'fleet_name', '?'))}", summary, table)


def list_html(values: Iterable[Any]) -> str:
    """Return a list of fleets, health values or run reports as one HTML table.

    One row per value (first 20, then "… N more"); values of other types show their
    :func:`short_repr`. Never raises.
    """
    items = list(values)
    rows: list[tuple[object, ...]] = []
    for value in items[:MAX_ROWS]:
        kind = type(value).__name__
        if kind == "Fleet":
            detail = f"{len(_field(value, 'member_ids', ()))} members"
            rows.append((kind, _field(value, "name"), detail, _field(value, "last_deployed_task")))
        elif kind == "FleetHealth":
            detail = f"{_field(value, 'status')}, {_field(value, 'member_count')} members"
            rows.append((kind, _field(value, "name"), detail, _field(value, "last_deployed_task")))
        elif kind == "RunReport":
            detail = (
                f"{_field(value, 'members_dispatched')} dispatched, "
                f"{len(_field(value, 'errors', ()))} errors"
            )
            rows.append((kind, _field(value, "fleet_name"), detail, _field(value, "task")))
        else:
            rows.append((kind, short_repr(value), None, None))
    table = _rows(["kind", "name", "detail", "task"], rows, len(items))
    return _wrap(f"{len(items)} item(s)", table)


def _members_repr(members: Sequence[object]) -> str:
    shown = ", ".join(repr(shorten(m, 40)) for m in members[:REPR_MEMBERS])
    more = ", …" if len(members) > REPR_MEMBERS else ""
    return f"<{len(members)}: [{shown}{more}]>"


def short_repr(value: object) -> str:
    """Return a plain repr of at most :data:`MAX_REPR` characters.

    Fleets, health values and run reports show their key fields and counts rather
    than every member or outcome; lists show their first items; anything else is
    its own ``repr`` cut to the limit. Never raises.
    """
    kind = type(value).__name__
    if kind == "Fleet":
        text = (
            f"Fleet(name={shorten(_field(value, 'name'), 64)!r}, "
            f"member_ids={_members_repr(list(_field(value, 'member_ids', ())))}, "
            f"mold_source={_opt(_field(value, 'mold_source'))}, "
            f"last_deployed_task={_opt(_field(value, 'last_deployed_task'))}, "
            f"last_deployed_at={_opt(_field(value, 'last_deployed_at'))})"
        )
    elif kind == "FleetHealth":
        text = (
            f"FleetHealth(name={shorten(_field(value, 'name'), 64)!r}, "
            f"status={_opt(_field(value, 'status'))}, "
            f"member_count={_field(value, 'member_count')!r}, "
            f"has_mold={_field(value, 'has_mold')!r}, "
            f"last_deployed_task={_opt(_field(value, 'last_deployed_task'))}, "
            f"members=<{len(_field(value, 'members', ()))}>)"
        )
    elif kind == "RunReport":
        outcomes = list(_field(value, "outcomes", ()))
        ok = sum(1 for o in outcomes if _field(o, "ok", False))
        text = (
            f"RunReport(fleet_name={shorten(_field(value, 'fleet_name'), 64)!r}, "
            f"members_dispatched={_field(value, 'members_dispatched')!r}, "
            f"errors=<{len(_field(value, 'errors', ()))}>, "
            f"task={_opt(_field(value, 'task'))}, "
            f"outcomes=<{len(outcomes)}: {ok} ok>, "
            f"executed={_field(value, 'executed')!r})"
        )
    elif isinstance(value, (list, tuple)):
        inner = ", ".join(short_repr(v) for v in value[:REPR_MEMBERS])
        more = f", … {len(value) - REPR_MEMBERS} more" if len(value) > REPR_MEMBERS else ""
        text = f"[{inner}{more}]" if isinstance(value, list) else f"({inner}{more})"
    else:
        try:
            text = repr(value)
        except Exception:  # a repr must never raise
            text = f"<unprintable {kind}>"
    return shorten(text, MAX_REPR)


def _opt(value: object) -> str:
    return "None" if value is None else repr(shorten(value, 60))
