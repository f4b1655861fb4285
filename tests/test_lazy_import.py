"""``import dalfleet`` loads no heavy module; its public names still resolve on use."""

from __future__ import annotations

import subprocess
import sys

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

    homes = ("client", "errors", "models", "rollout", "run")
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
