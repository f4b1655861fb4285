"""Where fleets are kept: the :class:`Store` protocol and its implementations.

The names are imported from their modules on first use (PEP 562): reading the
fleet file (``dalfleet list``) loads neither the models nor the converter.
"""

from __future__ import annotations

from dalfleet import _lazy

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

__getattr__, __dir__ = _lazy.attach(__name__, _LAZY)
