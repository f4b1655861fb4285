"""Stores: where fleets are persisted (the JSON fleet file, or memory)."""

from dalfleet.store.base import Store
from dalfleet.store.jsonfile import JsonFileStore, fleet_file_path
from dalfleet.store.memory import MemoryStore

__all__ = ["JsonFileStore", "MemoryStore", "Store", "fleet_file_path"]
