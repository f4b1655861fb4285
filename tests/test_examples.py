"""The README's first command and the examples run end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Whole flows in subprocesses.
pytestmark = pytest.mark.slow


def env(scratch: Path) -> dict[str, str]:
    out = dict(os.environ)
    out["TMPDIR"] = str(scratch)  # the examples' scratch projects go to the test's tmp dir
    out["PYTHONPATH"] = str(ROOT)
    # The interpreter running the tests first on PATH: its python3 and dalfleet.
    out["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), out.get("PATH", "")])
    return out


def test_first_fleet_shell_flow(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "examples" / "first_fleet.sh")],
        capture_output=True,
        text=True,
        env=env(tmp_path),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Fleet 'assistant-workers' created with 2 agents from mold mold/worker.mold.dal" in out
    assert "  assistant-workers  (2 agents)" in out
    assert "Fleet 'assistant-workers': dispatched to 2 member(s)" in out
    assert "  Last deployed: Smoke test task" in out
    assert "Worker for fleet 'assistant-workers': executed 2 (2 ok, 0 failed, 0 released)" in out
    assert "kind: Job" in out


def test_first_fleet_python_flow(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "first_fleet.py")],
        capture_output=True,
        text=True,
        env=env(tmp_path),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("  ok: assistant-workers_") == 2
    assert "health: ok, 2/2 alive" in done.stdout
