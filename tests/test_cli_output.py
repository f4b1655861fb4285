"""What the command line prints and writes: escaping, strict JSON, ISO times, the
export file, help examples that run, and the newcomer's commands (SPEC §8, §9;
issues #10 items 13, 15, 18 and #14)."""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import shlex
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dalfleet.cli import build_parser, main
from dalfleet.cli.output import escape, iso_time, json_text, write_text

REPO = Path(__file__).resolve().parents[1]
# Raw control characters a terminal acts on (newline aside, which ends each line).
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
NASTY = "a\nFleet: forged\x1b[2J\x1b]0;title\x07\x9b31m\r\u202eZ"

WORKER_MOLD = 'mold "worker" "1.0"\nagent\n  type Worker\n  role "Process jobs"\n'


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "mold").mkdir()
    (tmp_path / "mold" / "worker.mold.dal").write_text(WORKER_MOLD, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(base: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(base)): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


# -- escaping (#10 item 15) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain 'quoted' text ✓ 漢字", "plain 'quoted' text ✓ 漢字"),
        ("a\nb", "a\\nb"),
        ("tab\there\r", "tab\\there\\r"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("bell\x07", "bell\\x07"),
        ("csi\x9b31m", "csi\\x9b31m"),
        ("del\x7f nul\x00", "del\\x7f nul\\x00"),
        ("line\u2028sep", "line\\u2028sep"),
        ("\u202eevil", "\\u202eevil"),
        ("lone \udce9", "lone \\udce9"),
    ],
)
def test_escape(text: str, shown: str) -> None:
    assert escape(text) == shown
    assert not RAW_CONTROL.search(escape(text))


@given(st.text())
def test_escape_never_lets_a_control_through(text: str) -> None:
    shown = escape(text)
    assert not RAW_CONTROL.search(shown)
    assert "\n" not in shown
    assert len(shown.splitlines()) <= 1
    printable = "".join(c for c in text if c.isprintable() and not RAW_CONTROL.search(c))
    if printable == text:
        assert shown == text  # ordinary text is printed as it is


@given(st.text(min_size=1).filter(lambda t: t.strip()))
def test_json_text_round_trips_and_stays_strict(text: str) -> None:
    document = {"task": text, "n": [float("nan"), 1]}
    dumped = json_text(document)
    assert not RAW_CONTROL.search(dumped.replace("\n", ""))
    loaded = json.loads(dumped, parse_constant=no_constants)
    assert loaded["n"] == [None, 1]
    assert loaded["task"] == text  # lone surrogates too (written as JSON escapes)


def test_a_task_with_control_characters_prints_as_one_escaped_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "create", "w", "--from-mold", "worker")
    code, _, err = run(capsys, "deploy", "w", NASTY)
    assert code == 0, err
    for argv in (["show", "w"], ["health", "w"], ["list", "-v"], ["list", "-o", "wide"]):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        assert not RAW_CONTROL.search(out), argv
        assert "Fleet: forged" not in out.splitlines()
        assert sum("\\x1b[2J" in row for row in out.splitlines()) == 1, argv
    code, out, _ = run(capsys, "history", "w")
    assert not RAW_CONTROL.search(out)
    assert len(out.splitlines()) == 2


def test_fleet_names_from_a_reference_file_cannot_forge_lines(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / ".dal").mkdir()
    entry = {"name": NASTY, "mold_source": NASTY, "member_ids": ["agent\x1b[1m_1"]}
    (project / ".dal" / "fleets.json").write_text(json.dumps({NASTY: entry}), encoding="utf-8")
    for argv in (["list"], ["list", "-v"], ["list", "-o", "wide"], ["show", NASTY]):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        assert not RAW_CONTROL.search(out), argv
    code, out, _ = run(capsys, "list")
    assert out.splitlines() == ["Fleets:", f"  {escape(NASTY)}  (1 agents)"]


