"""Declarative apply (with dry-run diff) and blue/green shifting (SPEC §6)."""

from __future__ import annotations

from pathlib import Path

import pytest

import dalfleet.fleet as fleet
from dalfleet import AgentState, FleetNotFoundError, InvalidArgumentError, MoldNotFoundError
from dalfleet.manifest import load_manifest, parse_manifest
from tests.conftest import snapshot

MANIFEST = """
fleets:
  workers:
    mold: worker
    count: 3
    params: {env: prod}
    task: Process daily logs
  empty: {}
"""


def actions(changes: list[object]) -> list[tuple[str, str]]:
    return [(c.action, c.fleet) for c in changes]  # type: ignore[attr-defined]


def test_apply_creates_and_deploys(base: Path) -> None:
    changes = fleet.apply(MANIFEST, base)
    assert actions(changes) == [("create", "workers"), ("deploy", "workers"), ("create", "empty")]
    w = fleet.show("workers", base)
    assert w is not None
    assert (len(w.member_ids), w.mold_source, w.last_create_params) == (
        3,
        "worker",
        {"env": "prod"},
    )
    assert w.last_deployed_task == "Process daily logs"
    assert fleet.list(base) == ["empty", "workers"]


def test_apply_is_idempotent(base: Path) -> None:
    fleet.apply(MANIFEST, base)
    before = snapshot(base)
    assert fleet.apply(MANIFEST, base) == []
    assert snapshot(base) == before


def test_dry_run_reports_the_diff_and_changes_nothing(base: Path) -> None:
    fleet.apply(MANIFEST, base)
    before = snapshot(base)
    changed = MANIFEST.replace("count: 3", "count: 5").replace("daily", "hourly")
    changes = fleet.apply(changed, base, dry_run=True)
    assert [(c.symbol, c.action, c.detail) for c in changes] == [
        ("~", "scale", "scale 3 -> 5"),
        ("~", "deploy", "deploy 'Process hourly logs' (was 'Process daily logs')"),
    ]
    assert snapshot(base) == before


def test_apply_scales_down_and_terminates(base: Path) -> None:
    fleet.apply(MANIFEST, base)
    members = fleet.show("workers", base).member_ids  # type: ignore[union-attr]
    fleet.apply(MANIFEST.replace("count: 3", "count: 1"), base)
    assert fleet.show("workers", base).member_ids == members[:1]  # type: ignore[union-attr]
    fleet.create("probe", base)
    fleet.add_member("probe", members[2], base)
    assert fleet.health("probe", base).members[0].state is AgentState.TERMINATED


def test_apply_gives_an_existing_empty_fleet_its_mold(base: Path) -> None:
    fleet.create("w", base)
    fleet.apply({"fleets": {"w": {"mold": "worker", "count": 2}}}, base)
    w = fleet.show("w", base)
    assert w is not None and len(w.member_ids) == 2 and w.mold_source == "worker"


def test_prune_deletes_fleets_not_named(base: Path) -> None:
    fleet.create_from_mold("old", "worker", 2, base)
    changes = fleet.apply("fleets: {new: {}}", base, prune=True)
    assert actions(changes) == [("create", "new"), ("delete", "old")]
    assert fleet.list(base) == ["new"]


def test_a_different_mold_is_a_warning_not_a_change(base: Path) -> None:
    fleet.create_from_mold("w", "worker", 1, base)
    changes = fleet.apply("fleets: {w: {mold: mold/worker.mold.dal}}", base)
    assert [c.symbol for c in changes] == ["!"]
    assert fleet.show("w", base).mold_source == "worker"  # type: ignore[union-attr]


def test_apply_declares_an_empty_fleet_with_a_mold_for_blue_green(base: Path) -> None:
    fleet.create_from_mold("blue", "worker", 2, base)
    manifest = "fleets: {green: {mold: worker, count: 0, params: {env: prod}}}"
    before = snapshot(base)
    planned = fleet.apply(manifest, base, dry_run=True)
    assert [(c.symbol, c.action, c.detail) for c in planned] == [
        ("+", "create", "create (empty) with mold worker")
    ]
    assert snapshot(base) == before
    assert actions(fleet.apply(manifest, base)) == [("create", "green")]
    green = fleet.show("green", base)
    assert green is not None
    assert (green.member_ids, green.mold_source, green.last_create_params) == (
        (),
        "worker",
        {"env": "prod"},
    )
    assert fleet.health("green", base).status == "ok"  # it has a mold
    assert fleet.apply(manifest, base) == []  # idempotent
    _, green = fleet.shift("blue", "green", 1, base)
    assert len(green.member_ids) == 1


