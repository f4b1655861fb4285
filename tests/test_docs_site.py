"""The documentation site builds with ``mkdocs build --strict`` and documents every public name."""

from __future__ import annotations

import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dalfleet
import dalfleet.fleet as fleet_module

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install '.[docs]'")
    pytest.importorskip("material", reason="the docs extra is not installed: pip install '.[docs]'")
    pytest.importorskip(
        "mkdocstrings_handlers.python",
        reason="the docs extra is not installed: pip install '.[docs]'",
    )
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.mark.slow  # builds the site
def test_every_nav_page_is_built(site: Path) -> None:
    for page in ("concepts", "cli", "mold-format", "fleet-file", "export", "many-hosts",
                 "reliability", "performance", "migration", "api"):  # fmt: skip
        assert (site / page / "index.html").is_file(), page
    assert "first fleet" in (site / "index.html").read_text(encoding="utf-8")


@pytest.mark.slow  # builds the site
def test_every_fenced_block_renders_as_code(site: Path) -> None:
    """A fence the Markdown extension does not take (``sh norun``) turns into text that
    runs on until the next fence, swallowing headings and anchors on the way."""
    from tests.test_docs_blocks import blocks_of

    for doc in sorted((ROOT / "docs").glob("*.md")):
        page = site / ("index.html" if doc.stem == "index" else f"{doc.stem}/index.html")
        html = page.read_text(encoding="utf-8")
        assert "```" not in html, f"{doc.name}: a fence was not rendered as a code block"
        fences = len(blocks_of(doc))
        assert len(re.findall(r"<pre[ >]", html)) >= fences, doc.name


# Documented on their own pages rather than in the API reference.
NOT_IN_API = {"dalfleet.cli": "cli.md"}


def test_every_public_module_is_in_the_api_reference() -> None:
    """A module is documented when it, or the package that re-exports it, has a ``:::``."""
    listed = set(re.findall(r"^::: ([\w.]+)", (ROOT / "docs" / "api.md").read_text(), re.M))
    modules = [
        m.name
        for m in pkgutil.walk_packages(dalfleet.__path__, "dalfleet.")
        if not any(part.startswith("_") for part in m.name.split("."))
    ]
    missing = [
        name
        for name in modules
        if name not in NOT_IN_API
        and not any(name == doc or name.startswith(doc + ".") for doc in listed - {"dalfleet"})
        and not any(name.startswith(cli + ".") for cli in NOT_IN_API)
    ]
    assert not missing, f"add `::: NAME` to docs/api.md for {missing}"


def public_names() -> list[str]:
    names = [f"dalfleet.{n}" for n in dalfleet.__all__ if n != "__version__"]
    names += [
        f"dalfleet.fleet.{n}"
        for n, obj in vars(fleet_module).items()
        if not n.startswith("_")
        and inspect.isfunction(obj)
        and obj.__module__ == fleet_module.__name__
    ]
    return names


@pytest.mark.slow  # builds the site
def test_the_api_reference_documents_every_public_name(site: Path) -> None:
    html = (site / "api" / "index.html").read_text(encoding="utf-8")
    anchors = set(re.findall(r'id="(dalfleet\.[\w.]+)"', html))
    # A name re-exported by the package is documented where it is defined.
    short = {a.rsplit(".", 1)[-1] for a in anchors}
    missing = [n for n in public_names() if n not in anchors and n.rsplit(".", 1)[-1] not in short]
    assert not missing, missing
    assert "dalfleet.fleet.create_from_mold" in anchors
