"""Sample task handlers, for trying things out (``--handler dalfleet.handlers:echo``).

A handler is called as ``handler(agent, task)`` and returns a result; raising
marks the member's task failed. Write your own in any importable module.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dalfleet.records import Agent, Task

__all__ = ["echo", "sleep"]


def echo(agent: Agent, task: Task) -> dict[str, Any]:
    """Return who ran what: ``{"agent": name, "agent_id": …, "task": description}``.

    Raises:
        Nothing.
    """
    return {"agent": agent.name, "agent_id": agent.agent_id, "task": task.description}


async def sleep(agent: Agent, task: Task) -> dict[str, Any]:
    """Wait 0.2 seconds (an I/O-bound stand-in), then answer like :func:`echo`.

    Raises:
        Nothing.
    """
    await asyncio.sleep(0.2)
    return echo(agent, task)
