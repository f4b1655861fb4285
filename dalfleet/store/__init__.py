"""Where fleets are kept: the :class:`Store` protocol and its implementations.

The names are imported from their modules on first use (PEP 562): reading the
fleet file (``dalfleet list``) loads neither the models nor the converter.
"""

from __future__ import annotations

import importlib

# typing.TYPE_CHECKING without importing typing; type checkers treat it as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from dalfleet.store.base import Store
    from dalfleet.store.jsonfile import JsonFileStore, fleet_file_path
    from dalfleet.store.memory import MemoryStore

# public name -> the module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "Store": "dalfleet.store.base",
    "JsonFileStore": "dalfleet.store.jsonfile",
    "fleet_file_path": "dalfleet.store.jsonfile",
    "MemoryStore": "dalfleet.store.memory",
}

__all__ = ["JsonFileStore", "MemoryStore", "Store", "fleet_file_path"]


def __getattr__(name: str) -> object:
    """Import a public name from its module on first use, then keep it here.

    Raises:
        AttributeError: ``name`` is not a public name of this package.
    """
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
