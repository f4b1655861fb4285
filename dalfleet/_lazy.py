"""Public names imported from their modules on first use (PEP 562), for the
packages whose ``import`` must stay cheap (``dalfleet``, ``dalfleet.store``,
``dalfleet.coordinator``, ``dalfleet.mold``): ``dalfleet --version`` and
``dalfleet list`` load no SQLite, asyncio or YAML.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def attach(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose public names live in
    the modules ``homes`` maps them to. A name is imported on first access and then
    kept in the package, so later lookups are plain attribute reads. Never raises.
    """

    def __getattr__(name: str) -> object:
        """Import a public name from its module on first use, then keep it.

        Raises:
            AttributeError: ``name`` is not a public name of the package.
        """
        module = homes.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(homes))

    return __getattr__, __dir__
