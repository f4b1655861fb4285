"""Every default and limit dalfleet uses, in one place.

Modules import these names instead of repeating the literals, so a default can
only ever have one value.
"""

from __future__ import annotations

# typing.TYPE_CHECKING without importing typing (every command imports this module);
# with postponed annotations ``Final`` is never evaluated at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "LOGGER_NAME",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_IMAGE",
    "DEFAULT_LEASE",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_TRUST_LEVEL",
    "DEFAULT_WORKLOAD",
    "HISTORY_LIMIT",
    "MAX_AGENT_ID_CHARS",
    "MAX_COUNT",
    "MAX_NAME_CHARS",
    "MAX_TASK_BYTES",
    "QUOTE_LIMIT",
]

#: Trust level agents run with unless the caller (the principal) says otherwise.
DEFAULT_TRUST_LEVEL: Final = "sandboxed"
#: Container image of exported workloads.
DEFAULT_IMAGE: Final = "dal-agent:latest"
#: Kubernetes workload kind of exported fleets.
DEFAULT_WORKLOAD: Final = "job"
#: The cap on a fleet's size and on agents spawned per call (the reference's).
MAX_COUNT: Final = 1000
#: Seconds a claimed task is leased to a worker before another may take it over.
DEFAULT_LEASE: Final = 30.0
#: Times a task is tried before it is failed for good.
DEFAULT_MAX_ATTEMPTS: Final = 3
#: Handlers running at once in one process.
DEFAULT_CONCURRENCY: Final = 64
#: Seconds an idle worker waits before looking for tasks again.
DEFAULT_POLL_INTERVAL: Final = 0.5
#: Deployment revisions kept per fleet.
HISTORY_LIMIT: Final = 50
#: Tasks travel in env vars, CLI arguments and manifests; 64 KiB is generous for a
#: task description and keeps every one of those places working.
MAX_TASK_BYTES: Final = 64 * 1024
#: Longest fleet name (a DNS label, so exported names stay valid).
MAX_NAME_CHARS: Final = 63
#: Longest agent ID accepted by ``add_member``.
MAX_AGENT_ID_CHARS: Final = 256
#: Characters of a value shown in a message before it is shortened.
QUOTE_LIMIT: Final = 70
#: The environment variable that picks the default coordinator (``auto``, ``local``,
#: ``reference``; see :func:`dalfleet.coordinator.reference.coordinator_for_base`).
RUNTIME_ENV: Final = "DALFLEET_RUNTIME"

LOGGER_NAME: Final = "dalfleet"
"""The library's logger: what a user may want to see (spawns, terminations, runs,
lease takeovers, handler failures); the library never prints."""
