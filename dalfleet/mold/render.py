"""Turn a mold plus create-time params into an :class:`~dalfleet.models.AgentSpec`.

Rendering is plain text replacement of ``{{key}}`` placeholders; nothing is
evaluated. The agent's trust level is the caller's (the principal's), never the mold's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from dalfleet.defaults import DEFAULT_TRUST_LEVEL
from dalfleet.errors import InvalidArgumentError, quote
from dalfleet.mold.model import Mold, agent_type_of
from dalfleet.records import AgentSpec
from dalfleet.rules import RESERVED_PARAMS, parse_params

__all__ = ["DEFAULT_SKILLS", "RESERVED_PARAMS", "parse_params", "render", "substitute"]

#: The skills an agent gets when its mold lists none (the reference's default learning path).
DEFAULT_SKILLS: tuple[str, ...] = ("development", "creative", "office", "home")

# Keys never contain whitespace or braces, so a placeholder is unambiguous.
_PLACEHOLDER = re.compile(r"\{\{[ \t]*([^{}\s]+)[ \t]*\}\}")


def substitute(text: str, params: Mapping[str, str]) -> str:
    """Replace each ``{{key}}`` (or ``{{ key }}``) in ``text`` with ``params[key]``.

    Unknown placeholders are left as they are; replaced values are not scanned
    again, so a value containing ``{{...}}`` is inserted literally. Never raises.
    """
    if not params or "{{" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        return params.get(match.group(1), match.group(0))

    return _PLACEHOLDER.sub(replace, text)


def render(
    mold: Mold,
    name: str,
    params: Mapping[str, str] | None = None,
    trust_level: str = DEFAULT_TRUST_LEVEL,
) -> AgentSpec:
    """Build the spec of one agent named ``name`` from ``mold`` and create-time ``params``.

    As the reference: the agent type is checked and written canonically (``Worker``,
    ``custom:MyBot``); ``{{key}}`` placeholders in the role and in each capability are
    replaced by the params; the metadata is the mold's own ``metadata``, then
    ``mold_name`` and ``mold_version``, then the params (a metadata value that is not
    a string is stored as its JSON text); a mold without skills gives the default
    learning path :data:`DEFAULT_SKILLS`. ``trust_level`` comes from the principal
    (the coordinator's setting); the mold's own ``trust_level`` is display-only and
    is ignored here. Lifecycle hooks are copied as data.

    Raises:
        MoldError: ``unknown agent type in mold: X`` (the reference's message).
        InvalidArgumentError: a param key is invalid (see :func:`parse_params`) or
            is one of the reserved keys ``mold_name`` / ``mold_version``; or
            ``trust_level`` is empty.
    """
    agent_type = agent_type_of(mold)
    values = parse_params(params) or {}
    reserved = sorted(RESERVED_PARAMS.intersection(values))
    if reserved:
        raise InvalidArgumentError(
            f"invalid param {quote(reserved[0])}: the key is reserved (set from the mold)"
        )
    if not isinstance(trust_level, str) or not trust_level.strip():
        raise InvalidArgumentError(
            f"invalid trust level {quote(trust_level)}: must be a non-empty string"
        )
    metadata = {key: _metadata_text(value) for key, value in mold.metadata.items()}
    metadata.update({"mold_name": mold.name, "mold_version": mold.version, **values})
    return AgentSpec(
        name=name,
        mold_name=mold.name,
        mold_version=mold.version,
        agent_type=agent_type,
        role=substitute(mold.role, values),
        capabilities=[substitute(c, values) for c in mold.capabilities],
        skills=list(mold.skills or DEFAULT_SKILLS),
        memory_limit=mold.memory_limit,
        learning=mold.learning,
        communication=mold.communication,
        coordination=mold.coordination,
        trust_level=trust_level,
        metadata=metadata,
        lifecycle=dict(mold.lifecycle),
    )


def _metadata_text(value: object) -> str:
    """A mold metadata value as agent metadata text: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
