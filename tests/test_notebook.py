"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel (SPEC §11).

The values it shows (a 50-member fleet, a run report, health, a list of fleets)
come out as HTML tables, and every plain-text form stays within 400 characters.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from dalfleet.display import MAX_REPR
from dalfleet.models import Fleet

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
KERNEL = "dalfleet-test-python"
MISSING = "the notebook extra is not installed: pip install '.[notebook]'"

pytestmark = pytest.mark.slow

# Appended by the test: the display functions called on the notebook's own values.
DISPLAY_CELL = """\
from IPython.display import HTML, display
from dalfleet import display as d
display(HTML(d.fleet_html(workers)), HTML(d.report_html(report)), HTML(d.health_html(health)))
display(HTML(d.list_html([fleet.show(n) for n in fleet.list()])))
print(len(d.short_repr(workers)), len(d.short_repr(report)), len(d.short_repr(health)))
"""


def execute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    nbformat = pytest.importorskip("nbformat", reason=MISSING)
    nbclient = pytest.importorskip("nbclient", reason=MISSING)
    pytest.importorskip("ipykernel", reason=MISSING)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    last = nb.cells.pop()  # the notebook's last cell restores the default context
    nb.cells.append(nbformat.v4.new_code_cell(DISPLAY_CELL))
    nb.cells.append(last)
    # A kernel spec of our own, first on JUPYTER_PATH: the kernel is this interpreter
    # (with this dalfleet), whatever other "python3" kernels the machine has.
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}), encoding="utf-8"
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebook's temporary project goes here
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name=KERNEL, resources={"metadata": {"path": str(run_dir)}}
    )
    client.execute()
    return nb


def outputs_of(cell: Any) -> list[dict[str, Any]]:
    return [
        o for o in cell.get("outputs", []) if o["output_type"] in ("execute_result", "display_data")
    ]


def test_the_quickstart_notebook_runs_and_shows_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = execute(tmp_path, monkeypatch)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        errors = [o for o in cell.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, errors
    # Nothing was written where the notebook ran: its project was a temporary directory.
    assert not (tmp_path / "run" / ".dal").exists()
    assert list(tmp_path.glob("dalfleet-notebook-*/.dal/fleets.json"))

    appended = next(c for c in code if c.source == DISPLAY_CELL)
    html = [o["data"]["text/html"] for o in outputs_of(appended)]
    assert len(html) == 4
    assert all("<table" in h for h in html)
    assert "… 30 more" in html[0]  # 50 members: the first 20, then a count
    assert "Run of workers" in html[1] and "Health of workers" in html[2]
    sizes = [int(n) for n in appended.outputs[-1]["text"].split()]
    assert all(0 < n <= MAX_REPR for n in sizes), sizes

    shown = [
        c
        for c in code
        if c.source.rstrip().splitlines()[-1] in ("workers", "report", "health", "reports")
    ]
    assert len(shown) == 4
    if hasattr(Fleet, "_repr_html_"):  # the models' own notebook hooks
        for cell in shown:
            [result] = outputs_of(cell)
            assert "<table" in result["data"]["text/html"]
            assert len(result["data"]["text/plain"]) <= MAX_REPR
