"""Shared fixtures: a project directory with a worker mold, and snapshots of .dal/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import dalfleet.fleet as fleet

WORKER_MOLD = """\
// A worker used by the tests.
mold "worker" "1.2"
agent
  type Worker
  role "Process {{env}} jobs"
  capabilities "read" "write:{{env}}"
  skills "development"
  memory_limit "256MB"
  trust_level root
lifecycle
  on_create "echo hello"
  on_destroy "echo bye"
"""


def snapshot(base: Path) -> dict[str, bytes | None]:
    """Every file under ``base/.dal`` as path -> bytes (directories map to None)."""
    root = base / ".dal"
    out: dict[str, bytes | None] = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(base))
        out[rel] = None if path.is_dir() else path.read_bytes()
    return out


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A project directory holding ``mold/worker.mold.dal``."""
    (tmp_path / "mold").mkdir()
    (tmp_path / "mold" / "worker.mold.dal").write_text(WORKER_MOLD, encoding="utf-8")
    return tmp_path


@pytest.fixture
def in_base(base: Path) -> Iterator[Path]:
    """Run the test with the project directory as the working directory."""
    old = Path.cwd()
    os.chdir(base)
    try:
        yield base
    finally:
        os.chdir(old)


@pytest.fixture(autouse=True)
def _reset_default_context() -> Iterator[None]:
    yield
    fleet.configure()
