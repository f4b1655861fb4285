"""Resolving a mold source against a base directory, and loading it (SPEC §4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dalfleet.errors import MoldError, MoldNotFoundError
from dalfleet.mold import (
    agent_type_of,
    list_local_molds,
    load_mold,
    parse_mold,
    read_mold_file,
    resolve_mold,
    sample_mold_path,
    validate_mold,
)


def dal(name: str) -> str:
    return f'mold "{name}"\nagent\n'


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and modification time."""
    result = {}
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        result[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return result


# --------------------------------------------------------------------------- order of the steps


def test_absolute_path_to_existing_file_is_used(tmp_path: Path) -> None:
    target = write(tmp_path / "elsewhere" / "x.mold.dal", dal("x"))
    base = tmp_path / "base"
    base.mkdir()
    assert resolve_mold(str(target), base) == target


def test_absolute_path_beats_same_named_files_in_base(tmp_path: Path) -> None:
    target = write(tmp_path / "a" / "w.mold.dal", dal("w"))
    write(tmp_path / "base" / "w.mold.dal", dal("w"))
    assert resolve_mold(str(target), tmp_path / "base") == target


def test_path_relative_to_base(tmp_path: Path) -> None:
    target = write(tmp_path / "mold" / "worker.mold.dal", dal("worker"))
    assert resolve_mold("mold/worker.mold.dal", tmp_path) == target


def test_base_source_beats_source_with_dal_suffix(tmp_path: Path) -> None:
    exact = write(tmp_path / "w", dal("w"))
    write(tmp_path / "w.mold.dal", dal("w"))
    assert resolve_mold("w", tmp_path) == exact


def test_source_with_dal_suffix_beats_json_suffix(tmp_path: Path) -> None:
    dal_file = write(tmp_path / "w.mold.dal", dal("w"))
    write(tmp_path / "w.mold.json", '{"name": "w"}')
    assert resolve_mold("w", tmp_path) == dal_file


def test_source_with_json_suffix(tmp_path: Path) -> None:
    json_file = write(tmp_path / "w.mold.json", '{"name": "w"}')
    assert resolve_mold("w", tmp_path) == json_file


def test_json_suffix_beats_directory_search(tmp_path: Path) -> None:
    json_file = write(tmp_path / "w.mold.json", '{"name": "w"}')
    write(tmp_path / "mold" / "w.mold.dal", dal("w"))
    assert resolve_mold("w", tmp_path) == json_file


def test_source_is_trimmed(tmp_path: Path) -> None:
    target = write(tmp_path / "w.mold.dal", dal("w"))
    assert resolve_mold("  w \n", tmp_path) == target


# --------------------------------------------------------------------------- directory search


def test_stem_match_in_mold_directory(tmp_path: Path) -> None:
    target = write(tmp_path / "mold" / "worker.mold.dal", dal("other-name"))
    assert resolve_mold("worker", tmp_path) == target


def test_stem_match_in_mold_samples_directory(tmp_path: Path) -> None:
    target = write(tmp_path / "mold" / "samples" / "worker.mold.json", '{"name": "zzz"}')
    assert resolve_mold("worker", tmp_path) == target


def test_mold_name_match_in_base(tmp_path: Path) -> None:
    target = write(tmp_path / "file-a.mold.dal", dal("pretty name"))
    assert resolve_mold("pretty name", tmp_path) == target


def test_mold_name_match_in_legacy_json(tmp_path: Path) -> None:
    target = write(tmp_path / "mold" / "f.mold.json", json.dumps({"name": "legacy"}))
    assert resolve_mold("legacy", tmp_path) == target


def test_base_directory_is_searched_before_mold_directory(tmp_path: Path) -> None:
    in_base = write(tmp_path / "a.mold.dal", dal("target"))
    write(tmp_path / "mold" / "target.mold.dal", dal("target"))
    assert resolve_mold("target", tmp_path) == in_base


def test_every_dal_file_comes_before_every_json_file(tmp_path: Path) -> None:
    # The reference sorts all .mold.dal files (., mold/, mold/samples) before any .mold.json.
    write(tmp_path / "mold" / "x.mold.json", '{"name": "target"}')
    in_samples = write(tmp_path / "mold" / "samples" / "target.mold.dal", dal("target"))
    assert resolve_mold("target", tmp_path) == in_samples


def test_dal_file_is_preferred_over_json_file_in_the_same_directory(tmp_path: Path) -> None:
    write(tmp_path / "mold" / "a.mold.json", '{"name": "target"}')
    dal_file = write(tmp_path / "mold" / "z.mold.dal", dal("target"))
    assert resolve_mold("target", tmp_path) == dal_file


def test_dal_stem_is_preferred_over_json_stem(tmp_path: Path) -> None:
    write(tmp_path / "mold" / "w.mold.json", '{"name": "w"}')
    dal_file = write(tmp_path / "mold" / "w.mold.dal", dal("w"))
    assert resolve_mold("w", tmp_path) == dal_file


def test_files_are_searched_in_name_order(tmp_path: Path) -> None:
    for name in ("c", "a", "b"):
        write(tmp_path / "mold" / f"{name}.mold.dal", dal("same"))
    assert resolve_mold("same", tmp_path) == tmp_path / "mold" / "a.mold.dal"


def test_files_that_fail_to_parse_are_skipped(tmp_path: Path) -> None:
    write(tmp_path / "a.mold.dal", "this is not a mold")
    (tmp_path / "b.mold.dal").write_bytes(b"\xff\xfe not utf-8")
    good = write(tmp_path / "c.mold.dal", dal("target"))
    assert resolve_mold("target", tmp_path) == good


def test_broken_file_still_matches_by_stem(tmp_path: Path) -> None:
    broken = write(tmp_path / "mold" / "w.mold.dal", "garbage")
    assert resolve_mold("w", tmp_path) == broken


def test_other_files_are_not_searched(tmp_path: Path) -> None:
    write(tmp_path / "mold" / "target.txt", dal("target"))
    write(tmp_path / "mold" / "deeper" / "target.mold.dal", dal("target"))
    with pytest.raises(MoldNotFoundError):
        resolve_mold("target", tmp_path)


# --------------------------------------------------------------------------- directories, errors


def test_directory_at_base_source_stops_resolution(tmp_path: Path) -> None:
    # The reference returns base/w because it exists, then fails to read it.
    (tmp_path / "w").mkdir()
    write(tmp_path / "w.mold.dal", dal("w"))
    with pytest.raises(MoldNotFoundError, match="which is a directory"):
        resolve_mold("w", tmp_path)


def test_directory_named_like_a_mold_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "mold" / "a.mold.dal").mkdir(parents=True)
    target = write(tmp_path / "mold" / "b.mold.dal", dal("t"))
    assert resolve_mold("t", tmp_path) == target


