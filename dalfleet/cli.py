"""The ``dalfleet`` command line (and ``python -m dalfleet``): parse, call the client, print.

It mirrors the reference's ``dal agent fleet`` subcommands and keeps their output
lines, which scripts grep (SPEC §8). Every command works on the current directory,
or on ``--base DIR``; ``--json`` prints one JSON document instead of the human
lines. ``--base`` and ``--json`` are accepted before or after the subcommand.

No fleet rule lives here: arguments go to :class:`dalfleet.client.Client` as typed,
and whatever it raises is reported as one line on stderr,
``dalfleet: error: MESSAGE``, with exit status 1. Usage errors (unknown subcommand,
missing or non-integer arguments) exit with status 2, also on one line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from dalfleet import __version__
from dalfleet.client import Client, fleet_not_found
from dalfleet.convert import json_default, to_json_document, unstructure_fleet
from dalfleet.errors import FleetError
from dalfleet.errors import quote as show_value
from dalfleet.models import AgentState, Fleet, MemberOutcome, RunReport

__all__ = ["build_parser", "main"]

PROG = "dalfleet"
UNSET = "—"
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

Command = Callable[[argparse.Namespace], int]
ProgressFn = Callable[[int, int], None]


# -- argument parsing -----------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: ``dalfleet: error: … (see … --help)``."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(EXIT_USAGE, f"{PROG}: error: {text} (see {self.prog} --help)\n")


_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)


def _text(text: str) -> str:
    """argparse type for values that are stored or sent on: they must be valid UTF-8.

    Python decodes undecodable argv bytes to lone surrogates, which no JSON file,
    manifest or database can hold; say so now instead of failing on write.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid UTF-8 text") from None
    return text


def _whole_number(text: str) -> int:
    """argparse type: a whole number; the library checks its range."""
    if not _INT.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected a whole number, not {show_value(text)}")
    return int(text.strip())


