"""dalfleet: run fleets of agents.

Create a fleet from an agent template (a mold), scale it, record a task, run it
on every member, check health, and export to Kubernetes or Docker Compose::

    import dalfleet.fleet as fleet
    fleet.create_from_mold("workers", "worker", count=2)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dalfleet.client import Client
    from dalfleet.errors import (
        ArgumentCountError,
        CoordinatorError,
        CorruptStoreError,
        DispatchError,
        FleetError,
        FleetExistsError,
        FleetNotFoundError,
        HandlerError,
        InvalidArgumentError,
        MoldError,
        MoldNotFoundError,
        StoreError,
        UnknownFunctionError,
    )
    from dalfleet.models import (
        Agent,
        AgentSpec,
        AgentState,
        ExportFormat,
        Fleet,
        FleetHealth,
        MemberHealth,
        MemberOutcome,
        Revision,
        RunReport,
        Task,
    )

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentSpec",
    "AgentState",
    "ArgumentCountError",
    "Client",
    "CoordinatorError",
    "CorruptStoreError",
    "DispatchError",
    "ExportFormat",
    "Fleet",
    "FleetError",
    "FleetExistsError",
    "FleetHealth",
    "FleetNotFoundError",
    "HandlerError",
    "InvalidArgumentError",
    "MemberHealth",
    "MemberOutcome",
    "MoldError",
    "MoldNotFoundError",
    "Revision",
    "RunReport",
    "StoreError",
    "Task",
    "UnknownFunctionError",
    "__version__",
]

# Names load on first use (PEP 562), so ``import dalfleet`` - and with it
# ``dalfleet --version`` - does not import the client, SQLite or asyncio.
_HOMES = {"Client": "dalfleet.client"}
_HOMES.update(dict.fromkeys([n for n in __all__ if n.endswith("Error")], "dalfleet.errors"))
_HOMES.update(
    dict.fromkeys([n for n in __all__ if n not in _HOMES and n != "__version__"], "dalfleet.models")
)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dalfleet' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
