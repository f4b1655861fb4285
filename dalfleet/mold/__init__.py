"""Molds: templates for agents.

Parse ``*.mold.dal`` (and legacy ``*.mold.json``) text into a :class:`Mold`, resolve
a mold source against a base directory, and render a mold with create-time params
into an :class:`~dalfleet.models.AgentSpec`. No code from a mold is ever evaluated.
The format is described in ``docs/mold-format.md``.

The names are imported from their modules on first use (PEP 562): importing
one of its modules does not load the others.
"""

from __future__ import annotations

from dalfleet import _lazy

# typing.TYPE_CHECKING without importing typing; type checkers treat it as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from dalfleet.mold.model import (
        AGENT_TYPES,
        LIFECYCLE_HOOKS,
        MAX_MOLD_SIZE,
        Mold,
        agent_type_of,
        memory_limit_bytes,
        memory_problem,
        normalize_agent_type,
        reference_memory_bytes,
    )
    from dalfleet.mold.parse import parse_mold
    from dalfleet.mold.principal import DEFAULT_TRUST_LEVEL, TRUST_ENV, principal_trust_level
    from dalfleet.mold.render import (
        DEFAULT_SKILLS,
        RESERVED_PARAMS,
        parse_params,
        render,
        substitute,
    )
    from dalfleet.mold.resolve import (
        MOLD_SUFFIXES,
        is_mold_file_name,
        list_local_molds,
        load_mold,
        read_mold_file,
        resolve_mold,
        sample_mold_path,
        samples_dir,
        validate_mold,
    )
    from dalfleet.mold.scaffold import scaffold_mold, scaffold_text

# ``render`` is also the name of a submodule: importing dalfleet.mold.render (as
# other modules do) would set this package's ``render`` to the module, and a
# module attribute that exists is never looked up lazily. Bound here, the function
# wins, as before.
from dalfleet.mold.render import render  # noqa: E402

# public name -> the module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
            "AGENT_TYPES",
            "LIFECYCLE_HOOKS",
            "MAX_MOLD_SIZE",
            "Mold",
            "agent_type_of",
            "memory_limit_bytes",
            "memory_problem",
            "normalize_agent_type",
            "reference_memory_bytes",
        ),
        "dalfleet.mold.model",
    ),
    **dict.fromkeys(("parse_mold",), "dalfleet.mold.parse"),
    **dict.fromkeys(
        ("DEFAULT_TRUST_LEVEL", "TRUST_ENV", "principal_trust_level"), "dalfleet.mold.principal"
    ),
    **dict.fromkeys(
        ("DEFAULT_SKILLS", "RESERVED_PARAMS", "parse_params", "render", "substitute"),
        "dalfleet.mold.render",
    ),
    **dict.fromkeys(
        (
            "MOLD_SUFFIXES",
            "is_mold_file_name",
            "list_local_molds",
            "load_mold",
            "read_mold_file",
            "resolve_mold",
            "sample_mold_path",
            "samples_dir",
            "validate_mold",
        ),
        "dalfleet.mold.resolve",
    ),
    **dict.fromkeys(("scaffold_mold", "scaffold_text"), "dalfleet.mold.scaffold"),
}

__all__ = [
    "AGENT_TYPES",
    "DEFAULT_SKILLS",
    "DEFAULT_TRUST_LEVEL",
    "LIFECYCLE_HOOKS",
    "MAX_MOLD_SIZE",
    "MOLD_SUFFIXES",
    "RESERVED_PARAMS",
    "TRUST_ENV",
    "Mold",
    "agent_type_of",
    "is_mold_file_name",
    "list_local_molds",
    "load_mold",
    "memory_limit_bytes",
    "memory_problem",
    "normalize_agent_type",
    "parse_mold",
    "parse_params",
    "principal_trust_level",
    "read_mold_file",
    "reference_memory_bytes",
    "render",
    "resolve_mold",
    "sample_mold_path",
    "samples_dir",
    "scaffold_mold",
    "scaffold_text",
    "substitute",
    "validate_mold",
]

__getattr__, __dir__ = _lazy.attach(__name__, _LAZY)
