"""Fleets, agents and tasks in one PostgreSQL database that many hosts share.

:class:`PostgresBackend` owns the connection and the schema; it serves both
protocols: ``backend.store`` (:class:`PostgresStore`, the Store protocol) and
``backend.coordinator`` (:class:`~dalfleet.coordinator.postgres.PostgresCoordinator`).

One operation, one transaction: both views share one connection per process,
and a coordinator call made *inside* ``store.transaction()`` on the same thread
joins the store's open transaction. So ``create_from_mold`` (spawn agents, then
write the fleet) commits both or neither, with no special call from the client.

The schema is created on first use under an advisory lock (any number of hosts
may start at once), versioned in ``dalfleet_schema``; an older schema is
upgraded in place, a newer one is refused with a clear error. Text that came
from users is kept in ``json`` columns, which store it exactly (PostgreSQL
``text`` cannot hold a NUL character, a task may). A connection cut by a server
restart is replaced when the next transaction begins; a call cut in its middle
is retried on a new connection when it is safe to repeat (reads, and the
worker's claim/renew/finish/release).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar

import psycopg
from psycopg.types.json import Json

from dalfleet.backends import redact_url
from dalfleet.convert import HISTORY_KEY, FleetFormatError, structure_fleet, unstructure_fleet
from dalfleet.defaults import DEFAULT_TRUST_LEVEL
from dalfleet.errors import CorruptStoreError, FleetError, StoreError, quote
from dalfleet.models import Fleet

if TYPE_CHECKING:
    from dalfleet.coordinator.postgres import PostgresCoordinator

__all__ = [
    "NOTIFY_CHANNEL",
    "SCHEMA_VERSION",
    "SchemaTooNewError",
    "PostgresBackend",
    "PostgresStore",
]

SCHEMA_VERSION: Final = 2
# Keys of pg_advisory_xact_lock: one for schema changes, one for fleet writes
# (the store's read-modify-write is serialised across hosts, as the file lock does).
_SCHEMA_LOCK: Final = 0x64616C_0001
_FLEETS_LOCK: Final = 0x64616C_0002
NOTIFY_CHANNEL: Final = "dalfleet_tasks"

# Each step upgrades from version N-1 to N; a database is brought up to date by
# running the steps above its version, in one transaction.
_MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        """CREATE TABLE dalfleet_fleets (
            name        text PRIMARY KEY,
            doc         json NOT NULL,
            updated_at  double precision NOT NULL
        )""",
        """CREATE TABLE dalfleet_revisions (
            fleet     text NOT NULL REFERENCES dalfleet_fleets (name) ON DELETE CASCADE,
            revision  integer NOT NULL,
            doc       json NOT NULL,
            PRIMARY KEY (fleet, revision)
        )""",
    ),
    2: (
        """CREATE TABLE dalfleet_agents (
            seq            bigserial NOT NULL UNIQUE,
            agent_id       text PRIMARY KEY,
            spec           json NOT NULL,
            state          text NOT NULL,
            created_at     double precision NOT NULL,
            terminated_at  double precision
        )""",
        """CREATE TABLE dalfleet_tasks (
            seq               bigserial PRIMARY KEY,
            task_id           text NOT NULL UNIQUE,
            agent_id          text NOT NULL REFERENCES dalfleet_agents (agent_id),
            body              json NOT NULL,
            fleet             json,
            state             text NOT NULL,
            worker            text,
            attempts          integer NOT NULL DEFAULT 0,
            lease_expires_at  double precision,
            result            json,
            error             json,
            enqueued_at       double precision NOT NULL,
            started_at        double precision,
            finished_at       double precision
        )""",
        "CREATE INDEX dalfleet_tasks_agent_state ON dalfleet_tasks (agent_id, state, seq)",
        "CREATE INDEX dalfleet_tasks_open ON dalfleet_tasks (state, seq) "
        "WHERE state IN ('pending', 'running')",
        """CREATE TABLE dalfleet_events (
            seq       bigserial PRIMARY KEY,
            agent_id  text NOT NULL,
            kind      text NOT NULL,
            detail    json NOT NULL,
            at        double precision NOT NULL
        )""",
        "CREATE INDEX dalfleet_events_agent ON dalfleet_events (agent_id, seq)",
    ),
}

_T = TypeVar("_T")
# The server's clock in epoch seconds, for the fleets' updated_at column.
NOW_SQL: Final = "extract(epoch from clock_timestamp())::double precision"


class SchemaTooNewError(Exception):
    """The database was written by a newer dalfleet (the session names the error class)."""


def _broken(exc: BaseException, conn: psycopg.Connection[Any] | None) -> bool:
    """True when ``exc`` means the connection is gone (server restart, network)."""
    if conn is not None and (conn.broken or conn.closed):
        return True
    return isinstance(exc, psycopg.OperationalError) and not isinstance(
        exc, psycopg.errors.QueryCanceled
    )


class PostgresBackend:
    """One PostgreSQL database holding fleets (``.store``) and agents and tasks
    (``.coordinator``).

    Nothing connects until the first call. One connection per process, shared by
    threads (a lock serialises them) and replaced after ``os.fork()`` or when the
    server cut it.

    Args:
        url: a libpq URL or DSN (``postgresql://user:pass@host:5432/db``).
        trust_level: the trust level every spawned agent gets.
        connect_timeout: seconds to wait for the server on each connection attempt.
        reconnect_timeout: how long a retried call keeps trying to reach the
            server again (a restart) before it fails.
    """

    def __init__(
        self,
        url: str,
        *,
        trust_level: str = DEFAULT_TRUST_LEVEL,
        connect_timeout: float = 10.0,
        reconnect_timeout: float = 60.0,
    ) -> None:
        self.url = url
        self.trust_level = trust_level
        self.connect_timeout = connect_timeout
        self.reconnect_timeout = reconnect_timeout
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._conn: psycopg.Connection[Any] | None = None
        self._inherited: list[psycopg.Connection[Any]] = []
        self._depth = 0  # nesting of session() on the thread holding the lock
        self.store = PostgresStore(self)
        self._coordinator: PostgresCoordinator | None = None

    @property
    def coordinator(self) -> PostgresCoordinator:
        """The Coordinator view (created on first access). Never raises."""
        if self._coordinator is None:
            from dalfleet.coordinator.postgres import PostgresCoordinator

            self._coordinator = PostgresCoordinator(self)
        return self._coordinator

    def attach(self, coordinator: PostgresCoordinator) -> None:
        """Make ``coordinator`` (built on this backend, e.g. with another
        ``max_attempts``) the one ``.coordinator`` returns. Never raises."""
        self._coordinator = coordinator

    @property
    def location(self) -> str:
        """The URL without its password."""
        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"PostgresBackend({self.location!r})"

    def close(self) -> None:
        """Close the connections; the next call reconnects. Never raises."""
        with self._guard():
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
        if self._coordinator is not None:
            self._coordinator.close_listener()

    def __enter__(self) -> PostgresBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sessions ---------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        pid = os.getpid()
        if pid != self._pid:
            # A forked child must not use the parent's connection socket.
            self._lock = threading.RLock()
            if self._conn is not None:
                # Kept, never used or closed: psycopg does not end a session it
                # inherited, so the parent's stays open.
                self._inherited.append(self._conn)
                self._conn = None
            self._depth = 0
            self._pid = pid
        with self._lock:
            yield

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[Any]:
        """A new connection to the database, schema checked (created or upgraded).

        Raises:
            psycopg.Error: the server cannot be reached or refuses the session.
            SchemaTooNewError: the database has a newer schema than this dalfleet knows.
        """
        conn = psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=max(1, round(self.connect_timeout)),
            application_name="dalfleet",
        )
        try:
            self._ensure_schema(conn)
            conn.autocommit = autocommit
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        self._conn = self.connect(autocommit=True)
        return self._conn

    @contextlib.contextmanager
    def session(self, error: type[FleetError]) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor inside one transaction; nested sessions on the thread join it.

        Commits when the outermost block exits normally, rolls back otherwise. A
        database error becomes ``error`` (StoreError or CoordinatorError); other
        exceptions propagate unchanged. An interrupt closes the connection, so the
        server rolls back and no lock or transaction is left open.

        Raises:
            StoreError / CoordinatorError: the database fails or cannot be reached.
        """
        with self._guard():
            if self._depth > 0:
                assert self._conn is not None
                self._depth += 1
                try:
                    with self._conn.cursor() as cur:
                        yield cur
                except psycopg.Error as exc:
                    raise self._error(error, exc) from exc
                finally:
                    self._depth -= 1
                return
            try:
                with contextlib.ExitStack() as stack:
                    conn = self._begin(stack)
                    self._depth = 1
                    cur = stack.enter_context(conn.cursor())
                    yield cur
            except psycopg.Error as exc:
                if self._conn is not None and (self._conn.broken or self._conn.closed):
                    self._conn = None
                raise self._error(error, exc) from exc
            except SchemaTooNewError as exc:
                raise error(str(exc)) from None
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    # Ctrl-C or a signal mid-query: drop the connection rather than
                    # trust its state; the server rolls the transaction back.
                    self._drop()
                raise
            finally:
                self._depth = 0

    def _begin(self, stack: contextlib.ExitStack) -> psycopg.Connection[Any]:
        """Open a transaction on the connection, entered on ``stack``.

        A connection the server cut while it sat idle (a restart) is only found
        out at ``BEGIN``; nothing has been done yet then, so this reconnects once
        and begins again, whatever the work is.
        """
        conn = self._connection()
        try:
            stack.enter_context(conn.transaction())
        except psycopg.OperationalError:
            if not (conn.broken or conn.closed):
                raise
            self._drop()
            conn = self._connection()
            stack.enter_context(conn.transaction())
        return conn

    def in_session(self) -> bool:
        """True when the calling thread is inside a session (its work would join it)."""
        return self._depth > 0 and self._owned()

    def retrying(self, error: type[FleetError], work: Callable[[psycopg.Cursor[Any]], _T]) -> _T:
        """Run ``work`` in a session; if the connection was lost, reconnect and run it again.

        Only for work that is safe to repeat. Inside an outer session it simply
        joins it (no retry: the outer transaction is lost with the connection).
        When an open connection was cut (a server restart), keeps trying for
        ``reconnect_timeout`` seconds; a first connection that fails is not retried.

        Raises:
            StoreError / CoordinatorError: the database fails, or stays unreachable.
        """
        if self.in_session():
            with self.session(error) as cur:
                return work(cur)
        deadline = time.monotonic() + self.reconnect_timeout
        delay = 0.05
        # Only a cut connection is waited for: a server that was never reached
        # (a wrong host, a typo) fails at once.
        cut = self._conn is not None
        while True:
            try:
                with self.session(error) as cur:
                    return work(cur)
            except FleetError as exc:
                cause = exc.__cause__
                if (
                    not cut
                    or not isinstance(cause, psycopg.Error)
                    or not _broken(cause, self._conn)
                    or time.monotonic() + delay > deadline
                ):
                    raise
                self._drop()
                time.sleep(delay)  # the server is restarting: back off, then reconnect
                delay = min(delay * 2, 1.0)

    def _owned(self) -> bool:
        # RLock has no public owner check; _is_owned exists on CPython's RLock.
        is_owned = getattr(self._lock, "_is_owned", None)
        return bool(is_owned()) if callable(is_owned) else False

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _error(self, error: type[FleetError], exc: psycopg.Error) -> FleetError:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return error(f"PostgreSQL database {self.location}: {text}")

    # -- schema -----------------------------------------------------------------

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        """Create or upgrade the schema (autocommit connection), under an advisory lock."""
        version = self._read_version(conn)
        if version == SCHEMA_VERSION:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            version = self._read_version(conn)  # another host may have done it meanwhile
            if version == 0:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS dalfleet_schema (version integer NOT NULL)"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
            conn.execute("DELETE FROM dalfleet_schema")
            conn.execute("INSERT INTO dalfleet_schema (version) VALUES (%s)", (SCHEMA_VERSION,))

    def _read_version(self, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT to_regclass('dalfleet_schema') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            return 0
        found = conn.execute("SELECT max(version) FROM dalfleet_schema").fetchone()
        version = int(found[0]) if found is not None and found[0] is not None else 0
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"PostgreSQL database {self.location} has dalfleet schema version {version}; "
                f"this dalfleet understands up to {SCHEMA_VERSION} (upgrade dalfleet)"
            )
        return version


class PostgresStore:
    """The Store protocol on a :class:`PostgresBackend` (fleets and their revisions).

    Every ``transaction()`` takes a database-wide advisory lock for fleet writes,
    so concurrent read-modify-writes from any host lose no update, and writes only
    the fleets that changed.
    """

    def __init__(self, backend: PostgresBackend) -> None:
        self.backend = backend

    @property
    def location(self) -> str:
        """The database URL without its password."""
        return self.backend.location

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"

    def close(self) -> None:
        """Close the backend's connections; the next call reconnects. Never raises."""
        self.backend.close()

    def shares_transactions_with(self, coordinator: object) -> bool:
        """True when ``coordinator``'s calls inside :meth:`transaction` join it (it is
        this backend's coordinator), so a change of fleets and agents can be made in
        one transaction: e.g. terminate the members a scale-down removes inside the
        block, which no other store allows without risking a ghost. Never raises.
        """
        return coordinator is not None and coordinator is self.backend._coordinator

    def load(self) -> dict[str, Fleet]:
        """A snapshot of every fleet, by name (retried across a server restart).

        Raises:
            StoreError: the database cannot be reached or read.
            CorruptStoreError: a stored fleet does not have the fleet shape.
        """
        return self.backend.retrying(StoreError, self._load)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, Fleet]]:
        """Exclusive read-modify-write of all fleets, committed when the block succeeds.

        Coordinator calls made inside the block (same thread) are part of the same
        database transaction.

        Raises:
            StoreError: the database cannot be reached, read or written.
            CorruptStoreError: a stored fleet does not have the fleet shape.
        """
        with self.backend.session(StoreError) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_FLEETS_LOCK,))
            before = self._load(cur)
            working = dict(before)
            yield working
            self._write(cur, before, working)

    def _load(self, cur: psycopg.Cursor[Any]) -> dict[str, Fleet]:
        docs: dict[str, dict[str, Any]] = {}
        for name, doc in cur.execute("SELECT name, doc FROM dalfleet_fleets ORDER BY name"):
            docs[name] = doc
        for name, doc in cur.execute(
            "SELECT fleet, doc FROM dalfleet_revisions ORDER BY fleet, revision"
        ):
            docs[name].setdefault(HISTORY_KEY, []).append(doc)
        try:
            return {name: structure_fleet(doc, name) for name, doc in docs.items()}
        except FleetFormatError as exc:
            raise CorruptStoreError(f"PostgreSQL database {self.location}: {exc}") from None

    def _write(
        self, cur: psycopg.Cursor[Any], before: dict[str, Fleet], after: dict[str, Fleet]
    ) -> None:
        gone = [name for name in before if name not in after]
        if gone:
            cur.execute("DELETE FROM dalfleet_fleets WHERE name = ANY(%s)", (gone,))
        for name, fleet in after.items():
            old = before.get(name)
            if old == fleet:
                continue
            if fleet.name != name:
                raise StoreError(f"fleet stored under {quote(name)} is named {quote(fleet.name)}")
            doc = unstructure_fleet(fleet)
            history = doc.pop(HISTORY_KEY, [])
            cur.execute(
                "INSERT INTO dalfleet_fleets (name, doc, updated_at) "
                f"VALUES (%s, %s, {NOW_SQL}) "
                "ON CONFLICT (name) DO UPDATE "
                "SET doc = EXCLUDED.doc, updated_at = EXCLUDED.updated_at",
                (name, Json(doc)),
            )
            if old is None or old.history != fleet.history:
                cur.execute("DELETE FROM dalfleet_revisions WHERE fleet = %s", (name,))
                cur.executemany(
                    "INSERT INTO dalfleet_revisions (fleet, revision, doc) VALUES (%s, %s, %s)",
                    [(name, entry["revision"], Json(entry)) for entry in history],
                )
