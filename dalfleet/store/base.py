"""The Store protocol: where fleets are persisted.

A store knows fleets and nothing of agents. Reads return snapshots; every change
goes through :meth:`Store.transaction`, which yields a mutable mapping of name →
:class:`~dalfleet.models.Fleet` and persists it only if the block exits without
an exception and something changed.

Fleets are immutable values, so a store may hand the same :class:`Fleet` objects
to many callers (and cache them); the mappings it returns are always new.

Every backend gives the same guarantees:

* **Isolation**: transactions on one store are serializable. They run one at a
  time (across threads and, for shared backends, processes); the mapping a
  transaction yields reflects every transaction committed before it, and its
  changes land all at once or not at all.
* **Reads**: :meth:`Store.load` outside a transaction never waits for a writer
  and sees the last committed state, never a partial one.
* **Not re-entrant**: a transaction opened on the same store inside another one
  (in the same thread) is refused with :class:`~dalfleet.errors.StoreError`
  rather than deadlocking or losing the outer transaction's changes.

A store may also offer ``get(name) -> Fleet | None``, one fleet as :meth:`Store.load`
would give it, for a store that can read one without building the others (the
fleet file does); :class:`~dalfleet.client.Client` uses it when present.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from dalfleet.models import Fleet

__all__ = ["Store"]


@runtime_checkable
class Store(Protocol):
    """A place fleets live: the JSON fleet file, memory, or a database."""

    @property
    def location(self) -> str:
        """Where the fleets are, for messages (a path, a URL, or ``<memory>``)."""
        ...

    def load(self) -> dict[str, Fleet]:
        """A snapshot of every fleet, by name (a new dict each call; the caller may
        change it without effect on the store).

        Raises:
            StoreError: the store cannot be read (CorruptStoreError if it does not parse).
        """
        ...

    def transaction(self) -> AbstractContextManager[MutableMapping[str, Fleet]]:
        """Exclusive read-modify-write of all fleets.

        Yields a new mapping of every fleet; assign, replace or delete entries in
        it. When the block exits normally and the mapping differs from what was
        read, the whole mapping is committed atomically; when the block raises,
        nothing is committed and the exception propagates unchanged.

        Raises:
            StoreError: the store cannot be read, locked or written, or a
                transaction on this store is already open in this thread.
        """
        ...

    def close(self) -> None:
        """Release what the store holds open (connections, handles).

        The store stays usable: it reopens on next use. Never raises on the
        built-in stores.
        """
        ...
