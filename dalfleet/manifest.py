"""Declarative fleets: a YAML manifest and the plan that makes the store match it.

A manifest names fleets and what each should be::

    fleets:
      workers:
        mold: mold/worker.mold.dal   # optional: the mold new members come from
        count: 3                     # optional: the size to scale to
        params: {env: prod}          # optional: create-time params (new fleets)
        task: Process daily logs     # optional: the task to deploy

(A list of objects with a ``name`` key is accepted too.) :func:`plan` compares
it with the current fleets and returns the changes, in order; the client
applies them (``Client.apply``) or, with ``dry_run``, only reports them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from dalfleet.errors import InvalidArgumentError
from dalfleet.models import Fleet
from dalfleet.mold import parse_params
from dalfleet.validate import show_value, validate_name, validate_size, validate_task

__all__ = ["Change", "FleetSpec", "load_manifest", "parse_manifest", "plan"]

_FLEET_KEYS = {"name", "mold", "count", "params", "task"}
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# Nodes that YAML aliases may add on top of the document's own: a shared
# ``params`` block is fine, a billion-laughs document is refused while it is read.
MAX_ALIAS_NODES = 10_000


@functools.cache
def _loader() -> Any:
    """The manifest's YAML loader: safe tags only, bounded aliases, no key given twice."""
    import yaml
    from yaml.composer import ComposerError
    from yaml.constructor import ConstructorError
    from yaml.nodes import MappingNode, Node, ScalarNode

    class ManifestLoader(yaml.SafeLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.expanded = 0  # nodes aliases would add if expanded
            self.counted = 0  # nodes composed so far (the document's own)
            self.sizes: dict[int, int] = {}

        def compose_node(self, parent: Node | None, index: int) -> Node | None:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                node = super().compose_node(parent, index)
                # An anchor still being composed (a recursive alias) adds no copy.
                self.expanded += self.sizes.get(id(node), 1)
                if self.expanded > MAX_ALIAS_NODES:
                    raise ComposerError(
                        None,
                        None,
                        f"aliases expand the manifest by more than {MAX_ALIAS_NODES} nodes",
                        mark,
                    )
                return node
            before = self.counted + self.expanded
            node = super().compose_node(parent, index)
            self.counted += 1
            self.sizes[id(node)] = self.counted + self.expanded - before
            return node

        def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = self.construct_object(key_node)
                try:
                    if key in seen:
                        raise ConstructorError(
                            None, None, f"key {show_value(key)} given twice", key_node.start_mark
                        )
                    seen.add(key)
                except TypeError:  # an unhashable key: the constructor reports it
                    pass
            return super().construct_mapping(node, deep=deep)

    return ManifestLoader


def _load_yaml(text: str) -> Any:
    """Parse one YAML document with the manifest loader.

    Raises:
        InvalidArgumentError: too large, not valid YAML, an alias bomb, or a key
            given twice in a mapping; the message says where.
    """
    import yaml

    if len(text) > MAX_MANIFEST_BYTES:
        raise InvalidArgumentError("invalid manifest: larger than 4 MiB")
    loader = _loader()(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise InvalidArgumentError(f"invalid manifest: {problem}{at}") from None
    except RecursionError:
        raise InvalidArgumentError("invalid manifest: nested too deeply") from None
    finally:
        loader.dispose()


@attrs.frozen
class FleetSpec:
    """What one fleet should be; ``None`` fields are left as they are."""

    name: str
    mold: str | None = None
    count: int | None = None
    params: dict[str, str] | None = None
    task: str | None = None


@attrs.frozen
class Change:
    """One step of a plan.

    ``action`` is ``create``, ``scale``, ``deploy``, ``delete`` or ``warn`` (a
    difference that apply does not change); ``detail`` is the human summary.
    """

    action: str
    fleet: str
    detail: str
    mold: str | None = None
    count: int | None = None
    params: dict[str, str] | None = None
    task: str | None = None

    @property
    def symbol(self) -> str:
        """``+`` create, ``~`` change, ``-`` delete, ``!`` warning (as in a diff)."""
        return {"create": "+", "delete": "-", "warn": "!"}.get(self.action, "~")


def _fail(where: str, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"invalid manifest: {where}: {why}")


def _spec(name: object, body: object, where: str) -> FleetSpec:
    if not isinstance(name, str):
        raise _fail(where, "the fleet name must be a string")
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        raise _fail(where, f"expected a mapping of {', '.join(sorted(_FLEET_KEYS - {'name'}))}")
    unknown = sorted(str(k) for k in body if k not in _FLEET_KEYS)
    if unknown:
        raise _fail(
            where, f"unknown key {show_value(unknown[0])} (known: mold, count, params, task)"
        )
    mold = body.get("mold")
    if mold is not None and (not isinstance(mold, str) or not mold.strip()):
        raise _fail(where, "mold must be a non-empty string")
    count = body.get("count")
    if count is not None:
        try:
            count = validate_size(count)
        except InvalidArgumentError as exc:
            raise _fail(where, str(exc)) from None
    params_raw = body.get("params")
    try:
        params = parse_params(params_raw) if params_raw is not None else None
        task = validate_task(body["task"]) if body.get("task") is not None else None
    except InvalidArgumentError as exc:
        raise _fail(where, str(exc)) from None
    return FleetSpec(name=name, mold=mold, count=count, params=params, task=task)


def parse_manifest(document: str | Mapping[str, Any]) -> list[FleetSpec]:
    """The fleet specs of a manifest (YAML text or an already-loaded mapping).

    Raises:
        InvalidArgumentError: the YAML does not parse, or the document is not a
            manifest (unknown keys, wrong types, bad counts, tasks or params,
            a fleet named twice). The message says where.
    """
    if isinstance(document, str):
        data: Any = _load_yaml(document)
    else:
        data = document
    if not isinstance(data, Mapping) or set(data) != {"fleets"}:
        raise InvalidArgumentError("invalid manifest: expected one top-level key, 'fleets'")
    fleets = data["fleets"]
    specs: list[FleetSpec] = []
    if isinstance(fleets, Mapping):
        for name, body in fleets.items():
            specs.append(_spec(name, body, f"fleet {show_value(name)}"))
    elif isinstance(fleets, Sequence) and not isinstance(fleets, str):
        for index, body in enumerate(fleets):
            if not isinstance(body, Mapping) or "name" not in body:
                raise _fail(f"fleets[{index}]", "expected a mapping with a 'name'")
            specs.append(_spec(body["name"], body, f"fleets[{index}]"))
    else:
        raise InvalidArgumentError("invalid manifest: 'fleets' must be a mapping or a list")
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise _fail(f"fleet {show_value(spec.name)}", "named twice")
        seen.add(spec.name)
    return specs


def load_manifest(path: str | os.PathLike[str]) -> list[FleetSpec]:
    """Read and parse a manifest file (UTF-8, at most 4 MiB).

    Raises:
        InvalidArgumentError: the file cannot be read or is not a valid manifest.
    """
    file = Path(path)
    try:
        if file.stat().st_size > MAX_MANIFEST_BYTES:
            raise InvalidArgumentError(f"manifest {file} is larger than 4 MiB")
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidArgumentError(f"manifest {file} is not UTF-8 text") from None
    except IsADirectoryError:
        raise InvalidArgumentError(f"cannot read manifest {file}: it is a directory") from None
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read manifest {file}: {exc.strerror}") from None
    return parse_manifest(text)


def plan(
    specs: Sequence[FleetSpec], current: Mapping[str, Fleet], *, prune: bool = False
) -> list[Change]:
    """The changes that make ``current`` match ``specs``, in the order to apply them.

    New fleets are created (from the mold with ``count`` agents, or empty); existing
    ones are scaled to ``count`` and get ``task`` deployed when it differs. A mold
    or params that differ from an existing fleet's are reported as warnings, not
    changed. With ``prune`` fleets absent from the manifest are deleted (and torn
    down).

    Raises:
        InvalidArgumentError: a new fleet's name is not valid; a new fleet has a
            count but no mold, or a mold and count 0; an existing fleet must grow
            but has no mold.
    """
    changes: list[Change] = []
    for spec in specs:
        fleet = current.get(spec.name)
        if fleet is None:
            validate_name(spec.name)
            if spec.mold is not None:
                count = 1 if spec.count is None else spec.count
                if count < 1:
                    raise _fail(f"fleet {show_value(spec.name)}", "a new fleet needs count >= 1")
                changes.append(
                    Change(
                        "create",
                        spec.name,
                        f"create with {count} agents from mold {spec.mold}",
                        mold=spec.mold,
                        count=count,
                        params=spec.params,
                    )
                )
            elif spec.count:
                raise _fail(f"fleet {show_value(spec.name)}", "count needs a mold for a new fleet")
            else:
                changes.append(Change("create", spec.name, "create (empty)"))
            if spec.task is not None:
                changes.append(
                    Change("deploy", spec.name, f"deploy {show_value(spec.task)}", task=spec.task)
                )
            continue
        have = len(fleet.member_ids)
        if spec.mold is not None and fleet.mold_source not in (None, spec.mold):
            changes.append(
                Change(
                    "warn",
                    spec.name,
                    f"mold {spec.mold} differs from the fleet's {fleet.mold_source}; "
                    "new members still come from the fleet's mold",
                )
            )
        if spec.params is not None and fleet.last_create_params not in (None, spec.params):
            changes.append(
                Change("warn", spec.name, "params differ from the fleet's and are not changed")
            )
        if spec.count is not None and spec.count != have:
            mold = fleet.mold_source or spec.mold
            if spec.count > have and mold is None:
                raise _fail(
                    f"fleet {show_value(spec.name)}",
                    f"cannot grow to {spec.count}: it has no mold (add 'mold')",
                )
            changes.append(
                Change(
                    "scale",
                    spec.name,
                    f"scale {have} -> {spec.count}",
                    mold=mold if fleet.mold_source is None else None,
                    count=spec.count,
                    params=spec.params,
                )
            )
        if spec.task is not None and spec.task != fleet.last_deployed_task:
            old = (
                "nothing"
                if fleet.last_deployed_task is None
                else show_value(fleet.last_deployed_task)
            )
            changes.append(
                Change(
                    "deploy",
                    spec.name,
                    f"deploy {show_value(spec.task)} (was {old})",
                    task=spec.task,
                )
            )
    if prune:
        wanted = {spec.name for spec in specs}
        for name in sorted(current):
            if name not in wanted:
                size = len(current[name].member_ids)
                changes.append(Change("delete", name, f"delete and tear down {size} agents"))
    return changes
