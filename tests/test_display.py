"""Notebook renderings: compact, escaped HTML tables and short plain reprs (SPEC §11)."""

from __future__ import annotations

import html
import re

import dalfleet.fleet as fleet
from dalfleet import display
from dalfleet.models import Fleet, FleetHealth, MemberHealth, MemberOutcome, RunReport


def big_fleet(n: int = 1000) -> Fleet:
    return Fleet(
        name="big",
        member_ids=[f"agent_{i:06d}" for i in range(n)],
        mold_source="worker",
        last_deployed_task="<script>alert(1)</script> & more",
        last_deployed_at="1764313200",
    )


def big_report(n: int = 1000) -> RunReport:
    outcomes = [
        MemberOutcome(agent_id=f"agent_{i}", ok=True, status="ok", result="x" * 5000)
        if i % 2 == 0
        else MemberOutcome(agent_id=f"agent_{i}", ok=False, status="error", error="boom <b>")
        for i in range(n)
    ]
    return RunReport(
        fleet_name="big",
        members_dispatched=n,
        errors=[f"agent_{i}: boom" for i in range(1, n, 2)],
        task="t",
        outcomes=outcomes,
        executed=True,
    )


def test_fleet_table_shows_twenty_members_then_a_count() -> None:
    out = display.fleet_html(big_fleet())
    assert out.count("<td>agent_") == display.MAX_ROWS
    assert "agent_000019" in out and "agent_000020" not in out
    assert "… 980 more" in out
    assert "<script>" not in out and html.escape("<script>") in out
    assert "2025-11-28T07:00:00Z" in out  # Unix seconds shown as ISO-8601 UTC


def test_health_and_report_tables_are_escaped_and_bounded() -> None:
    health = FleetHealth(
        name="h<i>",
        member_count=1000,
        has_mold=True,
        last_deployed_task=None,
        last_deployed_at=None,
        status="ok",
        members=[MemberHealth(agent_id=f"a{i}", state="alive") for i in range(1000)],  # type: ignore[arg-type]
    )
    out = display.health_html(health)
    assert "<i>" not in out and "h&lt;i&gt;" in out
    assert "… 980 more" in out
    report = display.report_html(big_report())
    assert "boom &lt;b&gt;" in report and "<b>" not in report
    assert "… 980 more" in report
    assert len(report) < 20_000  # 1,000 outcomes with 5 KB results stay a small table


def test_list_table_has_one_row_per_value() -> None:
    out = display.list_html([big_fleet(), big_report(3), "other"])
    assert len(re.findall(r"<tr><td>", out)) == 3
    assert "1000 members" in out and "3 dispatched, 1 errors" in out


def test_short_reprs_stay_under_the_limit_whatever_the_size() -> None:
    for value in (big_fleet(), big_report(), [big_fleet()] * 50, "y" * 10_000):
        text = display.short_repr(value)
        assert len(text) <= display.MAX_REPR, text
    assert display.short_repr(big_fleet()).startswith("Fleet(name='big', member_ids=<1000: [")


def test_models_use_the_renderings_when_they_have_hooks() -> None:
    # The models' own hooks (when present) must stay short and HTML as well.
    with fleet.using(memory=True):
        created = fleet.create("hooks")
    assert len(repr(big_fleet())) <= display.MAX_REPR or not hasattr(Fleet, "_repr_html_")
    hook = getattr(created, "_repr_html_", None)
    if hook is not None:
        assert "<table" in hook()


def test_unprintable_values_never_raise() -> None:
    class Bad:
        def __str__(self) -> str:
            raise RuntimeError("no")

        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert display.shorten(Bad()) == "<unprintable Bad>"
    assert display.short_repr(Bad()) == "<unprintable Bad>"
    assert display.iso_time("not a number") == "not a number"
    assert display.iso_time(None) is None


def test_run_returns_a_list_that_shows_as_one_table(tmp_path: object) -> None:
    with fleet.using(memory=True):
        fleet.create_from_mold("a", "worker", 2)
        fleet.create_from_mold("b", "worker", 1)
        fleet.deploy("a", "task <one>")
        fleet.deploy("b", "task two")
        reports = fleet.run()
        health = fleet.health("a")
    assert isinstance(reports, list) and len(reports) == 2
    assert reports == list(reports) and reports[0].fleet_name == "a"
    out = reports._repr_html_()  # type: ignore[attr-defined]
    assert len(re.findall(r"<tr><td>RunReport", out)) == 2
    assert "task &lt;one&gt;" in out and "<one>" not in out
    assert repr(reports).startswith("[RunReport(fleet_name='a'")
    assert len(repr(type(reports)(reports * 400))) <= display.MAX_REPR
    assert "2 pending, 0 running, 0 completed, 0 failed" in health._repr_html_()
