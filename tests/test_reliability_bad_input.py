"""SPEC §9: bad input gets a clear error and leaves every file byte-for-byte as it was.

One table, one row per bad call through ``import dalfleet.fleet as fleet``. Each
row asserts the exact exception class, a short message (one printable line, under
300 characters) that names the bad value or the fleet, and that ``.dal/`` is
unchanged (same bytes, and the fleet file not even replaced by an identical copy).
The rows run against a project that already has fleets, agents and a history;
a second table runs on a project that has no ``.dal/`` yet and checks that none
is created.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from _pytest.mark import ParameterSet

import dalfleet.fleet as fleet
from dalfleet import (
    FleetError,
    FleetExistsError,
    FleetNotFoundError,
    InvalidArgumentError,
    MoldError,
    MoldNotFoundError,
)
from dalfleet.errors import HandlerError, MoldSourceError
from tests.conftest import WORKER_MOLD, snapshot

Call = Callable[[Path], object]

BROKEN_MOLDS: dict[str, bytes] = {
    "broken.mold.dal": b"this is not a mold\n",
    "badtype.mold.dal": b'mold "bt" "1.0"\nagent\n  type Robot\n',
    "unterminated.mold.dal": b'mold "u" "1.0"\nagent\n  role "no end\n',
    "latin1.mold.dal": b'mold "l" "1.0"\nagent\n  role "caf\xe9"\n',
    "badjson.mold.json": b'{"name": "j", "agent": ',
    "big.mold.dal": b'mold "big" "1.0"\nagent\n' + b"// padding\n" * 100_000,
}


def add_molds(base: Path) -> None:
    molds = base / "mold"
    molds.mkdir(exist_ok=True)
    (molds / "worker.mold.dal").write_text(WORKER_MOLD, encoding="utf-8")
    for name, content in BROKEN_MOLDS.items():
        (molds / name).write_bytes(content)
    (molds / "dir.mold.dal").mkdir()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with fleets, built once; each test gets a copy."""
    base = tmp_path_factory.mktemp("template")
    add_molds(base)
    fleet.create_from_mold("w", "worker", 2, base, {"env": "prod"})
    fleet.deploy("w", "first", base)
    fleet.deploy("w", "second", base)
    fleet.create("bare", base)  # no members, no mold, one deployed task
    fleet.deploy("bare", "orphan task", base)
    (base / "mold" / "temp.mold.dal").write_text(WORKER_MOLD, encoding="utf-8")
    fleet.create_from_mold("vanished", "temp", 1, base)
    (base / "mold" / "temp.mold.dal").unlink()  # its mold is gone since
    return base


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    base = tmp_path / "project"
    shutil.copytree(template, base, symlinks=True)
    return base


def with_base(op: Callable[..., object], *args: object, **kwargs: object) -> Call:
    """``op(*args, base=<project>, **kwargs)``, untyped on purpose: many rows pass
    values of the wrong type."""
    return lambda base: op(*args, base=base, **kwargs)


def row(call: Call, error: type[FleetError], names: str, case_id: str) -> ParameterSet:
    return pytest.param(call, error, names, id=case_id)


LONG = "x" * 300
MB_TASK = "x" * (1024 * 1024)

