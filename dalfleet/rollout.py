"""Rollout beyond the reference: deployment history, rollback, apply and shift.

* :func:`history` / :func:`rollback`: every ``deploy`` is a numbered revision;
  rollback redeploys an earlier revision's task as a new revision.
* :func:`plan` / :func:`apply`: make the fleets match a manifest
  (:mod:`dalfleet.manifest` parses it into :class:`FleetSpec` values).
* :func:`shift`: blue/green, move size from one fleet to another.

Each function takes the :class:`~dalfleet.client.Client` to act through and is
built from the client's own operations; ``Client`` has thin methods delegating here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from dalfleet.errors import InvalidArgumentError, fleet_exists, fleet_not_found, quote
from dalfleet.models import FrozenDict, Revision, StatusEnum, freeze_params, with_deployment
from dalfleet.rules import check_existing_name, check_name, check_revision, check_size, check_task

if TYPE_CHECKING:
    from dalfleet.client import Client, Progress
    from dalfleet.models import Fleet

__all__ = [
    "Change",
    "ChangeKind",
    "FleetSpec",
    "apply",
    "history",
    "plan",
    "rollback",
    "shift",
    "with_deployment",
]


class ChangeKind(StatusEnum):
    """What one step of a plan does."""

    CREATE = "create"
    SCALE = "scale"
    DEPLOY = "deploy"
    DELETE = "delete"
    #: A difference that apply reports but does not change.
    WARN = "warn"


_SYMBOLS = {ChangeKind.CREATE: "+", ChangeKind.DELETE: "-", ChangeKind.WARN: "!"}


@attrs.frozen
class FleetSpec:
    """What one fleet should be (one entry of a manifest); ``None`` fields are
    left as they are."""

    name: str
    mold: str | None = None
    count: int | None = None
    params: FrozenDict[str, str] | None = attrs.field(default=None, converter=freeze_params)
    task: str | None = None


@attrs.frozen
class Change:
    """One step of a plan.

    ``action`` is a :class:`ChangeKind` (``create``, ``scale``, ``deploy``,
    ``delete`` or ``warn``); ``detail`` is the human summary.
    """

    action: ChangeKind = attrs.field(converter=ChangeKind)
    fleet: str
    detail: str
    mold: str | None = None
    count: int | None = None
    params: FrozenDict[str, str] | None = attrs.field(default=None, converter=freeze_params)
    task: str | None = None

    @property
    def symbol(self) -> str:
        """``+`` create, ``~`` change, ``-`` delete, ``!`` warning (as in a diff)."""
        return _SYMBOLS.get(self.action, "~")


# -- history and rollback ----------------------------------------------------------------


def history(client: Client, name: str) -> tuple[Revision, ...]:
    """The fleet's deployment revisions, oldest first.

    Raises:
        FleetNotFoundError: the fleet does not exist.
        StoreError: the store cannot be read.
    """
    return client.get(name).history


def _rollback_target(fleet: Fleet, to_revision: int | None) -> Revision:
    if to_revision is None:
        if len(fleet.history) < 2:
            raise InvalidArgumentError(
                f"fleet {quote(fleet.name)} has no previous revision to roll back to"
            )
        return fleet.history[-2]
    for revision in fleet.history:
        if revision.revision == to_revision:
            return revision
    known = ", ".join(str(r.revision) for r in fleet.history) or "none"
    raise InvalidArgumentError(
        f"fleet {quote(fleet.name)} has no revision {to_revision} (known: {known})"
    )


def rollback(client: Client, name: str, *, to_revision: int | None = None) -> Fleet:
    """Redeploy the previous revision's task (or revision ``to_revision``'s); the
    rollback is itself recorded as a new revision.

    Raises:
        FleetNotFoundError: the fleet does not exist.
        InvalidArgumentError: ``to_revision`` is not a whole number; there is no
            previous revision, or no such revision.
        StoreError: the store cannot be read or written.
    """
    check_existing_name(name)
    wanted = check_revision(to_revision)
    _rollback_target(client.get(name), wanted)  # checked before the lock
    with client.store.transaction() as fleets:
        current = fleets.get(name)
        if current is None:
            raise fleet_not_found(name, fleets)
        fleet = with_deployment(current, _rollback_target(current, wanted).task)
        fleets[name] = fleet
    return fleet


# -- plan and apply ------------------------------------------------------------------------


def _fail(where: str, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"invalid manifest: {where}: {why}")


def plan(
    specs: Sequence[FleetSpec], current: Mapping[str, Fleet], *, prune: bool = False
) -> list[Change]:
    """The changes that make ``current`` match ``specs``, in the order to apply them.

    New fleets are created (from the mold with ``count`` agents, or empty; with a
    mold and ``count: 0``, empty but with the mold recorded for later growth); existing
    ones are scaled to ``count`` and get ``task`` deployed when it differs. A mold
    or params that differ from an existing fleet's are reported as warnings, not
    changed. With ``prune`` fleets absent from the manifest are deleted (and torn
    down).

    Raises:
        InvalidArgumentError: a new fleet's name is not valid; a new fleet has a
            count but no mold; an existing fleet must grow but has no mold.
    """
    changes: list[Change] = []
    for spec in specs:
        where = f"fleet {quote(spec.name)}"
        fleet = current.get(spec.name)
        if fleet is None:
            check_name(spec.name)
            if spec.mold is not None:
                count = 1 if spec.count is None else spec.count
                # count 0: an empty fleet that remembers its mold (the green side
                # of a blue/green pair, grown later by scale or shift).
                detail = (
                    f"create with {count} agents from mold {spec.mold}"
                    if count
                    else f"create (empty) with mold {spec.mold}"
                )
                changes.append(
                    Change(
                        ChangeKind.CREATE,
                        spec.name,
                        detail,
                        mold=spec.mold,
                        count=count,
                        params=spec.params,
                    )
                )
            elif spec.count:
                raise _fail(where, "count needs a mold for a new fleet")
            else:
                changes.append(Change(ChangeKind.CREATE, spec.name, "create (empty)"))
            if spec.task is not None:
                changes.append(
                    Change(
                        ChangeKind.DEPLOY, spec.name, f"deploy {quote(spec.task)}", task=spec.task
                    )
                )
            continue
        have = len(fleet.member_ids)
        if spec.mold is not None and fleet.mold_source not in (None, spec.mold):
            changes.append(
                Change(
                    ChangeKind.WARN,
                    spec.name,
                    f"mold {spec.mold} differs from the fleet's {fleet.mold_source}; "
                    "new members still come from the fleet's mold",
                )
            )
        if spec.params is not None and fleet.last_create_params not in (None, spec.params):
            changes.append(
                Change(
                    ChangeKind.WARN,
                    spec.name,
                    "params differ from the fleet's and are not changed",
                )
            )
        if spec.count is not None and spec.count != have:
            mold = fleet.mold_source or spec.mold
            if spec.count > have and mold is None:
                raise _fail(where, f"cannot grow to {spec.count}: it has no mold (add 'mold')")
            changes.append(
                Change(
                    ChangeKind.SCALE,
                    spec.name,
                    f"scale {have} -> {spec.count}",
                    mold=mold if fleet.mold_source is None else None,
                    count=spec.count,
                    params=spec.params,
                )
            )
        if spec.task is not None and spec.task != fleet.last_deployed_task:
            old = "nothing" if fleet.last_deployed_task is None else quote(fleet.last_deployed_task)
            changes.append(
                Change(
                    ChangeKind.DEPLOY,
                    spec.name,
                    f"deploy {quote(spec.task)} (was {old})",
                    task=spec.task,
                )
            )
    if prune:
        wanted = {spec.name for spec in specs}
        for name in sorted(current):
            if name not in wanted:
                size = len(current[name].member_ids)
                changes.append(
                    Change(ChangeKind.DELETE, name, f"delete and tear down {size} agents")
                )
    return changes


def apply(
    client: Client,
    manifest: str | Mapping[str, Any] | Sequence[FleetSpec],
    *,
    dry_run: bool = False,
    prune: bool = False,
    progress: Progress | None = None,
) -> list[Change]:
    """Make the fleets match a manifest (YAML text, a mapping, or parsed specs).

    Creates, scales and deploys as :func:`plan` says, and returns the changes
    (with ``dry_run`` nothing is changed). Everything is checked first — the
    manifest, names, counts, tasks, params and that every mold resolves — so bad
    input changes nothing. A failure while applying leaves the steps before it
    applied, as ``kubectl apply`` does.

    Raises:
        InvalidArgumentError: the manifest is not valid or cannot be applied.
        MoldError / MoldNotFoundError: a mold does not resolve or parse.
        CoordinatorError / StoreError: as for create_from_mold and scale.
    """
    if isinstance(manifest, (str, Mapping)):
        from dalfleet.manifest import parse_manifest

        specs = parse_manifest(manifest)
    else:
        specs = list(manifest)
    changes = plan(specs, client.fleets(), prune=prune)
    for change in changes:
        if change.mold is not None:
            client.load_mold(change.mold, confine=True)
    if dry_run:
        return changes
    for change in changes:
        _apply_one(client, change, progress)
    return changes


def _apply_one(client: Client, change: Change, progress: Progress | None) -> None:
    if change.action is ChangeKind.CREATE:
        if change.mold is None:
            client.create(change.fleet)
        elif change.count == 0:
            _create_with_mold_only(client, change.fleet, change.mold, change.params)
        else:
            assert change.count is not None
            client.create_from_mold(
                change.fleet, change.mold, change.count, change.params, progress=progress
            )
    elif change.action is ChangeKind.SCALE:
        assert change.count is not None
        have = len(client.get(change.fleet).member_ids)
        if change.mold is not None and change.count > have:
            client.add_from_mold(
                change.fleet, change.mold, change.count - have, change.params, progress=progress
            )
        else:
            client.scale(change.fleet, change.count, progress=progress)
    elif change.action is ChangeKind.DEPLOY:
        assert change.task is not None
        client.deploy(change.fleet, change.task)
    elif change.action is ChangeKind.DELETE:
        client.delete(change.fleet, teardown=True)


def _create_with_mold_only(
    client: Client, name: str, mold: str, params: FrozenDict[str, str] | None
) -> None:
    """Create ``name`` with no members, ``mold`` (already resolved by the caller) as its
    ``mold_source`` and ``params`` as its ``last_create_params``."""
    from dalfleet.models import Fleet

    check_name(name)
    with client.store.transaction() as fleets:
        if name in fleets:
            raise fleet_exists(name)
        fleets[name] = Fleet(name=name, mold_source=mold, last_create_params=params)


# -- shift -----------------------------------------------------------------------------------


def shift(
    client: Client,
    source: str,
    target: str,
    count: int | None = None,
    *,
    task: str | None = None,
    progress: Progress | None = None,
) -> tuple[Fleet, Fleet]:
    """Blue/green: move ``count`` members' worth of size (default: all) from
    ``source`` to ``target``, deploying ``task`` to ``target`` first if given.

    The target grows (from its mold) before the source shrinks, so capacity never
    drops below the start; the source's removed members are terminated. Returns
    ``(source, target)`` as they are after the shift.

    Raises:
        FleetNotFoundError: either fleet does not exist.
        InvalidArgumentError: the fleets are the same, the source has no members,
            ``count`` is not between 1 and the source's size, the target has no
            mold, the target would exceed the cap, or the task is not valid.
        MoldError / CoordinatorError / StoreError: as for scale.
    """
    check_existing_name(source)
    check_existing_name(target)
    if source == target:
        raise InvalidArgumentError("shift needs two different fleets")
    text = check_task(task) if task is not None else None
    src, dst = client.get(source), client.get(target)
    have = len(src.member_ids)
    if not have:
        raise InvalidArgumentError(
            f"fleet {quote(source)} has no members to shift "
            "(scale it up first, or shift from a fleet that has members)"
        )
    n = have if count is None else check_size(count, client.max_count)
    if not 1 <= n <= have:
        raise InvalidArgumentError(
            f"shift count must be between 1 and {have} (the size of fleet {quote(source)}), got {n}"
        )
    grown = len(dst.member_ids) + n
    check_size(grown, client.max_count)
    client.mold_for_scale_up(dst)
    if text is not None:
        client.deploy(target, text)
    dst = client.scale(target, grown, progress=progress)
    src = client.scale(source, have - n)
    return src, dst
