"""SPEC §3 / §9: corrupt, hostile and unreadable fleet files.

Each case gets a clear error (a :class:`~dalfleet.FleetError`, a one-line CLI
message) that names the file, from every call that reads or changes fleets, and
the file is never rewritten. Cases already in ``test_store_json.py`` (truncated
object, empty file, a list, ``member_ids`` a string, ``name`` a number, bad
UTF-8, a small size limit, a plain directory for ``list`` and
``create``) are not repeated here.

Unreadable files: the tests run as root in CI, where ``chmod 000`` does not stop
a read. The permission test therefore reads from a child process that drops to
user ``nobody`` (when it starts as root) after importing dalfleet. A directory, a
symlink to a directory, a dangling symlink and a symlink loop stand in for other
unreadable paths.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dalfleet.fleet as fleet
from dalfleet import CorruptStoreError, FleetError, StoreError
from dalfleet.convert import to_json_document
from dalfleet.store import JsonFileStore

REPO = Path(__file__).resolve().parents[1]

Op = Callable[[Path], object]

# Every public call that changes the fleet file (and run, which may add a member).
MUTATING: dict[str, Op] = {
    "create": lambda b: fleet.create("x", b),
    "create_from_mold": lambda b: fleet.create_from_mold("y", "worker", 2, b),
    "deploy": lambda b: fleet.deploy("w", "new task", b),
    "add_member": lambda b: fleet.add_member("w", "agent_new", b),
    "scale_up": lambda b: fleet.scale("w", 5, b),
    "scale_down": lambda b: fleet.scale("w", 0, b),
    "delete": lambda b: fleet.delete("w", b),
    "run_all": lambda b: fleet.run(None, b),
    "run_one": lambda b: fleet.run("w", b),
    "add_from_mold": lambda b: fleet.add_from_mold("w", "worker", 1, b),
    "rollback": lambda b: fleet.rollback("w", b),
}
READING: dict[str, Op] = {
    "list": lambda b: fleet.list(b),
    "show": lambda b: fleet.show("w", b),
    "health": lambda b: fleet.health("w", b),
    "export": lambda b: fleet.export(None, b),
    "history": lambda b: fleet.history("w", b),
}
EVERY_OP = {**MUTATING, **READING}


def fleet_path(base: Path) -> Path:
    return base / ".dal" / "fleets.json"


def entry(name: object, **more: object) -> dict[str, object]:
    return {"name": name, "mold_source": None, "member_ids": [], **more}


def dumps(data: object) -> bytes:
    return json.dumps(data, indent=2).encode("utf-8")


def write_file(base: Path, content: bytes) -> Path:
    path = fleet_path(base)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def snapshot(base: Path) -> dict[str, object]:
    """Every path under ``base/.dal``: file bytes, ``None`` for a directory, and for a
    symlink its target (conftest's snapshot would follow links, which fails on a loop)."""
    root = base / ".dal"
    out: dict[str, object] = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(base))
        if path.is_symlink():
            out[rel] = ("symlink", os.readlink(path))
        else:
            out[rel] = None if path.is_dir() else path.read_bytes()
    return out


def head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(4096)


def assert_refused(
    base: Path,
    ops: dict[str, Op],
    error: type[FleetError],
    names: str,
    why: str | None = None,
) -> None:
    """Every op raises ``error`` with a one-line message naming ``names``; .dal/ unchanged."""
    before = snapshot(base)
    for label, op in ops.items():
        try:
            result = op(base)
        except FleetError as exc:
            message = str(exc)
            assert type(exc) is error, f"{label}: {type(exc).__name__}: {message}"
        except Exception as exc:  # a crash, not a clear error
            pytest.fail(f"{label}: {type(exc).__name__} instead of {error.__name__}: {exc}")
        else:
            pytest.fail(f"{label}: no error, returned {str(result)[:100]}")
        assert names in message, f"{label}: {message}"
        assert "\n" not in message, f"{label}: {message!r}"
        if why is not None:
            assert why in message, f"{label}: {message}"
    assert snapshot(base) == before


# -- corrupt contents -----------------------------------------------------------------------

