"""HTML renderings of fleets, health and run reports for notebooks.

The models' ``_repr_html_`` methods call these lazily. Every value is
``html.escape``d; long rosters show their first members and a count.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from dalfleet.models import Fleet, FleetHealth, RunReport

__all__ = ["fleet_html", "health_html", "report_html"]

#: Rows a table shows before it only counts the rest.
MAX_ROWS = 20


def _cell(value: object) -> str:
    return html.escape("—" if value is None else str(value))


def _table(
    title: str,
    fields: Iterable[tuple[str, object]],
    rows: Sequence[Sequence[object]] = (),
    header: Sequence[str] = (),
    total: int = 0,
) -> str:
    parts = [f"<div><strong>{html.escape(title)}</strong>", "<table>"]
    parts += [f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in fields]
    parts.append("</table>")
    if header:
        parts.append(
            "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
        )
        for row in rows[:MAX_ROWS]:
            parts.append("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
        parts.append("</table>")
        if total > MAX_ROWS:
            parts.append(f"<p>… {total - MAX_ROWS} more</p>")
    parts.append("</div>")
    return "".join(parts)


def fleet_html(fleet: Fleet) -> str:
    """A compact HTML table of a fleet: its fields and its first members. Never raises."""
    return _table(
        f"Fleet {fleet.name}",
        [
            ("members", len(fleet.member_ids)),
            ("mold_source", fleet.mold_source),
            ("last_deployed_task", fleet.last_deployed_task),
            ("last_deployed_at", fleet.last_deployed_at),
        ],
        [(m,) for m in fleet.member_ids[:MAX_ROWS]],
        ("member",),
        len(fleet.member_ids),
    )


def health_html(health: FleetHealth) -> str:
    """A compact HTML table of a fleet's health and its first members' states. Never raises."""
    return _table(
        f"Health of {health.name}: {health.status.value}",
        [
            ("member_count", health.member_count),
            ("alive", health.alive_count),
            ("has_mold", health.has_mold),
            ("last_deployed_task", health.last_deployed_task),
        ],
        [
            (m.agent_id, m.state.value, m.pending_tasks, m.failed_tasks)
            for m in health.members[:MAX_ROWS]
        ],
        ("agent", "state", "pending", "failed"),
        len(health.members),
    )


def report_html(report: RunReport) -> str:
    """A compact HTML table of a run report and its first outcomes. Never raises."""
    return _table(
        f"Run of {report.fleet_name}",
        [
            ("task", report.task),
            ("members_dispatched", report.members_dispatched),
            ("errors", len(report.errors)),
            ("executed", report.executed),
        ],
        [
            (o.agent_id, o.status.value, o.result if o.ok else o.error)
            for o in report.outcomes[:MAX_ROWS]
        ],
        ("agent", "status", "result / error"),
        len(report.outcomes),
    )
