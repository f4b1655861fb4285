"""Trust comes from the principal, read as the reference reads it (SPEC §4, #13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dalfleet.client import Client
from dalfleet.mold import DEFAULT_TRUST_LEVEL, TRUST_ENV, principal_trust_level


def test_default_is_sandboxed(tmp_path: Path) -> None:
    assert principal_trust_level(tmp_path, {}) == DEFAULT_TRUST_LEVEL == "sandboxed"


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("trusted", "trusted"),
        (" Trusted ", "trusted"),
        ("CONFIRMED", "confirmed"),
        ("off", "off"),
        ("root", "sandboxed"),
        ("", "sandboxed"),
    ],
)
def test_environment_variable(tmp_path: Path, value: str, level: str) -> None:
    assert principal_trust_level(tmp_path, {TRUST_ENV: value}) == level


def test_agent_toml_agent_sh_table(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text('[agent.sh]\ntrust = "confirmed"\n', encoding="utf-8")
    assert principal_trust_level(tmp_path, {}) == "confirmed"


def test_sh_table_at_the_top(tmp_path: Path) -> None:
    (tmp_path / "dal.toml").write_text('[sh]\ntrust = "trusted"\n', encoding="utf-8")
    assert principal_trust_level(tmp_path, {}) == "trusted"


def test_agent_sh_is_preferred_over_sh(tmp_path: Path) -> None:
    text = '[sh]\ntrust = "trusted"\n[agent.sh]\ntrust = "off"\n'
    (tmp_path / "agent.toml").write_text(text, encoding="utf-8")
    assert principal_trust_level(tmp_path, {}) == "off"


def test_agent_toml_overrides_dal_toml_even_without_a_trust_key(tmp_path: Path) -> None:
    (tmp_path / "dal.toml").write_text('[agent.sh]\ntrust = "trusted"\n', encoding="utf-8")
    (tmp_path / "agent.toml").write_text("[agent.sh]\nforbidden_patterns = []\n", encoding="utf-8")
    assert principal_trust_level(tmp_path, {}) == "sandboxed"


def test_agent_toml_without_a_shell_table_leaves_dal_toml(tmp_path: Path) -> None:
    (tmp_path / "dal.toml").write_text('[agent.sh]\ntrust = "trusted"\n', encoding="utf-8")
    (tmp_path / "agent.toml").write_text('[agent]\nname = "x"\n', encoding="utf-8")
    assert principal_trust_level(tmp_path, {}) == "trusted"


def test_environment_overrides_the_files(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text('[agent.sh]\ntrust = "trusted"\n', encoding="utf-8")
    assert principal_trust_level(tmp_path, {TRUST_ENV: "off"}) == "off"


@pytest.mark.parametrize("content", ["not = [toml", b"\xff\xfe"])
def test_broken_files_are_skipped(tmp_path: Path, content: str | bytes) -> None:
    data = content.encode() if isinstance(content, str) else content
    (tmp_path / "agent.toml").write_bytes(data)
    assert principal_trust_level(tmp_path, {}) == "sandboxed"


def test_a_fifo_is_not_opened(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "agent.toml")
    assert principal_trust_level(tmp_path, {}) == "sandboxed"


def test_the_mold_never_sets_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRUST_ENV, raising=False)
    (tmp_path / "agent.toml").write_text('[agent.sh]\ntrust = "confirmed"\n', encoding="utf-8")
    (tmp_path / "m.mold.dal").write_text(
        'mold "m"\nagent\n  trust_level trusted\n', encoding="utf-8"
    )
    with Client.for_base(tmp_path) as client:
        assert client.coordinator.trust_level == "confirmed"
        fleet = client.create_from_mold("w", "m", 1)
        agents = client.coordinator.agents(list(fleet.member_ids))
    assert [a.spec.trust_level for a in agents.values()] == ["confirmed"]
