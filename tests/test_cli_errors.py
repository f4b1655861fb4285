"""Bad invocations of the ``dalfleet`` command line (SPEC §8, §9).

Each one must exit 1 (an error the library reports) or 2 (a usage error), print
exactly one line on stderr starting ``dalfleet: `` with no traceback, and leave
every file under ``.dal/`` byte-for-byte as it was. The whole table runs in
process through :func:`dalfleet.cli.main` (fast); a representative subset also
runs the real command as a subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dalfleet.cli import main
from tests.conftest import snapshot
from tests.test_cli import WORKER_MOLD

REPO = Path(__file__).resolve().parents[1]


BROKEN_MOLD = """\
mold "broken" "1.0"
agent
  type Alien
  role "unterminated
"""

TASK_100_KB = "x" * 100_000

# (id, argv, expected exit status, a fragment the message must contain)
CASES: list[tuple[str, list[str], int, str]] = [
    # usage errors: exit 2
    ("unknown-subcommand", ["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    ("no-subcommand", [], 2, "missing subcommand"),
    ("create-missing-name", ["create"], 2, "required: NAME"),
    ("scale-missing-size", ["scale", "w"], 2, "required: N"),
    ("deploy-missing-task", ["deploy", "w"], 2, "required: TASK"),
    ("add-from-mold-missing-count", ["add-from-mold", "w", "worker"], 2, "required: COUNT"),
    ("add-member-missing-id", ["add-member", "w"], 2, "required: ID"),
    ("count-not-a-number", ["create", "x", "--from-mold", "worker", "--count", "abc"], 2, "'abc'"),
    ("scale-not-a-number", ["scale", "w", "abc"], 2, "expected a whole number"),
    ("add-count-not-a-number", ["add-from-mold", "w", "worker", "2.5"], 2, "'2.5'"),
    ("count-without-mold", ["create", "x", "--count", "2"], 2, "--count needs --from-mold"),
    ("param-without-mold", ["create", "x", "--param", "a=1"], 2, "--param needs --from-mold"),
    ("param-missing-value", ["create", "x", "--from-mold", "worker", "--param"], 2, "--param"),
    ("unknown-option", ["list", "--wide"], 2, "unrecognized arguments: --wide"),
    ("label-without-equals", ["export", "w", "--label", "team"], 2, "KEY=VALUE"),
    ("timeout-not-a-number", ["run", "w", "--timeout", "soon"], 2, "'soon'"),
    ("task-not-utf8", ["deploy", "w", "a\udcffb"], 2, "not valid UTF-8"),
    ("mold-without-subcommand", ["mold"], 2, "missing subcommand"),
    # bad names: exit 1, nothing created
    ("name-empty", ["create", ""], 1, "invalid fleet name ''"),
    ("name-slash", ["create", "/"], 1, "invalid fleet name '/'"),
    ("name-dotdot", ["create", ".."], 1, "invalid fleet name '..'"),
    ("name-newline", ["create", "a\nb"], 1, "invalid fleet name"),
    ("name-64-chars", ["create", "a" * 64], 1, "64 characters"),
    ("name-cyrillic-lookalike", ["create", "w\u043ekers"], 1, "invalid fleet name"),
    ("name-exists", ["create", "w"], 1, "fleet 'w' already exists"),
    # counts and sizes
    ("count-zero", ["create", "x", "--from-mold", "worker", "--count", "0"], 1, ">= 1"),
    ("count-negative", ["create", "x", "--from-mold", "worker", "--count", "-1"], 1, ">= 1"),
    ("count-over-cap", ["create", "x", "--from-mold", "worker", "--count", "1001"], 1, "1000"),
    ("add-count-zero", ["add-from-mold", "w", "worker", "0"], 1, ">= 1"),
    ("scale-negative", ["scale", "w", "-1"], 1, ">= 0"),
    ("scale-over-cap", ["scale", "w", "1001"], 1, "capped at 1000"),
    ("scale-up-without-mold", ["scale", "e", "3"], 1, "has no mold; cannot scale up"),
    # params, tasks, agent IDs
    ("param-no-equals", ["create", "x", "--from-mold", "worker", "--param", "env"], 1, "'env'"),
    ("task-blank", ["deploy", "w", "  "], 1, "deploy task cannot be empty"),
    ("task-too-long", ["deploy", "w", TASK_100_KB], 1, "too long"),
    ("agent-id-blank", ["add-member", "w", " "], 1, "agent id cannot be empty"),
    # molds
    ("mold-missing", ["create", "x", "--from-mold", "nope"], 1, "mold 'nope' not found"),
    ("mold-broken", ["create", "x", "--from-mold", "broken"], 1, "broken"),
    ("add-from-missing-mold", ["add-from-mold", "w", "nope", "1"], 1, "not found"),
    ("mold-show-missing", ["mold", "show", "nope"], 1, "mold 'nope' not found"),
    ("mold-validate-broken", ["mold", "validate", "mold/broken.mold.dal"], 1, "broken.mold.dal"),
    # unknown fleets
    ("show-unknown", ["show", "nope"], 1, "fleet 'nope' not found"),
    ("scale-unknown", ["scale", "nope", "2"], 1, "fleet 'nope' not found"),
    ("deploy-unknown", ["deploy", "nope", "task"], 1, "fleet 'nope' not found"),
    ("run-unknown", ["run", "nope"], 1, "fleet 'nope' not found"),
    ("health-unknown", ["health", "nope"], 1, "fleet 'nope' not found"),
    ("export-unknown", ["export", "nope"], 1, "fleet 'nope' not found"),
    ("delete-unknown", ["delete", "nope"], 1, "fleet 'nope' not found"),
    ("add-member-unknown", ["add-member", "nope", "agent_1"], 1, "fleet 'nope' not found"),
    ("add-from-mold-unknown", ["add-from-mold", "nope", "worker", "1"], 1, "'nope' not found"),
    ("history-unknown", ["history", "nope"], 1, "fleet 'nope' not found"),
    ("rollback-unknown", ["rollback", "nope"], 1, "fleet 'nope' not found"),
    ("worker-unknown", ["worker", "nope", "--handler", "json:dumps", "--once"], 1, "'nope'"),
    # other
    ("export-unknown-format", ["export", "--format", "helm"], 1, "unknown export format 'helm'"),
    ("export-unknown-workload", ["export", "--workload", "daemonset"], 1, "daemonset"),
    ("run-bad-handler", ["run", "w", "--handler", "no_such_mod:fn"], 1, "no_such_mod"),
    ("run-handler-no-colon", ["run", "w", "--handler", "nocolon"], 1, "module:function"),
    ("run-empty-fleet-no-mold", ["run", "d"], 1, "has no members and no mold_source"),
    ("rollback-no-previous", ["rollback", "w"], 1, "no previous revision"),
    ("rollback-unknown-revision", ["rollback", "w", "--to", "7"], 1, "no revision 7"),
    ("base-missing", ["--base", "no/such/dir", "create", "x"], 1, "base directory"),
    ("json-error-before", ["--json", "show", "nope"], 1, "fleet 'nope' not found"),
    ("json-error-after", ["scale", "nope", "1", "--json"], 1, "fleet 'nope' not found"),
]

# The subset also run as a real subprocess.
SUBPROCESS_CASES = {
    "unknown-subcommand",
    "no-subcommand",
    "count-not-a-number",
    "name-empty",
    "name-cyrillic-lookalike",
    "scale-negative",
    "count-negative",
    "task-blank",
    "task-too-long",
    "mold-broken",
    "show-unknown",
    "scale-up-without-mold",
    "export-unknown-format",
    "json-error-before",
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with molds, fleet ``w`` (2 members, one deployment), empty fleet ``e``
    and empty fleet ``d`` with a deployed task."""
    base = tmp_path_factory.mktemp("template")
    (base / "mold").mkdir()
    (base / "mold" / "worker.mold.dal").write_text(WORKER_MOLD, encoding="utf-8")
    (base / "mold" / "broken.mold.dal").write_text(BROKEN_MOLD, encoding="utf-8")
    for argv in (
        ["create", "w", "--from-mold", "worker", "--count", "2"],
        ["deploy", "w", "Process logs"],
        ["create", "e"],
        ["create", "d"],
        ["deploy", "d", "nobody to run this"],
    ):
        assert main(["--base", str(base), *argv]) == 0
    return base


