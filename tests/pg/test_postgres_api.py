"""The fleet API suite (tests/test_fleet_api.py) on the PostgreSQL backend.

Every test there that takes the ``ctx`` fixture runs here again, inside
``fleet.using(url=…)`` on a fresh schema, so the PostgreSQL backend is held to the
same SPEC §2 rules as the JSON and in-memory backends.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="needs 'dalfleet[postgres]' (psycopg)")

import dalfleet.fleet as fleet
import tests.test_fleet_api as api
from tests.conftest import snapshot


@pytest.fixture
def ctx(pg_url: str, base: Path) -> Iterator[api.Ctx]:
    before = snapshot(base)
    with fleet.using(url=pg_url, base=base):
        yield api.Ctx("postgres", base)
    assert snapshot(base) == before  # with a URL nothing is written under .dal/


# Collect the suite's backend-independent tests under this module, with the ctx above.
for _name, _test in vars(api).items():
    if _name.startswith("test_") and "ctx" in inspect.signature(_test).parameters:
        globals()[_name] = _test
