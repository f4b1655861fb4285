"""What every benchmark shares: timing, child processes, load, fleet files, results."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Result",
    "atomic_write",
    "cpu_load",
    "dalfleet_command",
    "interleaved",
    "peak_rss",
    "python_command",
    "run_checked",
    "wall",
    "write_fleet_file",
]


@dataclass
class Result:
    """One row: a figure, its floor (same unit, same run) and the target ratio."""

    row: str
    what: str
    figure: float
    floor: float
    unit: str  # "s" or "B"
    target: float
    floor_what: str
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """figure / floor (inf when the floor is zero)."""
        return self.figure / self.floor if self.floor > 0 else float("inf")

    @property
    def met(self) -> bool:
        """True when the ratio is within the target."""
        return self.ratio <= self.target

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, ratio and verdict included."""
        out = asdict(self)
        out["ratio"] = self.ratio
        out["met"] = self.met
        return out


@dataclass
class Skipped:
    """A row that could not run here, and why."""

    row: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"row": self.row, "skipped": self.reason}


def interleaved(
    figure: Callable[[int], object],
    floor: Callable[[int], object],
    rounds: int,
    *,
    warmup: int = 1,
    before: Callable[[int], object] | None = None,
    before_floor: Callable[[int], object] | None = None,
) -> tuple[float, float, list[float], list[float]]:
    """Median seconds of ``figure(i)`` and ``floor(i)``, run alternately ``rounds`` times.

    Alternating rounds expose both to the same machine noise. ``before(i)`` and
    ``before_floor(i)`` run untimed before each round (e.g. to reset a file).
    Rounds ``-warmup … -1`` are run and not counted.
    """
    figures: list[float] = []
    floors: list[float] = []
    for i in range(-warmup, rounds):
        if before_floor is not None:
            before_floor(i)
        start = time.perf_counter()
        floor(i)
        took_floor = time.perf_counter() - start
        if before is not None:
            before(i)
        start = time.perf_counter()
        figure(i)
        took_figure = time.perf_counter() - start
        if i >= 0:
            floors.append(took_floor)
            figures.append(took_figure)
    return statistics.median(figures), statistics.median(floors), figures, floors


def python_command() -> list[str]:
    """This interpreter, as a command."""
    return [sys.executable]


def dalfleet_command() -> list[str]:
    """The installed ``dalfleet`` console script beside this interpreter, else ``-m dalfleet``."""
    script = Path(sys.executable).with_name("dalfleet")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("dalfleet")
    if found is not None and Path(found).resolve().parent == Path(sys.executable).resolve().parent:
        return [found]
    return [sys.executable, "-m", "dalfleet"]


def run_checked(cmd: Sequence[str], cwd: Path | None = None) -> str:
    """Run a command to the end; its stdout. Raises RuntimeError when it fails."""
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def wall(cmd: Sequence[str], cwd: Path | None = None) -> Callable[[int], object]:
    """A round that runs ``cmd`` to the end in a new process (fails loudly)."""

    def once(_: int) -> object:
        return run_checked(cmd, cwd)

    return once


# Forks and execs the command, waits for it and prints its peak RSS (KiB). The
# measuring process must be small: Linux carries the high-water mark of the memory
# a process had before exec into ru_maxrss, and a child forked (or vforked) straight
# from this benchmark would start from the benchmark's own size.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_rss(cmd: Sequence[str], cwd: Path | None = None) -> int:
    """Peak resident memory (bytes) of one run of ``cmd`` in a child process.

    Read from the child's own rusage (``wait4``) in a small launcher process, so
    neither this process's size nor other children count.
    Raises RuntimeError when the command fails.
    """
    out = run_checked([sys.executable, "-c", _LAUNCHER, *cmd], cwd)
    return int(out.strip()) * 1024  # ru_maxrss is in KiB on Linux


@contextlib.contextmanager
def cpu_load(processes: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``processes`` CPU-bound busy loops running beside the block; stopped after it."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(processes):
            started.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        time.sleep(0.2)  # let them get scheduled before measuring
        yield started
    finally:
        for proc in started:
            proc.kill()
        for proc in started:
            proc.wait()


def atomic_write(path: Path, payload: bytes) -> None:
    """Temp file + fsync + os.replace: what every safe writer does at least."""
    tmp = path.with_name(path.name + ".floor.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def member_id(fleet: int, member: int) -> str:
    """A member ID of the reference's shape (``agent_`` + 20 hex digits)."""
    return f"agent_{fleet:08x}{member:012x}"


def write_fleet_file(base: Path, fleets: int, members: int, *, prefix: str = "fleet") -> Path:
    """``<base>/.dal/fleets.json`` with ``fleets`` deployed fleets of ``members`` each.

    Written as the reference writes it (two-space indent), so the first read is
    of a file as users have it.
    """
    data = {
        f"{prefix}-{i:04d}": {
            "name": f"{prefix}-{i:04d}",
            "member_ids": [member_id(i, j) for j in range(members)],
            "mold_source": "worker",
            "last_deployed_task": "Process daily logs",
            "last_deployed_at": "1764313200",
        }
        for i in range(fleets)
    }
    path = base / ".dal" / "fleets.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def fmt(value: float, unit: str) -> str:
    """A figure with a readable unit."""
    if unit == "B":
        return f"{value / 2**20:,.1f} MiB"
    if value >= 1:
        return f"{value:,.2f} s"
    return f"{value * 1000:,.1f} ms"
