"""The code base stays type-checked (mypy --strict) and lint-clean (ruff)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Whole-tree type checking and linting take seconds.
pytestmark = pytest.mark.slow


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_mypy_strict_is_clean() -> None:
    pytest.importorskip("mypy", reason="mypy is not installed: pip install '.[test]'")
    result = run("mypy", "--strict", "dalfleet")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean() -> None:
    pytest.importorskip("ruff", reason="ruff is not installed: pip install '.[test]'")
    result = run("ruff", "check", "dalfleet", "tests", "benchmarks", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    pytest.importorskip("ruff", reason="ruff is not installed: pip install '.[test]'")
    result = run("ruff", "format", "--check", "dalfleet", "tests", "benchmarks", "examples")
    assert result.returncode == 0, result.stdout + result.stderr
