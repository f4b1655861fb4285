"""``import dalfleet`` loads no heavy module; its public names still resolve on use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import dalfleet

HEAVY = ["sqlite3", "asyncio", "yaml", "portalocker", "attrs", "cattrs", "dalfleet.client"]


def test_import_dalfleet_loads_nothing_heavy() -> None:
    code = (
        "import sys, dalfleet\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
        "print(dalfleet.__version__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded, version = proc.stdout.splitlines()
    assert loaded == ""
    assert version == dalfleet.__version__


def test_every_public_name_resolves_from_its_module() -> None:
    import importlib

    homes = ("client", "errors", "models", "records", "rollout", "run")
    for name in dalfleet.__all__:
        if name == "__version__":
            continue
        defined = [m for m in homes if name in vars(importlib.import_module(f"dalfleet.{m}"))]
        assert defined, f"{name} is defined in none of {homes}"
        home = importlib.import_module(f"dalfleet.{defined[0]}")
        assert getattr(dalfleet, name) is getattr(home, name), name
    assert set(dalfleet.__all__) <= set(dir(dalfleet))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        dalfleet.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def _modules_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(','.join(sorted(sys.modules)), file=sys.stderr)"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stderr.strip().splitlines()[-1].split(","))


def test_version_is_answered_before_any_command_module_is_imported() -> None:
    loaded = _modules_after(
        "from dalfleet.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert main(['--version']) == 0\n"
        "assert out.getvalue() == 'dalfleet ' + __import__('dalfleet').__version__ + '\\n'"
    )
    assert not loaded & {*HEAVY, "argparse", "dalfleet.cli.parser", "dalfleet.models", "orjson"}


def test_the_parser_imports_no_library_module() -> None:
    loaded = _modules_after("from dalfleet.cli import build_parser; build_parser()")
    assert not loaded & {*HEAVY, "dalfleet.models", "dalfleet.store", "tempfile", "orjson"}


def test_list_reads_the_fleet_file_without_models_or_converter(tmp_path: Path) -> None:
    import dalfleet.fleet as fleet

    fleet.create_from_mold("w", "worker", 2, base=tmp_path)
    fleet.deploy("w", "go", base=tmp_path)
    loaded = _modules_after(
        "from dalfleet.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    assert main(['--base', {str(tmp_path)!r}, 'list']) == 0\n"
        "assert 'w  (2 agents)' in out.getvalue(), out.getvalue()"
    )
    assert not loaded & {*HEAVY, "dalfleet.models", "dalfleet.convert", "orjson"}


def test_deploy_loads_no_coordinator_and_no_cattrs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dalfleet.fleet as fleet

    monkeypatch.delenv("DALFLEET_RUNTIME", raising=False)

    fleet.create_from_mold("w", "worker", 2, base=tmp_path)
    fleet.deploy("w", "first", base=tmp_path)  # history exists: revisions are read too
    loaded = _modules_after(
        "import os\n"
        "os.environ.pop('DALFLEET_RUNTIME', None)\n"
        "import dalfleet.fleet as fleet\n"
        f"f = fleet.deploy('w', 'second', base={str(tmp_path)!r})\n"
        "assert f.last_deployed_task == 'second' and len(f.history) == 2, f"
    )
    assert not loaded & {
        "sqlite3",
        "cattrs",
        "dalfleet.coordinator.base",
        "dalfleet.coordinator.local",
        "dalfleet.coordinator.reference",
        "dalfleet.executor.base",
        "dalfleet.mold",
        "dalfleet.run",
    }
    # The coordinator is still there when a call needs it, chosen as before.
    with fleet.Client.for_base(tmp_path) as client:
        assert type(client.coordinator).__name__ == "LocalCoordinator"
        assert len(client.health("w").members) == 2


def test_models_offers_the_records_as_the_same_classes() -> None:
    import dalfleet.models as models
    import dalfleet.records as records

    for name in records.__all__:
        assert getattr(models, name) is getattr(records, name), name
        assert name in models.__all__ and name in dir(models)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        models.Nope  # noqa: B018


def test_a_deploy_defines_no_records() -> None:
    # Agents, tasks and reports are defined only when a command needs them.
    loaded = _modules_after(
        "import dalfleet.fleet as f, tempfile; d = tempfile.mkdtemp(); "
        "f.create('w', d); f.deploy('w', 't', d)"
    )
    assert "dalfleet.records" not in loaded
    assert "dalfleet.rollout" not in loaded
