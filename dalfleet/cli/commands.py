"""One function per subcommand: call the library, hand the result to the output.

No fleet rule lives here: arguments go to :class:`dalfleet.client.Client` as typed
and whatever it raises is reported by :func:`dalfleet.cli.main`. The human lines
that the reference (``dal agent fleet`` / ``dal agent mold``) also prints are
byte-identical to its lines; what is ours comes on extra lines after them.

Heavy modules (the client and its coordinator, YAML, asyncio) are imported inside
the commands that need them, so ``dalfleet --version`` starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from dalfleet.cli import output
from dalfleet.cli.output import PROG, UNSET, line, or_unset, plural

# typing.TYPE_CHECKING without importing typing (start-up time); signal and
# threading are imported by the commands that use them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from types import FrameType
    from typing import Any

    from dalfleet.client import Client
    from dalfleet.models import Fleet, MemberOutcome, RunReport
    from dalfleet.store import Store

__all__ = ["Command"]

EXIT_OK = 0
EXIT_ERROR = 1

Command = Callable[[argparse.Namespace], int]

# The reference's lines, with "dal agent fleet" replaced by "dalfleet" in hints.
NO_FLEETS = f"No fleets (create with: {PROG} create <name> [--from-mold <path> --count N])"
NO_RUNS = f"No fleets with a deployed task to run (deploy first with: {PROG} deploy <name> <task>)"
NO_MOLDS = "No local molds found (looked in ., mold/, mold/samples for *.mold.dal, *.mold.json)"


# -- shared ----------------------------------------------------------------------------


def _base(args: argparse.Namespace) -> Path:
    """The project directory: ``--base DIR`` (which must exist) or the current directory."""
    if args.base is None:
        return Path.cwd()
    from dalfleet.rules import check_base

    return check_base(args.base)


def _url(args: argparse.Namespace) -> str | None:
    """The database URL: ``--url`` wins over ``$DALFLEET_URL``; None for the project's ``.dal/``."""
    from dalfleet.backends import url_from_env

    return url_from_env(args.url)


def _store(args: argparse.Namespace) -> Store:
    """The fleet store of the project (or of the database with a URL)."""
    url = _url(args)
    if url is not None:
        from dalfleet.backends import open_url

        store, _ = open_url(url)  # nothing connects until the store is used
        return store
    from dalfleet.store import JsonFileStore

    return JsonFileStore(_base(args))


def _fleets(args: argparse.Namespace) -> dict[str, Fleet]:
    """Every fleet, read from the store alone: the commands that only read fleets
    never load the coordinator (SQLite) or the executor (asyncio)."""
    store = _store(args)
    try:
        return dict(store.load())
    finally:
        close = getattr(store, "close", None)  # Store.close is new in the protocol
        if callable(close):
            close()


def _client(args: argparse.Namespace) -> Client:
    from dalfleet.client import Client

    base = _base(args)
    url = _url(args)
    executor = None
    if args.ray is not None:
        from dalfleet.executor.ray import RayExecutor

        # Only the handlers run on the cluster; state stays in .dal/ or the database.
        # Ray's own INFO lines would break the one-line-per-result output.
        executor = RayExecutor(
            address=args.ray, init_kwargs={"logging_level": "WARNING", "log_to_driver": False}
        )
    if url is not None:
        return Client.from_url(url, base=base, executor=executor)
    return Client.for_base(base, executor=executor)


def _given(args: argparse.Namespace, **options: str) -> dict[str, Any]:
    """The library options given on the command line: ``option=attribute`` pairs,
    those left unset (None) omitted so the library's defaults apply."""
    return {
        option: getattr(args, attr)
        for option, attr in options.items()
        if getattr(args, attr) is not None
    }


def _progress(args: argparse.Namespace, label: str) -> contextlib.AbstractContextManager[Any]:
    return output.progress(not args.json, label)


def _fleet_json(fleet: Fleet) -> dict[str, Any]:
    from dalfleet.convert import unstructure_fleet

    return unstructure_fleet(fleet)


def _q(name: str) -> str:
    # The reference quotes names as '{}'; control characters are escaped on output.
    return f"'{name}'"


# -- the reference's commands ----------------------------------------------------------


