"""The ``dalfleet`` argument parser: subcommands, their arguments and help examples.

Types here only turn text into the Python values the library takes (a whole
number, a ``KEY=VALUE`` pair); every range and rule is the library's. Every
subcommand's help ends with examples that run as written, in order, in an empty
directory (a test runs them).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence

from dalfleet.cli import commands
from dalfleet.cli.output import PROG
from dalfleet.defaults import DEFAULT_IMAGE, DEFAULT_LEASE, DEFAULT_POLL_INTERVAL
from dalfleet.errors import quote as show_value

# typing.TYPE_CHECKING without importing typing (start-up time of every command)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["EXIT_USAGE", "build_parser", "command_in", "examples"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: ``dalfleet: error: … (see … --help)``."""

    def error(self, message: str) -> NoReturn:
        from dalfleet.cli.output import escape

        text = escape(" ".join(message.split()))
        self.exit(EXIT_USAGE, f"{PROG}: error: {text} (see {self.prog} --help)\n")


def _columns() -> int:
    # shutil.get_terminal_size's answer for the columns, without importing shutil
    # (with the compression modules it loads, a tenth of a short command's start-up).
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help as argparse writes it (descriptions and examples kept as written), as wide
    as the terminal."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )


_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)


def _text(text: str) -> str:
    """argparse type for values that are stored or sent on: they must be valid UTF-8.

    Python decodes undecodable argv bytes to lone surrogates, which no JSON file,
    manifest or database can hold; say so now instead of failing on write.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "backslashreplace").decode("ascii")
        raise argparse.ArgumentTypeError(f"{show_value(shown)} is not valid UTF-8 text") from None
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


class _ParamAction(argparse.Action):
    """``--param K=V``, repeatable; a key given twice is a usage error rather than
    "the last one wins". Items without ``=`` are passed on for the library to refuse."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        item = str(values)
        items: list[str] = list(getattr(namespace, self.dest, None) or [])
        key, sep, _ = item.partition("=")
        if sep:
            for earlier in items:
                other, other_sep, _ = earlier.partition("=")
                if other_sep and other.strip() == key.strip():
                    parser.error(
                        f"--param {show_value(key.strip())} given twice "
                        f"({show_value(earlier)} and {show_value(item)}); give each key once"
                    )
        items.append(item)
        setattr(namespace, self.dest, items)


def _param(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--param", metavar="K=V", action=_ParamAction, type=_text, default=None, help=help_text
    )


_URL_HELP = (
    "keep fleets, agents and tasks in this database (postgresql://USER@HOST/DB) "
    "instead of .dal/; default: $DALFLEET_URL"
)


def _common() -> argparse.ArgumentParser:
    # The global options again, for use after the subcommand. SUPPRESS keeps a
    # subcommand from overwriting a value given before it with its default.
    common = argparse.ArgumentParser(add_help=False, formatter_class=_Formatter)
    common.add_argument(
        "--base", metavar="DIR", default=argparse.SUPPRESS, help="project directory (default: .)"
    )
    common.add_argument("--url", metavar="URL", default=argparse.SUPPRESS, help=_URL_HELP)
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
        help="run handlers on a Ray cluster ('auto', or HOST:PORT); state stays in .dal/",
    )
    return common


EXAMPLE_HEADING = "example:"


def _example(*lines: str) -> str:
    return EXAMPLE_HEADING + "\n" + "\n".join(f"  {line}" for line in lines)


def examples(help_text: str) -> list[str]:
    """The example command lines of a help text (the lines under ``example:``).
    Never raises."""
    _, found, rest = help_text.partition(EXAMPLE_HEADING + "\n")
    if not found:
        return []
    lines: list[str] = []
    for row in rest.splitlines():
        if not row.startswith("  "):
            break
        lines.append(row.strip())
    return lines


def _sub(
    subparsers: Any,
    name: str,
    summary: str,
    example_lines: Sequence[str],
    func: commands.Command | None,
    common: argparse.ArgumentParser,
    description: str | None = None,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=summary,
        description=description or summary,
        epilog=_example(*example_lines),
        formatter_class=_Formatter,
        parents=[common],
        allow_abbrev=False,
    )
    parser.set_defaults(parser=parser, func=func)
    return parser


