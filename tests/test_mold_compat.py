"""Agents made from molds the reference accepts, through the fleet API (SPEC §4, #13)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dalfleet.client import Client
from dalfleet.errors import MoldError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_lenient_mold_makes_agents_with_the_reference_fields(tmp_path: Path) -> None:
    write(
        tmp_path / "w.mold.dal",
        'mold "w" "2" "extra"\nagent\n  Type System\n  type worker\n  role first\n'
        '  role "Work on {{env}}" // note\n  learning yes\n  colour blue\n'
        "lifecycle\n  on_wake x\n  on_create hello\n",
    )
    with Client.in_memory(tmp_path) as client:
        fleet = client.create_from_mold("f", "w", 1, {"env": "prod"})
        (agent,) = client.coordinator.agents(list(fleet.member_ids)).values()
    spec = agent.spec
    assert (spec.agent_type, spec.role, spec.learning) == ("Worker", "Work on prod", False)
    assert spec.skills == ("development", "creative", "office", "home")
    assert spec.lifecycle == {"on_create": "hello"}
    assert spec.metadata == {"mold_name": "w", "mold_version": "2", "env": "prod"}


def test_legacy_metadata_reaches_the_agent(tmp_path: Path) -> None:
    write(
        tmp_path / "j.mold.json",
        '{"name": "j", "version": "1", "agent": {"type": "AI"}, "metadata": {"team": "ops"}}',
    )
    with Client.in_memory(tmp_path) as client:
        fleet = client.create_from_mold("f", "j", 1)
        (agent,) = client.coordinator.agents(list(fleet.member_ids)).values()
    assert agent.spec.metadata == {"team": "ops", "mold_name": "j", "mold_version": "1"}


def test_unknown_type_is_refused_before_anything_is_spawned(tmp_path: Path) -> None:
    write(tmp_path / "r.mold.dal", 'mold "r"\nagent\n  type Robot\n')
    with Client.for_base(tmp_path) as client:
        with pytest.raises(MoldError, match="unknown agent type in mold: Robot"):
            client.create_from_mold("f", "r", 2)
        assert client.list() == []


def test_an_unreadable_memory_limit_exports_without_a_limit(tmp_path: Path) -> None:
    write(tmp_path / "m.mold.dal", 'mold "m"\nagent\n  memory_limit "lots"\n')
    with Client.for_base(tmp_path) as client:
        client.create_from_mold("f", "m", 1)
        text = client.export("f")
    assert "memory" not in text


def test_warnings_are_logged_when_a_mold_is_loaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path / "w.mold.dal", 'mold "w"\nagent\n  colour blue\n')
    with caplog.at_level(logging.WARNING, logger="dalfleet.mold"), Client.for_base(tmp_path) as c:
        c.create_from_mold("f", "w", 1)
    assert any("unknown keyword 'colour'" in r.getMessage() for r in caplog.records)
