"""Molds: templates for agents.

Parse ``*.mold.dal`` (and legacy ``*.mold.json``) text into a :class:`Mold`, resolve
a mold source against a base directory, and render a mold with create-time params
into an :class:`~dalfleet.models.AgentSpec`. No code from a mold is ever evaluated.
The format is described in ``docs/mold-format.md``.
"""

from __future__ import annotations

from dalfleet.mold.model import (
    AGENT_TYPES,
    LIFECYCLE_HOOKS,
    MAX_MOLD_SIZE,
    Mold,
    memory_limit_bytes,
    normalize_agent_type,
)
from dalfleet.mold.parse import parse_mold
from dalfleet.mold.render import RESERVED_PARAMS, parse_params, render, substitute
from dalfleet.mold.resolve import load_mold, read_mold_file, resolve_mold, sample_mold_path

__all__ = [
    "AGENT_TYPES",
    "LIFECYCLE_HOOKS",
    "MAX_MOLD_SIZE",
    "RESERVED_PARAMS",
    "Mold",
    "load_mold",
    "memory_limit_bytes",
    "normalize_agent_type",
    "parse_mold",
    "parse_params",
    "read_mold_file",
    "render",
    "resolve_mold",
    "sample_mold_path",
    "substitute",
]
