"""``python -m benchmarks``: every row of the table; ``python -m benchmarks scaling``: the chart.

python -m benchmarks                 # every row, the issue's sizes (several minutes)
python -m benchmarks --quick         # every row, small sizes (a smoke run)
python -m benchmarks --only deploy --only run --json out.json
python -m benchmarks scaling         # 10 … 1,000,000 members -> docs/performance.{png,md}
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from benchmarks.common import Result, Skipped, fmt
from benchmarks.rows import GROUP_OF, ROWS, Config, Outcome

ROOT = Path(__file__).resolve().parents[1]


def _print_header() -> None:
    print(f"{'row':<18} {'figure':>12} {'floor':>12} {'ratio':>8} {'target':>8}  verdict")


def _print(outcome: Outcome) -> None:
    if isinstance(outcome, Skipped):
        print(f"{outcome.row:<18} skipped: {outcome.reason}")
        return
    verdict = "met" if outcome.met else "MISSED"
    print(
        f"{outcome.row:<18} {fmt(outcome.figure, outcome.unit):>12} "
        f"{fmt(outcome.floor, outcome.unit):>12} {outcome.ratio:>7.2f}x "
        f"{'<= ' + format(outcome.target, 'g') + 'x':>8}  {verdict}"
    )
    print(f"{'':<18}   figure: {outcome.what}")
    print(
        f"{'':<18}   floor:  {outcome.floor_what}" + (f"; {outcome.note}" if outcome.note else "")
    )
    sys.stdout.flush()


def _compile_bytecode() -> str:
    """Write dalfleet's bytecode caches, as ``pip install`` does, and say so.

    With ``PYTHONDONTWRITEBYTECODE`` set (or a read-only or freshly edited source
    tree) every new process would compile dalfleet's source again, which an
    installed package never does: the start-up rows would measure the compiler.
    """
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("dalfleet")
    if spec is None or spec.origin is None:
        return "dalfleet not found"
    package = Path(spec.origin).parent
    ok = compileall.compile_dir(package, quiet=2)
    return f"bytecode of {package} {'up to date' if ok else 'NOT fully written'}"


def _table(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    asked = args.only or list(ROWS)
    unknown = [name for name in asked if name not in GROUP_OF]
    if unknown:
        parser.error(f"unknown row {unknown[0]!r} (rows: {', '.join(GROUP_OF)})")
    # A group runs all its rows; naming one printed row of a group shows only that row.
    chosen = list(dict.fromkeys(GROUP_OF[name] for name in asked))
    wanted = {name for name in asked if name not in ROWS}
    shown = {g for g in chosen if g in asked}
    cfg = Config(quick=args.quick)
    print(
        f"dalfleet benchmarks ({'quick' if args.quick else 'full'}) on {platform.node()}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    print(_compile_bytecode())
    _print_header()
    outcomes: list[Outcome] = []
    for name in chosen:
        for outcome in ROWS[name](cfg):
            if name not in shown and outcome.row not in wanted:
                continue
            outcomes.append(outcome)
            _print(outcome)
    if args.json is not None:
        Path(args.json).write_text(
            json.dumps([o.as_dict() for o in outcomes], indent=2) + "\n", encoding="utf-8"
        )
    missed = [o.row for o in outcomes if isinstance(o, Result) and not o.met]
    print(
        f"{len(outcomes)} rows, {len(missed)} over target"
        + (f": {', '.join(missed)}" if missed else "")
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the table or the scaling run."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("mode", nargs="?", choices=["table", "scaling"], default="table")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--only",
        action="append",
        metavar="ROW",
        help=f"run only this row or group, repeatable ({', '.join(GROUP_OF)})",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--out", metavar="DIR", default=str(ROOT / "docs"), help="scaling: where the PNG goes"
    )
    args = parser.parse_args(argv)
    if args.mode == "scaling":
        from benchmarks.scaling import run_scaling

        return run_scaling(quick=args.quick, out=Path(args.out), json_path=args.json)
    return _table(parser, args)


if __name__ == "__main__":
    raise SystemExit(main())
