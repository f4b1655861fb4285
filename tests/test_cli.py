"""End-to-end tests of the ``dalfleet`` command line (SPEC §8).

Most run the real command, ``python -m dalfleet``, as a subprocess in a temporary
project directory (PYTHONPATH points at the repository, so nothing is installed).
Checks that only look at one command's output call :func:`dalfleet.cli.main` in
process, which is much faster.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from dalfleet import __version__
from dalfleet.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]

WORKER_MOLD = """\
mold "worker" "1.0"
agent
  type Worker
  role "Process {{env}} jobs"
  capabilities "read" "write"
  memory_limit "256MB"
"""

HANDLER = """\
import time


def handle(agent, task):
    if agent.name.endswith("_1"):
        raise RuntimeError("member one always fails")
    return {"agent": agent.name, "task": task.description}


def ok(agent, task):
    return task.description.upper()


def mark(agent, task):
    import pathlib

    pathlib.Path(__file__).with_name("handler-started").touch()
    return "done"


def block(agent, task):
    import pathlib

    pathlib.Path(__file__).with_name("handler-started").touch()
    time.sleep(120)  # a sync handler stuck in I/O
    return "too late"
"""

SUBCOMMANDS = [
    "create",
    "list",
    "show",
    "scale",
    "delete",
    "deploy",
    "add-from-mold",
    "add-member",
    "run",
    "health",
    "export",
    "worker",
    "history",
    "rollback",
    "apply",
    "shift",
]


def dalfleet(
    *args: str, cwd: Path, pythonpath: Sequence[Path] = (), timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dalfleet ARGS`` in ``cwd``."""
    env = dict(os.environ)
    env.pop("DALFLEET_DEBUG", None)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in [REPO, *pythonpath])
    return subprocess.run(
        [sys.executable, "-m", "dalfleet", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Assert the command succeeded quietly; return its stdout lines."""
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


def iso(stamp: str) -> str:
    """The ISO-8601 UTC form of an epoch-seconds stamp from the fleet file."""
    moment = datetime.datetime.fromtimestamp(float(stamp), tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def fleet_file(base: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((base / ".dal" / "fleets.json").read_text("utf-8"))
    return data


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with ``mold/worker.mold.dal``, also the cwd for in-process calls."""
    (tmp_path / "mold").mkdir()
    (tmp_path / "mold" / "worker.mold.dal").write_text(WORKER_MOLD, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DALFLEET_DEBUG", raising=False)
    return tmp_path


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Call ``main(argv)`` in process; return (exit status, stdout, stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_main(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run_main(capsys, *argv)
    assert code == 0, err
    assert err == ""
    return json.loads(out)


# -- the reference's own integration checks ----------------------------------------------


def test_create_empty_then_list(project: Path) -> None:
    assert ok(dalfleet("create", "my-fleet", cwd=project)) == [
        "✅ Fleet 'my-fleet' created (empty)"
    ]
    assert ok(dalfleet("list", cwd=project)) == ["Fleets:", "  my-fleet  (0 agents)"]
    assert fleet_file(project)["my-fleet"] == {
        "name": "my-fleet",
        "mold_source": None,
        "member_ids": [],
    }


def test_list_without_fleets_says_how_to_create_one(project: Path) -> None:
    assert ok(dalfleet("list", cwd=project)) == [
        "No fleets (create with: dalfleet create <name> [--from-mold <path> --count N])"
    ]
    assert not (project / ".dal").exists()


def test_show_then_delete(project: Path) -> None:
    ok(dalfleet("create", "w", "--from-mold", "worker", "--count", "2", cwd=project))
    lines = ok(dalfleet("show", "w", cwd=project))
    ids = fleet_file(project)["w"]["member_ids"]
    assert lines == ["Fleet: w", "  From mold: worker", "  Members: 2", *(f"    {i}" for i in ids)]
    assert ok(dalfleet("delete", "w", cwd=project)) == ["✅ Fleet 'w' deleted"]
    gone = dalfleet("show", "w", cwd=project)
    assert gone.returncode == 1
    assert gone.stderr == "dalfleet: error: fleet 'w' not found\n"
    assert fleet_file(project) == {}


def test_create_from_mold_by_stem(project: Path) -> None:
    lines = ok(
        dalfleet(
            "create",
            "w",
            "--from-mold",
            "worker",
            "--count",
            "3",
            "--param",
            "env=prod",
            cwd=project,
        )
    )
    assert lines == ["✅ Fleet 'w' created with 3 agents from mold worker"]
    entry = fleet_file(project)["w"]
    assert entry["mold_source"] == "worker"
    assert len(entry["member_ids"]) == 3
    assert entry["last_create_params"] == {"env": "prod"}


def test_create_from_mold_count_defaults_to_one(project: Path) -> None:
    lines = ok(dalfleet("create", "w", "--from-mold", "mold/worker.mold.dal", cwd=project))
    assert lines == ["✅ Fleet 'w' created with 1 agents from mold mold/worker.mold.dal"]


def test_scale_down_then_up(project: Path) -> None:
    ok(dalfleet("create", "w", "--from-mold", "worker", "--count", "3", cwd=project))
    first = fleet_file(project)["w"]["member_ids"]
    assert ok(dalfleet("scale", "w", "1", cwd=project)) == ["✅ Fleet 'w' scaled to 1 agents"]
    assert fleet_file(project)["w"]["member_ids"] == first[:1]
    assert ok(dalfleet("scale", "w", "4", cwd=project)) == ["✅ Fleet 'w' scaled to 4 agents"]
    after = fleet_file(project)["w"]["member_ids"]
    assert len(after) == 4
    assert after[0] == first[0]
    assert "  Members: 4" in ok(dalfleet("show", "w", cwd=project))


def test_deploy_then_run_dispatches_to_every_member(project: Path) -> None:
    ok(dalfleet("create", "w", "--from-mold", "worker", "--count", "2", cwd=project))
    deployed = ok(dalfleet("deploy", "w", "Smoke test task", cwd=project))
    assert deployed == [
        "✅ Fleet 'w' deployed task (recorded in .dal/fleets.json)",
    ]
    assert ok(dalfleet("run", "w", cwd=project)) == ["Fleet 'w': dispatched to 2 member(s)"]
    again = dalfleet("run", cwd=project)
    assert again.returncode == 0
    assert again.stdout.splitlines() == ["Fleet 'w': dispatched to 2 member(s)"]
    # The second run queued the task again: said on stderr, stdout stays the reference's.
    assert again.stderr.startswith("note: 2 task(s) were already pending for fleet 'w' ")
    assert len(again.stderr.splitlines()) == 1


def test_health_shows_the_deployed_task(project: Path) -> None:
    ok(dalfleet("create", "w", "--from-mold", "worker", "--count", "2", cwd=project))
    ok(dalfleet("deploy", "w", "Process daily logs", cwd=project))
    ok(dalfleet("run", "w", cwd=project))
    lines = ok(dalfleet("health", "w", cwd=project))
    stamp = fleet_file(project)["w"]["last_deployed_at"]
    assert lines == [
        "Fleet: w",
        "  Members: 2",
        "  Has mold: true",
        "  Last deployed: Process daily logs",
        f"  Deployed at: {stamp}",
        "  Status: ok",
        f"  Deployed at (UTC): {iso(stamp)}",
        "  Alive: 2/2  Pending tasks: 2  Running tasks: 0  Completed tasks: 0  Failed tasks: 0",
    ]


def test_health_of_an_undeployed_fleet_omits_the_deployment_lines(project: Path) -> None:
    # As the reference: "Last deployed" and "Deployed at" only when set.
    ok(dalfleet("create", "e", cwd=project))
    lines = ok(dalfleet("health", "e", cwd=project))
    assert lines[:4] == [
        "Fleet: e",
        "  Members: 0",
        "  Has mold: false",
        "  Status: empty",
    ]
    assert lines[4].startswith("  Alive: ")


def test_k8s_export_contains_the_agent_ids(project: Path) -> None:
    ok(dalfleet("create", "w", "--from-mold", "worker", "--count", "2", cwd=project))
    result = dalfleet("export", "w", "--format", "k8s", cwd=project)
    assert result.returncode == 0, result.stderr
    for agent_id in fleet_file(project)["w"]["member_ids"]:
        assert agent_id in result.stdout
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert {d["kind"] for d in documents} == {"Job"}


# -- list -v, word-joined deploy, show details -------------------------------------------


def test_list_verbose_before_and_after_deploy(project: Path) -> None:
    ok(dalfleet("create", "w", "--from-mold", "worker", "--count", "2", cwd=project))
    assert ok(dalfleet("list", "-v", cwd=project)) == [
        "Fleets:",
        "  w  (2 agents)  last_deployed: —  at: —",
    ]
    ok(dalfleet("deploy", "w", "Process daily logs", cwd=project))
    stamp = fleet_file(project)["w"]["last_deployed_at"]
    assert ok(dalfleet("list", "--verbose", cwd=project)) == [
        "Fleets:",
        f"  w  (2 agents)  last_deployed: Process daily logs  at: {stamp}",
    ]


def test_deploy_joins_words_with_single_spaces(project: Path) -> None:
    ok(dalfleet("create", "w", cwd=project))
    ok(dalfleet("deploy", "w", "Process", "daily", "logs", cwd=project))
    assert fleet_file(project)["w"]["last_deployed_task"] == "Process daily logs"
    lines = ok(dalfleet("show", "w", cwd=project))
    assert "  Last deployed: Process daily logs" in lines
    assert any(line.startswith("  Deployed at: ") for line in lines)


def test_deploy_accepts_words_that_look_like_options_after_double_dash(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_main(capsys, "create", "w")
    code, _, err = run_main(capsys, "deploy", "w", "--", "--dry-run", "everything")
    assert code == 0, err
    assert fleet_file(project)["w"]["last_deployed_task"] == "--dry-run everything"


def test_add_from_mold_and_add_member(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_main(capsys, "create", "w")
    code, out, _ = run_main(capsys, "add-from-mold", "w", "worker", "2", "--param", "env=dev")
    assert (code, out) == (0, "✅ Added 2 agent(s) to fleet 'w' from mold worker\n")
    code, out, _ = run_main(capsys, "add-member", "w", "agent_elsewhere")
    assert (code, out) == (0, "✅ Added agent agent_elsewhere to fleet 'w'\n")
    # An existing member: the reference prints the same line and changes nothing.
    code, out, err = run_main(capsys, "add-member", "w", "agent_elsewhere")
    assert (code, out) == (0, "✅ Added agent agent_elsewhere to fleet 'w'\n")
    assert err == "note: agent agent_elsewhere was already a member of fleet 'w'; nothing changed\n"
    entry = fleet_file(project)["w"]
    assert len(entry["member_ids"]) == 3
    assert entry["mold_source"] == "worker"


def test_delete_with_teardown(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_main(capsys, "create", "w", "--from-mold", "worker", "--count", "2")
    code, out, _ = run_main(capsys, "delete", "w", "--teardown")
    assert (code, out) == (0, "✅ Fleet 'w' deleted\n  Members terminated\n")


def test_run_without_deployed_task_says_so(project: Path) -> None:
    ok(dalfleet("create", "w", "--from-mold", "worker", cwd=project))
    assert ok(dalfleet("run", cwd=project)) == [
        "No fleets with a deployed task to run (deploy first with: dalfleet deploy <name> <task>)"
    ]


def test_run_reports_members_that_cannot_be_dispatched(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_main(capsys, "create", "gone", "--from-mold", "worker")
    gone = json_main(capsys, "show", "gone", "--json")["member_ids"][0]
    run_main(capsys, "delete", "gone", "--teardown")
    run_main(capsys, "create", "w", "--from-mold", "worker")
    run_main(capsys, "add-member", "w", gone)
    run_main(capsys, "add-member", "w", "agent_from_elsewhere")  # queued, as the reference
    run_main(capsys, "deploy", "w", "task")
    code, out, err = run_main(capsys, "run", "w")
    assert code == 1
    # As the reference: the dispatched line on stdout, each error on stderr.
    assert out.splitlines() == ["Fleet 'w': dispatched to 2 member(s)"]
    assert err.splitlines() == [f"  ⚠ {gone}: agent '{gone}' is terminated"]


# -- --json on every command ---------------------------------------------------------------

FLEET_KEYS = {"name", "mold_source", "member_ids"}


def test_json_documents_of_every_command(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    created = json_main(capsys, "create", "w", "--from-mold", "worker", "--count", "2", "--json")
    assert set(created) >= FLEET_KEYS
    assert len(created["member_ids"]) == 2
    assert "last_create_params" not in created  # omitted when unset, as in the fleet file

    empty = json_main(capsys, "--json", "create", "e")
    assert empty == {"name": "e", "mold_source": None, "member_ids": []}

    listed = json_main(capsys, "list", "--json")
    assert [row["name"] for row in listed] == ["e", "w"]
    for row in listed:
        assert {"name", "member_count", "last_deployed_task", "last_deployed_at"} <= set(row)
    assert json_main(capsys, "list", "-v", "--json") == listed

    deployed = json_main(capsys, "deploy", "w", "Process", "logs", "--json")
    assert deployed["last_deployed_task"] == "Process logs"
    assert isinstance(deployed["last_deployed_at"], str)

    shown = json_main(capsys, "show", "w", "--json")
    assert shown["member_ids"] == created["member_ids"]
    assert shown["last_deployed_task"] == "Process logs"

    scaled = json_main(capsys, "scale", "w", "3", "--json")
    assert len(scaled["member_ids"]) == 3

    added = json_main(capsys, "add-from-mold", "e", "worker", "1", "--json")
    assert len(added["member_ids"]) == 1
    member = json_main(capsys, "add-member", "e", "agent_x", "--json")
    assert member["member_ids"][-1] == "agent_x"

    health = json_main(capsys, "health", "w", "--json")
    assert {"name", "member_count", "has_mold", "last_deployed_task", "status", "members"} <= set(
        health
    )
    assert health["member_count"] == 3
    assert {m["state"] for m in health["members"]} == {"alive"}

    reports = json_main(capsys, "run", "w", "--json")
    assert isinstance(reports, list)
    assert reports[0]["fleet_name"] == "w"
    assert reports[0]["members_dispatched"] == 3
    assert reports[0]["errors"] == []
    assert len(reports[0]["outcomes"]) == 3

    exported = json_main(capsys, "export", "w", "--json")
    assert exported["format"] == "k8s"
    assert len(exported["documents"]) == 3
    compose = json_main(capsys, "export", "--format", "compose", "--json")
    assert compose["format"] == "docker-compose"

    json_main(capsys, "deploy", "w", "second", "--json")
    history = json_main(capsys, "history", "w", "--json")
    assert [r["revision"] for r in history] == [1, 2]
    assert {"revision", "task", "deployed_at"} <= set(history[0])
    rolled = json_main(capsys, "rollback", "w", "--json")
    assert rolled["last_deployed_task"] == "Process logs"

    assert json_main(capsys, "delete", "e", "--json") == {
        "deleted": True,
        "name": "e",
        "teardown": False,
    }


def test_json_run_without_tasks_is_an_empty_list(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert json_main(capsys, "--json", "run") == []
    assert json_main(capsys, "--json", "list") == []


def test_json_error_still_goes_to_stderr(project: Path) -> None:
    result = dalfleet("--json", "show", "nope", cwd=project)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "dalfleet: error: fleet 'nope' not found\n"


# -- --base, python -m, --version, help -----------------------------------------------------


def test_base_before_or_after_the_subcommand(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "mold").mkdir(parents=True)
    (proj / "mold" / "worker.mold.dal").write_text(WORKER_MOLD, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ok(dalfleet("--base", str(proj), "create", "w", "--from-mold", "worker", cwd=elsewhere))
    ok(dalfleet("create", "v", "--base", str(proj), cwd=elsewhere))
    assert sorted(fleet_file(proj)) == ["v", "w"]
    assert not (elsewhere / ".dal").exists()
    assert ok(dalfleet("list", "--base", "proj", cwd=tmp_path)) == [
        "Fleets:",
        "  v  (0 agents)",
        "  w  (1 agents)",
    ]


def test_base_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    result = dalfleet("--base", "missing", "create", "w", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("dalfleet: error: base directory 'missing' ")
    assert not (tmp_path / "missing").exists()


def test_version(project: Path) -> None:
    assert ok(dalfleet("--version", cwd=project)) == [f"dalfleet {__version__}"]


def test_console_script_entry_point_is_entry() -> None:
    text = (REPO / "pyproject.toml").read_text("utf-8")
    assert 'dalfleet = "dalfleet.cli:entry"' in text


def _entry(tmp_path: Path, before: str, *argv: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        + before
        + f"\nsys.argv = ['dalfleet', *{list(argv)!r}]\n"
        + "from dalfleet.cli import entry\nentry()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def test_entry_runs_exit_handlers_and_flushes_before_it_exits(tmp_path: Path) -> None:
    result = _entry(
        tmp_path,
        "import atexit\natexit.register(lambda: print('handler ran', flush=True))",
        "create",
        "w",
    )
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["✅ Fleet 'w' created (empty)", "handler ran"]


def test_entry_exits_with_the_commands_status(tmp_path: Path) -> None:
    result = _entry(tmp_path, "", "deploy", "nope", "task")
    assert result.returncode == 1
    assert result.stderr.startswith("dalfleet: error: fleet 'nope' not found")
    assert _entry(tmp_path, "", "deploy").returncode == 2


def test_entry_waits_for_a_running_thread(tmp_path: Path) -> None:
    marker = tmp_path / "thread-finished"
    before = (
        "import threading, time, pathlib\n"
        "def late():\n"
        "    time.sleep(0.3)\n"
        f"    pathlib.Path({str(marker)!r}).write_text('done')\n"
        "threading.Thread(target=late).start()"
    )
    result = _entry(tmp_path, before, "list")
    assert result.returncode == 0
    assert marker.read_text() == "done"


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_every_subcommand_help_shows_an_example(
    subcommand: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(capsys, subcommand, "--help")
    assert code == 0
    assert "example:" in out
    assert f"dalfleet {subcommand}" in out.split("example:", 1)[1]


def test_top_level_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "--help")
    assert code == 0
    for subcommand in [*SUBCOMMANDS, "mold"]:
        assert subcommand in out
    assert "example:" in out


def test_positional_order_matches_the_spec() -> None:
    parser = build_parser()
    args = parser.parse_args(["add-from-mold", "w", "worker", "3", "--param", "a=1"])
    assert (args.name, args.source, args.count, args.param) == ("w", "worker", 3, ["a=1"])
    args = parser.parse_args(["scale", "w", "-1"])
    assert (args.name, args.size) == ("w", -1)
    args = parser.parse_args(["create", "w", "--from-mold", "m", "--count", "-1"])
    assert args.count == -1
    args = parser.parse_args(["add-member", "w", "agent_1"])
    assert (args.name, args.agent_id) == ("w", "agent_1")


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["deploy", "w", "t"], "deploy"),
        (["--base", "deploy", "list"], "list"),
        (["--base=deploy", "--json", "show", "w"], "show"),
        (["--url", "u", "--ray", "auto", "run", "w"], "run"),
        (["mold", "list"], "mold"),
        (["--help", "deploy"], None),
        (["-h"], None),
        (["--version", "list"], None),
        (["--", "list"], None),
        (["--json"], None),
        (["nope", "w"], None),
        ([], None),
    ],
)
def test_command_in_names_the_one_subcommand_to_build(argv: list[str], command: str | None) -> None:
    from dalfleet.cli.parser import command_in

    assert command_in(argv) == command


def _parsed(argv: list[str], command: str | None) -> dict[str, object]:
    from dalfleet.cli.parser import build_parser as build

    args = vars(build(command).parse_args(argv))
    return {k: v for k, v in args.items() if k != "parser"}


@pytest.mark.parametrize("subcommand", [*SUBCOMMANDS, "mold", "task", "init"])
def test_one_subcommand_parser_parses_its_examples_as_the_whole_parser(
    subcommand: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import shlex

    from dalfleet.cli.parser import command_in, examples

    code = main([subcommand, "--help"])
    assert code == 0
    help_text = capsys.readouterr().out
    lines = [shlex.split(line)[1:] for line in examples(help_text)]
    lines += [["--base", "deploy", "--json", *line] for line in lines]
    for argv in lines:
        command = command_in(argv)
        assert command == argv[argv.index(command)] if command else True
        assert _parsed(argv, command) == _parsed(argv, None), argv


def test_one_subcommand_parser_refuses_what_the_whole_parser_refuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (
        ["deploy"],
        ["deploy", "w", "--count", "3"],
        ["scale", "w", "many"],
        ["--base", "--help", "deploy", "w", "t"],
        ["-v", "list"],
        ["--ray", "deploy", "list", "--oops"],
        ["list", "extra"],
        ["mold", "nope"],
    ):
        assert main(argv) == 2
        one = capsys.readouterr().err
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
        assert capsys.readouterr().err.splitlines()[-1] in one


# -- execution: run --handler, worker ---------------------------------------------------------


@pytest.fixture
def handler_dir(tmp_path: Path) -> Path:
    """A directory holding the ``cli_handlers`` module, for PYTHONPATH."""
    directory = tmp_path / "handlers"
    directory.mkdir()
    (directory / "cli_handlers.py").write_text(HANDLER, encoding="utf-8")
    return directory


def test_run_with_a_handler_reports_each_failure_and_exits_1(
    project: Path, handler_dir: Path
) -> None:
    ok(dalfleet("create", "w", "--from-mold", "worker", "--count", "3", cwd=project))
    ok(dalfleet("deploy", "w", "Process logs", cwd=project))
    ids = fleet_file(project)["w"]["member_ids"]
    result = dalfleet(
        "run",
        "w",
        "--handler",
        "cli_handlers:handle",
        "--concurrency",
        "2",
        "--timeout",
        "10",
        cwd=project,
        pythonpath=[handler_dir],
    )
    assert result.returncode == 1
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Fleet 'w': 2 ok, 1 failed in ")
    assert lines[0].endswith("s")
    assert lines[1:] == [f"  {ids[1]}: RuntimeError: member one always fails"]


def test_run_with_a_handler_that_succeeds_exits_0(project: Path, handler_dir: Path) -> None:
    ok(dalfleet("create", "w", "--from-mold", "worker", "--count", "2", cwd=project))
    ok(dalfleet("deploy", "w", "shout", cwd=project))
    result = dalfleet(
        "--json", "run", "--handler", "cli_handlers:ok", cwd=project, pythonpath=[handler_dir]
    )
    assert result.returncode == 0, result.stderr
    (report,) = json.loads(result.stdout)
    assert report["ok"] is True
    assert [o["result"] for o in report["outcomes"]] == ["SHOUT", "SHOUT"]


@pytest.mark.slow  # other processes
def test_worker_once_drains_tasks_queued_by_another_process(
    project: Path, handler_dir: Path
) -> None:
    ok(dalfleet("create", "w", "--from-mold", "worker", "--count", "3", cwd=project))
    ok(dalfleet("deploy", "w", "Process logs", cwd=project))
    ok(dalfleet("run", "w", cwd=project))
    assert (
        "  Alive: 3/3  Pending tasks: 3  Running tasks: 0  Completed tasks: 0  Failed tasks: 0"
        in ok(dalfleet("health", "w", cwd=project))
    )
    ids = fleet_file(project)["w"]["member_ids"]
    result = dalfleet(
        "worker",
        "w",
        "--handler",
        "cli_handlers:handle",
        "--once",
        cwd=project,
        pythonpath=[handler_dir],
    )
    assert result.returncode == 1, result.stderr  # one task failed
    lines = result.stdout.splitlines()
    assert sorted(lines[:-1]) == sorted(
        [
            f"{ids[0]}: ok",
            f"{ids[1]}: error: RuntimeError: member one always fails",
            f"{ids[2]}: ok",
        ]
    )
    assert lines[-1] == "Worker for fleet 'w': executed 3 (2 ok, 1 failed, 0 released)"
    assert (
        "  Alive: 3/3  Pending tasks: 0  Running tasks: 0  Completed tasks: 2  Failed tasks: 1"
        in ok(dalfleet("health", "w", cwd=project))
    )
    again = dalfleet(
        "worker",
        "w",
        "--handler",
        "cli_handlers:handle",
        "--once",
        "--json",
        cwd=project,
        pythonpath=[handler_dir],
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["executed"] == 0


def start_worker(project: Path, handler_dir: Path, handler: str) -> subprocess.Popen[str]:
    """Start ``dalfleet worker w --handler HANDLER``; return once the handler has begun
    (so the worker's signal handlers are installed)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(handler_dir)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "dalfleet", "worker", "w", "--handler", handler, "--poll", "0.05"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = handler_dir / "handler-started"
    deadline = time.monotonic() + 30
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert started.exists(), proc.stderr.read() if proc.stderr else ""
    return proc


@pytest.mark.slow  # other processes
def test_worker_stops_cleanly_on_sigterm(project: Path, handler_dir: Path) -> None:
    ok(dalfleet("create", "w", "--from-mold", "worker", "--count", "2", cwd=project))
    ok(dalfleet("deploy", "w", "Process logs", cwd=project))
    ok(dalfleet("run", "w", cwd=project))
    proc = start_worker(project, handler_dir, "cli_handlers:mark")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert err == ""
    assert out.splitlines()[-1].startswith("Worker for fleet 'w': executed ")


def test_worker_needs_a_handler(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "worker", "w")
    assert code == 2
    assert err.startswith("dalfleet: error: the following arguments are required: --handler")


# -- history, rollback, export -o, mold tools ------------------------------------------------


def test_history_and_rollback(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_main(capsys, "create", "w")
    code, out, _ = run_main(capsys, "history", "w")
    assert (code, out) == (0, "No deployments recorded for fleet 'w'\n")
    run_main(capsys, "deploy", "w", "first task")
    run_main(capsys, "deploy", "w", "second task")
    code, out, _ = run_main(capsys, "history", "w")
    lines = out.splitlines()
    assert lines[0] == "History of fleet 'w':"
    assert lines[1].startswith("  #1  ") and lines[1].endswith("  first task")
    stamp = json_main(capsys, "history", "w", "--json")[0]["deployed_at"]
    assert lines[1] == f"  #1  {iso(stamp)}  first task"
    assert lines[2].startswith("  #2  ") and lines[2].endswith("  second task")
    code, out, _ = run_main(capsys, "rollback", "w")
    assert (code, out) == (0, "Fleet 'w' rolled back: revision 3 redeploys first task\n")
    code, out, _ = run_main(capsys, "rollback", "w", "--to", "2")
    assert code == 0
    assert fleet_file(project)["w"]["last_deployed_task"] == "second task"


def test_export_to_a_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_main(capsys, "create", "w", "--from-mold", "worker", "--count", "2")
    code, out, err = run_main(
        capsys, "export", "--format", "docker-compose", "--image", "me/agent:1", "-o", "c.yaml"
    )
    assert code == 0, err
    assert out == "Exported all fleets as docker-compose to c.yaml\n"
    document = yaml.safe_load((project / "c.yaml").read_text("utf-8"))
    assert len(document["services"]) == 2
    assert {s["image"] for s in document["services"].values()} == {"me/agent:1"}
    assert not [p for p in project.iterdir() if p.name.endswith(".tmp")]


def test_export_options_reach_the_manifests(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_main(capsys, "create", "w", "--from-mold", "worker")
    code, out, err = run_main(
        capsys,
        "export",
        "w",
        "--namespace",
        "agents",
        "--label",
        "team=ml",
        "--workload",
        "statefulset",
    )
    assert code == 0, err
    documents = [d for d in yaml.safe_load_all(out) if d]
    assert "StatefulSet" in {d["kind"] for d in documents}
    for document in documents:
        assert document["metadata"]["namespace"] == "agents"
        assert document["metadata"]["labels"]["team"] == "ml"


def test_mold_show_and_validate(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "mold", "show", "worker")
    assert code == 0
    assert out.splitlines() == [
        "Mold: worker (version 1.0)",
        f"  Path: {project / 'mold' / 'worker.mold.dal'}",
        "  Agent type: Worker",
        "  Role: Process {{env}} jobs",
        "  Capabilities: read, write",
        "  Trust level: ",
        "  Memory limit: 256MB",
        "  Learning: false  Communication: false  Coordination: false",
        "  Skills: —",
        "  Lifecycle hooks: —",
    ]
    assert json_main(capsys, "mold", "show", "worker", "--json")["memory_limit"] == "256MB"
    (project / "bad.mold.dal").write_text('mold "x"\nagent\n  type Alien\n', encoding="utf-8")
    code, out, err = run_main(capsys, "mold", "validate", "mold/worker.mold.dal", "bad.mold.dal")
    assert code == 1
    assert out == "mold/worker.mold.dal: ok (mold worker 1.0)\n"
    assert err.startswith("dalfleet: error: ")
    assert "Alien" in err
    assert len(err.splitlines()) == 1


# -- progress ---------------------------------------------------------------------------------


def test_no_progress_when_stderr_is_not_a_terminal(project: Path) -> None:
    result = dalfleet("create", "w", "--from-mold", "worker", "--count", "150", cwd=project)
    assert ok(result) == ["✅ Fleet 'w' created with 150 agents from mold worker"]


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_progress_on_a_terminal(project: Path) -> None:
    import pty

    master, slave = pty.openpty()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "dalfleet",
                "create",
                "w",
                "--from-mold",
                "worker",
                "--count",
                "150",
            ],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=60,
        )
    finally:
        os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert result.returncode == 0
    assert result.stdout == "✅ Fleet 'w' created with 150 agents from mold worker\n".encode()
    assert b"spawning" in shown
    assert b"150/150" in shown
    if importlib.util.find_spec("tqdm") is None:  # the plain fallback
        assert b"\rspawning 100/150" in shown
        assert shown.endswith(b"\r")  # the line is cleared at the end


# -- interruption and unexpected errors --------------------------------------------------------


def test_keyboard_interrupt_exits_130(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("dalfleet.client.Client.get", interrupted)
    code, out, err = run_main(capsys, "show", "w")
    assert (code, out, err) == (130, "", "dalfleet: error: interrupted\n")


def test_unexpected_exception_is_one_line_without_traceback(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something odd\nsecond line")

    monkeypatch.setattr("dalfleet.client.Client.get", broken)
    code, _, err = run_main(capsys, "show", "w")
    assert code == 1
    assert err == "dalfleet: internal error: RuntimeError: something odd second line\n"
    monkeypatch.setenv("DALFLEET_DEBUG", "1")
    code, _, err = run_main(capsys, "show", "w")
    assert code == 1
    assert "Traceback" in err
    assert err.endswith("dalfleet: internal error: RuntimeError: something odd second line\n")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.slow  # other processes
def test_a_stopped_worker_puts_its_unfinished_task_back(
    project: Path, handler_dir: Path, signum: int
) -> None:
    ok(dalfleet("create", "w", "--from-mold", "worker", cwd=project))
    ok(dalfleet("deploy", "w", "Process logs", cwd=project))
    ok(dalfleet("run", "w", cwd=project))
    proc = start_worker(project, handler_dir, "cli_handlers:block")
    proc.send_signal(signum)
    # Far sooner than the handler's 120 s: the stuck thread does not hold the process.
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.splitlines()[-1] == ("Worker for fleet 'w': executed 0 (0 ok, 0 failed, 1 released)")
    health = json.loads("\n".join(ok(dalfleet("health", "w", "--json", cwd=project))))
    assert [m["pending_tasks"] for m in health["members"]] == [1]
    drained = ok(
        dalfleet("worker", "w", "--handler", "dalfleet.handlers:echo", "--once", cwd=project)
    )
    assert drained[-1] == "Worker for fleet 'w': executed 1 (1 ok, 0 failed, 0 released)"


@pytest.mark.parametrize("columns", [None, "57", "200", "0", "wide"])
def test_help_is_as_wide_as_argparse_would_make_it(
    columns: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from dalfleet.cli.parser import _Formatter

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    ours = _Formatter("dalfleet")
    stock = argparse.RawDescriptionHelpFormatter("dalfleet")
    assert (ours._width, ours._max_help_position) == (stock._width, stock._max_help_position)
