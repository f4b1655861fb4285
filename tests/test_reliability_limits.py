"""#10 item 19 and SPEC §9: caps, the runtime database's files, export's mold reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import dalfleet.fleet as fleet
import dalfleet.mold as mold_module
from dalfleet.client import Client
from dalfleet.coordinator import LocalCoordinator
from dalfleet.errors import CoordinatorError, InvalidArgumentError
from dalfleet.models import AgentState
from dalfleet.store import JsonFileStore

DB = Path(".dal") / "agent_runtime.db"


def client(base: Path, max_count: int = 5) -> Client:
    return Client(JsonFileStore(base), LocalCoordinator(base), base=base, max_count=max_count)


# -- the cap applies to the fleet's size -------------------------------------------------


def test_add_member_respects_the_cap(tmp_path: Path) -> None:
    with client(tmp_path, max_count=3) as c:
        c.create("ext")
        for i in range(3):
            c.add_member("ext", f"agent_{i:020x}")
        before = (tmp_path / ".dal" / "fleets.json").read_bytes()
        with pytest.raises(InvalidArgumentError, match="capped at 3"):
            c.add_member("ext", "agent_ffffffffffffffffffff")
        assert (tmp_path / ".dal" / "fleets.json").read_bytes() == before
        # Adding one already there is still no change, not an error.
        assert len(c.add_member("ext", f"agent_{0:020x}").member_ids) == 3


def test_add_from_mold_caps_each_call_as_the_reference_does(tmp_path: Path) -> None:
    with client(tmp_path, max_count=4) as c:
        c.create_from_mold("w", "worker", 3)
        with pytest.raises(InvalidArgumentError, match="capped at 4"):
            c.add_from_mold("w", "worker", 5)
        assert len(c.get("w").member_ids) == 3
        assert len(c.coordinator.agent_ids(AgentState.ALIVE)) == 3  # nothing spawned
        # The cap bounds what one call spawns, not the roster (the reference's rule).
        assert len(c.add_from_mold("w", "worker", 4).member_ids) == 7


def test_scale_shrinks_a_fleet_above_the_cap(tmp_path: Path) -> None:
    with client(tmp_path, max_count=10) as c:
        c.create_from_mold("w", "worker", 8)
    with client(tmp_path, max_count=5) as c:  # the cap was lowered since
        assert len(c.scale("w", 7).member_ids) == 7
        with pytest.raises(InvalidArgumentError, match="capped at 5"):
            c.scale("w", 8)  # growing past the cap is still refused
        assert len(c.scale("w", 2).member_ids) == 2
        with pytest.raises(InvalidArgumentError, match=">= 0"):
            c.scale("w", -1)


# -- the runtime database's files ----------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
def test_a_symlink_among_the_database_files_is_refused_and_never_followed(
    tmp_path: Path, suffix: str
) -> None:
    base = tmp_path / "project"
    (base / ".dal").mkdir(parents=True)
    target = tmp_path / "elsewhere"
    link = base / ".dal" / f"agent_runtime.db{suffix}"
    link.symlink_to(target)  # dangling: following it would create the target
    with pytest.raises(CoordinatorError, match="symlink"):
        fleet.create_from_mold("w", "worker", 1, base=base)
    assert not target.exists()
    assert os.path.islink(link)
    assert fleet.list(base=base) == []


def test_a_zero_length_database_is_taken_as_a_new_one(tmp_path: Path) -> None:
    """A crash while the database was being created leaves an empty file; SQLite takes
    it as an empty database and so do we: reads find nothing, a spawn initialises it."""
    (tmp_path / ".dal").mkdir()
    (tmp_path / DB).write_bytes(b"")
    with LocalCoordinator(tmp_path) as coordinator:
        assert coordinator.agent_ids() == []
    assert (tmp_path / DB).stat().st_size == 0  # a read changed nothing
    created = fleet.create_from_mold("w", "worker", 2, base=tmp_path)
    with LocalCoordinator(tmp_path) as coordinator:
        assert coordinator.agent_ids(AgentState.ALIVE) == list(created.member_ids)


# -- export reads each mold once ---------------------------------------------------------


def test_export_parses_each_mold_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m.mold.dal").write_text(
        (Path(mold_module.__file__).parent.parent / "samples" / "worker.mold.dal").read_text()
    )
    with client(tmp_path, max_count=10) as c:
        for i in range(12):
            c.create_from_mold(f"f{i}", "m.mold.dal", 1)
            c.create_from_mold(f"g{i}", "worker", 1)
        loads: list[object] = []
        real = c.load_mold

        def counting(source: object, *, confine: bool = False) -> object:
            loads.append(source)
            return real(source, confine=confine)  # type: ignore[arg-type]

        monkeypatch.setattr(c, "load_mold", counting)
        text = c.export()
    assert sorted(map(str, loads)) == ["m.mold.dal", "worker"]
    assert all(f"f{i}" in text and f"g{i}" in text for i in range(12))


# -- progress callbacks ------------------------------------------------------------------


def test_a_progress_callback_may_read_the_store_and_the_coordinator(tmp_path: Path) -> None:
    """Progress runs while the fleet file's lock is held (that is what lets gc tell an
    orphan from a create in progress); reads take no lock, so a callback that reads
    fleets and agents' health neither waits nor deadlocks."""
    fleet.create_from_mold("seen", "worker", 2, base=tmp_path)
    seen: list[tuple[int, int, list[str], int]] = []

    def progress(done: int, total: int) -> None:
        health = fleet.health("seen", base=tmp_path)
        seen.append((done, total, fleet.list(base=tmp_path), len(health.members)))

    with client(tmp_path, max_count=1000) as c:
        c.create_from_mold("big", "worker", 250, progress=progress)
    assert seen == [(250, 250, ["seen"], 2)]  # one spawn, one transaction


def test_a_progress_callback_that_writes_fleets_fails_at_once_and_changes_nothing(
    tmp_path: Path,
) -> None:
    """It would wait for the lock its own operation holds: it is refused at once
    instead, the operation fails, and the agents it had spawned are terminated."""
    from dalfleet.errors import StoreError

    fleet.create("other", base=tmp_path)
    before = (tmp_path / ".dal" / "fleets.json").read_bytes()

    def progress(done: int, total: int) -> None:
        fleet.deploy("other", "from a progress callback", base=tmp_path)

    with pytest.raises(StoreError, match="already open in this thread"):
        fleet.create_from_mold("w", "worker", 3, base=tmp_path, progress=progress)
    assert (tmp_path / ".dal" / "fleets.json").read_bytes() == before
    with LocalCoordinator(tmp_path) as coordinator:
        assert coordinator.agent_ids(AgentState.ALIVE) == []
