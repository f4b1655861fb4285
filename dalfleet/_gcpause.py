"""Pausing Python's cyclic garbage collector while a large batch of records is built.

Building a million small container objects (a health report of a 1M-member fleet:
one status and one member record each) triggers hundreds of collections, and each
full collection walks every object built so far: at 1M members the collector took
over a third of the time. Such records hold no reference cycles, so nothing is
lost by collecting once afterwards (as the collector then does on its own).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["gc_paused"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block; re-enable it after if it was on.

    Nested or concurrent uses are safe: only the use that found it enabled turns it
    back on (at worst a collection runs early). Never raises of its own.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
