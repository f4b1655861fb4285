"""An in-memory store for tests and notebooks (the httpx MockTransport of dalfleet)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dalfleet.errors import StoreError
from dalfleet.models import Fleet

__all__ = ["MemoryStore"]


class MemoryStore:
    """Fleets held in a dict, guarded by a lock; nothing touches the disk.

    Gives the isolation described in :mod:`dalfleet.store.base`: transactions
    run one at a time and a nested one in the same thread is refused.
    """

    def __init__(self, fleets: dict[str, Fleet] | None = None) -> None:
        self._fleets: dict[str, Fleet] = dict(fleets or {})
        self._lock = threading.Lock()
        self._owner: int | None = None

    @property
    def location(self) -> str:
        """Always ``<memory>``."""
        return "<memory>"

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._fleets)} fleets)"

    def load(self) -> dict[str, Fleet]:
        """A snapshot of every fleet (a new dict). Never raises."""
        # Replacing self._fleets is atomic, so a read needs no lock and never waits.
        return dict(self._fleets)

    @contextmanager
    def transaction(self) -> Iterator[dict[str, Fleet]]:
        """Exclusive read-modify-write; changes land only if the block succeeds.

        Raises:
            StoreError: a transaction on this store is already open in this thread.
        """
        if self._owner == threading.get_ident():
            raise StoreError("a transaction on the memory store is already open in this thread")
        with self._lock:
            self._owner = threading.get_ident()
            try:
                working = dict(self._fleets)
                yield working
                self._fleets = working
            finally:
                self._owner = None

    def close(self) -> None:
        """Nothing to release; the fleets stay. Never raises."""