def test_list_form_manifest(base: Path) -> None:
    specs = parse_manifest("fleets:\n  - name: a\n    mold: worker\n    count: 2\n  - name: b\n")
    assert [(s.name, s.count) for s in specs] == [("a", 2), ("b", None)]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("fleets: [", "invalid manifest"),
        ("other: 1", "one top-level key, 'fleets'"),
        ("fleets: 3", "mapping or a list"),
        ("fleets: {w: {colour: red}}", "unknown key 'colour'"),
        ("fleets: {w: {count: -1}}", ">= 0"),
        ("fleets: {w: {count: 1001}}", "capped at 1000"),
        ("fleets: {w: {count: three}}", "whole number"),
        ("fleets: {w: {task: '  '}}", "deploy task cannot be empty"),
        ("fleets: {w: {params: [noequals]}}", "KEY=VALUE"),
        ("fleets: [{name: a}, {name: a}]", "named twice"),
        ("fleets: {'bad name': {}}", "invalid fleet name"),
        ("fleets: {w: {count: 2}}", "count needs a mold"),
        ("fleets: {w: {mold: nope, count: 1}}", "mold 'nope' not found"),
    ],
)
def test_bad_manifests_change_nothing(base: Path, text: str, why: str) -> None:
    fleet.create_from_mold("keep", "worker", 1, base)
    before = snapshot(base)
    with pytest.raises((InvalidArgumentError, MoldNotFoundError), match=why):
        fleet.apply(text, base)
    assert snapshot(base) == before


def test_growing_a_fleet_without_a_mold_is_refused_up_front(base: Path) -> None:
    fleet.create("w", base)
    before = snapshot(base)
    with pytest.raises(InvalidArgumentError, match="has no mold"):
        fleet.apply("fleets: {w: {count: 2}, x: {}}", base)
    assert snapshot(base) == before


def test_load_manifest_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="cannot read manifest"):
        load_manifest(tmp_path / "missing.yaml")
    with pytest.raises(InvalidArgumentError, match="is a directory"):
        load_manifest(tmp_path)


# -- blue/green -------------------------------------------------------------------------


def test_shift_moves_size_from_blue_to_green(base: Path) -> None:
    blue = fleet.create_from_mold("blue", "worker", 3, base)
    fleet.create_from_mold("green", "worker", 1, base)
    src, dst = fleet.shift("blue", "green", base=base, task="v2")
    assert (len(src.member_ids), len(dst.member_ids)) == (0, 4)
    assert dst.last_deployed_task == "v2"
    fleet.create("probe", base)
    for m in blue.member_ids:
        fleet.add_member("probe", m, base)
    states = {m.state for m in fleet.health("probe", base).members}
    assert states == {AgentState.TERMINATED}


def test_shift_part_of_the_size_as_a_canary(base: Path) -> None:
    fleet.create_from_mold("blue", "worker", 4, base)
    fleet.create_from_mold("green", "worker", 1, base)
    fleet.scale("green", 0, base)
    src, dst = fleet.shift("blue", "green", 1, base)
    assert (len(src.member_ids), len(dst.member_ids)) == (3, 1)


@pytest.mark.parametrize(
    ("args", "error", "why"),
    [
        (("blue", "blue"), InvalidArgumentError, "two different fleets"),
        (("blue", "nope"), FleetNotFoundError, "fleet 'nope' not found"),
        (("blue", "green", 5), InvalidArgumentError, "between 1 and 2"),
        (("blue", "green", 0), InvalidArgumentError, "between 1 and 2"),
        (("blue", "plain"), InvalidArgumentError, "has no mold"),
    ],
)
def test_bad_shifts_change_nothing(
    base: Path, args: tuple[object, ...], error: type[Exception], why: str
) -> None:
    fleet.create_from_mold("blue", "worker", 2, base)
    fleet.create_from_mold("green", "worker", 1, base)
    fleet.create("plain", base)
    before = snapshot(base)
    with pytest.raises(error, match=why):
        fleet.shift(*args, base=base)  # type: ignore[arg-type]
    assert snapshot(base) == before
