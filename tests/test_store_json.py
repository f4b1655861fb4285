"""The fleet file (SPEC §3): the reference's shape, unknown keys kept, corrupt files refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dalfleet.fleet as fleet
from dalfleet import CorruptStoreError, StoreError
from dalfleet.models import Fleet
from dalfleet.store import JsonFileStore, MemoryStore
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
        (b'{"w": {"name": "w", "member_ids": ["a", "a"]}}', "duplicate ID 'a'"),
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