def cmd_create(args: argparse.Namespace) -> int:
    """``dalfleet create NAME [--from-mold SRC --count N] [--param K=V …]``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    if args.from_mold is None and (args.count is not None or args.param is not None):
        flag = "--count" if args.count is not None else "--param"
        args.parser.error(f"{flag} needs --from-mold SRC")
    count = 1 if args.count is None else args.count
    with _client(args) as client:
        if args.from_mold is None:
            fleet = client.create(args.name)
        else:
            with _progress(args, "spawning") as progress:
                fleet = client.create_from_mold(
                    args.name, args.from_mold, count, args.param, progress=progress
                )
    if args.json:
        output.print_json(_fleet_json(fleet))
    elif args.from_mold is None:
        line(f"✅ Fleet {_q(args.name)} created (empty)")
    else:
        line(f"✅ Fleet {_q(args.name)} created with {count} agents from mold {args.from_mold}")
    return EXIT_OK


def _listing(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``list``'s rows (its JSON document), sorted by name: from the file's entries
    when the store can give them as they are (no models, no converter: start-up
    time), else from the fleets the store builds."""
    store = _store(args)
    try:
        listing = getattr(store, "listing", None)
        entries = listing() if callable(listing) else None
        if entries is None:
            return [
                {
                    "name": name,
                    "member_count": len(fleet.member_ids),
                    "mold_source": fleet.mold_source,
                    "last_deployed_task": fleet.last_deployed_task,
                    "last_deployed_at": fleet.last_deployed_at,
                }
                for name, fleet in sorted(store.load().items())
            ]
        return [
            {
                "name": name,
                "member_count": len(entry.get("member_ids", [])),
                "mold_source": entry.get("mold_source"),
                "last_deployed_task": entry.get("last_deployed_task"),
                "last_deployed_at": entry.get("last_deployed_at"),
            }
            for name, entry in sorted(entries.items())
        ]
    finally:
        close = getattr(store, "close", None)  # Store.close is new in the protocol
        if callable(close):
            close()


def cmd_list(args: argparse.Namespace) -> int:
    """``dalfleet list [-v] [-o wide|json]``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    rows = _listing(args)
    if args.json or args.output == "json":
        output.print_json(rows)
        return EXIT_OK
    if not rows:
        line(NO_FLEETS)
        return EXIT_OK
    if args.output == "wide":
        _list_wide(rows)
        return EXIT_OK
    line("Fleets:")
    for row in rows:
        if args.verbose:
            line(
                f"  {row['name']}  ({row['member_count']} agents)"
                f"  last_deployed: {or_unset(row['last_deployed_task'])}"
                f"  at: {or_unset(row['last_deployed_at'])}"
            )
        else:
            line(f"  {row['name']}  ({row['member_count']} agents)")
    return EXIT_OK


def _list_wide(rows: Sequence[dict[str, Any]]) -> None:
    header = ("NAME", "MEMBERS", "MOLD", "DEPLOYED AT (UTC)", "LAST DEPLOYED")
    cells = [
        (
            output.escape(row["name"]),
            str(row["member_count"]),
            output.escape(or_unset(row["mold_source"])),
            output.iso_time(row["last_deployed_at"]) or or_unset(row["last_deployed_at"]),
            output.one_line(output.escape(or_unset(row["last_deployed_task"]))),
        )
        for row in rows
    ]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header) - 1)]
    for row in [header, *cells]:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        line("  ".join([*padded, row[-1]]).rstrip())


def cmd_show(args: argparse.Namespace) -> int:
    """``dalfleet show NAME``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    with _client(args) as client:
        fleet = client.get(args.name)
    if args.json:
        output.print_json(_fleet_json(fleet))
        return EXIT_OK
    line(f"Fleet: {fleet.name}")
    if fleet.mold_source is not None:
        line(f"  From mold: {fleet.mold_source}")
    line(f"  Members: {len(fleet.member_ids)}")
    for member in fleet.member_ids:
        line(f"    {member}")
    if fleet.last_deployed_task is not None:
        line(f"  Last deployed: {fleet.last_deployed_task}")
        if fleet.last_deployed_at is not None:
            line(f"  Deployed at: {fleet.last_deployed_at}")
    return EXIT_OK


