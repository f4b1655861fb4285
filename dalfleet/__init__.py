"""dalfleet: run fleets of agents.

Create a fleet from an agent template (a mold), scale it, record a task, run it
on every member, check health, and export to Kubernetes or Docker Compose::

    import dalfleet.fleet as fleet
    fleet.create_from_mold("workers", "worker", count=2)
"""

from dalfleet._version import __version__
from dalfleet.client import Client, MoldSource, Params, Progress, WorkStats
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
    Agent,
    AgentSpec,
    AgentState,
    ExportFormat,
    Fleet,
    FleetHealth,
    FrozenDict,
    HealthStatus,
    MemberHealth,
    MemberOutcome,
    OutcomeStatus,
    Revision,
    RunReport,
    Task,
)
from dalfleet.rollout import Change, ChangeKind, FleetSpec

__all__ = [
    "Change",
    "ChangeKind",
    "FleetSpec",
    "FrozenDict",
    "HealthStatus",
    "MoldSource",
    "MoldSourceError",
    "OutcomeStatus",
    "Params",
    "Progress",
    "WorkStats",
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
