"""Every code block in README.md and docs/*.md runs as written in an empty directory.

The convention, from a block's fence (its info string: a language, then words):

* ``python`` / ``py`` blocks run with ``python -c`` and must exit 0;
  ``sh`` / ``bash`` / ``shell`` blocks run with ``bash -euo pipefail -c`` and must exit 0.
* A runnable block that is not meant to run says ``norun`` after its language
  (```` ```python norun ````, ```` ```sh norun ````): a fragment, or a command
  that needs something an empty directory lacks (a source checkout, a cluster, a
  database). Say why in the text around it.
* Data and output say what they are: ``text``, ``console-output``, ``json``,
  ``yaml``, ``toml``, ``dal`` (a mold), ``ini``, ``html``. They never run.
* A fence without a language fails this test: every block says what it is.

Each block runs alone, in its own new empty directory (its working directory),
with the test's interpreter and its ``dalfleet`` script first on ``PATH``. A block
needs nothing from the blocks before it: it creates the fleets, molds and
handler modules it uses.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = frozenset({"python", "py", "python3"})
SHELL = frozenset({"sh", "bash", "shell"})
DATA = frozenset(
    {"text", "console-output", "json", "yaml", "yml", "toml", "dal", "ini", "html", "csv"}
)
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its fence's info string and its text."""

    path: Path
    line: int
    info: str
    code: str

    @property
    def lang(self) -> str:
        return self.info.split()[0].lower() if self.info.split() else ""

    @property
    def options(self) -> list[str]:
        return self.info.split()[1:]

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown file, in order (nested fences are not used)."""
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, info = match["indent"], match["fence"], match["info"].strip()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        out.append(Block(path, i + 1, info, "\n".join(body) + "\n"))
        i = j + 1
    return out


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


ALL_BLOCKS = [block for doc in documents() for block in blocks_of(doc)]
RUNNABLE = [b for b in ALL_BLOCKS if b.lang in PYTHON | SHELL and "norun" not in b.options]


def test_the_documents_have_blocks_to_run() -> None:
    assert len(RUNNABLE) >= 12
    assert any(b.path.name == "README.md" for b in RUNNABLE)


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.id)
def test_every_fence_says_what_it_is(block: Block) -> None:
    known = PYTHON | SHELL | DATA
    assert block.lang in known, (
        f"{block.id}: fence info {block.info!r}; give a language from {sorted(known)} "
        "(and `norun` for code not meant to run)"
    )


def block_env() -> dict[str, str]:
    env = dict(os.environ)
    # The interpreter running the tests (and its dalfleet script) first on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("DALFLEET_URL", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.mark.slow  # one process per block
@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_block_runs_in_an_empty_directory(block: Block, tmp_path: Path) -> None:
    cwd = tmp_path / "project"
    cwd.mkdir()
    if block.lang in PYTHON:
        argv = [sys.executable, "-c", block.code]
    else:
        argv = ["bash", "-euo", "pipefail", "-c", block.code]
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=block_env(),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, (
        f"{block.id} failed ({done.returncode}):\n--- code\n{block.code}"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    )
