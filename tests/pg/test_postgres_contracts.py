"""The PostgreSQL backend passes dalfleet.testing's conformance kits on a real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("psycopg", reason="needs 'dalfleet[postgres]' (psycopg)")

from dalfleet.coordinator.postgres import PostgresCoordinator
from dalfleet.store.postgres import PostgresBackend, PostgresStore
from dalfleet.testing import CoordinatorContract, StoreContract


class TestPostgresCoordinatorContract(CoordinatorContract):
    @pytest.fixture
    def coordinator(self, pg_url: str) -> Iterator[PostgresCoordinator]:  # type: ignore[override]
        backend = PostgresBackend(pg_url)
        yield backend.coordinator
        backend.close()


class TestPostgresStoreContract(StoreContract):
    @pytest.fixture
    def store(self, pg_url: str) -> Iterator[PostgresStore]:  # type: ignore[override]
        backend = PostgresBackend(pg_url)
        yield backend.store
        backend.close()
