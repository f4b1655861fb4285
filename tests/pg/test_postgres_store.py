"""The PostgreSQL store on a real server: round trips, one transaction, the schema."""

# ruff: noqa: E402  (the imports below need psycopg, checked first)

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg", reason="needs 'dalfleet[postgres]' (psycopg)")

import dalfleet.fleet as fleet
from dalfleet.client import Client
from dalfleet.errors import CoordinatorError, InvalidArgumentError, StoreError
from dalfleet.models import AgentSpec, Fleet, Revision
from dalfleet.store.base import Store
from dalfleet.store.postgres import _MIGRATIONS, SCHEMA_VERSION, PostgresBackend
from tests.conftest import snapshot
from tests.postgres_server import PostgresServer


def test_backend_serves_the_store_protocol(backend: PostgresBackend) -> None:
    assert isinstance(backend.store, Store)
    assert backend.store.load() == {}


def test_every_fleet_field_round_trips(backend: PostgresBackend) -> None:
    stored = Fleet(
        name="w",
        member_ids=["a", "b", "ü-ñ"],
        mold_source="mold/worker.mold.dal",
        last_deployed_task="line one\nline\x00two \U0001f600",
        last_deployed_at="1700000000",
        last_create_params={"env": "prod", "n": "3"},
        history=[
            Revision(1, "first", "1699999999", "mold/worker.mold.dal", {"env": "dev"}),
            Revision(2, "line one\nline\x00two \U0001f600", "1700000000", None, None),
        ],
        extra={"zeta": 1, "alpha": [1, {"nested": None}], "dal_future": "keep"},
    )
    with backend.store.transaction() as fleets:
        fleets["w"] = stored
    with PostgresBackend(backend.url) as other:  # another process's view
        loaded = other.store.load()["w"]
    assert loaded == stored
    assert list(loaded.extra) == ["zeta", "alpha", "dal_future"]


def test_a_failed_block_changes_nothing(backend: PostgresBackend) -> None:
    with backend.store.transaction() as fleets:
        fleets["keep"] = Fleet("keep", member_ids=["x"])
    with pytest.raises(RuntimeError), backend.store.transaction() as fleets:
        fleets["new"] = Fleet("new")
        del fleets["keep"]
        raise RuntimeError("boom")
    assert backend.store.load() == {"keep": Fleet("keep", member_ids=["x"])}


def test_spawn_inside_a_store_transaction_is_the_same_transaction(
    backend: PostgresBackend,
) -> None:
    """A failure after spawning leaves neither the agents nor the fleet (one transaction)."""
    coordinator = backend.coordinator
    spawned: list[str] = []
    with pytest.raises(RuntimeError), backend.store.transaction() as fleets:
        spawned = coordinator.spawn([AgentSpec(name="w_0"), AgentSpec(name="w_1")])
        fleets["w"] = Fleet("w", member_ids=spawned)
        # Visible inside the transaction …
        assert set(coordinator.agents(spawned)) == set(spawned)
        raise RuntimeError("interrupted after the spawn")
    # … and gone with it.
    assert len(spawned) == 2
    assert coordinator.agents(spawned) == {}
    assert coordinator.agent_ids() == []
    assert backend.store.load() == {}


def test_terminate_inside_the_transaction_is_undone_with_it(backend: PostgresBackend) -> None:
    coordinator = backend.coordinator
    assert backend.store.shares_transactions_with(coordinator)
    assert not backend.store.shares_transactions_with(PostgresBackend(backend.url).coordinator)
    ids = coordinator.spawn([AgentSpec(name="w_0"), AgentSpec(name="w_1")])
    with backend.store.transaction() as fleets:
        fleets["w"] = Fleet("w", member_ids=ids)
    with pytest.raises(RuntimeError), backend.store.transaction() as fleets:
        fleets["w"] = Fleet("w", member_ids=ids[:1])
        coordinator.terminate(ids[1:])
        raise RuntimeError("interrupted")
    assert backend.store.load()["w"].member_ids == tuple(ids)
    assert {s.state.value for s in coordinator.status(ids).values()} == {"alive"}


def test_an_interrupt_leaves_no_transaction_and_no_lock(backend: PostgresBackend) -> None:
    with pytest.raises(KeyboardInterrupt), backend.store.transaction() as fleets:
        fleets["w"] = Fleet("w")
        raise KeyboardInterrupt
    # Another host can take the fleet lock at once, and nothing was written.
    with PostgresBackend(backend.url) as other:
        done = threading.Event()

        def write() -> None:
            with other.store.transaction() as fleets:
                fleets["v"] = Fleet("v")
            done.set()

        thread = threading.Thread(target=write)
        thread.start()
        thread.join(timeout=30)
        assert done.is_set()
        assert sorted(other.store.load()) == ["v"]