ROWS = [
    # -- fleet names (checked when a fleet is created) --
    row(lambda b: fleet.create("", b), InvalidArgumentError, "''", "name-empty"),
    row(lambda b: fleet.create("/", b), InvalidArgumentError, "'/'", "name-slash"),
    row(lambda b: fleet.create("..", b), InvalidArgumentError, "'..'", "name-dotdot"),
    row(lambda b: fleet.create("../etc", b), InvalidArgumentError, "'../etc'", "name-traversal"),
    row(lambda b: fleet.create("a/b", b), InvalidArgumentError, "'a/b'", "name-with-slash"),
    row(lambda b: fleet.create("a\nb", b), InvalidArgumentError, r"'a\nb'", "name-newline"),
    row(lambda b: fleet.create("w\x00", b), InvalidArgumentError, r"'w\x00'", "name-nul"),
    row(lambda b: fleet.create("x" * 64, b), InvalidArgumentError, "x" * 64, "name-64-chars"),
    row(lambda b: fleet.create(LONG, b), InvalidArgumentError, "300 characters", "name-300"),
    row(lambda b: fleet.create("-lead", b), InvalidArgumentError, "'-lead'", "name-dash-first"),
    row(lambda b: fleet.create(" w", b), InvalidArgumentError, "' w'", "name-leading-space"),
    row(lambda b: fleet.create("has space", b), InvalidArgumentError, "has space", "name-space"),
    # look-alikes: Cyrillic o, fullwidth w, a zero-width space (which the message must
    # show visibly: check_message requires a printable message)
    row(lambda b: fleet.create("wоrkers", b), InvalidArgumentError, "wоrkers", "name-cyrillic"),
    row(lambda b: fleet.create("ｗorkers", b), InvalidArgumentError, "ｗorkers", "name-fullwidth"),
    # (the value must be shown visibly: check_message requires a printable message)
    row(lambda b: fleet.create("w\u200bx", b), InvalidArgumentError, "w", "name-zero-width"),
    row(with_base(fleet.create, 5), InvalidArgumentError, "not int", "name-int"),
    row(with_base(fleet.create, None), InvalidArgumentError, "NoneType", "name-none"),
    row(lambda b: fleet.create("w", b), FleetExistsError, "'w'", "name-exists"),
    row(
        lambda b: fleet.create_from_mold("..", "worker", 1, b),
        InvalidArgumentError,
        "'..'",
        "mold-name-dotdot",
    ),
    row(
        lambda b: fleet.create_from_mold("w", "worker", 1, b),
        FleetExistsError,
        "'w'",
        "mold-name-exists",
    ),
    row(with_base(fleet.deploy, 5, "t"), InvalidArgumentError, "not int", "lookup-name-int"),
    # -- counts --
    *[
        row(
            with_base(fleet.create_from_mold, "n", "worker", count),
            InvalidArgumentError,
            needle,
            f"create-count-{label}",
        )
        for count, needle, label in [
            (0, "(got 0)", "0"),
            (-1, "(got -1)", "minus-1"),
            (1001, "capped at 1000", "1001"),
            (10**12, str(10**12), "huge"),
            ("3", "'3'", "str"),
            ("three", "'three'", "word"),
            (2.5, "2.5", "float"),
            (True, "True", "bool"),
            (None, "None", "none"),
        ]
    ],
    *[
        row(
            with_base(fleet.add_from_mold, "w", "worker", count),
            InvalidArgumentError,
            needle,
            f"add-count-{label}",
        )
        for count, needle, label in [
            (0, "(got 0)", "0"),
            (-1, "(got -1)", "minus-1"),
            (1001, "capped at 1000", "1001"),
            ("x", "'x'", "str"),
        ]
    ],
    *[
        row(
            with_base(fleet.scale, "w", size),
            InvalidArgumentError,
            needle,
            f"scale-{label}",
        )
        for size, needle, label in [
            (-1, "(got -1)", "minus-1"),
            (1001, "capped at 1000", "1001"),
            ("2", "'2'", "str"),
            (1.5, "1.5", "float"),
            (None, "None", "none"),
        ]
    ],
    # -- params --
    *[
        row(
            with_base(fleet.create_from_mold, "n", "worker", 1, params=params),
            InvalidArgumentError,
            needle,
            f"param-{label}",
        )
        for params, needle, label in [
            (["env"], "'env'", "no-equals"),
            (["env=prod", "region"], "'region'", "second-no-equals"),
            (["=prod"], "'=prod'", "empty-key"),
            (["a b=c"], "'a b=c'", "key-with-space"),
            ({"{x}": "y"}, "{x}", "key-with-brace"),
            ("env=prod", "'env=prod'", "bare-string"),
            ([5], "'5'", "not-a-string"),
        ]
    ],
    row(
        lambda b: fleet.add_from_mold("w", "worker", 1, b, ["novalue"]),
        InvalidArgumentError,
        "'novalue'",
        "add-param-no-equals",
    ),
    # -- tasks --
    row(lambda b: fleet.deploy("w", "", b), InvalidArgumentError, "empty", "task-empty"),
    row(lambda b: fleet.deploy("w", "   ", b), InvalidArgumentError, "empty", "task-spaces"),
    row(lambda b: fleet.deploy("w", "\n\t\r", b), InvalidArgumentError, "empty", "task-blank"),
    row(lambda b: fleet.deploy("w", MB_TASK, b), InvalidArgumentError, "too long", "task-1mb"),
    row(with_base(fleet.deploy, "w", 5), InvalidArgumentError, "not int", "task-int"),
    row(with_base(fleet.deploy, "w", None), InvalidArgumentError, "NoneType", "task-none"),
    # -- agent IDs --
    row(lambda b: fleet.add_member("w", "", b), InvalidArgumentError, "empty", "id-empty"),
    row(lambda b: fleet.add_member("w", "  ", b), InvalidArgumentError, "empty", "id-blank"),
    row(lambda b: fleet.add_member("w", "a\nb", b), InvalidArgumentError, r"'a\nb'", "id-newline"),
    row(lambda b: fleet.add_member("w", LONG, b), InvalidArgumentError, "256", "id-300"),
    row(with_base(fleet.add_member, "w", 5), InvalidArgumentError, "not int", "id-int"),
    # -- molds --
    row(
        lambda b: fleet.create_from_mold("n", "nope", 1, b),
        MoldNotFoundError,
        "'nope'",
        "mold-missing",
    ),
    row(
        lambda b: fleet.create_from_mold("n", "mold/dir.mold.dal", 1, b),
        MoldNotFoundError,
        "dir.mold.dal",
        "mold-is-a-directory",
    ),
    row(
        lambda b: fleet.create_from_mold("n", "", 1, b),
        MoldSourceError,
        "mold source",
        "mold-empty",
    ),
    row(
        lambda b: fleet.create_from_mold("n", "   ", 1, b),
        MoldSourceError,
        "mold source",
        "mold-blank",
    ),
    *[
        row(
            with_base(fleet.create_from_mold, "n", source, 1),
            MoldError,
            needle,
            f"mold-{source}",
        )
        for source, needle in [
            ("broken", "broken.mold.dal"),
            ("badtype", "Robot"),
            ("unterminated", "unterminated.mold.dal"),
            ("latin1", "latin1.mold.dal"),
            ("badjson", "badjson.mold.json"),
            ("big", "big.mold.dal"),
        ]
    ],
    row(
        lambda b: fleet.add_from_mold("w", "broken", 1, b),
        MoldError,
        "broken.mold.dal",
        "add-mold-broken",
    ),
    row(
        lambda b: fleet.add_from_mold("w", "nope", 1, b),
        MoldNotFoundError,
        "'nope'",
        "add-mold-missing",
    ),
    row(lambda b: fleet.scale("bare", 3, b), InvalidArgumentError, "'bare'", "scale-up-no-mold"),
    row(lambda b: fleet.scale("vanished", 3, b), MoldNotFoundError, "'temp'", "scale-up-mold-gone"),
    row(lambda b: fleet.run("bare", b), InvalidArgumentError, "'bare'", "run-no-members-no-mold"),
    row(lambda b: fleet.run(None, b), InvalidArgumentError, "'bare'", "run-all-no-members"),
    # -- unknown fleets --
    row(lambda b: fleet.deploy("nope", "t", b), FleetNotFoundError, "'nope'", "unknown-deploy"),
    row(lambda b: fleet.add_member("nope", "a", b), FleetNotFoundError, "'nope'", "unknown-add"),
    row(
        lambda b: fleet.add_from_mold("nope", "worker", 1, b),
        FleetNotFoundError,
        "'nope'",
        "unknown-add-from-mold",
    ),
    row(lambda b: fleet.scale("nope", 1, b), FleetNotFoundError, "'nope'", "unknown-scale"),
    row(lambda b: fleet.health("nope", b), FleetNotFoundError, "'nope'", "unknown-health"),
    row(lambda b: fleet.export("nope", b), FleetNotFoundError, "'nope'", "unknown-export"),
    row(lambda b: fleet.run("nope", b), FleetNotFoundError, "'nope'", "unknown-run"),
    row(lambda b: fleet.history("nope", b), FleetNotFoundError, "'nope'", "unknown-history"),
    row(lambda b: fleet.rollback("nope", b), FleetNotFoundError, "'nope'", "unknown-rollback"),
    row(
        lambda b: fleet.work("nope", "dalfleet.handlers:echo", b, once=True),
        FleetNotFoundError,
        "'nope'",
        "unknown-work",
    ),
    row(lambda b: fleet.deploy("W", "t", b), FleetNotFoundError, "'W'", "unknown-differs-in-case"),
    # -- export formats --
    *[
        row(
            with_base(fleet.export, "w", format=fmt),
            InvalidArgumentError,
            needle,
            f"format-{label}",
        )
        for fmt, needle, label in [
            ("yaml", "'yaml'", "yaml"),
            ("", "''", "empty"),
            ("k8s,compose", "'k8s,compose'", "two"),
            ("helm", "'helm'", "helm"),
            (5, "5", "int"),
            (None, "None", "none"),
        ]
    ],
    # -- handlers, rollback targets, run options --
    row(
        lambda b: fleet.run("w", b, handler="no_such_module_xyz:fn"),
        HandlerError,
        "no_such_module_xyz",
        "handler-no-module",
    ),
    row(
        lambda b: fleet.run("w", b, handler="dalfleet.handlers:nope"),
        HandlerError,
        "nope",
        "handler-no-function",
    ),
    row(lambda b: fleet.run("w", b, handler="nocolon"), HandlerError, "'nocolon'", "handler-form"),
    row(
        lambda b: fleet.run("w", b, handler="dalfleet.handlers:echo", concurrency=0),
        InvalidArgumentError,
        "0",
        "run-concurrency-0",
    ),
    row(
        lambda b: fleet.run("w", b, handler="dalfleet.handlers:echo", timeout=-1),
        InvalidArgumentError,
        "-1",
        "run-timeout-negative",
    ),
    row(
        lambda b: fleet.rollback("w", b, to_revision=99),
        InvalidArgumentError,
        "99",
        "rollback-no-revision",
    ),
    row(
        with_base(fleet.rollback, "w", to_revision="1"), InvalidArgumentError, "'1'", "rollback-str"
    ),
    row(lambda b: fleet.rollback("bare", b), InvalidArgumentError, "'bare'", "rollback-first"),
]