GOOD = entry("w", member_ids=["agent_1", "agent_2"], last_deployed_task="t")
CORRUPT: dict[str, tuple[bytes, str]] = {
    "number_as_name": (dumps({"5": entry(5)}), "name must be a string, not int"),
    "member_ids_a_number": (dumps({"w": entry("w", member_ids=7)}), "member_ids must be a list"),
    "member_ids_null": (dumps({"w": entry("w", member_ids=None)}), "member_ids must be a list"),
    "member_ids_numbers": (dumps({"w": entry("w", member_ids=[1, 2])}), "list of strings"),
    "member_ids_nested": (dumps({"w": entry("w", member_ids=[["a"]])}), "list of strings"),
    "task_a_list": (dumps({"w": entry("w", last_deployed_task=["x"])}), "last_deployed_task"),
    "deployed_at_a_bool": (dumps({"w": entry("w", last_deployed_at=True)}), "last_deployed_at"),
    "params_nested": (
        dumps({"w": entry("w", last_create_params={"a": {"b": [1]}})}),
        "last_create_params must be an object of strings",
    ),
    "params_a_list": (
        dumps({"w": entry("w", last_create_params=["env=prod"])}),
        "last_create_params",
    ),
    "history_garbage": (dumps({"w": entry("w", dalfleet_history="junk")}), "dalfleet_history"),
    "history_bad_revision": (
        dumps({"w": entry("w", dalfleet_history=[{"revision": "one"}])}),
        "dalfleet_history",
    ),
    "top_level_null": (b"null", "not NoneType"),
    "top_level_string": (b'"fleets"', "not str"),
    "top_level_number": (b"42", "not int"),
    "deeply_nested_arrays": (b"[" * 100_000, "nested too deeply"),
    "deeply_nested_extra_key": (
        b'{"w": {"name": "w", "member_ids": [], "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
        "nested too deeply",
    ),
    "utf8_bom": (b"\xef\xbb\xbf" + dumps({"w": GOOD}), "BOM"),
    "nul_bytes": (b"\x00" * 64, "Expecting value"),
    "trailing_garbage": (dumps({"w": GOOD}) + b"\n}{ junk", "Extra data"),
    "two_documents": (dumps({"w": GOOD}) + dumps({"w": GOOD}), "Extra data"),
    "truncated_in_a_string": (dumps({"w": GOOD})[:40], "Unterminated string"),
    "truncated_after_a_comma": (b'{"w": {"name": "w", "member_ids": ["a",', "Expecting value"),
    # Not JSON (RFC 8259) and refused by the reference; writing them back would
    # hand the reference a file it cannot read.
    "nan": (b'{"w": {"name": "w", "member_ids": [], "x": NaN}}', "NaN"),
    "infinity": (b'{"w": {"name": "w", "member_ids": [], "x": Infinity}}', "Infinity"),
    # More digits than Python turns into an int by default.
    "huge_integer": (
        b'{"w": {"name": "w", "member_ids": [], "x": ' + b"9" * 5000 + b"}}",
        "",
    ),
    # Two fleets under one key: a rewrite would silently drop the first.
    "duplicate_fleet_key": (
        b'{"w": {"name": "w", "member_ids": ["a"]}, "w": {"name": "w", "member_ids": []}}',
        "'w'",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_file_is_refused_by_every_call_and_never_rewritten(base: Path, case: str) -> None:
    content, why = CORRUPT[case]
    path = write_file(base, content)
    assert_refused(base, EVERY_OP, CorruptStoreError, str(path), why)
    assert path.read_bytes() == content


@pytest.mark.parametrize("cut", [1, 0.25, 0.5, 0.9, -2])  # -2: all but "}\n"
def test_a_real_fleet_file_cut_short_anywhere_is_refused(base: Path, cut: float) -> None:
    fleet.create_from_mold("w", "worker", 3, base, {"env": "prod"})
    fleet.deploy("w", "go", base)
    whole = fleet_path(base).read_bytes()
    at = int(cut) if isinstance(cut, int) else int(len(whole) * cut)
    fleet_path(base).write_bytes(whole[:at])
    assert_refused(base, EVERY_OP, CorruptStoreError, str(fleet_path(base)))


def test_lone_surrogate_in_the_file_is_a_clear_error_not_a_crash(base: Path) -> None:
    # "\ud800" parses in Python but cannot be written back as UTF-8 (nor read by the reference).
    content = b'{"w": {"name": "w", "mold_source": null, "member_ids": ["\\ud800"]}}'
    path = write_file(base, content)
    assert_refused(base, MUTATING, CorruptStoreError, str(path))
    assert path.read_bytes() == content


# -- huge and unreadable paths ----------------------------------------------------------------


def test_a_100_mb_file_is_refused_fast_without_reading_it(base: Path) -> None:
    path = write_file(base, b"{")
    with path.open("r+b") as f:
        f.truncate(100 * 1024 * 1024)  # sparse: large on paper, cheap on disk
    before = path.stat()
    began = time.monotonic()
    for label, op in EVERY_OP.items():
        with pytest.raises(StoreError) as info:
            op(base)
        message = str(info.value)
        assert not isinstance(info.value, CorruptStoreError), label
        assert str(path) in message and "too large" in message, f"{label}: {message}"
        assert "104857600" in message and "\n" not in message
    assert time.monotonic() - began < 5  # 16 calls; reading 100 MB each would take far longer
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["fleets.json"]


def test_a_directory_in_place_of_the_file_for_every_call(base: Path) -> None:
    path = fleet_path(base)
    path.mkdir(parents=True)
    (path / "inside").write_text("keep me")
    assert_refused(base, EVERY_OP, StoreError, str(path), "is a directory")
    assert (path / "inside").read_text() == "keep me"


def test_a_symlink_to_a_directory_in_place_of_the_file(base: Path) -> None:
    (base / "elsewhere").mkdir()
    path = fleet_path(base)
    path.parent.mkdir()
    path.symlink_to(base / "elsewhere", target_is_directory=True)
    assert_refused(base, EVERY_OP, StoreError, str(path), "is a directory")
    assert path.is_symlink() and list((base / "elsewhere").iterdir()) == []


def test_a_symlink_loop_in_place_of_the_file(base: Path) -> None:
    path = fleet_path(base)
    path.parent.mkdir()
    os.symlink(path.name, path)  # fleets.json -> fleets.json
    assert_refused(base, EVERY_OP, StoreError, str(path))
    assert os.readlink(path) == path.name


def test_a_dangling_symlink_is_not_taken_for_no_file(base: Path) -> None:
    # e.g. a link to a shared volume that is not mounted: treating it as "no fleets"
    # and writing a fresh file over the link would split the fleet state in two.
    path = fleet_path(base)
    path.parent.mkdir()
    target = base / "unmounted" / "fleets.json"
    path.symlink_to(target)
    assert_refused(base, EVERY_OP, StoreError, str(path))
    assert path.is_symlink() and os.readlink(path) == str(target)


def test_a_directory_in_place_of_the_lock_file(base: Path) -> None:
    fleet.create_from_mold("w", "worker", 2, base)
    lock = base / ".dal" / "fleets.json.lock"
    if lock.exists():
        lock.unlink()
    lock.mkdir()
    ops = {k: v for k, v in MUTATING.items() if k not in ("run_all", "run_one", "rollback")}
    assert_refused(base, ops, StoreError, str(lock))


UNREADABLE_CHILD = """
    import json, os, sys
    import dalfleet.export, dalfleet.fleet as fleet, dalfleet.handlers, yaml
    # dalfleet imports lazily; nobody cannot read this interpreter's library, so load now.
    import dalfleet.client, dalfleet.coordinator.local, dalfleet.run, dalfleet.rollout
    import dalfleet.executor.local, dalfleet.mold.parse, dalfleet.convert
    import dalfleet.coordinator.reference, dalfleet.mold.principal, dalfleet.mold.resolve
    import dalfleet.mold.render, dalfleet.store.jsonfile
    dalfleet.convert.get_converter()  # cattrs, made on first use
    from dalfleet import FleetError
    base = sys.argv[1]
    if os.geteuid() == 0:  # root reads anything: become nobody
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    ops = {
        "list": lambda: fleet.list(base),
        "show": lambda: fleet.show("w", base),
        "create": lambda: fleet.create("x", base),
        "deploy": lambda: fleet.deploy("w", "t", base),
        "add_member": lambda: fleet.add_member("w", "a", base),
        "scale": lambda: fleet.scale("w", 0, base),
        "delete": lambda: fleet.delete("w", base),
        "run": lambda: fleet.run(None, base),
    }
    out = {}
    for label, op in ops.items():
        try:
            op()
            out[label] = ["no error", ""]
        except FleetError as exc:
            out[label] = [type(exc).__name__, str(exc)]
    print(json.dumps(out))
"""


@pytest.fixture
def world_traversable_base() -> Iterator[Path]:
    """A project directory that user ``nobody`` can reach (pytest's tmp dirs are 0700)."""
    root = Path(tempfile.mkdtemp(prefix="dalfleet-perm-"))
    try:
        root.chmod(0o755)
        yield root
    finally:
        for p in [root, *root.rglob("*")]:
            if not p.is_symlink():
                p.chmod(0o700 if p.is_dir() else 0o600)
        shutil.rmtree(root)


def test_an_unreadable_file_is_refused_and_kept(world_traversable_base: Path) -> None:
    base = world_traversable_base
    content = dumps({"w": GOOD})
    path = write_file(base, content)
    path.parent.chmod(0o777)  # the reader may lock and write in .dal/, only the file is closed
    path.chmod(0)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(UNREADABLE_CHILD), str(base)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    results: dict[str, list[str]] = json.loads(proc.stdout)
    for label, (kind, message) in results.items():
        assert kind == "StoreError", f"{label}: {kind} {message}"
        assert str(path) in message and "Permission denied" in message, f"{label}: {message}"
    assert stat.S_IMODE(path.stat().st_mode) == 0
    assert sorted(p.name for p in path.parent.iterdir()) == ["fleets.json"]
    path.chmod(0o600)
    assert path.read_bytes() == content


# -- the command line on a broken file -----------------------------------------------------------


def cli(base: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dalfleet", "--base", str(base), *args],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _corrupt(base: Path) -> Path:
    return write_file(base, CORRUPT["member_ids_a_number"][0])


def _truncated(base: Path) -> Path:
    return write_file(base, b'{"w": {"name": "w", "member_ids": ["a"')


def _directory(base: Path) -> Path:
    path = fleet_path(base)
    path.mkdir(parents=True)
    return path


def _huge(base: Path) -> Path:
    path = write_file(base, b"{")
    os.truncate(path, 100 * 1024 * 1024)
    return path


BROKEN: dict[str, Callable[[Path], Path]] = {
    "corrupt": _corrupt,
    "truncated": _truncated,
    "directory": _directory,
    "huge": _huge,
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
@pytest.mark.parametrize(
    "argv", [("list",), ("create", "x"), ("deploy", "w", "go", "now"), ("add-member", "w", "a")]
)
def test_cli_reports_a_broken_file_in_one_line_and_keeps_it(
    base: Path, kind: str, argv: tuple[str, ...]
) -> None:
    path = BROKEN[kind](base)
    before = path.stat()
    first = b"" if path.is_dir() else head(path)
    proc = cli(base, *argv)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dalfleet: error: ") and str(path) in lines[0]
    assert "Traceback" not in proc.stderr and len(lines[0]) < 300
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    if not path.is_dir():
        assert head(path) == first
    assert not (base / ".dal" / "fleets.json.lock").exists()


# -- unknown keys survive ----------------------------------------------------------------------

EXTRAS: dict[str, Any] = {
    "ключ": "値 🚀 ünïcödé",
    "nested": {"deep": [1, {"x": None, "y": [True, False]}], "float": 1.5, "big": 2**70},
    "Member_IDs": ["not ours: different case"],
    "": "an empty key",
    "null_value": None,
    "emoji_🚀": {"\u00e9": "\u0065\u0301"},  # precomposed key, decomposed value
}


def test_unknown_nested_and_unicode_keys_survive_every_change(base: Path) -> None:
    fleet.create_from_mold("w", "worker", 2, base, {"env": "prod"})
    data = json.loads(fleet_path(base).read_text(encoding="utf-8"))
    data["w"].update(EXTRAS)
    other = entry("флот 🚀", member_ids=["agent_z"], **EXTRAS)
    data["флот 🚀"] = other
    fleet_path(base).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    steps: list[Callable[[], object]] = [
        lambda: fleet.deploy("w", "first", base),
        lambda: fleet.deploy("w", "second", base),
        lambda: fleet.add_member("w", "agent_extra", base),
        lambda: fleet.add_from_mold("w", "worker", 1, base),
        lambda: fleet.scale("w", 5, base),
        lambda: fleet.scale("w", 1, base),
        lambda: fleet.rollback("w", base),
        lambda: fleet.run("w", base),
        lambda: fleet.create("new", base),
        lambda: fleet.delete("new", base),
        lambda: fleet.deploy("флот 🚀", "for the other one", base),
    ]
    for step in steps:
        step()
        after = json.loads(fleet_path(base).read_text(encoding="utf-8"))
        kept = {k: after["w"][k] for k in EXTRAS if k in after["w"]}
        assert kept == EXTRAS
        assert list(after["w"])[-len(EXTRAS) :] == list(EXTRAS)  # their order too
    final = json.loads(fleet_path(base).read_text(encoding="utf-8"))
    assert {k: final["флот 🚀"][k] for k in EXTRAS} == EXTRAS
    assert final["флот 🚀"]["member_ids"] == ["agent_z"]
    assert final["флот 🚀"]["last_deployed_task"] == "for the other one"
    # Written as UTF-8 text, not \\u escapes, and it still loads.
    assert "ключ" in fleet_path(base).read_text(encoding="utf-8")
    assert to_json_document(JsonFileStore(base).load()["w"].extra) == EXTRAS


def test_a_fleet_nobody_touches_is_written_back_unchanged(base: Path) -> None:
    untouched = entry(
        "legacy",
        member_ids=["agent_1"],
        last_deployed_task="old",
        last_deployed_at="1764313200",
        last_create_params={"env": "prod"},
        **EXTRAS,
    )
    write_file(base, json.dumps({"legacy": untouched}, ensure_ascii=False).encode("utf-8"))
    fleet.create("w", base)
    fleet.deploy("w", "go", base)
    fleet.delete("w", base)
    assert json.loads(fleet_path(base).read_text(encoding="utf-8")) == {"legacy": untouched}


# -- FIFOs, devices and symlinks where dalfleet expects its own file (#10.14, #10.17) ----------

DAL_FILES = ("fleets.json", "fleets.json.lock", "fleet_history.json")


def _prepare(base: Path) -> Path:
    fleet.create_from_mold("w", "worker", 1, base)
    fleet.deploy("w", "go", base)
    return base / ".dal"


@pytest.mark.parametrize("name", DAL_FILES)
def test_a_fifo_at_a_dal_file_is_refused_at_once_by_real_commands(base: Path, name: str) -> None:
    dal = _prepare(base)
    path = dal / name
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    for argv in (("deploy", "w", "again"), ("add-member", "w", "agent_x"), ("delete", "w")):
        began = time.monotonic()
        proc = cli(base, *argv)  # a hang would hit the 60 s timeout and fail the test
        assert time.monotonic() - began < 20
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert str(path) in proc.stderr and "FIFO" in proc.stderr, proc.stderr
        assert len(proc.stderr.splitlines()) == 1
    assert stat.S_ISFIFO(path.lstat().st_mode)
    path.unlink()  # with the FIFO gone, every command works again
    fleet.create("after", base)


def test_a_device_at_the_fleet_file_is_refused_and_not_replaced(base: Path) -> None:
    dal = _prepare(base)
    path = dal / "fleets.json"
    path.unlink()
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # the null device
    for argv in (("list",), ("create", "x"), ("delete", "w")):
        proc = cli(base, *argv)
        assert proc.returncode == 1 and "a device" in proc.stderr, proc.stderr
    assert stat.S_ISCHR(path.lstat().st_mode)


@pytest.mark.parametrize("name", DAL_FILES)
def test_a_dangling_symlink_in_dal_never_creates_a_file_at_its_target(
    base: Path, name: str
) -> None:
    dal = _prepare(base)
    target = base / "outside" / "target"
    target.parent.mkdir()
    path = dal / name
    path.unlink(missing_ok=True)
    path.symlink_to(target)
    for argv in (("deploy", "w", "again"), ("create", "x"), ("scale", "w", "0"), ("list",)):
        proc = cli(base, *argv)
        if name == "fleets.json.lock" and argv == ("list",):
            assert proc.returncode == 0  # reading takes no lock
            continue
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "symbolic link" in proc.stderr and str(path) in proc.stderr, proc.stderr
    assert not target.exists() and list(target.parent.iterdir()) == []
    assert path.is_symlink()


@pytest.mark.parametrize("name", DAL_FILES)
def test_a_symlink_to_a_real_file_is_refused_and_the_file_left_alone(base: Path, name: str) -> None:
    dal = _prepare(base)
    target = base / "precious.txt"
    target.write_bytes(b"keep me")
    path = dal / name
    path.unlink(missing_ok=True)
    path.symlink_to(target)
    with pytest.raises(StoreError, match="symbolic link"):
        fleet.deploy("w", "again", base)
    assert target.read_bytes() == b"keep me" and path.is_symlink()


# -- a deleted lock file loses no update (#10.11) ----------------------------------------------

HOLDER = """
    import sys, time
    from pathlib import Path
    import attrs
    from dalfleet.store import JsonFileStore
    base, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    with JsonFileStore(base).transaction() as fleets:
        ready.write_text("locked")
        while not go.exists():
            time.sleep(0.01)
        w = fleets["w"]
        fleets["w"] = attrs.evolve(w, member_ids=[*w.member_ids, "agent_holder"])
"""


@pytest.mark.slow
def test_deleting_the_lock_file_while_a_writer_holds_it_loses_no_update(base: Path) -> None:
    fleet.create("w", base)
    ready, go = base / "ready", base / "go"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(base), str(ready), str(go)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        (base / ".dal" / "fleets.json.lock").unlink()
        second = subprocess.Popen(
            [sys.executable, "-m", "dalfleet", "--base", str(base), "add-member", "w", "agent_b"],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
        )
        # The second writer must wait for the holder, however long it holds the lock.
        with pytest.raises(subprocess.TimeoutExpired):
            second.wait(timeout=2)
        go.write_text("go")
        assert holder.wait(timeout=30) == 0
        assert second.wait(timeout=30) == 0
    finally:
        holder.kill()
    assert sorted(fleet.show("w", base).member_ids) == ["agent_b", "agent_holder"]


# -- manifests (#10.16) ------------------------------------------------------------------------


def _alias_bomb() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(8):
        prev, cur = chr(97 + i), chr(98 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "x:\n" + "\n".join("  " + line for line in lines) + "\nfleets:\n  w: {params: *i}\n"


def test_a_yaml_alias_bomb_is_refused_at_once(base: Path) -> None:
    manifest = base / "fleets.yaml"
    manifest.write_text(_alias_bomb())
    began = time.monotonic()
    proc = cli(base, "apply", "-f", str(manifest), "--dry-run")
    assert time.monotonic() - began < 20
    assert proc.returncode != 0 and "aliases expand" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "document",
    [
        "fleets:\n  w: {count: 1}\n  w: {count: 2}\n",
        "fleets:\n  w:\n    count: 1\n    count: 2\n",
        "fleets:\n  w:\n    params: {env: a, env: b}\n",
        "fleets:\n  w: {count: 1}\nfleets: {}\n",
    ],
)
def test_a_key_given_twice_in_a_manifest_is_an_error(base: Path, document: str) -> None:
    manifest = base / "fleets.yaml"
    manifest.write_text(document)
    before = snapshot(base)
    proc = cli(base, "apply", "-f", str(manifest))
    assert proc.returncode != 0 and "given twice" in proc.stderr, proc.stderr
    assert snapshot(base) == before


def test_a_shared_block_through_an_alias_and_a_merge_key_still_works(base: Path) -> None:
    manifest = base / "fleets.yaml"
    manifest.write_text(
        "fleets:\n  a: {params: &p {env: prod}}\n  b: {params: {<<: *p, env: dev}}\n"
    )
    proc = cli(base, "apply", "-f", str(manifest))
    assert proc.returncode == 0, proc.stderr
    assert fleet.list(base) == ["a", "b"]


# -- a writer killed between the two files (#13.2) ----------------------------------------------

DEPLOYER = """
    import sys
    import dalfleet.fleet as fleet
    base = sys.argv[1]
    i = 0
    while True:
        i += 1
        fleet.deploy("w", f"task {i}", base)
"""


@pytest.mark.slow
@pytest.mark.parametrize("after", [0.3, 0.55, 0.8])
def test_a_deployer_killed_at_any_instant_leaves_both_files_loadable(
    base: Path, after: float
) -> None:
    fleet.create("w", base)
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DEPLOYER), str(base)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 30
        while not fleet.history("w", base) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(after)
    finally:
        proc.kill()
        proc.wait()
    shown = fleet.show("w", base)
    revisions = fleet.history("w", base)
    numbers = [r.revision for r in revisions]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    # The side file lands first: the deployed task is the last revision or the one before.
    assert shown.last_deployed_task in {r.task for r in revisions[-2:]}
    fleet.deploy("w", "after the crash", base)
    assert fleet.history("w", base)[-1].revision == numbers[-1] + 1
