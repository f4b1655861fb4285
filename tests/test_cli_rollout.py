"""``dalfleet apply`` and ``dalfleet shift`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import snapshot
from tests.test_cli import dalfleet, json_main, ok, run_main

MANIFEST = """\
fleets:
  workers: {mold: worker, count: 3, task: Process daily logs}
  blue: {mold: worker, count: 2}
  green: {mold: worker, count: 1}
"""


def test_apply_dry_run_then_apply_then_nothing_to_do(in_base: Path) -> None:
    (in_base / "fleets.yaml").write_text(MANIFEST)
    lines = ok(dalfleet("apply", "-f", "fleets.yaml", "--dry-run", cwd=in_base))
    assert lines == [
        "+ workers: create with 3 agents from mold worker",
        "~ workers: deploy 'Process daily logs'",
        "+ blue: create with 2 agents from mold worker",
        "+ green: create with 1 agents from mold worker",
        "4 change(s) planned (dry run: nothing changed)",
    ]
    assert not (in_base / ".dal").exists()
    assert ok(dalfleet("apply", "-f", "fleets.yaml", cwd=in_base))[-1] == "4 change(s) applied"
    assert ok(dalfleet("apply", "-f", "fleets.yaml", cwd=in_base)) == [
        "No changes: the fleets match the manifest"
    ]
    assert "  workers  (3 agents)" in ok(dalfleet("list", cwd=in_base))


def test_apply_reads_stdin_and_prints_json(in_base: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dalfleet", "apply", "-f", "-", "--json"],
        input="fleets: {solo: {}}",
        cwd=in_base,
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document == {
        "dry_run": False,
        "changes": [{"action": "create", "fleet": "solo", "detail": "create (empty)"}],
    }


def test_apply_prune(in_base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(capsys, "create", "old")[0] == 0
    (in_base / "m.yaml").write_text("fleets: {new: {}}")
    code, out, _ = run_main(capsys, "apply", "-f", "m.yaml", "--prune")
    assert code == 0
    assert "- old: delete and tear down 0 agents" in out
    assert json_main(capsys, "list", "--json")[0]["name"] == "new"


@pytest.mark.parametrize(
    ("argv", "code", "why"),
    [
        (["apply"], 2, "-f/--filename"),
        (["apply", "-f", "missing.yaml"], 1, "cannot read manifest"),
        (["apply", "-f", "bad.yaml"], 1, "unknown key 'colour'"),
        (["apply", "-f", "grow.yaml"], 1, "has no mold"),
        (["shift", "a"], 2, "required"),
        (["shift", "a", "a"], 1, "two different fleets"),
        (["shift", "a", "nope"], 1, "fleet 'nope' not found"),
        (["shift", "a", "b", "--count", "x"], 2, "whole number"),
        (["shift", "a", "b", "--count", "9"], 1, "between 1 and 2"),
        (["shift", "a", "plain"], 1, "has no mold"),
    ],
)
def test_bad_invocations_change_nothing(
    in_base: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, why: str
) -> None:
    (in_base / "bad.yaml").write_text("fleets: {w: {colour: red}}")
    (in_base / "grow.yaml").write_text("fleets: {plain: {count: 3}}")
    for setup in (
        ["create", "a", "--from-mold", "worker", "--count", "2"],
        ["create", "b", "--from-mold", "worker"],
        ["create", "plain"],
    ):
        assert run_main(capsys, *setup)[0] == 0
    before = snapshot(in_base)
    got, out, err = run_main(capsys, *argv)
    assert got == code
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("dalfleet: ") and why in err
    assert snapshot(in_base) == before


def test_shift_blue_to_green(in_base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(capsys, "create", "blue", "--from-mold", "worker", "--count", "2")[0] == 0
    assert run_main(capsys, "create", "green", "--from-mold", "worker")[0] == 0
    code, out, err = run_main(capsys, "shift", "blue", "green", "--task", "v2")
    assert (code, err) == (0, "")
    assert out == "Shifted to fleet 'green': 'blue' now has 0 members, 'green' has 3 members\n"
    shown = json_main(capsys, "show", "green", "--json")
    assert shown["last_deployed_task"] == "v2" and len(shown["member_ids"]) == 3