def _version(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version FROM dalfleet_schema").fetchone()
    assert row is not None
    return int(row[0])


def test_schema_is_created_on_first_use_and_versioned(backend: PostgresBackend) -> None:
    assert backend.store.load() == {}
    assert _version(backend.url) == SCHEMA_VERSION


def test_an_older_schema_is_upgraded_in_place(pg_url: str) -> None:
    # A database written by the first version: fleets only, no agents or tasks.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE dalfleet_schema (version integer NOT NULL)")
        for statement in _MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute("INSERT INTO dalfleet_schema VALUES (1)")
        conn.execute(
            "INSERT INTO dalfleet_fleets (name, doc, updated_at) VALUES "
            """('old', '{"name": "old", "mold_source": null, "member_ids": ["m1"]}', 0)"""
        )
    with PostgresBackend(pg_url) as backend:
        assert backend.store.load() == {"old": Fleet("old", member_ids=["m1"])}
        assert backend.coordinator.spawn([AgentSpec(name="x")])
    assert _version(pg_url) == SCHEMA_VERSION


def test_a_newer_schema_is_a_clear_error_and_is_left_alone(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE dalfleet_schema (version integer NOT NULL)")
        conn.execute("INSERT INTO dalfleet_schema VALUES (%s)", (SCHEMA_VERSION + 1,))
    with PostgresBackend(pg_url) as backend:
        with pytest.raises(StoreError, match=r"schema version 3.*upgrade dalfleet"):
            backend.store.load()
        with pytest.raises(CoordinatorError, match=r"schema version 3"):
            backend.coordinator.agent_ids()
    assert _version(pg_url) == SCHEMA_VERSION + 1
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT to_regclass('dalfleet_fleets') IS NULL").fetchone()
    assert row == (True,)


def test_an_unreachable_server_is_a_store_error(tmp_path: Path) -> None:
    # Port 1 on localhost: nothing listens there.
    # Never reached, so not retried: the error comes at once (a cut connection is
    # what reconnect_timeout waits for).
    backend = PostgresBackend("postgresql://nobody:secret@127.0.0.1:1/none", connect_timeout=1)
    with pytest.raises(StoreError) as info:
        backend.store.load()
    assert "secret" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


def test_url_selection_writes_nothing_under_dal(pg_url: str, in_base: Path) -> None:
    before = snapshot(in_base)
    with fleet.using(url=pg_url):
        fleet.create_from_mold("w", "worker", 3, params={"env": "prod"})
        fleet.add_member("w", "outside-agent")
        fleet.deploy("w", "Process logs")
        assert fleet.list() == ["w"]
        shown = fleet.show("w")
        assert shown is not None and shown.size == 4
        assert fleet.health("w").member_count == 4
        assert fleet.scale("w", 2).size == 2
    assert snapshot(in_base) == before == {}
    with Client.from_url(pg_url) as client:
        assert client.show("w") is not None
        assert client.history("w")[-1].task == "Process logs"
        status = client.coordinator.status(client.get("w").member_ids)
        assert all(s.state.value == "alive" for s in status.values())


def test_configure_with_a_url(pg_url: str, in_base: Path) -> None:
    try:
        fleet.configure(url=pg_url)
        fleet.create("configured")
    finally:
        fleet.configure()
    assert not (in_base / ".dal").exists()
    with Client.from_url(pg_url) as client:
        assert client.list() == ["configured"]


def test_an_unsupported_url_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="postgresql://"):
        Client.from_url("mysql://u:pw@host/db")
    with pytest.raises(InvalidArgumentError):
        Client.from_url("   ")


def test_a_forked_child_leaves_the_parents_session_alone(backend: PostgresBackend) -> None:
    with backend.store.transaction() as fleets:
        fleets["w"] = Fleet("w")
    backend.coordinator.wait_for_tasks(["a"], timeout=0)  # a LISTEN session too
    pid = os.fork()
    if pid == 0:  # the child: use the backend, then drop what it inherited
        code = 1
        try:
            with backend.store.transaction() as fleets:
                fleets["child"] = Fleet("child")
            backend.coordinator.wait_for_tasks(["a"], timeout=0)
            backend._inherited.clear()
            backend.coordinator._inherited.clear()
            gc.collect()  # libpq says goodbye on the inherited sockets now
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's own sessions still work, without reconnecting.
    conn = backend._conn
    assert sorted(backend.store.load()) == ["child", "w"]
    assert backend._conn is conn
    assert backend.coordinator.wait_for_tasks(["a"], timeout=0) is False


def test_scale_down_and_teardown_terminate_in_the_fleets_transaction(
    pg_url: str, base: Path
) -> None:
    with Client.from_url(pg_url, base=base) as client:
        members = client.create_from_mold("w", "worker", 3, params={"env": "t"}).member_ids
        assert client.scale("w", 1).member_ids == members[:1]
        states = client.coordinator.status(members)
        assert [states[m].state.value for m in members] == ["alive", "terminated", "terminated"]
        assert client.delete("w", teardown=True) is True
        assert client.coordinator.status(members[:1])[members[0]].state.value == "terminated"


def test_a_transaction_after_a_server_restart_reconnects(
    pg_server: PostgresServer, backend: PostgresBackend
) -> None:
    with backend.store.transaction() as fleets:
        fleets["w"] = Fleet("w")
    pg_server.restart()  # the idle connection is cut
    with backend.store.transaction() as fleets:
        fleets["v"] = Fleet("v")
    assert sorted(backend.store.load()) == ["v", "w"]
