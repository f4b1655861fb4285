"""Backends chosen by URL: ``postgresql://…`` → fleets, agents and tasks in PostgreSQL.

One place maps a URL to a (store, coordinator) pair; :meth:`Client.from_url
<dalfleet.client.Client.from_url>`, ``fleet.configure(url=…)``, ``fleet.using(url=…)``,
the CLI's ``--url`` and ``DALFLEET_URL`` all come here. With a URL nothing is
written under ``.dal/``. psycopg is imported only when a PostgreSQL URL is opened.
"""

from __future__ import annotations

import os

from dalfleet.defaults import DEFAULT_TRUST_LEVEL
from dalfleet.errors import InvalidArgumentError, StoreError, quote

# typing.TYPE_CHECKING without importing typing: the CLI reads the URL here on every
# command, without loading the coordinator package.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

    from dalfleet.coordinator.base import Coordinator
    from dalfleet.store.base import Store

__all__ = ["POSTGRES_SCHEMES", "URL_ENV", "open_url", "redact_url", "url_from_env"]

URL_ENV: Final = "DALFLEET_URL"
"""The environment variable the CLI reads a URL from (``--url`` wins)."""

POSTGRES_SCHEMES: Final = ("postgresql", "postgres")


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


def open_url(url: str, *, trust_level: str = DEFAULT_TRUST_LEVEL) -> tuple[Store, Coordinator]:
    """The store and the coordinator for ``url``; both views of one backend.

    ``postgresql://user:password@host:port/database`` (or ``postgres://``) opens a
    :class:`~dalfleet.store.postgres.PostgresBackend`: fleets and agents share one
    connection, so an operation that changes both is one transaction. Nothing
    connects until the first call.

    Raises:
        InvalidArgumentError: ``url`` is not a string, or its scheme is not supported.
        StoreError: the URL needs an extra that is not installed (psycopg).
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidArgumentError("backend URL cannot be empty (e.g. postgresql://host/db)")
    scheme = _scheme(url.strip())
    if scheme not in POSTGRES_SCHEMES:
        shown = redact_url(url) if "://" in url else url
        raise InvalidArgumentError(
            f"unsupported backend URL {quote(shown)}: use postgresql://USER@HOST:PORT/DATABASE"
        )
    try:
        from dalfleet.store.postgres import PostgresBackend
    except ImportError as exc:
        raise StoreError(
            "PostgreSQL URLs need psycopg: pip install 'dalfleet[postgres]' "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    backend = PostgresBackend(url.strip(), trust_level=trust_level)
    return backend.store, backend.coordinator


def url_from_env(flag: str | None) -> str | None:
    """The URL to use: the ``--url`` flag if given, else ``$DALFLEET_URL`` if set and
    not blank, else None (the project directory's files). Never raises.
    """
    if flag is not None:
        return flag
    value = os.environ.get(URL_ENV, "").strip()
    return value or None


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and reprs). Never raises."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, hostpart = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostpart}"