def check_message(exc: BaseException, names: str) -> None:
    message = str(exc)
    assert "\n" not in message and "\r" not in message, repr(message)
    assert message.isprintable(), f"invisible characters in {message!r}"
    assert 0 < len(message) < 300, f"{len(message)} characters: {message}"
    assert names in message, f"{names!r} not in {message!r}"


@pytest.mark.parametrize(("call", "error", "names"), ROWS)
def test_bad_input_is_refused_and_changes_nothing(
    project: Path, call: Call, error: type[FleetError], names: str
) -> None:
    before = snapshot(project)
    fleet_file = (project / ".dal" / "fleets.json").stat()
    with pytest.raises(FleetError) as info:
        call(project)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    check_message(info.value, names)
    assert snapshot(project) == before
    after = (project / ".dal" / "fleets.json").stat()
    assert (after.st_ino, after.st_mtime_ns) == (fleet_file.st_ino, fleet_file.st_mtime_ns)


def test_deleting_an_unknown_fleet_is_false_and_changes_nothing(project: Path) -> None:
    before = snapshot(project)
    assert fleet.delete("nope", project) is False
    assert fleet.show("nope", project) is None
    assert snapshot(project) == before


def test_the_table_covers_every_error_class() -> None:
    seen = {p.values[1] for p in ROWS}
    assert seen >= {
        InvalidArgumentError,
        FleetExistsError,
        FleetNotFoundError,
        MoldError,
        MoldNotFoundError,
        HandlerError,
    }
    ids = [p.id for p in ROWS]
    assert len(ids) == len(set(ids))


