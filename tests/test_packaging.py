"""The sdist and the wheel: what they carry, their metadata, and an sdist whose tests run."""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import dalfleet

ROOT = Path(__file__).resolve().parents[1]
MISSING = "the build frontend is not installed: pip install '.[test]'"

pytestmark = pytest.mark.slow

# Left out of the copy the packages are built from: build output, caches, state.
IGNORE = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".dal", ".hypothesis",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", "site", ".venv",
)  # fmt: skip


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel) built from a copy of the source tree (the tree stays untouched)."""
    pytest.importorskip("build", reason=MISSING)
    setuptools = pytest.importorskip("setuptools", reason=MISSING)
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(
            "building needs setuptools>=77 (SPDX license expressions): pip install '.[test]'"
        )
    work = tmp_path_factory.mktemp("build")
    src = work / "src"
    shutil.copytree(ROOT, src, ignore=IGNORE)
    out = work / "dist"
    # --no-isolation: build with this environment's setuptools, without the network.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--sdist",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "deprecated" not in (done.stdout + done.stderr).lower(), done.stderr[-3000:]
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return sdist, wheel


def test_versions_come_from_one_place(dists: tuple[Path, Path]) -> None:
    sdist, wheel = dists
    version = dalfleet.__version__
    assert sdist.name == f"dalfleet-{version}.tar.gz"
    assert wheel.name.startswith(f"dalfleet-{version}-")


def test_the_wheel_metadata_has_an_spdx_license_classifiers_and_extras(
    dists: tuple[Path, Path],
) -> None:
    _, wheel = dists
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        [meta_name] = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.parser.Parser().parsestr(zf.read(meta_name).decode())
        license_text = zf.read(
            next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        ).decode()
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert not any(c.startswith("License ::") for c in classifiers)  # the expression says it
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"test", "docs", "notebook", "progress", "ray", "postgres", "bench", "all"} <= extras
    assert meta.get_all("Project-URL")
    assert "dalfleet/samples/worker.mold.dal" in names
    assert "dalfleet/py.typed" in names
    assert "dalfleet/display.py" in names
    assert not [n for n in names if n.startswith("tests/") or n.endswith(".pyc")]


def test_the_sdist_carries_tests_docs_and_examples(dists: tuple[Path, Path]) -> None:
    sdist, _ = dists
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for needed in (
        "LICENSE",
        "README.md",
        "pyproject.toml",
        "mkdocs.yml",
        "tests/__init__.py",
        "tests/conftest.py",
        "tests/test_display.py",
        "docs/index.md",
        "examples/quickstart.ipynb",
        "examples/first_fleet.sh",
        "dalfleet/_version.py",
        "dalfleet/samples/worker.mold.dal",
    ):
        assert needed in names, needed
    assert any(n.startswith("benchmarks/") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_unpacked_sdist_runs_its_own_tests(dists: tuple[Path, Path], tmp_path: Path) -> None:
    sdist, _ = dists
    with tarfile.open(sdist) as tf:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            tf.extractall(tmp_path, filter="data")
        else:
            tf.extractall(tmp_path)  # our own sdist, just built
    [tree] = tmp_path.iterdir()
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    where = subprocess.run(
        [sys.executable, "-c", "import dalfleet; print(dalfleet.__file__)"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert Path(where.stdout.strip()).is_relative_to(tree), where.stdout + where.stderr
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
         "tests/test_display.py", "tests/test_mold_parse.py", "tests/test_fleet_api.py"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout
