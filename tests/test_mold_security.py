"""Mold sources that did not come from the user stay inside the project (#10 item 12).

A manifest (``apply``) or a stored fleet (scale-up, run's add-one) may not name a
mold outside the base directory, even through ``..`` or a symlink; a source typed
by the user may point anywhere, but an error never quotes a file that is not a mold.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dalfleet.client import Client
from dalfleet.errors import MoldError
from dalfleet.mold import sample_mold_path

SECRET = "root:$6$TOPSECRETHASH:19000:0:99999:7:::"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    # A file outside the project that parses as a mold, and one that is a secret.
    (tmp_path / "outside.mold.dal").write_text('mold "outside"\nagent\n', encoding="utf-8")
    (tmp_path / "shadow").write_text(SECRET + "\n", encoding="utf-8")
    return root


def stored_fleet(project: Path, mold_source: str, task: str | None = None) -> None:
    entry: dict[str, object] = {"name": "w", "mold_source": mold_source, "member_ids": []}
    if task is not None:
        entry["last_deployed_task"] = task
    (project / ".dal").mkdir(exist_ok=True)
    (project / ".dal" / "fleets.json").write_text(json.dumps({"w": entry}), encoding="utf-8")


def files(project: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(project.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("source", ["../outside.mold.dal", "../outside", "../shadow"])
def test_scale_up_of_a_stored_fleet_is_confined(project: Path, source: str) -> None:
    stored_fleet(project, source)
    before = files(project)
    with Client.for_base(project) as client, pytest.raises(MoldError) as info:
        client.scale("w", 1)
    assert "outside the project directory" in str(info.value)
    assert "TOPSECRET" not in str(info.value)
    assert files(project) == before


def test_scale_up_through_a_symlink_out_is_refused(project: Path) -> None:
    (project / "mold").mkdir()
    (project / "mold" / "w.mold.dal").symlink_to(project.parent / "outside.mold.dal")
    stored_fleet(project, "mold/w.mold.dal")
    with Client.for_base(project) as client, pytest.raises(MoldError, match="outside"):
        client.scale("w", 1)


def test_run_does_not_add_a_member_from_outside(project: Path) -> None:
    stored_fleet(project, str(project.parent / "outside.mold.dal"), task="go")
    before = files(project)
    with Client.for_base(project) as client, pytest.raises(MoldError, match="outside"):
        client.run("w")
    assert files(project) == before


def test_apply_refuses_a_mold_outside_even_in_a_dry_run(project: Path) -> None:
    manifest = "fleets:\n  w:\n    mold: ../shadow\n    count: 1\n"
    with Client.for_base(project) as client:
        for dry_run in (True, False):
            with pytest.raises(MoldError) as info:
                client.apply(manifest, dry_run=dry_run)
            assert "TOPSECRET" not in str(info.value)
            assert "outside the project directory" in str(info.value)
        assert client.list() == []


def test_a_stored_fleet_inside_the_project_still_scales(project: Path) -> None:
    (project / "mold").mkdir()
    (project / "mold" / "w.mold.dal").write_text('mold "w"\nagent\n', encoding="utf-8")
    stored_fleet(project, "mold/w.mold.dal")
    with Client.for_base(project) as client:
        assert client.scale("w", 2).size == 2


def test_a_stored_fleet_may_use_the_bundled_sample(project: Path) -> None:
    stored_fleet(project, str(sample_mold_path()))
    with Client.for_base(project) as client:
        assert client.scale("w", 1).size == 1


def test_a_typed_source_may_point_anywhere(project: Path) -> None:
    with Client.for_base(project) as client:
        fleet = client.create_from_mold("w", "../outside.mold.dal", 1)
    assert fleet.mold_source == "../outside.mold.dal"


def test_a_typed_path_to_a_secret_prints_none_of_it(project: Path) -> None:
    with Client.for_base(project) as client, pytest.raises(MoldError) as info:
        client.create_from_mold("w", str(project.parent / "shadow"), 1)
    assert "TOPSECRET" not in str(info.value) and "$6$" not in str(info.value)
    assert "is not a mold" in str(info.value)


def test_the_bundled_worker_answers_by_name_in_an_empty_directory(tmp_path: Path) -> None:
    with Client.for_base(tmp_path) as client:
        fleet = client.create_from_mold("w", "worker", 2)
    assert fleet.size == 2 and fleet.mold_source == "worker"


def test_a_path_object_is_a_mold_source(tmp_path: Path) -> None:
    with Client.for_base(tmp_path) as client:
        fleet = client.create_from_mold("w", sample_mold_path(), 1)
    assert fleet.mold_source == str(sample_mold_path())
