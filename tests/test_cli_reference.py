"""The reference's own output lines, byte for byte (SPEC §8, issue #13 item 5).

The expected lines below were written from reading the reference's command
handling for ``dal agent fleet``, ``dal agent mold`` and ``dal agent task``; its
hints say ``dal agent fleet`` where ours say ``dalfleet``. Lines of our own may
follow the reference's, never replace or change them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dalfleet.cli import main

WORKER_MOLD = """\
mold "worker" "1.0"
agent
  type Worker
  role "Process {{env}} jobs"
  capabilities "read" "write"
  memory_limit "256MB"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "mold").mkdir()
    (tmp_path / "mold" / "worker.mold.dal").write_text(WORKER_MOLD, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    """Run one command in process; it must succeed. Its stdout lines."""
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out.splitlines()


def fleet_entry(base: Path, name: str) -> dict[str, object]:
    entry: dict[str, object] = json.loads((base / ".dal" / "fleets.json").read_text("utf-8"))[name]
    return entry


# (command, the reference's lines it prints first, exactly) in one project, in order.
SESSION: list[tuple[list[str], list[str]]] = [
    (["list"], ["No fleets (create with: dalfleet create <name> [--from-mold <path> --count N])"]),
    (["create", "e"], ["✅ Fleet 'e' created (empty)"]),
    (
        ["create", "w", "--from-mold", "worker", "--count", "2"],
        ["✅ Fleet 'w' created with 2 agents from mold worker"],
    ),
    (
        ["create", "one", "--from-mold", "mold/worker.mold.dal"],
        ["✅ Fleet 'one' created with 1 agents from mold mold/worker.mold.dal"],
    ),
    (["list"], ["Fleets:", "  e  (0 agents)", "  one  (1 agents)", "  w  (2 agents)"]),
    (
        ["list", "-v"],
        [
            "Fleets:",
            "  e  (0 agents)  last_deployed: —  at: —",
            "  one  (1 agents)  last_deployed: —  at: —",
            "  w  (2 agents)  last_deployed: —  at: —",
        ],
    ),
    (
        ["run"],
        [
            "No fleets with a deployed task to run "
            "(deploy first with: dalfleet deploy <name> <task>)"
        ],
    ),
    (
        ["deploy", "w", "Process", "daily", "logs"],
        ["✅ Fleet 'w' deployed task (recorded in .dal/fleets.json)"],
    ),
    (["scale", "w", "3"], ["✅ Fleet 'w' scaled to 3 agents"]),
    (["scale", "one", "0"], ["✅ Fleet 'one' scaled to 0 agents"]),
    (
        ["add-from-mold", "e", "worker", "1"],
        ["✅ Added 1 agent(s) to fleet 'e' from mold worker"],
    ),
    (["add-member", "e", "agent_elsewhere"], ["✅ Added agent agent_elsewhere to fleet 'e'"]),
    # An existing member: the reference prints the same line (and changes nothing).
    (["add-member", "e", "agent_elsewhere"], ["✅ Added agent agent_elsewhere to fleet 'e'"]),
    (["run", "w"], ["Fleet 'w': dispatched to 3 member(s)"]),
    (["show", "one"], ["Fleet: one", "  From mold: mold/worker.mold.dal", "  Members: 0"]),
    (
        ["health", "e"],
        ["Fleet: e", "  Members: 2", "  Has mold: true", "  Status: ok"],
    ),
    (["delete", "one"], ["✅ Fleet 'one' deleted"]),
    (["task", "list", "agent_nobody"], ["📋 No pending tasks for agent_nobody"]),
]


def test_the_reference_lines_in_one_session(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, expected in SESSION:
        lines = cli(capsys, *argv)
        assert lines[: len(expected)] == expected, argv


def test_lines_that_show_the_deployed_task_and_time(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "create", "w", "--from-mold", "worker", "--count", "2")
    cli(capsys, "deploy", "w", "  Process daily logs  ")
    entry = fleet_entry(project, "w")
    stamp, ids = entry["last_deployed_at"], entry["member_ids"]
    assert isinstance(ids, list)
    assert cli(capsys, "list", "-v") == [
        "Fleets:",
        f"  w  (2 agents)  last_deployed: Process daily logs  at: {stamp}",
    ]
    assert cli(capsys, "show", "w") == [
        "Fleet: w",
        "  From mold: worker",
        "  Members: 2",
        *(f"    {agent_id}" for agent_id in ids),
        "  Last deployed: Process daily logs",
        f"  Deployed at: {stamp}",
    ]
    assert cli(capsys, "health", "w")[:6] == [
        "Fleet: w",
        "  Members: 2",
        "  Has mold: true",
        "  Last deployed: Process daily logs",
        f"  Deployed at: {stamp}",
        "  Status: ok",
    ]
    assert cli(capsys, "health", "w")[6].startswith("  Deployed at (UTC): ")


def test_an_empty_fleet_health_is_the_reference_s_four_lines(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "create", "e")
    assert cli(capsys, "health", "e")[:4] == [
        "Fleet: e",
        "  Members: 0",
        "  Has mold: false",
        "  Status: empty",
    ]


def test_run_errors_go_to_stderr_with_the_reference_s_mark(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "create", "gone", "--from-mold", "worker")
    (gone,) = json.loads("\n".join(cli(capsys, "show", "gone", "--json")))["member_ids"]
    cli(capsys, "delete", "gone", "--teardown")
    cli(capsys, "create", "w")
    cli(capsys, "add-member", "w", gone)
    cli(capsys, "deploy", "w", "task")
    code = main(["run", "w"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == "Fleet 'w': dispatched to 0 member(s)\n"
    assert captured.err.splitlines()[0].startswith("  ⚠ ")


def test_names_the_reference_wrote_print_as_written(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The reference quotes with '{}' whatever the name holds.
    (project / ".dal").mkdir()
    entry = {"name": "it's", "mold_source": None, "member_ids": []}
    (project / ".dal" / "fleets.json").write_text(json.dumps({"it's": entry}), encoding="utf-8")
    assert cli(capsys, "list") == ["Fleets:", "  it's  (0 agents)"]
    assert cli(capsys, "deploy", "it's", "go") == [
        "✅ Fleet 'it's' deployed task (recorded in .dal/fleets.json)",
    ]


def test_mold_lines(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "mold", "show", "worker")[:8] == [
        "Mold: worker (version 1.0)",
        f"  Path: {project / 'mold' / 'worker.mold.dal'}",
        "  Agent type: Worker",
        "  Role: Process {{env}} jobs",
        "  Capabilities: read, write",
        "  Trust level: ",
        "  Memory limit: 256MB",
        "  Learning: false  Communication: false  Coordination: false",
    ]
    assert cli(capsys, "mold", "list") == [
        "Local molds:",
        f"  worker.mold.dal  {project / 'mold' / 'worker.mold.dal'}",
    ]
    assert cli(capsys, "mold", "create", "reviewer") == [
        f"✅ Created mold template: {project / 'reviewer.mold.dal'}"
    ]
    assert cli(capsys, "mold", "validate", "reviewer.mold.dal") == [
        "reviewer.mold.dal: ok (mold reviewer 1.0)"
    ]


def test_mold_list_without_molds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "--base", str(tmp_path), "mold", "list") == [
        "No local molds found (looked in ., mold/, mold/samples for *.mold.dal, *.mold.json)"
    ]


def test_mold_list_order_is_the_reference_s(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every .mold.dal by full path, then every .mold.json; other files and folders ignored.
    (tmp_path / "mold" / "samples").mkdir(parents=True)
    for relative in [
        "z.mold.dal",
        "b.mold.json",
        "mold/a.mold.json",
        "mold/y.mold.dal",
        "mold/samples/c.mold.dal",
        "notes.txt",
        "mold/x.mold.dal.bak",
    ]:
        (tmp_path / relative).write_text('mold "m" "1.0"\nagent\n  type AI\n', encoding="utf-8")
    (tmp_path / "dir.mold.dal").mkdir()
    lines = cli(capsys, "--base", str(tmp_path), "mold", "list")
    order = ["mold/samples/c.mold.dal", "mold/y.mold.dal", "z.mold.dal"]
    order += ["b.mold.json", "mold/a.mold.json"]
    assert lines == [
        "Local molds:",
        *(f"  {Path(r).name}  {tmp_path / r}" for r in order),
    ]


def test_task_list_of_an_agent_with_pending_tasks(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "create", "w", "--from-mold", "worker")
    cli(capsys, "deploy", "w", "Process logs")
    cli(capsys, "run", "w")
    (agent_id,) = json.loads("\n".join(cli(capsys, "show", "w", "--json")))["member_ids"]
    code = main(["task", "list", agent_id])
    captured = capsys.readouterr()
    if code == 0:  # a coordinator that lists an agent's tasks
        lines = captured.out.splitlines()
        assert lines[:2] == [f"📋 Pending tasks for {agent_id} (1):", ""]
        assert lines[2].startswith("   1. ")
        assert lines[2].endswith(" | medium | Process logs")
    else:  # one that cannot: a clear error, not a wrong "no tasks"
        assert code == 1
        assert "cannot list" in captured.err
