"""Hypothesis stateful tests: random create / add / scale / deploy / delete sequences
against a tiny reference model, on the memory backends and on the JSON store.

Invariants: no duplicate IDs, order preserved on scale-down, size always what
scale asked, failed calls change nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dalfleet import Client, FleetError, FleetExistsError, FleetNotFoundError, InvalidArgumentError
from dalfleet.coordinator import LocalCoordinator, MemoryCoordinator
from dalfleet.store import JsonFileStore, MemoryStore
from tests.conftest import WORKER_MOLD

NAMES = st.sampled_from(["a", "b", "c", "bad name", ""])
SIZES = st.integers(min_value=-2, max_value=8)
CAP = 6


class FleetMachine(RuleBasedStateMachine):
    """Drives a Client; ``self.model`` is name -> (member count, has mold, task)."""

    backend = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="dalfleet-stateful-"))
        (self.dir / "worker.mold.dal").write_text(WORKER_MOLD)
        if self.backend == "memory":
            self.client = Client(MemoryStore(), MemoryCoordinator(), base=self.dir, max_count=CAP)
        else:
            self.client = Client(
                JsonFileStore(self.dir), LocalCoordinator(self.dir), base=self.dir, max_count=CAP
            )
        self.model: dict[str, dict[str, object]] = {}
        self.members: dict[str, list[str]] = {}

    def teardown(self) -> None:
        self.client.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _expect_failure(self, exc: type[FleetError], call: object) -> None:
        before = {n: self.client.show(n) for n in self.client.list()}
        try:
            call()  # type: ignore[operator]
        except exc:
            pass
        else:
            raise AssertionError(f"expected {exc.__name__}")
        after = {n: self.client.show(n) for n in self.client.list()}
        assert after == before, "a failed call changed the store"

    @rule(name=NAMES)
    def create(self, name: str) -> None:
        if name not in ("a", "b", "c"):
            self._expect_failure(InvalidArgumentError, lambda: self.client.create(name))
        elif name in self.model:
            self._expect_failure(FleetExistsError, lambda: self.client.create(name))
        else:
            self.client.create(name)
            self.model[name] = {"mold": False, "task": None}
            self.members[name] = []

    @rule(name=NAMES, count=SIZES)
    def create_from_mold(self, name: str, count: int) -> None:
        if name not in ("a", "b", "c"):
            self._expect_failure(
                InvalidArgumentError, lambda: self.client.create_from_mold(name, "worker", count)
            )
        elif count < 1 or count > CAP:
            self._expect_failure(
                InvalidArgumentError, lambda: self.client.create_from_mold(name, "worker", count)
            )
        elif name in self.model:
            self._expect_failure(
                FleetExistsError, lambda: self.client.create_from_mold(name, "worker", count)
            )
        else:
            f = self.client.create_from_mold(name, "worker", count)
            self.model[name] = {"mold": True, "task": None}
            self.members[name] = list(f.member_ids)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), count=SIZES)
    def add_from_mold(self, data: st.DataObject, count: int) -> None:
        name = data.draw(st.sampled_from(sorted(self.model)))
        # As in the reference, the cap bounds the agents one call spawns.
        if count < 1 or count > CAP:
            self._expect_failure(
                InvalidArgumentError, lambda: self.client.add_from_mold(name, "worker", count)
            )
            return
        old = self.members[name]
        f = self.client.add_from_mold(name, "worker", count)
        assert f.member_ids[: len(old)] == tuple(old)
        assert len(f.member_ids) == len(old) + count
        self.members[name] = list(f.member_ids)
        self.model[name]["mold"] = True

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), size=SIZES)
    def scale(self, data: st.DataObject, size: int) -> None:
        name = data.draw(st.sampled_from(sorted(self.model)))
        old = self.members[name]
        if size < 0 or size > max(CAP, len(old)):  # shrinking above the cap is allowed
            self._expect_failure(InvalidArgumentError, lambda: self.client.scale(name, size))
        elif size > len(old) and not self.model[name]["mold"]:
            self._expect_failure(InvalidArgumentError, lambda: self.client.scale(name, size))
        else:
            f = self.client.scale(name, size)
            assert len(f.member_ids) == size
            keep = min(size, len(old))
            assert f.member_ids[:keep] == tuple(old[:keep])
            self.members[name] = list(f.member_ids)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), member=st.sampled_from(["agent_x", "agent_y", "  "]))
    def add_member(self, data: st.DataObject, member: str) -> None:
        name = data.draw(st.sampled_from(sorted(self.model)))
        if not member.strip() or (
            member not in self.members[name] and len(self.members[name]) >= CAP
        ):
            self._expect_failure(InvalidArgumentError, lambda: self.client.add_member(name, member))
            return
        f = self.client.add_member(name, member)
        if member not in self.members[name]:
            self.members[name].append(member)
        assert f.member_ids == tuple(self.members[name])

    @rule(name=NAMES, task=st.sampled_from(["go", "  two words ", "", "   "]))
    def deploy(self, name: str, task: str) -> None:
        if not task.strip():
            self._expect_failure(InvalidArgumentError, lambda: self.client.deploy(name, task))
        elif name not in self.model:
            self._expect_failure(FleetNotFoundError, lambda: self.client.deploy(name, task))
        else:
            f = self.client.deploy(name, task)
            assert f.last_deployed_task == task.strip()
            self.model[name]["task"] = task.strip()

    @rule(name=NAMES)
    def delete(self, name: str) -> None:
        removed = self.client.delete(name)
        assert removed == (name in self.model)
        self.model.pop(name, None)
        self.members.pop(name, None)

    @invariant()
    def store_matches_model(self) -> None:
        assert self.client.list() == sorted(self.model)
        for name, expected in self.members.items():
            f = self.client.show(name)
            assert f is not None
            assert f.member_ids == tuple(expected)
            assert len(set(f.member_ids)) == len(f.member_ids)
            assert f.last_deployed_task == self.model[name]["task"]
            assert (f.mold_source is not None) == self.model[name]["mold"]


class JsonFleetMachine(FleetMachine):
    backend = "json"


TestMemoryBackends = FleetMachine.TestCase
TestMemoryBackends.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestJsonBackends = JsonFleetMachine.TestCase
TestJsonBackends.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
