"""The conformance kits of :mod:`dalfleet.testing`: the project's stores pass
``StoreContract`` (the coordinators' run in test_coordinator.py), and the kits have
teeth: deliberately broken backends, run through them by pytest, fail the tests
that guard what they break."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from dalfleet.store import JsonFileStore, MemoryStore
from dalfleet.testing import CoordinatorContract, StoreContract

pytestmark = pytest.mark.slow  # each test runs pytest in a new process

REPO = Path(__file__).resolve().parents[1]


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()


class TestJsonFileStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[JsonFileStore]:
        store = JsonFileStore(tmp_path)
        yield store
        close = getattr(store, "close", None)
        if close is not None:
            close()


def test_the_kits_themselves_are_not_collected() -> None:
    assert StoreContract.__test__ is False and CoordinatorContract.__test__ is False
    assert TestMemoryStore.__test__ is True


BROKEN = '''
import contextlib, math, threading, time

import pytest

from dalfleet.coordinator import MemoryCoordinator, TaskState
from dalfleet.store import MemoryStore
from dalfleet.testing import CoordinatorContract, StoreContract


class TwoClaimants(MemoryCoordinator):
    """Hands a claimed task out again: the claim does not hold it."""

    def claim(self, agent_ids, worker, limit, *, lease=30.0):
        taken = super().claim(agent_ids, worker, limit, lease=lease)
        for c in taken:
            self._tasks[c.task.task_id].state = TaskState.PENDING
        return taken


class RecordsTwice(MemoryCoordinator):
    """Records every finish, even of a task that already has its outcome."""

    def finish_many(self, outcomes, worker):
        for o in outcomes:
            row = self._tasks.get(o.task_id)
            if row is not None:
                row.state, row.worker = TaskState.RUNNING, worker
        return super().finish_many(outcomes, worker)


class IgnoresExpiry(MemoryCoordinator):
    """Never takes over a running task, whatever its lease."""

    def claim(self, agent_ids, worker, limit, *, lease=30.0):
        for row in self._tasks.values():
            if row.state is TaskState.RUNNING:
                row.lease_expires_at = math.inf
        return super().claim(agent_ids, worker, limit, lease=lease)


class DropsUpdates(MemoryStore):
    """Keeps new fleets but silently drops changes to existing ones."""

    @contextlib.contextmanager
    def transaction(self):
        with self._lock:
            working = dict(self._fleets)
            yield working
            for name, value in working.items():
                self._fleets.setdefault(name, value)


class LosesUpdates(MemoryStore):
    """Read-modify-write without holding the lock: concurrent writers overwrite."""

    @contextlib.contextmanager
    def transaction(self):
        working = dict(self._fleets)
        yield working
        time.sleep(0.001)
        self._fleets = working


class TestTwoClaimants(CoordinatorContract):
    @pytest.fixture
    def coordinator(self):
        return TwoClaimants()


class TestRecordsTwice(CoordinatorContract):
    @pytest.fixture
    def coordinator(self):
        return RecordsTwice()


class TestIgnoresExpiry(CoordinatorContract):
    @pytest.fixture
    def coordinator(self):
        return IgnoresExpiry()


class TestDropsUpdates(StoreContract):
    @pytest.fixture
    def store(self):
        return DropsUpdates()


class TestLosesUpdates(StoreContract):
    @pytest.fixture
    def store(self):
        return LosesUpdates()
'''


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Run the kits over the broken backends; the failed test names per class."""
    where = tmp_path_factory.mktemp("kits")
    (where / "test_broken.py").write_text(textwrap.dedent(BROKEN), encoding="utf-8")
    report = where / "report.xml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            "test_broken.py",
        ],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    out: dict[str, set[str]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            cls = case.attrib["classname"].rsplit(".", 1)[-1]
            out.setdefault(cls, set()).add(case.attrib["name"])
    return out


@pytest.mark.parametrize(
    ("backend", "guard"),
    [
        ("TestTwoClaimants", "test_a_held_task_is_never_claimed_again"),
        ("TestTwoClaimants", "test_concurrent_claims_take_each_task_once"),
        ("TestRecordsTwice", "test_an_outcome_is_recorded_once"),
        ("TestIgnoresExpiry", "test_an_expired_lease_is_taken_over"),
        ("TestIgnoresExpiry", "test_a_task_fails_after_max_attempts_expired_leases"),
        ("TestDropsUpdates", "test_every_write_is_kept"),
        ("TestLosesUpdates", "test_concurrent_transactions_lose_no_update"),
    ],
)
def test_a_broken_backend_fails_the_kit(
    failures: dict[str, set[str]], backend: str, guard: str
) -> None:
    assert guard in failures.get(backend, set())