def _seconds(text: str) -> float:
    """argparse type: a number of seconds; the library checks its range."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds, not {show_value(text)}"
        ) from None


def _key_value(text: str) -> tuple[str, str]:
    """argparse type for ``--label``: ``KEY=VALUE`` split on the first ``=``."""
    text = _text(text)
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {show_value(text)}")
    return key, value


def _common() -> argparse.ArgumentParser:
    # The global options again, for use after the subcommand. SUPPRESS keeps a
    # subcommand from overwriting a value given before it with its default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--base", metavar="DIR", default=argparse.SUPPRESS, help="project directory (default: .)"
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print one JSON document instead of text",
    )
    common.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=argparse.SUPPRESS,
        help="keep agents in a Ray cluster ('auto', or HOST:PORT) instead of .dal/",
    )
    return common


def _example(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def _sub(
    subparsers: Any,
    name: str,
    summary: str,
    examples: Sequence[str],
    func: Command | None,
    common: argparse.ArgumentParser,
    description: str | None = None,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=summary,
        description=description or summary,
        epilog=_example(*examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
        allow_abbrev=False,
    )
    parser.set_defaults(parser=parser, func=func)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``dalfleet`` argument parser, with every subcommand. Never raises."""
    common = _common()
    parser = _Parser(
        prog=PROG,
        description="Run fleets of agents: create from a mold, scale, deploy a task, run it, "
        "check health, export to Kubernetes or Docker Compose.",
        epilog=_example(
            "dalfleet create workers --from-mold worker --count 3 --param env=prod",
            "dalfleet deploy workers Process daily logs",
            "dalfleet run workers",
            "dalfleet health workers",
        )
        + "\n\nRun 'dalfleet SUBCOMMAND --help' for a subcommand's arguments.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--base", metavar="DIR", default=None, help="project directory (default: .)"
    )
    parser.add_argument(
        "--json", action="store_true", default=False, help="print one JSON document instead of text"
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="keep agents in a Ray cluster ('auto', or HOST:PORT) instead of .dal/",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.set_defaults(parser=parser, func=None)
    subs = parser.add_subparsers(title="subcommands", dest="command", metavar="SUBCOMMAND")

    p = _sub(
        subs,
        "create",
        "create a fleet, empty or with agents spawned from a mold",
        [
            "dalfleet create my-fleet",
            "dalfleet create workers --from-mold mold/worker.mold.dal --count 3",
            "dalfleet create workers --from-mold worker --count 2 --param env=prod",
        ],
        _cmd_create,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")
    p.add_argument(
        "--from-mold", metavar="SRC", type=_text, help="mold file or mold name to spawn from"
    )
    p.add_argument(
        "--count",
        metavar="N",
        type=_whole_number,
        help="agents to spawn (with --from-mold; default 1)",
    )
    p.add_argument(
        "--param",
        metavar="K=V",
        action="append",
        type=_text,
        help="create-time param, repeatable (with --from-mold)",
    )

    p = _sub(
        subs,
        "list",
        "list fleets",
        ["dalfleet list", "dalfleet list -v"],
        _cmd_list,
        common,
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="also show the last deployed task and time"
    )

    p = _sub(
        subs,
        "show",
        "show a fleet's members and deployment",
        ["dalfleet show workers"],
        _cmd_show,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")

    p = _sub(
        subs,
        "scale",
        "set a fleet's size (down terminates the removed members; up spawns from its mold)",
        ["dalfleet scale workers 5", "dalfleet scale workers 0"],
        _cmd_scale,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")
    p.add_argument("size", metavar="N", type=_whole_number, help="new number of members")

    p = _sub(
        subs,
        "delete",
        "delete a fleet (metadata only, unless --teardown)",
        ["dalfleet delete workers", "dalfleet delete workers --teardown"],
        _cmd_delete,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")
    p.add_argument("--teardown", action="store_true", help="also terminate its members")

    p = _sub(
        subs,
        "deploy",
        "record a task for a fleet (words are joined by spaces); executes nothing",
        [
            'dalfleet deploy workers "Process daily logs"',
            "dalfleet deploy workers Process daily logs",
        ],
        _cmd_deploy,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")
    p.add_argument(
        "task", metavar="TASK", nargs="+", type=_text, help="the task; several words are joined"
    )

    p = _sub(
        subs,
        "add-from-mold",
        "spawn more agents from a mold into a fleet",
        [
            "dalfleet add-from-mold workers worker 2",
            "dalfleet add-from-mold workers worker 2 --param env=prod",
        ],
        _cmd_add_from_mold,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")
    p.add_argument("source", metavar="SRC", type=_text, help="mold file or mold name")
    p.add_argument("count", metavar="COUNT", type=_whole_number, help="agents to spawn")
    p.add_argument(
        "--param", metavar="K=V", action="append", type=_text, help="create-time param, repeatable"
    )

    p = _sub(
        subs,
        "add-member",
        "register an existing agent ID in a fleet",
        ["dalfleet add-member workers agent_0123456789abcdef0123"],
        _cmd_add_member,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")
    p.add_argument("agent_id", metavar="ID", type=_text, help="an existing agent ID")

    p = _sub(
        subs,
        "run",
        "dispatch each fleet's deployed task to its members (or execute it with --handler)",
        [
            "dalfleet run",
            "dalfleet run workers",
            "dalfleet run workers --handler myapp.tasks:handle --concurrency 16 --timeout 30",
        ],
        _cmd_run,
        common,
    )
    p.add_argument(
        "name", metavar="NAME", nargs="?", type=_text, help="fleet name (default: every fleet)"
    )
    p.add_argument("--handler", metavar="MOD:FN", help="execute now with this Python function")
    p.add_argument("--concurrency", metavar="N", type=_whole_number, help="at most N tasks at once")
    p.add_argument("--timeout", metavar="SECS", type=_seconds, help="per-task time limit")

    p = _sub(
        subs, "health", "show a fleet's health", ["dalfleet health workers"], _cmd_health, common
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")

    p = _sub(
        subs,
        "export",
        "print Kubernetes or Docker Compose YAML for one fleet or all",
        [
            "dalfleet export workers --format k8s",
            "dalfleet export --format docker-compose -o compose.yaml",
            "dalfleet export workers --workload statefulset --namespace agents --label team=ml",
        ],
        _cmd_export,
        common,
    )
    p.add_argument(
        "name", metavar="NAME", nargs="?", type=_text, help="fleet name (default: every fleet)"
    )
    p.add_argument(
        "--format", metavar="FORMAT", default="k8s", help="k8s, docker-compose or compose"
    )
    p.add_argument(
        "--image", metavar="IMG", type=_text, help="container image (default dal-agent:latest)"
    )
    p.add_argument("--namespace", metavar="NS", type=_text, help="Kubernetes namespace")
    p.add_argument(
        "--label",
        metavar="K=V",
        action="append",
        type=_key_value,
        help="extra label, repeatable",
    )
    p.add_argument("--workload", metavar="KIND", help="k8s workload: job (default) or statefulset")
    p.add_argument("-o", "--output", metavar="FILE", help="write the YAML to FILE (atomically)")

    p = _sub(
        subs,
        "worker",
        "execute a fleet's queued tasks as they arrive (Ctrl-C or SIGTERM stops it cleanly)",
        [
            "dalfleet worker workers --handler myapp.tasks:handle",
            "dalfleet worker workers --handler myapp.tasks:handle --once",
        ],
        _cmd_worker,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")
    p.add_argument("--handler", metavar="MOD:FN", required=True, help="Python function to call")
    p.add_argument("--once", action="store_true", help="stop when the queue is empty")
    p.add_argument("--concurrency", metavar="N", type=_whole_number, help="at most N tasks at once")
    p.add_argument("--timeout", metavar="SECS", type=_seconds, help="per-task time limit")
    p.add_argument("--poll", metavar="SECS", type=_seconds, help="idle poll interval (0.5)")
    p.add_argument("--max-tasks", metavar="N", type=_whole_number, help="stop after N tasks")

    p = _sub(
        subs,
        "history",
        "list a fleet's deployment revisions",
        ["dalfleet history workers"],
        _cmd_history,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")

    p = _sub(
        subs,
        "rollback",
        "redeploy the previous revision's task (or revision --to N)",
        ["dalfleet rollback workers", "dalfleet rollback workers --to 3"],
        _cmd_rollback,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")
    p.add_argument("--to", metavar="N", type=_whole_number, help="revision number to redeploy")

    p = _sub(
        subs,
        "apply",
        "make the fleets match a manifest (create, scale, deploy); --dry-run shows the diff",
        [
            "dalfleet apply -f fleets.yaml --dry-run",
            "dalfleet apply -f fleets.yaml --prune",
            "",
            "fleets.yaml:",
            "  fleets:",
            "    workers: {mold: worker, count: 3, task: Process daily logs}",
        ],
        _cmd_apply,
        common,
    )
    p.add_argument(
        "-f", "--filename", metavar="FILE", required=True, help="manifest file ('-' for stdin)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the changes, make none")
    p.add_argument(
        "--prune", action="store_true", help="delete (and tear down) fleets the manifest omits"
    )

    p = _sub(
        subs,
        "shift",
        "blue/green: move size from one fleet to another (target grows first)",
        [
            "dalfleet shift workers-blue workers-green --task 'Process logs v2'",
            "dalfleet shift workers-blue workers-green --count 1   # a canary",
        ],
        _cmd_shift,
        common,
    )
    p.add_argument("source", metavar="FROM", type=_text, help="fleet to shrink")
    p.add_argument("target", metavar="TO", type=_text, help="fleet to grow (needs a mold)")
    p.add_argument("--count", type=_whole_number, help="how many members' worth (default: all)")
    p.add_argument("--task", type=_text, help="deploy this task to TO first")

    mold = _sub(
        subs,
        "mold",
        "inspect and check molds",
        ["dalfleet mold show worker", "dalfleet mold validate mold/*.mold.dal"],
        None,
        common,
    )
    mold_subs = mold.add_subparsers(title="mold subcommands", dest="mold_command", metavar="SUB")
    p = _sub(
        mold_subs,
        "show",
        "resolve a mold source and print the mold",
        ["dalfleet mold show worker", "dalfleet mold show mold/worker.mold.dal"],
        _cmd_mold_show,
        common,
    )
    p.add_argument("source", metavar="SRC", help="mold file or mold name")
    p = _sub(
        mold_subs,
        "validate",
        "parse mold files and report errors (exit 1 if any)",
        ["dalfleet mold validate mold/worker.mold.dal mold/reviewer.mold.json"],
        _cmd_mold_validate,
        common,
    )
    p.add_argument("files", metavar="FILE", nargs="+", help="mold files to check")
    mold.set_defaults(subcommands=tuple(mold_subs.choices))
    parser.set_defaults(subcommands=tuple(subs.choices))
    return parser


# -- output helpers ---------------------------------------------------------------------


def _out(line: str = "") -> None:
    print(line, file=sys.stdout)


def _json_default(value: object) -> Any:
    try:
        return json_default(value)
    except TypeError:
        return repr(value)


def _print_json(document: object) -> None:
    _out(json.dumps(document, indent=2, ensure_ascii=False, default=_json_default))


def _q(name: str) -> str:
    # The reference quotes names as '{}'; odd names (control characters) are escaped.
    return show_value(name, limit=10_000)


def _or_unset(value: str | None) -> str:
    return UNSET if value is None else value


def _one_line(text: str, limit: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _fleet_json(fleet: Fleet) -> dict[str, Any]:
    return unstructure_fleet(fleet)


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _Progress:
    """``\\rLABEL done/total`` on stderr; the line is cleared when the work ends."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._lock = threading.Lock()
        self._width = 0

    def __call__(self, done: int, total: int) -> None:
        text = f"{self.label} {done}/{total}"
        with self._lock:
            self._width = max(self._width, len(text))
            sys.stderr.write(f"\r{text}")
            sys.stderr.flush()

    def clear(self) -> None:
        with self._lock:
            if self._width:
                sys.stderr.write("\r" + " " * self._width + "\r")
                sys.stderr.flush()
                self._width = 0


@contextlib.contextmanager
def _progress(args: argparse.Namespace, label: str) -> Iterator[ProgressFn | None]:
    """A progress callback when stderr is a terminal and the output is not JSON, else None."""
    if args.json or not _stderr_is_tty():
        yield None
        return
    progress = _Progress(label)
    try:
        yield progress
    finally:
        progress.clear()


def _base(args: argparse.Namespace) -> Path:
    """The project directory: ``--base DIR`` (which must exist) or the current directory."""
    if args.base is None:
        return Path.cwd()
    base = Path(args.base)
    if not base.is_dir():
        # Writing the fleet file would create the directory tree; a typo should not.
        raise FleetError(
            f"base directory {show_value(args.base)} does not exist or is not a directory"
        )
    return base


def _client(args: argparse.Namespace) -> Client:
    base = _base(args)
    if args.ray is None:
        return Client.for_base(base)
    from dalfleet.coordinator.ray import RayCoordinator
    from dalfleet.store import JsonFileStore

    # The fleet file stays in the project; the agents live in the cluster.
    # Ray's own INFO lines would break the one-line-per-result output.
    coordinator = RayCoordinator(
        address=args.ray, init_kwargs={"logging_level": "WARNING", "log_to_driver": False}
    )
    return Client(JsonFileStore(base), coordinator, base=base)


# -- commands ---------------------------------------------------------------------------


def _cmd_create(args: argparse.Namespace) -> int:
    if args.from_mold is None and (args.count is not None or args.param is not None):
        flag = "--count" if args.count is not None else "--param"
        args.parser.error(f"{flag} needs --from-mold SRC")
    with _client(args) as client:
        if args.from_mold is None:
            fleet = client.create(args.name)
        else:
            count = 1 if args.count is None else args.count
            with _progress(args, "spawning") as progress:
                fleet = client.create_from_mold(
                    args.name, args.from_mold, count, args.param, progress=progress
                )
    if args.json:
        _print_json(_fleet_json(fleet))
    elif args.from_mold is None:
        _out(f"Fleet {_q(fleet.name)} created (empty)")
    else:
        _out(f"Fleet {_q(fleet.name)} created with {fleet.size} agents from mold {args.from_mold}")
    return EXIT_OK


def _cmd_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        fleets = client.fleets()
    names = sorted(fleets)
    if args.json:
        _print_json(
            [
                {
                    "name": name,
                    "member_count": fleets[name].size,
                    "mold_source": fleets[name].mold_source,
                    "last_deployed_task": fleets[name].last_deployed_task,
                    "last_deployed_at": fleets[name].last_deployed_at,
                }
                for name in names
            ]
        )
        return EXIT_OK
    if not names:
        _out(f"No fleets (create one with: {PROG} create NAME)")
        return EXIT_OK
    _out("Fleets:")
    for name in names:
        fleet = fleets[name]
        _out(f"  {name}  ({fleet.size} agents)")
        if args.verbose:
            _out(
                f"    last_deployed: {_or_unset(fleet.last_deployed_task)}"
                f"  at: {_or_unset(fleet.last_deployed_at)}"
            )
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        fleet = client.get(args.name)
    if args.json:
        _print_json(_fleet_json(fleet))
        return EXIT_OK
    _out(f"Fleet: {fleet.name}")
    if fleet.mold_source is not None:
        _out(f"  From mold: {fleet.mold_source}")
    _out(f"  Members: {fleet.size}")
    for member in fleet.member_ids:
        _out(f"    {member}")
    if fleet.last_deployed_task is not None:
        _out(f"  Last deployed: {fleet.last_deployed_task}")
    if fleet.last_deployed_at is not None:
        _out(f"  Deployed at: {fleet.last_deployed_at}")
    return EXIT_OK


def _cmd_scale(args: argparse.Namespace) -> int:
    with _client(args) as client, _progress(args, "spawning") as progress:
        fleet = client.scale(args.name, args.size, progress=progress)
    if args.json:
        _print_json(_fleet_json(fleet))
    else:
        _out(f"Fleet {_q(fleet.name)} scaled to {fleet.size} members")
    return EXIT_OK


def _cmd_delete(args: argparse.Namespace) -> int:
    with _client(args) as client:
        removed = client.delete(args.name, teardown=args.teardown)
    if not removed:
        raise fleet_not_found(args.name)
    if args.json:
        _print_json({"deleted": True, "name": args.name, "teardown": args.teardown})
    else:
        suffix = " (members terminated)" if args.teardown else ""
        _out(f"Fleet {_q(args.name)} deleted{suffix}")
    return EXIT_OK


def _cmd_deploy(args: argparse.Namespace) -> int:
    with _client(args) as client:
        fleet = client.deploy(args.name, " ".join(args.task))
    if args.json:
        _print_json(_fleet_json(fleet))
    else:
        revision = f" (revision {fleet.history[-1].revision})" if fleet.history else ""
        _out(f"Task deployed to fleet {_q(fleet.name)}{revision}")
    return EXIT_OK


def _cmd_add_from_mold(args: argparse.Namespace) -> int:
    with _client(args) as client, _progress(args, "spawning") as progress:
        fleet = client.add_from_mold(
            args.name, args.source, args.count, args.param, progress=progress
        )
    if args.json:
        _print_json(_fleet_json(fleet))
    else:
        _out(f"Added {args.count} agents to fleet {_q(fleet.name)} from mold {args.source}")
    return EXIT_OK


def _cmd_add_member(args: argparse.Namespace) -> int:
    with _client(args) as client:
        before = client.show(args.name)
        fleet = client.add_member(args.name, args.agent_id)
    if args.json:
        _print_json(_fleet_json(fleet))
    elif before is not None and before.size == fleet.size:
        _out(f"Agent {args.agent_id.strip()} is already a member of fleet {_q(fleet.name)}")
    else:
        _out(f"Added member {fleet.member_ids[-1]} to fleet {_q(fleet.name)}")
    return EXIT_OK


def _report_json(report: RunReport) -> dict[str, Any]:
    document: dict[str, Any] = to_json_document(report)
    return document


def _cmd_run(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    if args.concurrency is not None:
        options["concurrency"] = args.concurrency
    if args.timeout is not None:
        options["timeout"] = args.timeout
    label = "running" if args.handler is not None else "dispatching"
    with _client(args) as client, _progress(args, label) as progress:
        reports = client.run(args.name, handler=args.handler, progress=progress, **options)
    failed = any(not report.ok for report in reports)
    if args.json:
        _print_json([_report_json(report) for report in reports])
        return EXIT_ERROR if failed else EXIT_OK
    if not reports:
        _out(f"No fleets with a deployed task to run (deploy one with: {PROG} deploy NAME TASK)")
        return EXIT_OK
    for report in reports:
        if report.executed:
            ok = sum(1 for outcome in report.outcomes if outcome.ok)
            elapsed = max(0.0, report.finished_at - report.started_at)
            _out(
                f"Fleet {_q(report.fleet_name)}: {ok} ok, {len(report.outcomes) - ok} failed "
                f"in {elapsed:.2f}s"
            )
        else:
            _out(
                f"Fleet {_q(report.fleet_name)}: dispatched to "
                f"{report.members_dispatched} member(s)"
            )
        for error in report.errors:
            _out(f"  {_one_line(error, limit=500)}")
    return EXIT_ERROR if failed else EXIT_OK


def _cmd_health(args: argparse.Namespace) -> int:
    with _client(args) as client:
        health = client.health(args.name)
    if args.json:
        from dalfleet.convert import health_map

        _print_json({**health_map(health), "alive_count": health.alive_count})
        return EXIT_OK
    _out(f"Fleet: {health.name}")
    _out(f"  Members: {health.member_count}")
    _out(f"  Has mold: {'true' if health.has_mold else 'false'}")
    _out(f"  Last deployed: {_or_unset(health.last_deployed_task)}")
    _out(f"  Deployed at: {_or_unset(health.last_deployed_at)}")
    _out(f"  Status: {health.status}")
    pending = sum(member.pending_tasks for member in health.members)
    failed = sum(member.failed_tasks for member in health.members)
    completed = sum(member.completed_tasks for member in health.members)
    _out(
        f"  Alive: {health.alive_count}/{health.member_count}"
        f"  Pending tasks: {pending}  Completed tasks: {completed}  Failed tasks: {failed}"
    )
    for member in health.members:
        if member.state is not AgentState.ALIVE:
            _out(f"    {member.agent_id}: {member.state.value}")
    return EXIT_OK


def _write_atomically(path: Path, text: str) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    try:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise FleetError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        reason = "it is a directory" if path.is_dir() else (exc.strerror or str(exc))
        raise FleetError(f"cannot write {path}: {reason}") from None


def _cmd_export(args: argparse.Namespace) -> int:
    from dalfleet.export import parse_format

    options: dict[str, Any] = {}
    if args.image is not None:
        options["image"] = args.image
    if args.namespace is not None:
        options["namespace"] = args.namespace
    if args.label is not None:
        options["labels"] = dict(args.label)
    if args.workload is not None:
        options["workload"] = args.workload
    with _client(args) as client:
        text = client.export(args.name, args.format, **options)
    fmt = parse_format(args.format).value
    if args.output is not None:
        _write_atomically(Path(args.output), text)
    if args.json:
        import yaml

        document: dict[str, Any] = {
            "format": fmt,
            "documents": [doc for doc in yaml.safe_load_all(text) if doc is not None],
        }
        if args.output is not None:
            document["output"] = args.output
        _print_json(document)
    elif args.output is not None:
        what = f"fleet {_q(args.name)}" if args.name is not None else "all fleets"
        _out(f"Exported {what} as {fmt} to {args.output}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def _outcome_line(outcome: MemberOutcome) -> str:
    if outcome.ok:
        return f"{outcome.agent_id}: ok"
    return f"{outcome.agent_id}: error: {_one_line(outcome.error or outcome.status, limit=500)}"


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT / SIGTERM; a second SIGINT interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _cmd_worker(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    if args.concurrency is not None:
        options["concurrency"] = args.concurrency
    if args.timeout is not None:
        options["timeout"] = args.timeout
    if args.poll is not None:
        options["poll_interval"] = args.poll
    if args.max_tasks is not None:
        options["max_tasks"] = args.max_tasks
    lock = threading.Lock()

    def report(outcome: MemberOutcome) -> None:
        with lock:
            _out(_outcome_line(outcome))
            sys.stdout.flush()

    stop = threading.Event()
    with _client(args) as client, _stop_on_signals(stop):
        stats = client.work(
            args.name,
            args.handler,
            once=args.once,
            stop=stop,
            on_outcome=None if args.json else report,
            **options,
        )
    if args.json:
        _print_json(to_json_document(stats))
    else:
        _out(
            f"Worker for fleet {_q(stats.fleet_name)}: executed {stats.executed} "
            f"({stats.succeeded} ok, {stats.failed} failed, {stats.released} released)"
        )
    # --once is a batch: like run, it fails if a task failed. A long-lived worker that
    # was stopped on purpose exits 0.
    return EXIT_ERROR if args.once and stats.failed else EXIT_OK


def _cmd_history(args: argparse.Namespace) -> int:
    with _client(args) as client:
        revisions = client.history(args.name)
    if args.json:
        _print_json(to_json_document(revisions))
        return EXIT_OK
    if not revisions:
        _out(f"No deployments recorded for fleet {_q(args.name)}")
        return EXIT_OK
    _out(f"History of fleet {_q(args.name)}:")
    for revision in revisions:
        _out(f"  #{revision.revision}  {revision.deployed_at}  {_one_line(revision.task)}")
    return EXIT_OK


def _cmd_rollback(args: argparse.Namespace) -> int:
    with _client(args) as client:
        fleet = client.rollback(args.name, to_revision=args.to)
    if args.json:
        _print_json(_fleet_json(fleet))
    else:
        latest = fleet.history[-1].revision if fleet.history else 0
        task = _one_line(fleet.last_deployed_task or "")
        _out(f"Fleet {_q(fleet.name)} rolled back: revision {latest} redeploys {task}")
    return EXIT_OK


def _cmd_apply(args: argparse.Namespace) -> int:
    from dalfleet.manifest import load_manifest, parse_manifest

    if args.filename == "-":
        specs = parse_manifest(sys.stdin.read())
    else:
        specs = load_manifest(args.filename)
    with _client(args) as client, _progress(args, "spawning") as progress:
        changes = client.apply(specs, dry_run=args.dry_run, prune=args.prune, progress=progress)
    if args.json:
        _print_json(
            {
                "dry_run": args.dry_run,
                "changes": [
                    {"action": c.action, "fleet": c.fleet, "detail": c.detail} for c in changes
                ],
            }
        )
        return EXIT_OK
    for change in changes:
        _out(f"{change.symbol} {change.fleet}: {change.detail}")
    done = sum(1 for c in changes if c.action != "warn")
    if args.dry_run:
        _out(f"{done} change(s) planned (dry run: nothing changed)")
    else:
        _out(f"{done} change(s) applied" if done else "No changes: the fleets match the manifest")
    return EXIT_OK


def _cmd_shift(args: argparse.Namespace) -> int:
    with _client(args) as client, _progress(args, "spawning") as progress:
        source, target = client.shift(
            args.source, args.target, args.count, task=args.task, progress=progress
        )
    if args.json:
        _print_json({"from": _fleet_json(source), "to": _fleet_json(target)})
    else:
        _out(
            f"Shifted to fleet {_q(target.name)}: {_q(source.name)} now has "
            f"{source.size} members, {_q(target.name)} has {target.size}"
        )
    return EXIT_OK


def _cmd_mold_show(args: argparse.Namespace) -> int:
    from dalfleet.mold import load_mold

    mold = load_mold(args.source, _base(args))
    if args.json:
        _print_json(to_json_document(mold))
        return EXIT_OK

    def listed(items: Sequence[str]) -> str:
        return ", ".join(items) if items else UNSET

    _out(f"Mold: {mold.name} {mold.version}")
    _out(f"  File: {_or_unset(mold.path)}")
    _out(f"  Type: {mold.agent_type}")
    _out(f"  Role: {mold.role or UNSET}")
    _out(f"  Capabilities: {listed(mold.capabilities)}")
    _out(f"  Skills: {listed(mold.skills)}")
    _out(f"  Memory limit: {_or_unset(mold.memory_limit)}")
    flags = ("learning", "communication", "coordination")
    _out("  " + "  ".join(f"{f}: {'true' if getattr(mold, f) else 'false'}" for f in flags))
    _out(f"  Trust level (display only): {_or_unset(mold.trust_level)}")
    _out(f"  Lifecycle hooks: {listed(list(mold.lifecycle))}")
    return EXIT_OK


def _cmd_mold_validate(args: argparse.Namespace) -> int:
    from dalfleet.mold import parse_mold, read_mold_file

    results: list[dict[str, Any]] = []
    for name in args.files:
        try:
            mold = parse_mold(read_mold_file(name), source=name)
        except FleetError as exc:
            results.append({"file": name, "ok": False, "error": str(exc)})
            if not args.json:
                _error_line(str(exc))
        else:
            results.append({"file": name, "ok": True, "name": mold.name, "version": mold.version})
            if not args.json:
                _out(f"{name}: ok (mold {mold.name} {mold.version})")
    if args.json:
        _print_json(results)
    return EXIT_OK if all(r["ok"] for r in results) else EXIT_ERROR


# -- entry point ------------------------------------------------------------------------


def _error_line(message: str, kind: str = "error") -> None:
    text = " ".join(message.splitlines()) or "unknown error"
    sys.stderr.write(f"{PROG}: {kind}: {text}\n")
    sys.stderr.flush()


def _exit_code(code: object) -> int:
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return EXIT_ERROR


def _dispatch(args: argparse.Namespace) -> int:
    func: Command | None = args.func
    if func is None:  # "dalfleet" or "dalfleet mold" alone
        parser: argparse.ArgumentParser = args.parser
        parser.error(f"missing subcommand (choose from {', '.join(args.subcommands)})")
    status = func(args)
    # Flush here so a closed pipe is reported as BrokenPipeError inside main().
    sys.stdout.flush()
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dalfleet`` command line with ``argv`` (default ``sys.argv[1:]``).

    Returns the exit status: 0 on success, 1 on an error (one line on stderr),
    2 on a usage error, 130 when interrupted.

    Never raises: errors, usage errors, ``--help``/``--version``, a broken pipe and
    Ctrl-C are all reported and turned into the exit status.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
        return _dispatch(args)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return _exit_code(exc.code)
    except FleetError as exc:
        _error_line(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _error_line("interrupted", kind="error")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``dalfleet export | head``); say nothing more.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except Exception as exc:
        if os.environ.get("DALFLEET_DEBUG") == "1":
            traceback.print_exc()
        detail = str(exc).strip()
        _error_line(
            f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__,
            kind="internal error",
        )
        return EXIT_ERROR
