"""The fleet file (SPEC §3): the reference's shape, unknown keys kept, corrupt files refused."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import warnings
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dalfleet.fleet as fleet
from dalfleet import CorruptStoreError, StoreError
from dalfleet.convert import HISTORY_KEY
from dalfleet.defaults import MAX_TASK_BYTES
from dalfleet.models import Fleet
from dalfleet.store import JsonFileStore, MemoryStore, _jsonio
from dalfleet.store.jsonfile import (
    HISTORY_MAX_BYTES,
    MAX_BYTES_ENV,
    FleetFileWarning,
    history_file_path,
)
from tests.conftest import snapshot

REFERENCE_FILE = {
    "workers": {
        "name": "workers",
        "mold_source": "mold/worker.mold.dal",
        "member_ids": ["agent_a1", "agent_a2"],
        "last_deployed_task": "Process daily logs",
        "last_deployed_at": "1764313200",
        "last_create_params": {"env": "prod"},
    },
    "My Fleet!": {"name": "My Fleet!", "mold_source": None, "member_ids": []},
}


def write_reference(base: Path, data: object = REFERENCE_FILE) -> Path:
    path = base / ".dal" / "fleets.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def read(base: Path) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads(
        (base / ".dal" / "fleets.json").read_text(encoding="utf-8")
    )
    return data


def test_written_file_has_the_reference_shape(base: Path) -> None:
    fleet.create("empty", base)
    fleet.create_from_mold("w", "worker", 2, base, {"env": "prod"})
    fleet.deploy("w", "go", base)
    data = read(base)
    assert data["empty"] == {"name": "empty", "mold_source": None, "member_ids": []}
    w = data["w"]
    assert list(w)[:6] == [
        "name",
        "mold_source",
        "member_ids",
        "last_deployed_task",
        "last_deployed_at",
        "last_create_params",
    ]
    assert w["mold_source"] == "worker"
    assert w["last_deployed_task"] == "go"
    assert isinstance(w["last_deployed_at"], str) and w["last_deployed_at"].isdigit()
    assert w["last_create_params"] == {"env": "prod"}


def test_a_reference_file_loads(base: Path) -> None:
    write_reference(base)
    assert fleet.list(base) == ["My Fleet!", "workers"]
    f = fleet.show("workers", base)
    assert f is not None
    assert f.member_ids == ("agent_a1", "agent_a2")
    assert f.last_deployed_at == "1764313200"
    assert f.last_create_params == {"env": "prod"}


def test_fleets_with_names_we_would_not_create_accept_every_operation(base: Path) -> None:
    write_reference(base)
    name = "My Fleet!"
    fleet.add_member(name, "agent_x", base)
    fleet.deploy(name, "go", base)
    fleet.add_from_mold(name, "worker", 1, base)
    fleet.scale(name, 3, base)
    assert fleet.health(name, base).member_count == 3
    assert len(fleet.run(name, base)) == 1
    assert "agent_x" in fleet.export(name, base)
    assert fleet.delete(name, base) is True


def test_unknown_keys_survive_read_modify_write(base: Path) -> None:
    data = json.loads(json.dumps(REFERENCE_FILE))
    data["workers"]["future_key"] = {"nested": [1, 2]}
    data["workers"]["owner"] = "ops"
    write_reference(base, data)
    fleet.deploy("workers", "new task", base)
    fleet.scale("workers", 1, base)
    after = read(base)["workers"]
    assert after["future_key"] == {"nested": [1, 2]}
    assert after["owner"] == "ops"
    assert after["last_deployed_task"] == "new task"


def test_last_deployed_at_is_opaque(base: Path) -> None:
    data = {
        "w": {
            "name": "w",
            "mold_source": None,
            "member_ids": [],
            "last_deployed_task": "t",
            "last_deployed_at": "yesterday at noon",
        }
    }
    write_reference(base, data)
    assert fleet.health("w", base).last_deployed_at == "yesterday at noon"


def test_optional_keys_are_omitted_when_unset(base: Path) -> None:
    fleet.create("w", base)
    assert set(read(base)["w"]) == {"name", "mold_source", "member_ids"}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"w": {"name": "w", "member_ids": [', "Expecting"),
        (b"", "Expecting value"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"w": {"name": "w", "member_ids": "agent_1"}}', "member_ids must be a list"),
        (b'{"w": {"name": 5, "member_ids": []}}', "name must be a string"),
        (b'{"w": {"name": "w", "member_ids": [], "mold_source": 3}}', "mold_source must be"),
        (b'{"w": 7}', "expected an object"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_a_corrupt_file_is_reported_and_never_rewritten(
    base: Path, content: bytes, why: str
) -> None:
    path = base / ".dal" / "fleets.json"
    path.parent.mkdir()
    path.write_bytes(content)
    for op in (
        lambda: fleet.list(base),
        lambda: fleet.create("x", base),
        lambda: fleet.deploy("w", "t", base),
        lambda: fleet.create_from_mold("y", "worker", 1, base),
    ):
        with pytest.raises(CorruptStoreError, match=why) as info:
            op()
        assert str(path) in str(info.value)
    assert path.read_bytes() == content


def test_a_directory_where_the_file_should_be(base: Path) -> None:
    path = base / ".dal" / "fleets.json"
    path.mkdir(parents=True)
    with pytest.raises(StoreError, match="is a directory"):
        fleet.list(base)
    with pytest.raises(StoreError, match="is a directory"):
        fleet.create("w", base)
    assert path.is_dir()


def test_a_file_over_the_size_limit_is_refused(base: Path) -> None:
    path = write_reference(base)
    store = JsonFileStore(base, max_bytes=100)
    with pytest.raises(StoreError, match="too large"):
        store.load()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="too large"), store.transaction():
        pass
    assert path.read_bytes() == before


def test_a_file_in_place_of_the_dal_directory(base: Path) -> None:
    (base / ".dal").write_text("not a directory")
    with pytest.raises(StoreError):
        fleet.create("w", base)
    assert (base / ".dal").read_text() == "not a directory"


def test_a_failed_transaction_writes_nothing(base: Path) -> None:
    fleet.create("w", base)
    before = snapshot(base)
    store = JsonFileStore(base)
    with pytest.raises(RuntimeError), store.transaction() as fleets:
        fleets["x"] = Fleet(name="x")
        raise RuntimeError("boom")
    assert snapshot(base) == before


def test_an_unchanged_transaction_does_not_rewrite(base: Path) -> None:
    fleet.create("w", base)
    path = base / ".dal" / "fleets.json"
    inode = path.stat().st_ino
    with JsonFileStore(base).transaction():
        pass
    assert path.stat().st_ino == inode


def test_writes_replace_the_file_atomically(base: Path) -> None:
    fleet.create("w", base)
    path = base / ".dal" / "fleets.json"
    inode = path.stat().st_ino
    fleet.deploy("w", "go", base)
    assert path.stat().st_ino != inode
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_stale_temp_files_are_cleaned_up(base: Path) -> None:
    fleet.create("w", base)
    stale = base / ".dal" / ".fleets.json.deadbeef0000.tmp"
    stale.write_text("{half a fil")
    fleet.deploy("w", "go", base)
    assert not stale.exists()


def test_a_leftover_lock_file_does_not_block(base: Path) -> None:
    fleet.create("w", base)
    (base / ".dal" / "fleets.json.lock").write_text("12345")
    store = JsonFileStore(base, lock_timeout=2)
    with store.transaction() as fleets:
        fleets["v"] = Fleet(name="v")
    assert sorted(store.load()) == ["v", "w"]


def test_memory_store_transaction_rolls_back() -> None:
    store = MemoryStore()
    with pytest.raises(RuntimeError), store.transaction() as fleets:
        fleets["x"] = Fleet(name="x")
        raise RuntimeError("boom")
    assert store.load() == {}


# -- the codec: json.dumps(indent=2, ensure_ascii=False), byte for byte ---------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner)
        | st.dictionaries(st.text(), inner)
        | st.lists(st.text())
        | st.tuples(inner, inner)
    ),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(value=_VALUES, level=st.integers(0, 3))
def test_the_codec_writes_what_the_standard_library_writes(value: object, level: int) -> None:
    expected = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + "  " * level)
    assert _jsonio.pretty(value, level) == expected


@settings(max_examples=400, deadline=None)
@given(value=_VALUES, level=st.integers(0, 3))
def test_the_fast_extra_writes_the_same_bytes(value: object, level: int) -> None:
    pytest.importorskip("orjson", reason="the fast extra (orjson) is not installed")
    expected = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + "  " * level)
    assert _jsonio.pretty_bytes(value, level) == expected.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), [1, float("-inf")], {"a": object()}])
def test_the_codec_refuses_what_no_reader_accepts(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        _jsonio.pretty(bad)


def test_the_written_file_is_the_standard_pretty_layout(base: Path) -> None:
    write_reference(base)
    fleet.create("new", base)
    fleet.add_member("new", "agent_ü🚀\u2028", base)
    fleet.deploy("new", 'tab\there \x01 \x7f "quoted" \\ back', base)
    raw = (base / ".dal" / "fleets.json").read_bytes()
    data = json.loads(raw)
    assert raw == (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def test_a_value_that_cannot_be_written_is_refused_before_writing(base: Path) -> None:
    write_reference(base)
    store = JsonFileStore(base)
    with store.transaction():
        pass  # the lock file exists from here on
    before = snapshot(base)
    with pytest.raises(StoreError, match="nothing was changed"), store.transaction() as fleets:
        fleets["bad"] = Fleet(name="bad", extra={"x": float("nan")})
    with pytest.raises(StoreError, match="nothing was changed"), store.transaction() as fleets:
        fleets["bad"] = Fleet(name="bad", member_ids=["\ud800"])
    assert snapshot(base) == before


# -- sizes: never write what would be refused on reading (#10.5) ---------------------------


def test_a_change_past_the_size_limit_is_refused_and_changes_nothing(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet.create_from_mold("w", "worker", 2, base)
    fleet.deploy("w", "first", base)
    monkeypatch.setenv(MAX_BYTES_ENV, "20000")
    files = (base / ".dal" / "fleets.json", history_file_path(base))
    before = [p.read_bytes() for p in files]
    with pytest.raises(StoreError, match="over the limit of 20000"):
        fleet.create_from_mold("big", "worker", 1, base, {"blob": "x" * 30000})
    with pytest.raises(StoreError, match="over the limit of 20000"):
        fleet.deploy("w", "\x01" * 5000, base)  # 5,000 characters, 30,000 bytes escaped
    assert [p.read_bytes() for p in files] == before
    # The way out: what is within the limit can always be shrunk.
    fleet.scale("w", 0, base)
    fleet.delete("w", base)
    assert fleet.list(base) == []


def test_history_is_bounded_in_bytes_so_deploys_never_brick_the_project(base: Path) -> None:
    fleet.create("w", base)
    task = "\x01" * MAX_TASK_BYTES  # escapes to 6 bytes a character
    for _ in range(20):
        fleet.deploy("w", task, base)
    side = history_file_path(base)
    assert side.stat().st_size <= HISTORY_MAX_BYTES + 4096
    revisions = fleet.history("w", base)
    assert 1 <= len(revisions) < 20 and revisions[-1].revision == 20
    assert fleet.show("w", base).last_deployed_task == task
    fleet.delete("w", base)


def test_a_file_over_the_limit_written_by_another_tool_can_be_read_with_a_raised_limit(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_reference(base)
    monkeypatch.setenv(MAX_BYTES_ENV, "100")
    with pytest.raises(StoreError, match="too large"):
        fleet.list(base)
    monkeypatch.setenv(MAX_BYTES_ENV, str(path.stat().st_size + 1000))
    fleet.delete("My Fleet!", base)
    assert fleet.list(base) == ["workers"]


# -- history lives beside the reference's file (#13.2) --------------------------------------


def reference_rewrite(base: Path) -> None:
    """What the reference does on any write: fleets.json with its own keys only."""
    path = base / ".dal" / "fleets.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    keys = (
        "name",
        "mold_source",
        "member_ids",
        "last_deployed_task",
        "last_deployed_at",
        "last_create_params",
    )
    kept = {n: {k: e[k] for k in keys if k in e} for n, e in data.items()}
    path.write_text(json.dumps(kept, indent=2, ensure_ascii=False), encoding="utf-8")


def test_history_survives_a_write_by_the_reference(base: Path) -> None:
    fleet.create_from_mold("w", "worker", 1, base)
    fleet.deploy("w", "one", base)
    fleet.deploy("w", "two", base)
    assert HISTORY_KEY not in read(base)["w"]
    reference_rewrite(base)
    assert [r.task for r in fleet.history("w", base)] == ["one", "two"]
    fleet.deploy("w", "three", base)
    assert [r.revision for r in fleet.history("w", base)] == [1, 2, 3]
    fleet.rollback("w", base)
    assert fleet.show("w", base).last_deployed_task == "two"


def test_history_kept_in_the_fleet_file_by_older_versions_moves_to_the_side_file(
    base: Path,
) -> None:
    old = {
        "w": {
            "name": "w",
            "mold_source": None,
            "member_ids": [],
            "last_deployed_task": "b",
            "last_deployed_at": "2",
            HISTORY_KEY: [
                {"revision": 1, "task": "a", "deployed_at": "1"},
                {"revision": 2, "task": "b", "deployed_at": "2"},
            ],
        }
    }
    write_reference(base, old)
    assert [r.task for r in fleet.history("w", base)] == ["a", "b"]
    assert not history_file_path(base).exists()  # reading changes nothing
    fleet.create("other", base)
    assert HISTORY_KEY not in read(base)["w"]
    side = json.loads(history_file_path(base).read_text(encoding="utf-8"))
    assert [r["task"] for r in side["w"]] == ["a", "b"]
    assert [r.task for r in fleet.history("w", base)] == ["a", "b"]


def test_history_of_a_deleted_fleet_is_dropped(base: Path) -> None:
    fleet.create("w", base)
    fleet.deploy("w", "old task", base)
    fleet.delete("w", base)
    fleet.create("w", base)
    assert fleet.history("w", base) == ()
    assert "w" not in json.loads(history_file_path(base).read_text(encoding="utf-8"))


def test_a_crash_between_the_two_files_leaves_both_loadable(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet.create("w", base)
    fleet.deploy("w", "one", base)
    real = JsonFileStore._replace

    def crash_on_fleet_file(self: JsonFileStore, path: Path, payload: bytes, what: str) -> None:
        if path == self.path:
            raise KeyboardInterrupt  # the process dies after the side file landed
        real(self, path, payload, what)

    monkeypatch.setattr(JsonFileStore, "_replace", crash_on_fleet_file)
    with pytest.raises(KeyboardInterrupt):
        fleet.deploy("w", "two", base)
    monkeypatch.undo()
    assert fleet.show("w", base).last_deployed_task == "one"
    assert [r.task for r in fleet.history("w", base)] == ["one", "two"]
    fleet.deploy("w", "three", base)
    assert [r.revision for r in fleet.history("w", base)] == [1, 2, 3]


def test_a_corrupt_history_file_is_reported_and_kept(base: Path) -> None:
    fleet.create("w", base)
    side = history_file_path(base)
    side.write_bytes(b'{"w": [{"revision": "x"}]}')
    for op in (lambda: fleet.list(base), lambda: fleet.deploy("w", "t", base)):
        with pytest.raises(CorruptStoreError, match="history file"):
            op()
    assert side.read_bytes() == b'{"w": [{"revision": "x"}]}'


# -- what the reference may write loads, with a warning (#13.6) -----------------------------

ODD = {
    "dups": {"name": "dups", "mold_source": None, "member_ids": ["a", "b", "a"]},
    "key": {"name": "other", "mold_source": None, "member_ids": ["c"], "x": 1},
}


def test_a_duplicate_id_or_a_name_differing_from_its_key_loads_with_a_warning(
    base: Path,
) -> None:
    write_reference(base, ODD)
    with pytest.warns(FleetFileWarning) as caught:
        fleets = JsonFileStore(base).load()
    assert len(caught) == 2
    assert fleets["dups"].member_ids == ("a", "b")
    assert fleets["key"].name == "key"


@pytest.mark.filterwarnings("ignore::dalfleet.store.jsonfile.FleetFileWarning")
def test_odd_entries_are_written_back_as_they_were_and_every_command_works(
    base: Path,
) -> None:
    write_reference(base, ODD)
    fleet.create("w", base)
    fleet.deploy("w", "go", base)
    assert {k: v for k, v in read(base).items() if k != "w"} == ODD
    assert fleet.show("dups", base).member_ids == ("a", "b")
    fleet.deploy("key", "task", base)
    fleet.scale("dups", 1, base)
    assert read(base)["dups"]["member_ids"] == ["a"]
    assert read(base)["key"]["name"] == "key" and read(base)["key"]["x"] == 1
    fleet.delete("key", base)
    fleet.delete("dups", base)
    assert fleet.list(base) == ["w"]


def test_a_fleet_with_a_duplicate_id_is_warned_about_when_it_is_read(base: Path) -> None:
    # Fleets are built when first read: a deploy of one fleet builds that fleet only.
    write_reference(base, {"dups": ODD["dups"]})
    fleet.create("w", base)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fleet.deploy("w", "go", base)
        assert fleet.show("w", base).last_deployed_task == "go"
    with pytest.warns(FleetFileWarning, match="more than once"):
        assert JsonFileStore(base).get("dups").member_ids == ("a", "b")  # type: ignore[union-attr]
    assert read(base)["dups"] == ODD["dups"]


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "bad", "member_ids": "agent_1"},
        {"name": "bad", "member_ids": ["a", 1]},
        {"name": "bad", "member_ids": [], "mold_source": 3},
        {"name": "bad", "member_ids": [], "last_create_params": {"k": []}},
        {"name": 7, "member_ids": []},
        [],
    ],
)
def test_a_malformed_entry_fails_every_command_even_on_another_fleet(
    base: Path, bad: object
) -> None:
    fleet.create("w", base)
    data = read(base)
    data["bad"] = bad
    path = base / ".dal" / "fleets.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    before = path.read_bytes()
    for op in (
        lambda: fleet.deploy("w", "t", base),
        lambda: fleet.show("w", base),
        lambda: fleet.add_member("w", "agent_x", base),
        lambda: fleet.list(base),
    ):
        with pytest.raises(CorruptStoreError, match="'bad'"):
            op()
    assert path.read_bytes() == before


def test_a_transaction_builds_only_the_fleets_it_reads(base: Path) -> None:
    store = JsonFileStore(base)
    with store.transaction() as fleets:
        for i in range(5):
            fleets[f"f{i}"] = Fleet(f"f{i}", member_ids=[f"agent_{i}"])
    reread = JsonFileStore(base)
    with reread.transaction() as fleets:
        assert "f3" in fleets and len(fleets) == 5 and list(fleets) == [f"f{i}" for i in range(5)]
        fleets["f3"] = attrs.evolve(fleets["f3"], last_deployed_task="t")
        del fleets["f1"]
        fleets["f9"] = Fleet("f9")
    assert list(read(base)) == ["f0", "f2", "f3", "f4", "f9"]
    assert read(base)["f3"]["last_deployed_task"] == "t"
    loaded = JsonFileStore(base).load()
    assert loaded["f3"].last_deployed_task == "t" and loaded["f0"].member_ids == ("agent_0",)
    # A block that puts back equal fleets changes nothing.
    mtime = (base / ".dal" / "fleets.json").stat().st_mtime_ns
    with JsonFileStore(base).transaction() as fleets:
        fleets["f0"] = Fleet("f0", member_ids=["agent_0"])
        removed = fleets.pop("f2")
        fleets["f2"] = removed
    assert (base / ".dal" / "fleets.json").stat().st_mtime_ns == mtime


def test_written_files_get_the_usual_permissions(base: Path) -> None:
    old = os.umask(0o022)
    try:
        fleet.create("w", base)
        fleet.deploy("w", "go", base)
    finally:
        os.umask(old)
    for path in (base / ".dal" / "fleets.json", history_file_path(base)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


@pytest.mark.parametrize(
    "extra", [{"f": 1e16}, {"f": [1.5, 2**70]}, {"n": {"deep": 0.1}}, {"i": 7}]
)
def test_numbers_of_other_tools_are_written_as_the_standard_library_spells_them(
    base: Path, extra: dict[str, object]
) -> None:
    data = {k: dict(v) for k, v in REFERENCE_FILE.items()}
    data["workers"].update(extra)
    write_reference(base, data)
    fleet.deploy("My Fleet!", "touch another fleet", base)  # "workers" is written back as read
    raw = (base / ".dal" / "fleets.json").read_bytes()
    assert raw == (json.dumps(json.loads(raw), indent=2, ensure_ascii=False) + "\n").encode()
    assert {k: read(base)["workers"][k] for k in extra} == extra
    fleet.deploy("workers", "touch it", base)  # and as unstructured from the model
    raw = (base / ".dal" / "fleets.json").read_bytes()
    assert raw == (json.dumps(json.loads(raw), indent=2, ensure_ascii=False) + "\n").encode()
    assert {k: read(base)["workers"][k] for k in extra} == extra


def reference_delete(base: Path, name: str) -> None:
    """The reference deleting a fleet: fleets.json without it, its own keys only."""
    reference_rewrite(base)
    path = base / ".dal" / "fleets.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop(name, None)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["create", "deploy", "delete", "reference_write", "reference_delete"]),
        st.sampled_from(["a", "b"]),
    ),
    max_size=12,
)


@settings(max_examples=25, deadline=None)
@given(ops=_OPS)
def test_history_matches_a_model_across_writes_by_both_tools(ops: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        model: dict[str, list[str]] = {}  # fleet -> tasks deployed since it was created
        for step, (op, name) in enumerate(ops):
            if op == "create" and name not in model:
                fleet.create(name, base)
                model[name] = []
            elif op == "deploy" and name in model:
                fleet.deploy(name, f"task {step}", base)
                model[name].append(f"task {step}")
            elif op == "delete" and name in model:
                fleet.delete(name, base)
                del model[name]
            elif op == "reference_write" and model:
                reference_rewrite(base)
            elif op == "reference_delete" and name in model:
                reference_delete(base, name)
                del model[name]
        assert fleet.list(base) == sorted(model)
        for name, tasks in model.items():
            assert [r.task for r in fleet.history(name, base)] == tasks[-50:]


# -- listing: the file's entries without building fleets --------------------------------------


def _listed_as_loaded(store: JsonFileStore) -> None:
    entries = store.listing()
    assert entries is not None
    fleets = store.load()
    assert list(entries) == list(fleets)
    for name, entry in entries.items():
        loaded = fleets[name]
        assert len(entry.get("member_ids", [])) == len(loaded.member_ids)
        for key in ("mold_source", "last_deployed_task", "last_deployed_at"):
            assert entry.get(key) == getattr(loaded, key), (name, key)


def test_listing_gives_what_load_gives_for_the_files_dalfleet_writes(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path)
    assert store.listing() == {}
    fleet.create_from_mold("w", "worker", 2, base=tmp_path, params={"env": "prod"})
    fleet.create("empty", tmp_path)
    fleet.deploy("w", "first", base=tmp_path)
    fleet.deploy("w", "second", base=tmp_path)
    assert (tmp_path / ".dal" / "fleet_history.json").exists()
    _listed_as_loaded(store)


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "other", "member_ids": []},  # key and name differ: load() warns
        {"name": "w", "member_ids": ["a", "a"]},  # duplicate: load() warns and drops
        {"name": "w", "member_ids": [1]},  # load() refuses
        {"name": "w", "member_ids": "a"},
        {"name": "w", "last_deployed_at": 1764313200},  # load() converts
        {"name": "w", "last_deployed_task": ["x"]},
        {"name": "w", "last_create_params": {"n": 2}},
        {"name": "w", HISTORY_KEY: []},  # the legacy history is load()'s
        ["not", "an", "object"],
    ],
)
def test_listing_leaves_every_entry_that_needs_checking_to_load(
    tmp_path: Path, entry: object
) -> None:
    path = tmp_path / ".dal" / "fleets.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"w": entry, "ok": {"name": "ok", "member_ids": ["b"]}}))
    assert JsonFileStore(tmp_path).listing() is None


@pytest.mark.parametrize(
    "revisions",
    [
        "x",
        [{"revision": 1, "task": "t"}],  # no deployed_at: load() refuses
        [{"revision": "1", "task": "t", "deployed_at": "1"}],  # load() converts
        [{"revision": True, "task": "t", "deployed_at": "1"}],
        [{"revision": 1, "task": "t", "deployed_at": "1", "params": {"n": 1}}],
        [{"revision": 1, "task": "t", "deployed_at": "1", "what": "else"}],
    ],
)
def test_listing_leaves_history_that_needs_checking_to_load(
    tmp_path: Path, revisions: object
) -> None:
    fleet.create("w", tmp_path)
    (tmp_path / ".dal" / "fleet_history.json").write_text(json.dumps({"w": revisions}))
    assert JsonFileStore(tmp_path).listing() is None


def test_listing_keeps_unknown_keys_and_raises_what_load_raises(tmp_path: Path) -> None:
    path = tmp_path / ".dal" / "fleets.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"w": {"name": "w", "member_ids": ["a"], "theirs": [1, {}]}}))
    store = JsonFileStore(tmp_path)
    _listed_as_loaded(store)
    assert store.listing() == {"w": {"name": "w", "member_ids": ["a"], "theirs": [1, {}]}}
    path.write_text('{"w": {"name": "w", "member_ids": [')
    with pytest.raises(CorruptStoreError) as listed:
        store.listing()
    with pytest.raises(CorruptStoreError) as loaded:
        store.load()
    assert str(listed.value) == str(loaded.value)


def test_the_listing_knows_the_converters_history_key() -> None:
    from dalfleet.store import jsonfile

    assert jsonfile._LEGACY_HISTORY_KEY == HISTORY_KEY