def cmd_scale(args: argparse.Namespace) -> int:
    """``dalfleet scale NAME N``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    with _client(args) as client, _progress(args, "spawning") as progress:
        fleet = client.scale(args.name, args.size, progress=progress)
    if args.json:
        output.print_json(_fleet_json(fleet))
    else:
        line(f"✅ Fleet {_q(args.name)} scaled to {args.size} agents")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    """``dalfleet delete NAME [--teardown]``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    with _client(args) as client:
        # The library's default reports absence as False (SPEC §2); the reference's
        # command makes it an error, and so do we.
        client.delete(args.name, teardown=args.teardown, missing_ok=False)
    if args.json:
        output.print_json({"deleted": True, "name": args.name, "teardown": args.teardown})
    else:
        line(f"✅ Fleet {_q(args.name)} deleted")
        if args.teardown:
            line("  Members terminated")
    return EXIT_OK


def cmd_gc(args: argparse.Namespace) -> int:
    """``dalfleet gc [--dry-run]``: terminate the agents no fleet lists.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    with _client(args) as client:
        found = client.gc(dry_run=args.dry_run)
    if args.json:
        output.print_json({"orphans": found, "terminated": not args.dry_run})
        return EXIT_OK
    if not found:
        line("No orphaned agents")
        return EXIT_OK
    verb = "would be terminated" if args.dry_run else "terminated"
    line(f"{'🔍' if args.dry_run else '✅'} {len(found)} orphaned agent(s) {verb}")
    for agent_id in found:
        line(f"  {agent_id}")
    return EXIT_OK


def cmd_deploy(args: argparse.Namespace) -> int:
    """``dalfleet deploy NAME TASK…``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    with _client(args) as client:
        fleet = client.deploy(args.name, " ".join(args.task))
    if args.json:
        output.print_json(_fleet_json(fleet))
    else:
        line(f"✅ Fleet {_q(args.name)} deployed task (recorded in .dal/fleets.json)")
    return EXIT_OK