# -- on a project with no .dal/ yet: nothing is created ---------------------------------------

FRESH_ROWS = [
    row(lambda b: fleet.create("..", b), InvalidArgumentError, "'..'", "fresh-name"),
    row(lambda b: fleet.create("", b), InvalidArgumentError, "''", "fresh-name-empty"),
    row(
        lambda b: fleet.create_from_mold("n", "nope", 1, b),
        MoldNotFoundError,
        "'nope'",
        "fresh-mold-missing",
    ),
    row(
        lambda b: fleet.create_from_mold("n", "broken", 1, b),
        MoldError,
        "broken.mold.dal",
        "fresh-mold-broken",
    ),
    row(
        lambda b: fleet.create_from_mold("n", "worker", 0, b),
        InvalidArgumentError,
        "(got 0)",
        "fresh-count-0",
    ),
    row(
        lambda b: fleet.create_from_mold("n", "worker", 1001, b),
        InvalidArgumentError,
        "1000",
        "fresh-count-1001",
    ),
    row(
        lambda b: fleet.create_from_mold("n", "worker", 1, b, ["env"]),
        InvalidArgumentError,
        "'env'",
        "fresh-param",
    ),
    row(lambda b: fleet.deploy("nope", "t", b), FleetNotFoundError, "'nope'", "fresh-deploy"),
    row(lambda b: fleet.deploy("nope", " ", b), InvalidArgumentError, "empty", "fresh-task"),
    row(lambda b: fleet.add_member("nope", "a", b), FleetNotFoundError, "'nope'", "fresh-add"),
    row(
        lambda b: fleet.add_from_mold("nope", "worker", 1, b),
        FleetNotFoundError,
        "'nope'",
        "fresh-add-from-mold",
    ),
    row(lambda b: fleet.scale("nope", 2, b), FleetNotFoundError, "'nope'", "fresh-scale"),
    row(lambda b: fleet.scale("nope", -1, b), InvalidArgumentError, "-1", "fresh-scale-neg"),
    row(lambda b: fleet.run("nope", b), FleetNotFoundError, "'nope'", "fresh-run"),
    row(lambda b: fleet.health("nope", b), FleetNotFoundError, "'nope'", "fresh-health"),
    row(lambda b: fleet.rollback("nope", b), FleetNotFoundError, "'nope'", "fresh-rollback"),
    row(lambda b: fleet.export(None, b), FleetNotFoundError, "no fleets", "fresh-export-nothing"),
    row(lambda b: fleet.export("nope", b), FleetNotFoundError, "'nope'", "fresh-export"),
    row(lambda b: fleet.export(None, b, "yaml"), InvalidArgumentError, "'yaml'", "fresh-format"),
]


@pytest.mark.parametrize(("call", "error", "names"), FRESH_ROWS)
def test_bad_input_on_a_fresh_project_creates_no_dal(
    base: Path, call: Call, error: type[FleetError], names: str
) -> None:
    add_molds(base)
    molds = {p.name: p.read_bytes() for p in (base / "mold").iterdir() if p.is_file()}
    with pytest.raises(FleetError) as info:
        call(base)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    check_message(info.value, names)
    assert not (base / ".dal").exists()
    assert {p.name: p.read_bytes() for p in (base / "mold").iterdir() if p.is_file()} == molds
