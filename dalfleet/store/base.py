"""The Store protocol: where fleets are persisted.

A store knows fleets and nothing of agents. Reads return snapshots; every change
goes through :meth:`Store.transaction`, which yields a mutable mapping of name →
:class:`~dalfleet.models.Fleet` and persists it only if the block exits without
an exception and something changed.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from dalfleet.models import Fleet

__all__ = ["Store"]


@runtime_checkable
class Store(Protocol):
    """A place fleets live: the JSON fleet file, or memory."""

    @property
    def location(self) -> str:
        """Where the fleets are, for messages (a path, or ``<memory>``)."""
        ...

    def load(self) -> dict[str, Fleet]:
        """A snapshot of every fleet, by name.

        Raises:
            StoreError: the store cannot be read (CorruptStoreError if it does not parse).
        """
        ...

    def transaction(self) -> AbstractContextManager[dict[str, Fleet]]:
        """Exclusive read-modify-write of all fleets.

        Raises:
            StoreError: the store cannot be read, locked or written.
        """
        ...
