"""The isolation every store states (dalfleet.store.base): a nested transaction is
refused at once instead of deadlocking or losing the outer one's changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from dalfleet import Fleet, StoreError
from dalfleet.store import JsonFileStore, MemoryStore, Store


@pytest.fixture(params=["json", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return JsonFileStore(tmp_path, lock_timeout=5) if request.param == "json" else MemoryStore()


def test_nested_transaction_is_refused_and_the_outer_one_still_commits(store: Store) -> None:
    with store.transaction() as fleets:
        fleets["a"] = Fleet(name="a")
        with pytest.raises(StoreError, match="already open"), store.transaction():
            pass
    assert list(store.load()) == ["a"]
    with store.transaction() as fleets:  # the refusal left nothing held
        fleets["b"] = Fleet(name="b")
    assert sorted(store.load()) == ["a", "b"]


def test_load_returns_a_new_mapping_each_time(store: Store) -> None:
    with store.transaction() as fleets:
        fleets["a"] = Fleet(name="a", member_ids=["x"])
    store.load().clear()
    assert store.load() == {"a": Fleet(name="a", member_ids=("x",))}
    store.close()
    assert list(store.load()) == ["a"]  # usable after close