@pytest.fixture
def project(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the template project, as the current directory."""
    base = tmp_path / "project"
    shutil.copytree(template, base)
    monkeypatch.chdir(base)
    monkeypatch.delenv("DALFLEET_DEBUG", raising=False)
    return base


def dalfleet(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dalfleet ARGS`` in ``cwd``."""
    env = dict(os.environ)
    env.pop("DALFLEET_DEBUG", None)
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "dalfleet", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=60,
    )


def assert_one_error_line(stderr: str, fragment: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert stderr.endswith("\n")
    assert lines[0].startswith("dalfleet: error: "), stderr
    assert lines[0] != "dalfleet: error: "
    assert fragment in lines[0]


@pytest.mark.parametrize(
    ("argv", "status", "fragment"),
    [pytest.param(argv, status, fragment, id=case) for case, argv, status, fragment in CASES],
)
def test_bad_invocation_in_process(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    status: int,
    fragment: str,
) -> None:
    before = snapshot(project)
    assert before  # .dal/ exists, so "unchanged" means something
    code = main(argv)
    captured = capsys.readouterr()
    assert code == status, captured.err
    assert captured.out == ""
    assert_one_error_line(captured.err, fragment)
    assert snapshot(project) == before


@pytest.mark.parametrize(
    ("argv", "status", "fragment"),
    [
        pytest.param(argv, status, fragment, id=case)
        for case, argv, status, fragment in CASES
        if case in SUBPROCESS_CASES
    ],
)
def test_bad_invocation_as_a_real_command(
    project: Path, argv: list[str], status: int, fragment: str
) -> None:
    before = snapshot(project)
    result = dalfleet(*argv, cwd=project)
    assert result.returncode == status, result.stderr
    assert result.stdout == ""
    assert_one_error_line(result.stderr, fragment)
    assert snapshot(project) == before


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert {status for _, _, status, _ in CASES} == {1, 2}


# -- a corrupt fleet file is named and left alone ---------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["show", "w"],
        ["create", "x"],
        ["deploy", "w", "task"],
        ["scale", "w", "1"],
        ["run"],
        ["export"],
    ],
    ids=lambda argv: "-".join(argv),
)
def test_corrupt_fleet_file_is_named_and_not_touched(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    fleets = project / ".dal" / "fleets.json"
    fleets.write_bytes(b'{"w": {"name": "w", "member_ids": [')
    before = snapshot(project)
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 1
    assert_one_error_line(captured.err, "corrupt fleet file")
    assert str(fleets) in captured.err
    assert snapshot(project) == before


def test_corrupt_fleet_file_as_a_real_command(project: Path) -> None:
    fleets = project / ".dal" / "fleets.json"
    fleets.write_bytes(b"not json at all")
    before = snapshot(project)
    result = dalfleet("deploy", "w", "task", cwd=project)
    assert result.returncode == 1
    assert_one_error_line(result.stderr, str(fleets))
    assert snapshot(project) == before


# -- a fresh directory stays fresh --------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["create", ""],
        ["create", "x", "--from-mold", "nope"],
        ["show", "x"],
        ["deploy", "x", "task"],
        ["health", "x"],
        ["export"],
        ["frobnicate"],
    ],
    ids=lambda argv: "-".join(argv) or "empty-name",
)
def test_errors_in_a_fresh_directory_create_nothing(tmp_path: Path, argv: list[str]) -> None:
    result = dalfleet(*argv, cwd=tmp_path)
    assert result.returncode in (1, 2)
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("dalfleet: ")
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


# -- usage errors are one line, not argparse's usage block --------------------------------------


def test_usage_error_points_at_the_subcommand_help(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["scale", "w", "many"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "dalfleet: error: argument N: expected a whole number, not 'many' "
        "(see dalfleet scale --help)\n"
    )


def test_failed_spawn_leaves_no_partial_fleet(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(project)
    code = main(["create", "x", "--from-mold", "worker", "--count", "2", "--param", "a b=1"])
    captured = capsys.readouterr()
    assert code == 1
    assert_one_error_line(captured.err, "a b=1")
    assert snapshot(project) == before
