"""dalfleet: run fleets of agents.

Create a fleet from an agent template (a mold), scale it, record a task, run it
on every member, check health, and export to Kubernetes or Docker Compose::

    import dalfleet.fleet as fleet
    fleet.create_from_mold("workers", "worker", count=2)

``import dalfleet`` loads nothing but this module: the names below are imported
from their modules on first use (PEP 562), so ``dalfleet --version`` and a command
that needs neither SQLite nor asyncio do not pay for them.
"""

from __future__ import annotations

from dalfleet import _lazy
from dalfleet._version import __version__

# typing.TYPE_CHECKING without importing typing (a few ms of every start-up);
# type checkers treat this name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from dalfleet.client import Client, MoldSource, Params, Progress
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
        MoldSourceError,
        StoreError,
        UnknownFunctionError,
    )
    from dalfleet.models import (
        AgentState,
        DisplayList,
        ExportFormat,
        Fleet,
        FrozenDict,
        HealthStatus,
        OutcomeStatus,
        Revision,
    )
    from dalfleet.records import (
        Agent,
        AgentSpec,
        FleetHealth,
        MemberAdded,
        MemberHealth,
        MemberOutcome,
        RunReport,
        Task,
    )
    from dalfleet.rollout import Change, ChangeKind, FleetSpec
    from dalfleet.run import WorkStats

# public name -> the module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    **dict.fromkeys(("Client", "MoldSource", "Params", "Progress"), "dalfleet.client"),
    **dict.fromkeys(
        (
            "ArgumentCountError",
            "CoordinatorError",
            "CorruptStoreError",
            "DispatchError",
            "FleetError",
            "FleetExistsError",
            "FleetNotFoundError",
            "HandlerError",
            "InvalidArgumentError",
            "MoldError",
            "MoldNotFoundError",
            "MoldSourceError",
            "StoreError",
            "UnknownFunctionError",
        ),
        "dalfleet.errors",
    ),
    # dalfleet.models offers the records too (imported from dalfleet.records on first use).
    **dict.fromkeys(
        (
            "Agent",
            "AgentSpec",
            "AgentState",
            "DisplayList",
            "ExportFormat",
            "Fleet",
            "FleetHealth",
            "FrozenDict",
            "HealthStatus",
            "MemberAdded",
            "MemberHealth",
            "MemberOutcome",
            "OutcomeStatus",
            "Revision",
            "RunReport",
            "Task",
        ),
        "dalfleet.models",
    ),
    **dict.fromkeys(("Change", "ChangeKind", "FleetSpec"), "dalfleet.rollout"),
    "WorkStats": "dalfleet.run",
}

__all__ = [
    "Agent",
    "AgentSpec",
    "AgentState",
    "ArgumentCountError",
    "Change",
    "ChangeKind",
    "Client",
    "CoordinatorError",
    "CorruptStoreError",
    "DispatchError",
    "DisplayList",
    "ExportFormat",
    "Fleet",
    "FleetError",
    "FleetExistsError",
    "FleetHealth",
    "FleetNotFoundError",
    "FleetSpec",
    "FrozenDict",
    "HandlerError",
    "HealthStatus",
    "InvalidArgumentError",
    "MemberAdded",
    "MemberHealth",
    "MemberOutcome",
    "MoldError",
    "MoldNotFoundError",
    "MoldSource",
    "MoldSourceError",
    "OutcomeStatus",
    "Params",
    "Progress",
    "Revision",
    "RunReport",
    "StoreError",
    "Task",
    "UnknownFunctionError",
    "WorkStats",
    "__version__",
]

__getattr__, __dir__ = _lazy.attach(__name__, _LAZY)
