"""``python -m benchmarks --quick`` runs every row and prints a ratio for each.

No timing is asserted here (timings belong to the benchmarks, not to the tests):
this only proves that the harness runs against the current public API.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROWS = [
    "deploy",
    "deploy-api",
    "list",
    "version",
    "create",
    "enqueue",
    "run-async-quiet",
    "run-sync-quiet",
    "run-async-busy",
    "run-sync-busy",
    "ray",
    "memory",
]


@pytest.mark.slow
def test_quick_run_prints_every_row_with_a_ratio(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for row in ROWS:
        [line] = [x for x in lines if x.split() and x.split()[0] == row]
        if row == "ray" and "skipped:" in line:
            continue  # Ray is an optional extra: the row says why it did not run
        assert re.search(r"\d\.\d\dx\s+<= [\d.]+x\s+(met|MISSED)$", line), line
    results = {r["row"]: r for r in json.loads(out.read_text())}
    assert set(results) == set(ROWS)
    for row, result in results.items():
        if "skipped" in result:
            continue
        assert result["figure"] > 0 and result["floor"] > 0, row
        assert result["ratio"] == pytest.approx(result["figure"] / result["floor"]), row


def test_an_unknown_row_is_one_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown row 'nope'" in proc.stderr


def test_scaling_writes_the_table_between_its_markers(tmp_path: Path) -> None:
    from benchmarks.scaling import END, START, write_table

    doc = tmp_path / "performance.md"
    doc.write_text(f"# Title\n\n{START}\nold\n{END}\n\nafter\n", encoding="utf-8")
    write_table(doc, "| new |\n")
    text = doc.read_text(encoding="utf-8")
    assert text == f"# Title\n\n{START}\n| new |\n{END}\n\nafter\n"
