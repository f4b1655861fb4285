"""Declarative fleets: a YAML manifest and the plan that makes the store match it.

A manifest names fleets and what each should be::

    fleets:
      workers:
        mold: mold/worker.mold.dal   # optional: the mold new members come from
        count: 3                     # optional: the size to scale to (0: empty,
                                     # but new members come from the mold later)
        params: {env: prod}          # optional: create-time params (new fleets)
        task: Process daily logs     # optional: the task to deploy

(A list of objects with a ``name`` key is accepted too.) The specs are
:class:`~dalfleet.rollout.FleetSpec` values; :func:`dalfleet.rollout.plan`
compares them with the current fleets and :func:`dalfleet.rollout.apply` makes
the changes (or, with ``dry_run``, only reports them).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dalfleet.errors import InvalidArgumentError, quote
from dalfleet.rollout import FleetSpec
from dalfleet.rules import check_size, check_task, parse_params

__all__ = ["load_manifest", "parse_manifest"]

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
                            None, None, f"key {quote(key)} given twice", key_node.start_mark
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
        raise _fail(where, f"unknown key {quote(unknown[0])} (known: mold, count, params, task)")
    mold = body.get("mold")
    if mold is not None and (not isinstance(mold, str) or not mold.strip()):
        raise _fail(where, "mold must be a non-empty string")
    count = body.get("count")
    if count is not None:
        try:
            count = check_size(count)
        except InvalidArgumentError as exc:
            raise _fail(where, str(exc)) from None
    params_raw = body.get("params")
    try:
        params = parse_params(params_raw) if params_raw is not None else None
        task = check_task(body["task"]) if body.get("task") is not None else None
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
            specs.append(_spec(name, body, f"fleet {quote(name)}"))
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
            raise _fail(f"fleet {quote(spec.name)}", "named twice")
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
