"""docs/cli.md documents every subcommand and every option the parser defines."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

from dalfleet.cli.parser import build_parser

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
HEADINGS = [line for line in CLI_MD.splitlines() if line.startswith("### ")]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def commands() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every subcommand as typed (``"create"``, ``"mold validate"``), with its parser."""
    for name, sub in _subparsers(build_parser()).items():
        nested = _subparsers(sub)
        if nested:
            for inner, leaf in nested.items():
                yield f"{name} {inner}", leaf
        else:
            yield name, sub


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--")}


GLOBAL = options(build_parser())


def test_there_is_something_to_check() -> None:
    names = [name for name, _ in commands()]
    assert {"init", "worker", "mold validate", "task list"} <= set(names)
    assert {"--url", "--base", "--json", "--ray"} <= GLOBAL


def test_every_subcommand_has_a_heading() -> None:
    missing = [
        name
        for name, _ in commands()
        if not any(re.search(rf"`{re.escape(name)}\b", heading) for heading in HEADINGS)
    ]
    assert not missing, f"docs/cli.md has no '### `NAME …`' heading for {missing}"


def _named(flag: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def test_every_option_is_in_its_subcommands_heading() -> None:
    missing: list[str] = []
    for name, parser in commands():
        heading = next(h for h in HEADINGS if re.search(rf"`{re.escape(name)}\b", h))
        for action in parser._actions:
            flags = action.option_strings
            if not flags or set(flags) & (GLOBAL | {"--help"}):
                continue
            if not any(_named(flag, heading) for flag in flags):
                missing.append(f"{name} {'/'.join(flags)}")
    assert not missing, f"docs/cli.md headings lack {missing}"


def test_every_global_option_is_in_the_table() -> None:
    table = CLI_MD.partition("## Global options")[2].partition("\n## ")[0]
    missing = [opt for opt in sorted(GLOBAL - {"--help"}) if f"`{opt}" not in table]
    assert not missing, f"docs/cli.md's global options table lacks {missing}"