def test_directory_is_reported_when_nothing_else_matches(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    with pytest.raises(MoldNotFoundError, match=r"w, which is a directory"):
        resolve_mold("w", tmp_path)


def test_not_found_message_lists_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(MoldNotFoundError) as info:
        resolve_mold("ghost", tmp_path)
    message = str(info.value)
    assert message.startswith(f"mold 'ghost' not found in {tmp_path}: tried ")
    for tried in ("ghost,", "ghost.mold.dal", "ghost.mold.json", "mold/", "mold/samples/"):
        assert tried in message
    assert message.count(str(tmp_path)) == 1  # the base once: one short line


def test_not_found_is_a_lookup_error_and_a_mold_error(tmp_path: Path) -> None:
    with pytest.raises(LookupError):
        resolve_mold("ghost", tmp_path)
    with pytest.raises(MoldError):
        resolve_mold("ghost", tmp_path)


def test_missing_base_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(MoldNotFoundError):
        resolve_mold("w", tmp_path / "no-such-dir")


@pytest.mark.parametrize("source", ["", "   ", "\n"])
def test_empty_source_is_a_mold_error(tmp_path: Path, source: str) -> None:
    with pytest.raises(MoldError, match="mold source is empty") as info:
        resolve_mold(source, tmp_path)
    assert not isinstance(info.value, MoldNotFoundError)


def test_source_with_nul_byte_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(MoldNotFoundError):
        resolve_mold("bad\0name", tmp_path)


def test_resolution_writes_nothing(tmp_path: Path) -> None:
    write(tmp_path / "a.mold.dal", dal("a"))
    write(tmp_path / "mold" / "b.mold.json", '{"name": "b"}')
    write(tmp_path / "mold" / "samples" / "c.mold.dal", "broken")
    before = snapshot(tmp_path)
    resolve_mold("b", tmp_path)
    with pytest.raises(MoldNotFoundError):
        resolve_mold("ghost", tmp_path)
    assert snapshot(tmp_path) == before


def test_base_may_be_a_string(tmp_path: Path) -> None:
    target = write(tmp_path / "w.mold.dal", dal("w"))
    assert resolve_mold("w", str(tmp_path)) == target


# --------------------------------------------------------------------------- load_mold


def test_load_mold_sets_path(tmp_path: Path) -> None:
    target = write(tmp_path / "mold" / "worker.mold.dal", dal("worker"))
    mold = load_mold("worker", tmp_path)
    assert mold.name == "worker"
    assert mold.path == str(target)


def test_load_mold_reads_legacy_json(tmp_path: Path) -> None:
    write(tmp_path / "w.mold.json", '{"name": "w", "agent": {"type": "IDE"}}')
    assert load_mold("w", tmp_path).agent_type == "IDE"


def test_load_mold_error_names_the_file(tmp_path: Path) -> None:
    target = write(tmp_path / "w.mold.dal", 'mold "w"\nagent\n  type Robot\n')
    with pytest.raises(MoldError) as info:
        agent_type_of(load_mold("w", tmp_path))
    assert str(info.value) == f"unknown agent type in mold: Robot ({target})"


def test_load_mold_rejects_non_utf8_file(tmp_path: Path) -> None:
    (tmp_path / "w.mold.dal").write_bytes(b'mold "\xff"\nagent\n')
    with pytest.raises(MoldError, match=r"w\.mold\.dal is not valid UTF-8"):
        load_mold("w", tmp_path)


def test_load_mold_rejects_file_over_one_mebibyte(tmp_path: Path) -> None:
    write(tmp_path / "w.mold.dal", dal("w") + "//" + "x" * (1024 * 1024))
    with pytest.raises(MoldError, match="larger than the limit"):
        load_mold("w", tmp_path)


def test_read_mold_file_that_cannot_be_opened_names_it(tmp_path: Path) -> None:
    # CI runs as root, where chmod 000 still reads: a symlink loop fails to open for anyone.
    loop = tmp_path / "w.mold.dal"
    loop.symlink_to(loop)
    with pytest.raises(MoldError, match=r"cannot read mold file .*w\.mold\.dal"):
        read_mold_file(loop)


def test_load_mold_of_a_directory_is_not_found_naming_it(tmp_path: Path) -> None:
    (tmp_path / "w.mold.dal").mkdir()
    with pytest.raises(MoldNotFoundError, match=r"w\.mold\.dal, which is a directory"):
        load_mold("w.mold.dal", tmp_path)


def test_read_mold_file_of_a_directory_names_it(tmp_path: Path) -> None:
    with pytest.raises(MoldError, match=r"is a directory, not a file") as info:
        read_mold_file(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_read_mold_file_of_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(MoldError, match=r"cannot read mold file .*gone\.mold\.dal"):
        read_mold_file(tmp_path / "gone.mold.dal")


# --------------------------------------------------------------------------- packaged sample


def test_sample_mold_is_a_packaged_worker_mold() -> None:
    path = sample_mold_path()
    assert path.name == "worker.mold.dal"
    mold = parse_mold(path.read_text(encoding="utf-8"))
    assert (mold.name, mold.agent_type) == ("worker", "Worker")


def test_sample_mold_loads_by_absolute_path(tmp_path: Path) -> None:
    mold = load_mold(str(sample_mold_path()), tmp_path)
    assert mold.path == str(sample_mold_path())


# --------------------------------------------------------------------------- the reference's order


def test_list_local_molds_is_the_reference_order(tmp_path: Path) -> None:
    names = [
        "zeta.mold.dal",
        "mold-b.mold.dal",
        "mold.mold.dal",
        "mold/x.mold.dal",
        "mold/samples/a.mold.dal",
        "alpha.mold.json",
        "mold/a.mold.json",
        "notes.txt",
    ]
    for name in names:
        write(tmp_path / name, dal("m"))
    (tmp_path / "mold" / "dir.mold.dal").mkdir()
    got = [str(p.relative_to(tmp_path)) for p in list_local_molds(tmp_path)]
    # Paths compare component by component: "mold" < "mold-b.mold.dal" < "mold.mold.dal".
    assert got == [
        "mold/samples/a.mold.dal",
        "mold/x.mold.dal",
        "mold-b.mold.dal",
        "mold.mold.dal",
        "zeta.mold.dal",
        "alpha.mold.json",
        "mold/a.mold.json",
    ]


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        # a name match in mold/ beats a file in the base whose name sorts after "mold"
        ({"zz.mold.dal": "w", "mold/a.mold.dal": "w"}, "mold/a.mold.dal"),
        # a .mold.dal deep in mold/samples beats a .mold.json in the base
        ({"w.json.mold.json": "w", "mold/samples/k.mold.dal": "w"}, "mold/samples/k.mold.dal"),
        # the first file in order wins whether it matches by name or by stem
        ({"a.mold.dal": "w", "mold/w.mold.dal": "other"}, "a.mold.dal"),
        # a stem match: x.mold.mold.dal has the stem "x" in the reference
        ({"x.mold.mold.dal": "other"}, "x.mold.mold.dal"),
    ],
)
def test_layouts_resolve_as_in_the_reference(
    tmp_path: Path, layout: dict[str, str], expected: str
) -> None:
    for name, mold_name in layout.items():
        write(tmp_path / name, dal(mold_name))
    source = "x" if expected == "x.mold.mold.dal" else "w"
    assert resolve_mold(source, tmp_path) == tmp_path / expected


