"""``python -m benchmarks scaling``: deploy, add_member, show, health from 10 to 1M members.

One fleet of N members in the fleet file, N = 10 … 1,000,000. Each operation is
called through ``dalfleet.fleet`` in this process, after the file was rewritten
on disk (untimed), so nothing parsed by an earlier call is reused: every call
reads, parses and (for deploy and add_member) writes the whole file, as one CLI
call does. The floors are measured on the same file, alternating with the
operation: *write floor* = stdlib ``json.load`` + change + compact
``json.dumps`` + temp write + fsync + ``os.replace``; *read floor* =
``json.load``. The chart goes to ``docs/performance.png``, the table between the
``scaling`` markers of ``docs/performance.md``.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import atomic_write, interleaved, member_id

__all__ = ["OPERATIONS", "SIZES", "run_scaling"]

SIZES = [10, 100, 1_000, 10_000, 100_000, 1_000_000]
QUICK_SIZES = [10, 100, 1_000]
OPERATIONS = ["deploy", "add_member", "show", "health"]
_WRITES = {"deploy", "add_member"}
START = "<!-- scaling:start -->"
END = "<!-- scaling:end -->"


def _rounds(size: int) -> tuple[int, int]:
    """(rounds, warm-up rounds) for a size: fewer where one round takes seconds."""
    if size >= 1_000_000:
        return 2, 0
    if size >= 100_000:
        return 3, 1
    return 7, 1


def _fleet_bytes(size: int, task: str) -> bytes:
    data = {
        "big": {
            "name": "big",
            "member_ids": [member_id(0, j) for j in range(size)],
            "mold_source": "worker",
            "last_deployed_task": task,
            "last_deployed_at": "1764313200",
        }
    }
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")


def _floor_write(path: Path, i: int) -> None:
    with open(path, "rb") as fh:
        data = json.load(fh)
    data["big"]["last_deployed_task"] = f"floor {i}"
    atomic_write(path, json.dumps(data).encode("utf-8"))


def _floor_read(path: Path, _: int) -> None:
    with open(path, "rb") as fh:
        json.load(fh)


def measure(size: int) -> dict[str, Any]:
    """Median seconds of each operation and of both floors on an N-member fleet file."""
    import dalfleet.fleet as fleet
    from dalfleet import Client

    rounds, warmup = _rounds(size)
    pristine = _fleet_bytes(size, "Process daily logs")
    out: dict[str, Any] = {"members": size, "bytes": len(pristine)}
    with tempfile.TemporaryDirectory(prefix="dalfleet-scaling-") as tmp:
        base = Path(tmp) / "fig"
        floor_path = Path(tmp) / "floor" / "fleets.json"
        path = base / ".dal" / "fleets.json"
        path.parent.mkdir(parents=True)
        floor_path.parent.mkdir(parents=True)

        def fresh(i: int) -> None:
            # Different bytes each round: the process-level parse of an earlier call is
            # not reused, as in a new process.
            path.write_bytes(pristine.replace(b"Process daily logs", f"round {i:+04d}".encode()))

        def reset_floor(_: int) -> None:
            floor_path.write_bytes(pristine)

        # add_member refuses to grow a fleet past the cap (1,000 by default); a client
        # with a higher cap measures the same code path on the big rosters.
        roomy = Client.for_base(base)
        roomy.max_count = 10 * size + 1_000
        ops: dict[str, Callable[[int], object]] = {
            "deploy": lambda i: fleet.deploy("big", f"task {i}", base=base),
            "add_member": lambda i: roomy.add_member("big", f"agent_new{i + 10:017d}"),
            "show": lambda _i: fleet.show("big", base=base),
            "health": lambda _i: fleet.health("big", base=base),
        }
        for name, op in ops.items():
            floor = _floor_write if name in _WRITES else _floor_read
            fig, flo, _, _ = interleaved(
                op,
                lambda i, f=floor: f(floor_path, i),
                rounds,
                warmup=warmup,
                before=fresh,
                before_floor=reset_floor,
            )
            out[name] = fig
            out.setdefault("floor_write" if name in _WRITES else "floor_read", []).append(flo)
    # Each floor was measured beside two operations: keep the lower (less disturbed) one.
    out["floor_write"] = min(out["floor_write"])
    out["floor_read"] = min(out["floor_read"])
    return out


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:,.2f}" if ms < 10 else f"{ms:,.1f}" if ms < 1000 else f"{ms:,.0f}"


def table(results: list[dict[str, Any]]) -> str:
    """The markdown table of a scaling run (milliseconds, and ratios to the floors)."""
    lines = [
        "| members | file | deploy | add_member | write floor | show | health | read floor "
        "| deploy / floor | show / floor |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['members']:,} | {r['bytes'] / 1e6:,.2f} MB | {_ms(r['deploy'])} | "
            f"{_ms(r['add_member'])} | {_ms(r['floor_write'])} | {_ms(r['show'])} | "
            f"{_ms(r['health'])} | {_ms(r['floor_read'])} | "
            f"{r['deploy'] / r['floor_write']:.2f} x | {r['show'] / r['floor_read']:.2f} x |"
        )
    return "\n".join(lines) + "\n\nTimes in milliseconds, medians.\n"


def chart(results: list[dict[str, Any]], png: Path) -> bool:
    """Draw the run as a log-log PNG; False (and a message) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'dalfleet[bench]'): no chart drawn")
        return False
    xs = [r["members"] for r in results]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for name, style in zip(OPERATIONS, ("o-", "s-", "^-", "v-"), strict=True):
        ax.plot(xs, [r[name] for r in results], style, label=name)
    ax.plot(xs, [r["floor_write"] for r in results], "k--", label="write floor (stdlib json RMW)")
    ax.plot(xs, [r["floor_read"] for r in results], "k:", label="read floor (json.load)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("members in the fleet file")
    ax.set_ylabel("seconds per call (median)")
    ax.set_title("dalfleet: one call vs the stdlib floor, by fleet size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return True


def write_table(markdown: Path, text: str) -> None:
    """Put ``text`` between the scaling markers of ``markdown`` (appended if absent)."""
    block = f"{START}\n{text}{END}"
    old = markdown.read_text(encoding="utf-8") if markdown.exists() else ""
    if START in old and END in old:
        new = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: block, old, flags=re.S)
    else:
        new = old + ("\n" if old and not old.endswith("\n") else "") + block + "\n"
    markdown.write_text(new, encoding="utf-8")


def run_scaling(*, quick: bool, out: Path, json_path: str | None) -> int:
    """Run every size, print the table, save the chart and the markdown table."""
    sizes = QUICK_SIZES if quick else SIZES
    results = []
    for size in sizes:
        start = time.perf_counter()
        result = measure(size)
        results.append(result)
        print(
            f"{size:>9,} members: "
            + ", ".join(f"{k} {_ms(result[k])} ms" for k in [*OPERATIONS, "floor_write"])
            + f", read floor {_ms(result['floor_read'])} ms ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    text = table(results)
    print(text)
    if json_path is not None:
        Path(json_path).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    png = out / "performance.png"
    if chart(results, png):
        print(f"chart: {png}")
    write_table(out / "performance.md", text)
    print(f"table: {out / 'performance.md'}")
    return 0