# Examples run as written in an empty directory, so those that need a mold start
# with "dalfleet init", which writes the sample mold/worker.mold.dal and fleets.yaml.
# Each help's examples use their own fleet names, so that they also run one after
# another in one directory.
_INIT = "dalfleet init"


def _from_mold(name: str, count: int = 2) -> str:
    return f"dalfleet create {name} --from-mold worker --count {count}"


def _define_init(subs: Any, common: argparse.ArgumentParser) -> None:
    _sub(
        subs,
        "init",
        "write the sample mold (mold/worker.mold.dal) and manifest (fleets.yaml) to start from",
        [_INIT, "dalfleet mold list"],
        commands.cmd_init,
        common,
        description="Write the sample mold to mold/worker.mold.dal and a sample manifest to "
        "fleets.yaml, so that '--from-mold worker' and 'apply -f fleets.yaml' work. "
        "Refuses to overwrite either file.",
    )


def _define_create(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "create",
        "create a fleet, empty or with agents spawned from a mold",
        [
            "dalfleet create my-fleet",
            _INIT,
            "dalfleet create reviewers --from-mold mold/worker.mold.dal --count 3",
            "dalfleet create helpers --from-mold worker --count 2 --param env=prod",
        ],
        commands.cmd_create,
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
    _param(p, "create-time param, repeatable, each key once (with --from-mold)")


def _define_list(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "list",
        "list fleets",
        ["dalfleet list", "dalfleet list -v", "dalfleet list -o wide"],
        commands.cmd_list,
        common,
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="also show the last deployed task and time"
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="FORMAT",
        choices=["wide", "json"],
        help="wide: an aligned table with mold and times (UTC); json: as --json",
    )


def _define_show(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "show",
        "show a fleet's members and deployment",
        [_INIT, _from_mold("crawlers"), "dalfleet show crawlers"],
        commands.cmd_show,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")


def _define_scale(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "scale",
        "set a fleet's size (down terminates the removed members; up spawns from its mold)",
        [_INIT, _from_mold("indexers"), "dalfleet scale indexers 5", "dalfleet scale indexers 0"],
        commands.cmd_scale,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")
    p.add_argument("size", metavar="N", type=_whole_number, help="new number of members")


def _define_delete(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "delete",
        "delete a fleet (metadata only, unless --teardown)",
        [
            "dalfleet create old",
            "dalfleet delete old",
            _INIT,
            _from_mold("scrapers"),
            "dalfleet delete scrapers --teardown",
        ],
        commands.cmd_delete,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")
    p.add_argument("--teardown", action="store_true", help="also terminate its members")


def _define_deploy(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "deploy",
        "record a task for a fleet (words are joined by spaces); executes nothing",
        [
            _INIT,
            _from_mold("reporters"),
            'dalfleet deploy reporters "Process daily logs"',
            "dalfleet deploy reporters Process daily logs",
        ],
        commands.cmd_deploy,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")
    p.add_argument(
        "task", metavar="TASK", nargs="+", type=_text, help="the task; several words are joined"
    )


def _define_add_from_mold(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "add-from-mold",
        "spawn more agents from a mold into a fleet",
        [
            _INIT,
            "dalfleet create builders",
            "dalfleet add-from-mold builders worker 2",
            "dalfleet add-from-mold builders worker 2 --param env=prod",
        ],
        commands.cmd_add_from_mold,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")
    p.add_argument("source", metavar="SRC", type=_text, help="mold file or mold name")
    p.add_argument("count", metavar="COUNT", type=_whole_number, help="agents to spawn")
    _param(p, "create-time param, repeatable, each key once")


def _define_add_member(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "add-member",
        "register an existing agent ID in a fleet",
        ["dalfleet create mixed", "dalfleet add-member mixed agent_0123456789abcdef0123"],
        commands.cmd_add_member,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")
    p.add_argument("agent_id", metavar="ID", type=_text, help="an existing agent ID")


def _define_run(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "run",
        "dispatch each fleet's deployed task to its members (or execute it with --handler)",
        [
            _INIT,
            _from_mold("batch"),
            "dalfleet deploy batch Process daily logs",
            "dalfleet run batch",
            "dalfleet run",
            "dalfleet run batch --handler dalfleet.handlers:echo --concurrency 16 --timeout 30",
        ],
        commands.cmd_run,
        common,
    )
    p.add_argument(
        "name", metavar="NAME", nargs="?", type=_text, help="fleet name (default: every fleet)"
    )
    p.add_argument("--handler", metavar="MOD:FN", help="execute now with this Python function")
    p.add_argument("--concurrency", metavar="N", type=_whole_number, help="at most N tasks at once")
    p.add_argument("--timeout", metavar="SECS", type=_seconds, help="per-task time limit")


def _define_gc(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "gc",
        "terminate orphaned agents (alive, in no fleet)",
        [
            _INIT,
            _from_mold("scratch"),
            "dalfleet delete scratch",
            "dalfleet gc --dry-run",
            "dalfleet gc",
        ],
        commands.cmd_gc,
        common,
    )
    p.add_argument(
        "--dry-run", action="store_true", help="list the orphans without terminating them"
    )


def _define_health(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "health",
        "show a fleet's health",
        [
            _INIT,
            _from_mold("monitors"),
            "dalfleet deploy monitors Check the dashboards",
            "dalfleet health monitors",
        ],
        commands.cmd_health,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")


def _define_export(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "export",
        "print Kubernetes or Docker Compose YAML for one fleet or all",
        [
            _INIT,
            _from_mold("web"),
            "dalfleet export web --format k8s",
            "dalfleet export --format docker-compose -o compose.yaml",
            "dalfleet export web --workload statefulset --namespace agents --label team=ml",
            "dalfleet export web --workload worker --handler myapp.tasks:handle",
        ],
        commands.cmd_export,
        common,
    )
    p.add_argument(
        "name", metavar="NAME", nargs="?", type=_text, help="fleet name (default: every fleet)"
    )
    p.add_argument(
        "--format", metavar="FORMAT", default="k8s", help="k8s, docker-compose or compose"
    )
    p.add_argument(
        "--image",
        metavar="IMG",
        type=_text,
        help=f"container image (default {DEFAULT_IMAGE})",
    )
    p.add_argument("--namespace", metavar="NS", type=_text, help="Kubernetes namespace")
    p.add_argument(
        "--label",
        metavar="K=V",
        action="append",
        type=_key_value,
        help="extra label, repeatable",
    )
    p.add_argument(
        "--workload",
        metavar="KIND",
        help="k8s workload: job (default), statefulset, or worker (a Deployment of workers)",
    )
    p.add_argument(
        "--handler", metavar="MOD:FN", type=_text, help="--workload worker: the task handler"
    )
    p.add_argument(
        "--url-secret",
        metavar="NAME",
        type=_text,
        help="--workload worker: Secret whose key 'url' holds DALFLEET_URL "
        "(default dalfleet-database)",
    )
    p.add_argument(
        "--replicas",
        metavar="N",
        type=_whole_number,
        help="--workload worker: worker pods (default 1)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the YAML to FILE (a regular file is replaced atomically; a FIFO, "
        "device or symlink target is written in place)",
    )


def _define_worker(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "worker",
        "execute a fleet's queued tasks as they arrive (Ctrl-C or SIGTERM stops it cleanly)",
        [
            _INIT,
            _from_mold("queue"),
            "dalfleet deploy queue Process daily logs",
            "dalfleet run queue",
            "dalfleet worker queue --handler dalfleet.handlers:echo --once",
        ],
        commands.cmd_worker,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")
    p.add_argument("--handler", metavar="MOD:FN", required=True, help="Python function to call")
    p.add_argument("--once", action="store_true", help="stop when the queue is empty")
    p.add_argument("--concurrency", metavar="N", type=_whole_number, help="at most N tasks at once")
    p.add_argument("--timeout", metavar="SECS", type=_seconds, help="per-task time limit")
    p.add_argument(
        "--poll",
        metavar="SECS",
        type=_seconds,
        help=f"idle poll interval ({DEFAULT_POLL_INTERVAL:g})",
    )
    p.add_argument("--max-tasks", metavar="N", type=_whole_number, help="stop after N tasks")
    p.add_argument(
        "--lease",
        metavar="SECS",
        type=_seconds,
        help="claim tasks for SECS, renewed while they run; a dead worker's tasks "
        f"are taken over when it expires ({DEFAULT_LEASE:g})",
    )


def _define_history(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "history",
        "list a fleet's deployment revisions (times in UTC)",
        [
            "dalfleet create etl",
            "dalfleet deploy etl first task",
            "dalfleet deploy etl second task",
            "dalfleet history etl",
        ],
        commands.cmd_history,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")


def _define_rollback(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "rollback",
        "redeploy the previous revision's task (or revision --to N)",
        [
            "dalfleet create api",
            "dalfleet deploy api v1",
            "dalfleet deploy api v2",
            "dalfleet rollback api",
            "dalfleet rollback api --to 2",
        ],
        commands.cmd_rollback,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="fleet name")
    p.add_argument("--to", metavar="N", type=_whole_number, help="revision number to redeploy")


def _define_apply(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "apply",
        "make the fleets match a manifest (create, scale, deploy); --dry-run shows the diff",
        [
            _INIT,
            "dalfleet apply -f fleets.yaml --dry-run",
            "dalfleet apply -f fleets.yaml",
            "dalfleet apply -f fleets.yaml --prune",
        ],
        commands.cmd_apply,
        common,
        description="Make the fleets match a manifest (create, scale, deploy); --dry-run\n"
        "shows the diff. A manifest ('dalfleet init' writes one to fleets.yaml):\n\n"
        "  fleets:\n"
        "    workers: {mold: worker, count: 3, task: Process daily logs}",
    )
    p.add_argument(
        "-f", "--filename", metavar="FILE", required=True, help="manifest file ('-' for stdin)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the changes, make none")
    p.add_argument(
        "--prune", action="store_true", help="delete (and tear down) fleets the manifest omits"
    )


def _define_shift(subs: Any, common: argparse.ArgumentParser) -> None:
    p = _sub(
        subs,
        "shift",
        "blue/green: move size from one fleet to another (target grows first)",
        [
            _INIT,
            _from_mold("blue", 3),
            _from_mold("green", 1),
            "dalfleet shift blue green --count 1 --task 'Process logs v2'",
            "dalfleet shift blue green",
        ],
        commands.cmd_shift,
        common,
    )
    p.add_argument("source", metavar="FROM", type=_text, help="fleet to shrink")
    p.add_argument("target", metavar="TO", type=_text, help="fleet to grow (needs a mold)")
    p.add_argument("--count", type=_whole_number, help="how many members' worth (default: all)")
    p.add_argument("--task", type=_text, help="deploy this task to TO first")


def _define_mold(subs: Any, common: argparse.ArgumentParser) -> None:
    mold = _sub(
        subs,
        "mold",
        "list, show, check and create molds",
        [
            _INIT,
            "dalfleet mold list",
            "dalfleet mold show worker",
            "dalfleet mold validate mold/worker.mold.dal",
            "dalfleet mold create summarizer",
        ],
        None,
        common,
    )
    mold_subs = mold.add_subparsers(title="mold subcommands", dest="mold_command", metavar="SUB")
    _sub(
        mold_subs,
        "list",
        "list the molds found in ., mold/ and mold/samples (the order names resolve in)",
        [_INIT, "dalfleet mold list"],
        commands.cmd_mold_list,
        common,
    )
    p = _sub(
        mold_subs,
        "show",
        "resolve a mold source and print the mold",
        [_INIT, "dalfleet mold show worker", "dalfleet mold show mold/worker.mold.dal"],
        commands.cmd_mold_show,
        common,
    )
    p.add_argument("source", metavar="SRC", type=_text, help="mold file or mold name")
    p = _sub(
        mold_subs,
        "validate",
        "parse mold files and report errors (exit 1 if any)",
        [
            _INIT,
            "dalfleet mold validate mold/worker.mold.dal",
            "dalfleet mold validate --strict mold/worker.mold.dal",
        ],
        commands.cmd_mold_validate,
        common,
    )
    p.add_argument("files", metavar="FILE", nargs="+", help="mold files to check")
    p.add_argument(
        "--strict",
        action="store_true",
        help="treat warnings (what the reference silently ignores) as errors",
    )
    p = _sub(
        mold_subs,
        "create",
        "write a mold template NAME.mold.dal to edit (refuses to overwrite)",
        ["dalfleet mold create reviewer", "dalfleet mold validate reviewer.mold.dal"],
        commands.cmd_mold_create,
        common,
    )
    p.add_argument("name", metavar="NAME", type=_text, help="mold name (also the file's name)")
    mold.set_defaults(subcommands=tuple(mold_subs.choices))


def _define_task(subs: Any, common: argparse.ArgumentParser) -> None:
    task = _sub(
        subs,
        "task",
        "inspect an agent's tasks",
        ["dalfleet task list agent_0123456789abcdef0123"],
        None,
        common,
    )
    task_subs = task.add_subparsers(title="task subcommands", dest="task_command", metavar="SUB")
    p = _sub(
        task_subs,
        "list",
        "list an agent's pending tasks",
        ["dalfleet task list agent_0123456789abcdef0123"],
        commands.cmd_task_list,
        common,
    )
    p.add_argument("agent_id", metavar="AGENT_ID", type=_text, help="the agent's ID")
    task.set_defaults(subcommands=tuple(task_subs.choices))


_COMMANDS: dict[str, Callable[[Any, argparse.ArgumentParser], None]] = {
    "init": _define_init,
    "create": _define_create,
    "list": _define_list,
    "show": _define_show,
    "scale": _define_scale,
    "delete": _define_delete,
    "deploy": _define_deploy,
    "add-from-mold": _define_add_from_mold,
    "add-member": _define_add_member,
    "run": _define_run,
    "gc": _define_gc,
    "health": _define_health,
    "export": _define_export,
    "worker": _define_worker,
    "history": _define_history,
    "rollback": _define_rollback,
    "apply": _define_apply,
    "shift": _define_shift,
    "mold": _define_mold,
    "task": _define_task,
}


# Global options that take a value (given before the subcommand, the value is the next
# argument unless written --option=VALUE).
_GLOBAL_VALUED = ("--base", "--url", "--ray")


def command_in(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` runs, when the parser needs no other to parse it: the
    first argument that is not a global option or its value, if it names a
    subcommand and no ``-h``/``--help``/``--version`` comes before it. None
    otherwise (the whole parser reports the unknown subcommand, or prints the help).

    Building one subcommand's parser instead of twenty is most of what a short
    command's parsing costs. Never raises.
    """
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _GLOBAL_VALUED:
            skip = True
        elif arg.startswith("-"):
            if arg in ("-h", "--help", "--version") or arg == "--":
                return None
        else:
            return arg if arg in _COMMANDS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``dalfleet`` argument parser, with every subcommand; with ``command`` (one
    of them, see :func:`command_in`), with that subcommand only. Never raises."""
    from dalfleet import __version__

    common = _common()
    parser = _Parser(
        prog=PROG,
        description="Run fleets of agents: create from a mold, scale, deploy a task, run it, "
        "check health, export to Kubernetes or Docker Compose.",
        epilog=_example(
            _INIT,
            "dalfleet create workers --from-mold worker --count 3 --param env=prod",
            "dalfleet deploy workers Process daily logs",
            "dalfleet run workers",
            "dalfleet health workers",
        )
        + "\n\nRun 'dalfleet SUBCOMMAND --help' for a subcommand's arguments.",
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--base", metavar="DIR", default=None, help="project directory (default: .)"
    )
    parser.add_argument("--url", metavar="URL", default=None, help=_URL_HELP)
    parser.add_argument(
        "--json", action="store_true", default=False, help="print one JSON document instead of text"
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="run handlers on a Ray cluster ('auto', or HOST:PORT); state stays in .dal/",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.set_defaults(parser=parser, func=None)
    subs = parser.add_subparsers(title="subcommands", dest="command", metavar="SUBCOMMAND")
    for name, define in _COMMANDS.items():
        if command is None or name == command:
            define(subs, common)

    parser.set_defaults(subcommands=tuple(_COMMANDS))
    return parser