def test_dal_suffix_is_tried_before_json_suffix(tmp_path: Path) -> None:
    write(tmp_path / "w.mold.json", '{"name": "w", "agent": {"type": "AI"}}')
    target = write(tmp_path / "w.mold.dal", dal("w"))
    assert resolve_mold("w", tmp_path) == target


# --------------------------------------------------------------------------- bundled samples


def test_bundled_sample_answers_by_name_in_an_empty_directory(tmp_path: Path) -> None:
    assert resolve_mold("worker", tmp_path) == sample_mold_path()
    assert load_mold("worker", tmp_path).name == "worker"


def test_a_local_mold_beats_the_bundled_sample(tmp_path: Path) -> None:
    local = write(tmp_path / "mold" / "worker.mold.dal", dal("worker"))
    assert resolve_mold("worker", tmp_path) == local


def test_a_path_object_is_a_source(tmp_path: Path) -> None:
    assert resolve_mold(sample_mold_path(), tmp_path) == sample_mold_path()


def test_ipfs_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MoldError, match="IPFS sources are not supported"):
        resolve_mold("ipfs://bafy", tmp_path)


# --------------------------------------------------------------------------- confinement, secrets


def test_confined_source_may_not_leave_the_base(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    secret = write(tmp_path / "secret.mold.dal", dal("secret"))
    for source in (str(secret), "../secret.mold.dal", "../secret"):
        with pytest.raises(MoldError, match="outside the project directory"):
            resolve_mold(source, project, confine=True)
        # Typed by the user, the same source may point anywhere.
        assert resolve_mold(source, project).resolve() == secret.resolve()


def test_confined_source_may_not_follow_a_symlink_out(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "mold").mkdir(parents=True)
    secret = write(tmp_path / "outside" / "s.mold.dal", dal("s"))
    (project / "mold" / "s.mold.dal").symlink_to(secret)
    with pytest.raises(MoldError, match="outside the project directory"):
        resolve_mold("mold/s.mold.dal", project, confine=True)
    # Searching by name skips the link instead of reading it.
    with pytest.raises(MoldNotFoundError):
        resolve_mold("s", project, confine=True)
    assert resolve_mold("s", project) == project / "mold" / "s.mold.dal"


def test_confined_source_may_use_the_bundled_samples(tmp_path: Path) -> None:
    assert resolve_mold("worker", tmp_path, confine=True) == sample_mold_path()
    assert resolve_mold(str(sample_mold_path()), tmp_path, confine=True) == sample_mold_path()


def test_confined_source_inside_the_base_works(tmp_path: Path) -> None:
    target = write(tmp_path / "mold" / "w.mold.dal", dal("w"))
    assert resolve_mold("w", tmp_path, confine=True) == target
    assert resolve_mold(str(target), tmp_path, confine=True) == target


def test_a_file_that_is_not_a_mold_is_never_quoted(tmp_path: Path) -> None:
    secret = write(tmp_path / "shadow", "root:$6$SECRETHASH:19000:0:99999:7:::\n")
    with pytest.raises(MoldError) as info:
        load_mold(str(secret), tmp_path)
    assert "SECRETHASH" not in str(info.value)
    assert "$6$" not in str(info.value)
    assert "is not a mold" in str(info.value)


def test_warnings_of_a_file_that_is_not_a_mold_are_not_quoted(tmp_path: Path) -> None:
    secret = write(tmp_path / "notes", 'mold "m"\nagent\n  password hunter2\n')
    mold = load_mold(str(secret), tmp_path)
    assert "hunter2" not in " ".join(mold.warnings)


def test_a_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "w.mold.dal")
    with pytest.raises(MoldError, match="not a regular file"):
        load_mold("w", tmp_path)


