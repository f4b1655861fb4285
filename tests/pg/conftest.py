"""Fixtures for the PostgreSQL tests: one real server per session, one database per test.

The tests here skip (with the reason) only when psycopg is not installed or the
machine has no PostgreSQL server binaries; CI installs both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from dalfleet.store.postgres import PostgresBackend

from tests.postgres_server import PostgresServer, unavailable_reason

# Every test module here starts with pytest.importorskip("psycopg", reason=NEEDS_PSYCOPG).
NEEDS_PSYCOPG = "the PostgreSQL backend needs 'dalfleet[postgres]' (psycopg)"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session, stopped and removed at the end."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """The URL of a fresh, empty schema (its own namespace) on the session's server."""
    return pg_server.create_schema()


@pytest.fixture
def backend(pg_url: str) -> Iterator[PostgresBackend]:
    """A backend on a fresh database; its connections are closed after the test."""
    from dalfleet.store.postgres import PostgresBackend

    with PostgresBackend(pg_url) as opened:
        yield opened


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here talks to a real PostgreSQL server: outside the fast loop."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)