def test_a_mold_field_with_control_characters(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    role = "ops\x1b]52;c;Zm9v\x07\x9b2J\u2028Status: ok\rX"
    text = f'mold "evil" "1.0"\nagent\n  type AI\n  role "{role}"\n'
    (project / "mold" / "evil.mold.dal").write_text(text, encoding="utf-8")
    code, out, err = run(capsys, "mold", "show", "evil")
    assert not RAW_CONTROL.search(out + err)
    if code == 0:
        assert f"  Role: {escape(role)}" in out.splitlines()
        assert len(out.splitlines()) == 10
    else:  # a parser that refuses the role says so on one line
        assert len(err.splitlines()) == 1


def test_error_messages_are_escaped_and_one_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["show", NASTY], ["create", NASTY], ["mold", "show", NASTY]):
        code, out, err = run(capsys, *argv)
        assert code == 1, argv
        assert out == ""
        assert len(err.splitlines()) == 1, err
        assert not RAW_CONTROL.search(err), argv


def test_exported_yaml_on_stdout_has_no_raw_controls_and_keeps_the_task(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    run(capsys, "create", "w", "--from-mold", "worker")
    run(capsys, "deploy", "w", NASTY)
    code, out, err = run(capsys, "export", "w")
    assert code == 0, err
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", out)
    (job,) = [d for d in yaml.safe_load_all(out) if d]
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DAL_TASK"] == NASTY


# -- strict JSON (#10 item 18) ----------------------------------------------------------


def no_constants(name: str) -> Any:
    raise AssertionError(f"not JSON: {name}")


def test_json_text_is_strict() -> None:
    document = {"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": ("x", None)}
    text = json_text(document)
    assert json.loads(text, parse_constant=no_constants) == {
        "a": None,
        "b": [None, None, 1.5],
        "c": ["x", None],
    }
    escaped = json_text({"task": NASTY, "bad": "caf\udce9"})
    assert not RAW_CONTROL.search(escaped.replace("\n", ""))
    assert json.loads(escaped)["task"] == NASTY


HANDLERS = """\
def nan(agent, task):
    return {"value": float("nan"), "big": float("inf"), "list": [float("-inf")]}
"""


def test_run_json_with_a_nan_result_is_valid_json(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "nan_handlers.py").write_text(HANDLERS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(project))
    run(capsys, "create", "w", "--from-mold", "worker", "--count", "2")
    run(capsys, "deploy", "w", "go")
    code, out, err = run(capsys, "run", "w", "--handler", "nan_handlers:nan", "--json")
    assert code == 0, err
    (report,) = json.loads(out, parse_constant=no_constants)
    assert [o["result"] for o in report["outcomes"]] == [
        {"value": None, "big": None, "list": [None]}
    ] * 2


# -- ISO-8601 times (#14) ---------------------------------------------------------------


def test_iso_time() -> None:
    assert iso_time("0") == "1970-01-01T00:00:00Z"
    assert iso_time("1764436720") == "2025-11-29T17:18:40Z"
    assert iso_time(1764436720.9) == "2025-11-29T17:18:40Z"
    for raw in (None, "", "soon", "nan", "1e400", "-1e300"):
        assert iso_time(raw) is None, raw


def test_history_and_health_show_utc_times(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "create", "w")
    run(capsys, "deploy", "w", "first")
    stamp = json.loads(run(capsys, "show", "w", "--json")[1])["last_deployed_at"]
    _, out, _ = run(capsys, "history", "w")
    assert out.splitlines()[1] == f"  #1  {iso_time(stamp)}  first"
    _, out, _ = run(capsys, "health", "w")
    lines = out.splitlines()
    assert f"  Deployed at: {stamp}" in lines  # the reference's raw value stays
    assert lines[lines.index("  Status: empty") + 1] == f"  Deployed at (UTC): {iso_time(stamp)}"


# -- the export file (#10 item 13) -------------------------------------------------------


def test_write_text_replaces_a_regular_file_atomically_keeping_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.yaml"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o600)
    inode = target.stat().st_ino
    write_text(target, "new\n")
    assert target.read_text("utf-8") == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert [p.name for p in tmp_path.iterdir()] == ["out.yaml"]


def test_write_text_writes_through_a_symlink_without_replacing_it(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    real.write_text("old", encoding="utf-8")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    write_text(link, "new\n")
    assert link.is_symlink()
    assert real.read_text("utf-8") == "new\n"


def test_write_text_into_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_text(fifo, "through the pipe\n")
    reader.join(timeout=30)
    assert received == [b"through the pipe\n"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_export_into_a_character_device_and_a_symlink_to_one(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "create", "w", "--from-mold", "worker")
    master, slave = pty.openpty()
    try:
        device = os.ttyname(slave)
        link = project / "to-device"
        link.symlink_to(device)
        for target in (device, str(link)):
            code, out, err = run(capsys, "export", "w", "--format", "compose", "-o", target)
            assert code == 0, err
            assert out == f"Exported fleet 'w' as docker-compose to {target}\n"
            assert b"services" in os.read(master, 65536)
        assert stat.S_ISCHR(os.stat(device).st_mode)
        assert link.is_symlink()
    finally:
        os.close(slave)
        os.close(master)


def test_export_to_a_directory_or_a_missing_folder_changes_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "create", "w", "--from-mold", "worker")
    (project / "out").mkdir()
    before = snapshot(project)
    for target in ("out", "missing/dir/c.yaml"):
        code, out, err = run(capsys, "export", "-o", target)
        assert code == 1
        assert out == ""
        assert err.startswith("dalfleet: error: cannot write ")
    assert snapshot(project) == before
    assert not (project / "missing").exists()


# -- help examples run as written (#14) --------------------------------------------------


def every_parser(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found.extend(every_parser(sub))
    return found


def example_blocks() -> list[tuple[str, list[str]]]:
    from dalfleet.cli.parser import examples

    return [(p.prog, examples(p.format_help())) for p in every_parser(build_parser())]


def test_every_help_has_examples() -> None:
    blocks = example_blocks()
    assert len(blocks) >= 24
    for prog, lines in blocks:
        assert lines, prog
        assert all(line.startswith("dalfleet ") for line in lines), prog


@pytest.mark.parametrize(("prog", "lines"), example_blocks(), ids=lambda v: str(v))
def test_help_examples_run_in_an_empty_directory(
    prog: str,
    lines: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for example in lines:
        argv = shlex.split(example)
        assert argv[0] == "dalfleet"
        code = main(argv[1:])
        captured = capsys.readouterr()
        assert code == 0, f"{example!r} in {prog}: {captured.err}"


def test_all_help_examples_run_one_after_another_in_one_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for prog, lines in example_blocks():
        for example in lines:
            code = main(shlex.split(example)[1:])
            captured = capsys.readouterr()
            assert code == 0, f"{example!r} in {prog}: {captured.err}"


def test_the_top_level_example_as_a_shell_runs_it(tmp_path: Path) -> None:
    # Once through a real shell with a 'dalfleet' command on PATH.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "dalfleet"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dalfleet "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(REPO)
    script = "set -e\n" + "\n".join(example_blocks()[0][1]) + "\n"
    result = subprocess.run(
        ["sh", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "✅ Fleet 'workers' created with 3 agents from mold worker" in result.stdout


# -- the newcomer's commands and messages (#14, #13 item 8) -------------------------------


def test_init_writes_the_samples_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--base", str(tmp_path), "init")
    assert code == 0, err
    assert out.splitlines()[0] == f"✅ Created {tmp_path / 'mold' / 'worker.mold.dal'}"
    assert (tmp_path / "mold" / "worker.mold.dal").is_file()
    assert (tmp_path / "fleets.yaml").is_file()
    before = snapshot(tmp_path)
    # Again: the files hold the samples already, so there is nothing to do.
    code, out, err = run(capsys, "--base", str(tmp_path), "init")
    assert code == 0, err
    assert out.splitlines()[0].startswith("Already initialized")
    assert snapshot(tmp_path) == before
    # An edited mold is the user's: init refuses and writes nothing.
    (tmp_path / "mold" / "worker.mold.dal").write_text("mine", encoding="utf-8")
    (tmp_path / "fleets.yaml").unlink()
    before = snapshot(tmp_path)
    code, out, err = run(capsys, "--base", str(tmp_path), "init")
    assert (code, out) == (1, "")
    assert "already exist" in err
    assert len(err.splitlines()) == 1
    assert snapshot(tmp_path) == before


def test_init_refuses_when_either_file_exists_and_writes_neither(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fleets.yaml").write_text("mine\n", encoding="utf-8")
    code, _, err = run(capsys, "--base", str(tmp_path), "init")
    assert code == 1
    assert "fleets.yaml" in err
    assert not (tmp_path / "mold").exists()
    assert (tmp_path / "fleets.yaml").read_text("utf-8") == "mine\n"


def test_mold_create_never_overwrites_and_checks_the_name(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "mine.mold.dal").write_text("keep me", encoding="utf-8")
    code, _, err = run(capsys, "mold", "create", "mine")
    assert code == 1
    assert (project / "mine.mold.dal").read_text("utf-8") == "keep me"
    for bad in ("../escape", "", "a/b", "-x"):
        code, _, err = run(capsys, "mold", "create", bad)
        assert code in (1, 2), bad
        assert len(err.splitlines()) == 1
    assert sorted(p.name for p in project.iterdir()) == ["mine.mold.dal", "mold"]
    assert not (project.parent / "escape.mold.dal").exists()


def test_a_mistyped_fleet_name_gets_a_suggestion(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "create", "workers")
    code, out, err = run(capsys, "show", "wokers")
    assert (code, out) == (1, "")
    assert err == "dalfleet: error: fleet 'wokers' not found; did you mean 'workers'?\n"
    code, _, err = run(capsys, "deploy", "zzz", "task")
    assert err == "dalfleet: error: fleet 'zzz' not found\n"


def test_a_param_given_twice_is_a_usage_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        ["create", "w", "--from-mold", "worker", "--param", "env=1", "--param", "env=2"],
        ["add-from-mold", "w", "worker", "1", "--param", "k=a", "--param", " k =b"],
    ):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (2, "")
        assert "given twice" in err
        assert len(err.splitlines()) == 1
    assert not (project / ".dal").exists()


def test_shift_from_an_empty_fleet_says_so(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "create", "blue")
    run(capsys, "create", "green", "--from-mold", "worker")
    code, _, err = run(capsys, "shift", "blue", "green")
    assert code == 1
    assert err == (
        "dalfleet: error: fleet 'blue' has no members to shift "
        "(scale it up first, or shift from a fleet that has members)\n"
    )


def test_list_wide_is_aligned(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "create", "a")
    run(capsys, "create", "a-much-longer-name", "--from-mold", "worker", "--count", "12")
    run(capsys, "deploy", "a", "task one")
    _, out, _ = run(capsys, "list", "-o", "wide")
    lines = out.splitlines()
    assert lines[0] == "NAME                MEMBERS  MOLD    DEPLOYED AT (UTC)     LAST DEPLOYED"
    column = lines[0].index("MEMBERS")
    assert [row[column:].split()[0] for row in lines[1:]] == ["0", "12"]
    assert lines[1].endswith("  task one")


# -- lazy imports ------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--version"], ["list"], ["--help"]])
def test_quick_commands_do_not_import_heavy_modules(argv: list[str], tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from dalfleet.cli import main\n"
        f"code = main({argv!r})\n"
        "heavy = sorted(m for m in ('asyncio', 'sqlite3', 'yaml', 'ray', 'psycopg') "
        "if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "HEAVY []" in result.stderr, result.stderr