# --------------------------------------------------------------------------- validate


def test_validate_refuses_an_unknown_type(tmp_path: Path) -> None:
    path = write(tmp_path / "x.mold.dal", 'mold "x"\nagent\n  type Alien\n')
    with pytest.raises(MoldError, match="unknown agent type in mold: Alien"):
        validate_mold(path)


def test_validate_strict_turns_warnings_into_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "x.mold.dal", 'mold "x"\nagent\n  colour blue\n')
    assert validate_mold(path).warnings
    with pytest.raises(MoldError, match="unknown keyword 'colour'"):
        validate_mold(path, strict=True)


# --------------------------------------------------------------------------- scaffold


def test_scaffold_is_the_reference_template_and_parses(tmp_path: Path) -> None:
    from dalfleet.mold import scaffold_mold

    path = scaffold_mold("draft", tmp_path)
    assert path == tmp_path / "draft.mold.dal"
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[:5] == [
        'mold "draft" "1.0"',
        "agent",
        "  type AI",
        '  role ""',
        "  capabilities",
    ]
    mold = validate_mold(path, strict=True)
    assert (mold.name, mold.learning, mold.skills[0]) == ("draft", True, "development")


def test_scaffold_quotes_the_name_and_never_overwrites(tmp_path: Path) -> None:
    from dalfleet.errors import InvalidArgumentError
    from dalfleet.mold import scaffold_mold

    path = scaffold_mold('a"b', tmp_path)
    assert parse_mold(path.read_text(encoding="utf-8")).name == 'a"b'
    before = path.read_bytes()
    with pytest.raises(MoldError, match="already exists"):
        scaffold_mold('a"b', tmp_path)
    assert path.read_bytes() == before
    for bad in ("", "../x", "a/b", ".hidden", "a\nb"):
        with pytest.raises(InvalidArgumentError):
            scaffold_mold(bad, tmp_path)


def test_validate_never_quotes_a_file_that_is_not_a_mold(tmp_path: Path) -> None:
    secret = write(tmp_path / "shadow", "root:$6$SECRETHASH:19000:0:99999:7:::\n")
    with pytest.raises(MoldError) as info:
        validate_mold(secret)
    assert "SECRETHASH" not in str(info.value) and "is not a mold" in str(info.value)


def test_a_file_with_a_byte_order_mark_never_matches_by_name(tmp_path: Path) -> None:
    # The reference cannot parse it, so it skips it when matching names.
    write(tmp_path / "a.mold.dal", "\ufeff" + dal("target"))
    second = write(tmp_path / "b.mold.dal", dal("target"))
    assert resolve_mold("target", tmp_path) == second