def cmd_add_from_mold(args: argparse.Namespace) -> int:
    """``dalfleet add-from-mold NAME SRC COUNT [--param K=V …]``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    with _client(args) as client, _progress(args, "spawning") as progress:
        fleet = client.add_from_mold(
            args.name, args.source, args.count, args.param, progress=progress
        )
    if args.json:
        output.print_json(_fleet_json(fleet))
    else:
        line(f"✅ Added {args.count} agent(s) to fleet {_q(args.name)} from mold {args.source}")
    return EXIT_OK


def cmd_add_member(args: argparse.Namespace) -> int:
    """``dalfleet add-member NAME ID``; an existing member changes nothing and gets
    the reference's line too (plus a note on stderr).

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    with _client(args) as client:
        result = client.ensure_member(args.name, args.agent_id)
    if args.json:
        output.print_json(_fleet_json(result.fleet))
        return EXIT_OK
    line(f"✅ Added agent {args.agent_id} to fleet {_q(args.name)}")
    if not result.added:
        output.warning_line(
            f"note: agent {result.agent_id} was already a member of fleet {_q(args.name)};"
            " nothing changed"
        )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """``dalfleet run [NAME] [--handler MOD:FN …]``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    options = _given(args, concurrency="concurrency", timeout="timeout")
    label = "running" if args.handler is not None else "dispatching"
    with _client(args) as client, _progress(args, label) as progress:
        reports = client.run(args.name, handler=args.handler, progress=progress, **options)
    failed = any(not report.ok for report in reports)
    if args.json:
        output.print_json(reports)
        return EXIT_ERROR if failed else EXIT_OK
    if not reports:
        line(NO_RUNS)
        return EXIT_OK
    for report in reports:
        if report.executed:
            _executed_lines(report)
            continue
        line(f"Fleet {_q(report.fleet_name)}: dispatched to {report.members_dispatched} member(s)")
        for error in report.errors:
            output.warning_line(f"  ⚠ {output.one_line(error, limit=500)}")
        waiting = report.already_pending
        if waiting:
            output.warning_line(
                f"note: {waiting} task(s) were already pending for fleet {_q(report.fleet_name)}"
                f" (each run queues one more per member; execute them with: {PROG} worker "
                f"{report.fleet_name} --handler MOD:FN)"
            )
    return EXIT_ERROR if failed else EXIT_OK


def _executed_lines(report: RunReport) -> None:
    ok = sum(1 for outcome in report.outcomes if outcome.ok)
    elapsed = max(0.0, report.finished_at - report.started_at)
    line(
        f"Fleet {_q(report.fleet_name)}: {ok} ok, {len(report.outcomes) - ok} failed "
        f"in {elapsed:.2f}s"
    )
    for error in report.errors:
        line(f"  {output.one_line(error, limit=500)}")


def cmd_health(args: argparse.Namespace) -> int:
    """``dalfleet health NAME``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    with _client(args) as client:
        health = client.health(args.name)
    if args.json:
        output.print_json(health)
        return EXIT_OK
    line(f"Fleet: {health.name}")
    line(f"  Members: {health.member_count}")
    line(f"  Has mold: {'true' if health.has_mold else 'false'}")
    if health.last_deployed_task is not None:
        line(f"  Last deployed: {health.last_deployed_task}")
    if health.last_deployed_at is not None:
        line(f"  Deployed at: {health.last_deployed_at}")
    line(f"  Status: {output.text_of(health.status)}")
    # Ours, after the reference's lines.
    stamp = output.iso_time(health.last_deployed_at)
    if stamp is not None:
        line(f"  Deployed at (UTC): {stamp}")
    line(
        f"  Alive: {health.alive_count}/{health.member_count}"
        f"  Pending tasks: {health.pending_tasks}  Running tasks: {health.running_tasks}"
        f"  Completed tasks: {health.completed_tasks}  Failed tasks: {health.failed_tasks}"
    )
    for member in health.members:
        if output.text_of(member.state) != "alive":
            line(f"    {member.agent_id}: {output.text_of(member.state)}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """``dalfleet export [NAME] [--format …] [-o FILE] …``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    from dalfleet.errors import StoreError
    from dalfleet.export import parse_format

    options = _given(
        args,
        image="image",
        namespace="namespace",
        workload="workload",
        handler="handler",
        url_secret="url_secret",
        replicas="replicas",
    )
    if args.label is not None:
        options["labels"] = dict(args.label)
    with _client(args) as client:
        text = client.export(args.name, args.format, **options)
    fmt = parse_format(args.format).value
    if args.output is not None:
        try:
            output.write_text(Path(args.output), text if text.endswith("\n") else text + "\n")
        except OSError as exc:
            raise StoreError(str(exc)) from None
    if args.json:
        import yaml

        document: dict[str, Any] = {
            "format": fmt,
            "documents": [doc for doc in yaml.safe_load_all(text) if doc is not None],
        }
        if args.output is not None:
            document["output"] = args.output
        output.print_json(document)
    elif args.output is not None:
        what = f"fleet {_q(args.name)}" if args.name is not None else "all fleets"
        line(f"Exported {what} as {fmt} to {args.output}")
    else:
        output.print_text(text)
    return EXIT_OK


# -- ours: execution, rollout ------------------------------------------------------------


def _outcome_line(outcome: MemberOutcome) -> str:
    if outcome.ok:
        return f"{outcome.agent_id}: ok"
    detail = output.one_line(outcome.error or output.text_of(outcome.status), limit=500)
    return f"{outcome.agent_id}: error: {detail}"


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT / SIGTERM; a second SIGINT interrupts at once."""
    import signal
    import threading

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


def cmd_worker(args: argparse.Namespace) -> int:
    """``dalfleet worker NAME --handler MOD:FN [--once] …``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    import threading

    options = _given(
        args,
        concurrency="concurrency",
        timeout="timeout",
        poll_interval="poll",
        max_tasks="max_tasks",
        lease="lease",
    )
    lock = threading.Lock()

    def report(outcome: MemberOutcome) -> None:
        with lock:
            line(_outcome_line(outcome))
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
        output.print_json(stats)
    else:
        line(
            f"Worker for fleet {_q(stats.fleet_name)}: executed {stats.executed} "
            f"({stats.succeeded} ok, {stats.failed} failed, {stats.released} released)"
        )
    # --once is a batch: like run, it fails if a task failed. A long-lived worker that
    # was stopped on purpose exits 0.
    return EXIT_ERROR if args.once and stats.failed else EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    """``dalfleet history NAME``: revisions with ISO-8601 UTC times.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    with _client(args) as client:
        revisions = client.history(args.name)
    if args.json:
        output.print_json(list(revisions))
        return EXIT_OK
    if not revisions:
        line(f"No deployments recorded for fleet {_q(args.name)}")
        return EXIT_OK
    line(f"History of fleet {_q(args.name)}:")
    for revision in revisions:
        when = output.iso_time(revision.deployed_at) or revision.deployed_at
        line(f"  #{revision.revision}  {when}  {output.one_line(revision.task)}")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    """``dalfleet rollback NAME [--to N]``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    with _client(args) as client:
        fleet = client.rollback(args.name, to_revision=args.to)
        revisions = [] if args.json else client.history(args.name)
    if args.json:
        output.print_json(_fleet_json(fleet))
    else:
        latest = revisions[-1].revision if revisions else 0
        task = output.one_line(fleet.last_deployed_task or "")
        line(f"Fleet {_q(fleet.name)} rolled back: revision {latest} redeploys {task}")
    return EXIT_OK


def cmd_apply(args: argparse.Namespace) -> int:
    """``dalfleet apply -f FILE [--dry-run] [--prune]``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    from dalfleet.manifest import load_manifest, parse_manifest

    if args.filename == "-":
        specs = parse_manifest(sys.stdin.read())
    else:
        specs = load_manifest(args.filename)
    with _client(args) as client, _progress(args, "spawning") as progress:
        changes = client.apply(specs, dry_run=args.dry_run, prune=args.prune, progress=progress)
    if args.json:
        output.print_json(
            {
                "dry_run": args.dry_run,
                "changes": [
                    {"action": output.text_of(c.action), "fleet": c.fleet, "detail": c.detail}
                    for c in changes
                ],
            }
        )
        return EXIT_OK
    for change in changes:
        line(f"{change.symbol} {change.fleet}: {change.detail}")
    done = sum(1 for c in changes if output.text_of(c.action) != "warn")
    if args.dry_run:
        line(f"{done} change(s) planned (dry run: nothing changed)")
    else:
        line(f"{done} change(s) applied" if done else "No changes: the fleets match the manifest")
    return EXIT_OK


def cmd_shift(args: argparse.Namespace) -> int:
    """``dalfleet shift FROM TO [--count N] [--task TASK]``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    with _client(args) as client, _progress(args, "spawning") as progress:
        source, target = client.shift(
            args.source, args.target, args.count, task=args.task, progress=progress
        )
    if args.json:
        output.print_json({"from": _fleet_json(source), "to": _fleet_json(target)})
    else:
        line(
            f"Shifted to fleet {_q(target.name)}: {_q(source.name)} now has "
            f"{plural(len(source.member_ids), 'member')}, {_q(target.name)} has "
            f"{plural(len(target.member_ids), 'member')}"
        )
    return EXIT_OK


# -- molds, tasks, init ---------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    """``dalfleet init``: write the sample mold and manifest; never overwrites.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    from dalfleet.cli.scaffold import write_samples

    written = write_samples(_base(args))
    if args.json:
        output.print_json({"written": [str(path) for path in written]})
        return EXIT_OK
    for path in written:
        line(f"✅ Created {path}")
    if not written:
        line("Already initialized: mold/worker.mold.dal and fleets.yaml hold the samples")
    line(f"Next: {PROG} create workers --from-mold worker --count 2")
    return EXIT_OK


def cmd_mold_list(args: argparse.Namespace) -> int:
    """``dalfleet mold list``: local molds in the reference's order.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    from dalfleet.mold import list_local_molds

    paths = list_local_molds(_base(args).absolute())
    if args.json:
        output.print_json([{"file": path.name, "path": str(path)} for path in paths])
        return EXIT_OK
    if not paths:
        line(NO_MOLDS)
        return EXIT_OK
    line("Local molds:")
    for path in paths:
        line(f"  {path.name}  {path}")
    return EXIT_OK


def cmd_mold_show(args: argparse.Namespace) -> int:
    """``dalfleet mold show SRC``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    from dalfleet.mold import load_mold

    mold = load_mold(args.source, _base(args))
    if args.json:
        output.print_json(mold)
        return EXIT_OK

    def flag(value: bool) -> str:
        return "true" if value else "false"

    line(f"Mold: {mold.name} (version {mold.version})")
    line(f"  Path: {mold.path or ''}")
    line(f"  Agent type: {mold.agent_type}")
    line(f"  Role: {mold.role}")
    line(f"  Capabilities: {', '.join(mold.capabilities)}")
    line(f"  Trust level: {mold.trust_level or ''}")
    line(f"  Memory limit: {mold.memory_limit or ''}")
    line(
        f"  Learning: {flag(mold.learning)}  Communication: {flag(mold.communication)}"
        f"  Coordination: {flag(mold.coordination)}"
    )
    # Ours, after the reference's lines.
    line(f"  Skills: {', '.join(mold.skills) or UNSET}")
    line(f"  Lifecycle hooks: {', '.join(mold.lifecycle) or UNSET}")
    return EXIT_OK


def cmd_mold_validate(args: argparse.Namespace) -> int:
    """``dalfleet mold validate FILE…``: exit 1 if any file is not a valid mold.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    from dalfleet.errors import FleetError
    from dalfleet.mold import validate_mold

    results: list[dict[str, Any]] = []
    for name in args.files:
        try:
            mold = validate_mold(name, strict=args.strict)
        except FleetError as exc:
            results.append({"file": name, "ok": False, "error": str(exc)})
            if not args.json:
                output.error_line(str(exc))
        else:
            results.append({"file": name, "ok": True, "name": mold.name, "version": mold.version})
            if not args.json:
                line(f"{name}: ok (mold {mold.name} {mold.version})")
    if args.json:
        output.print_json(results)
    return EXIT_OK if all(r["ok"] for r in results) else EXIT_ERROR


def cmd_mold_create(args: argparse.Namespace) -> int:
    """``dalfleet mold create NAME``: a template ``NAME.mold.dal``; never overwrites.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    from dalfleet.errors import InvalidArgumentError
    from dalfleet.errors import quote as show_value
    from dalfleet.mold import scaffold_mold
    from dalfleet.rules import NAME_PATTERN

    # The command line's rule is the fleet-name rule: a name that cannot leave the
    # project or start with '-' (the library only refuses what cannot name a file).
    if not NAME_PATTERN.fullmatch(args.name):
        raise InvalidArgumentError(
            f"invalid mold name {show_value(args.name)}: use 1-63 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    path = scaffold_mold(args.name, _base(args).absolute())
    if args.json:
        output.print_json({"written": [str(path)]})
    else:
        line(f"✅ Created mold template: {path}")
    return EXIT_OK


def cmd_task_list(args: argparse.Namespace) -> int:
    """``dalfleet task list AGENT_ID``: the agent's pending tasks, as the reference's
    ``dal agent task list``.

    Raises:
        FleetError: what the library raised (printed by ``main`` as one line).
    """
    from dalfleet.errors import CoordinatorError

    with _client(args) as client:
        lister = getattr(client.coordinator, "tasks", None)
        if callable(lister):
            tasks = [task for task in lister(args.agent_id) if _is_pending(task)]
        else:
            # Coordinators without a task listing can still say "none pending".
            status = client.coordinator.status([args.agent_id]).get(args.agent_id)
            if status is not None and status.pending_tasks:
                raise CoordinatorError(
                    f"this coordinator cannot list an agent's tasks "
                    f"({status.pending_tasks} pending for {args.agent_id})"
                )
            tasks = []
    if args.json:
        output.print_json({"agent_id": args.agent_id, "pending": tasks})
        return EXIT_OK
    if not tasks:
        line(f"📋 No pending tasks for {args.agent_id}")
        return EXIT_OK
    line(f"📋 Pending tasks for {args.agent_id} ({len(tasks)}):")
    line()
    for index, record in enumerate(tasks, start=1):
        # A coordinator's task record holds the Task (ID, priority, description).
        task = getattr(record, "task", record)
        task_id = getattr(task, "task_id", "")
        priority = getattr(task, "priority", "medium")
        description = getattr(task, "description", "")
        line(f"   {index}. {task_id} | {priority} | {description}")
    return EXIT_OK


def _is_pending(task: object) -> bool:
    state = getattr(task, "state", None) or getattr(task, "status", None)
    if state is None:
        return True
    return str(getattr(state, "value", state)).lower() in {"pending", "queued"}
