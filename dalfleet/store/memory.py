"""An in-memory store for tests and notebooks (the httpx MockTransport of dalfleet)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dalfleet.models import Fleet

__all__ = ["MemoryStore"]


class MemoryStore:
    """Fleets held in a dict, guarded by a lock; nothing touches the disk."""

    def __init__(self, fleets: dict[str, Fleet] | None = None) -> None:
        self._fleets: dict[str, Fleet] = dict(fleets or {})
        self._lock = threading.RLock()

    @property
    def location(self) -> str:
        """Always ``<memory>``."""
        return "<memory>"

    def load(self) -> dict[str, Fleet]:
        """A snapshot of every fleet. Never raises."""
        with self._lock:
            return dict(self._fleets)

    @contextmanager
    def transaction(self) -> Iterator[dict[str, Fleet]]:
        """Exclusive read-modify-write; changes land only if the block succeeds.

        Raises nothing itself; an exception from the block propagates unchanged.
        """
        with self._lock:
            working = dict(self._fleets)
            yield working
            self._fleets = working
