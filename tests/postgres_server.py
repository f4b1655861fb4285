"""A real, throw-away PostgreSQL server for tests and benchmarks.

PostgreSQL refuses to run as root, so when the tests run as root (CI) the
server's programs run as the ``postgres`` system user (``runuser``). The data
directory and the socket directory live in one temporary directory owned by
that user; the server listens on 127.0.0.1 on a free port with trust
authentication, and ``fsync`` is off (a test database need not survive a power
cut, and the tests run several times faster). :meth:`PostgresServer.stop` is
always safe to call; use the server as a context manager so it is stopped
whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

__all__ = ["PostgresServer", "find_bindir", "unavailable_reason"]

_SYSTEM_USER = "postgres"


def find_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None.

    Prefers the newest ``/usr/lib/postgresql/N/bin`` (Debian's layout), then PATH.
    """
    candidates: list[Path] = []
    versions = Path("/usr/lib/postgresql")
    if versions.is_dir():
        numbered = [p for p in versions.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(numbered, key=lambda p: -int(p.name))]
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is not None:
        candidates.append(Path(pg_ctl).resolve().parent)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def _system_user() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(_SYSTEM_USER)
    except KeyError:
        return None


def unavailable_reason() -> str | None:
    """Why no server can be started here (None when one can)."""
    if find_bindir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl) on this machine"
    if os.geteuid() == 0:
        if _system_user() is None:
            return "running as root and there is no 'postgres' user to run the server"
        if shutil.which("runuser") is None:
            return "running as root and 'runuser' is missing"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory.

    ``url`` reaches its ``postgres`` database; :meth:`create_database` gives each
    test a fresh one. :meth:`restart` and :meth:`stop` / :meth:`start` keep the
    data and the port, so clients can reconnect.
    """

    def __init__(self) -> None:
        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError(unavailable_reason() or "no PostgreSQL")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="dalfleet-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.host = "127.0.0.1"
        self._as_root = os.geteuid() == 0
        self._running = False
        self.sockets.mkdir()
        if self._as_root:
            user = _system_user()
            assert user is not None  # unavailable_reason() says so otherwise
            for path in (self.root, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    @property
    def url(self) -> str:
        """A URL for the ``postgres`` database."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """A URL for ``database`` on this server."""
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        command = [str(self.bindir / tool), *args]
        if self._as_root:
            command = ["runuser", "-u", _SYSTEM_USER, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}\n{log}"
            )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-h {self.host} -p {self.port} -k {self.sockets} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200 -c shared_buffers=32MB"
        )
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options)
        self._running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients; ``immediate``: like a crash).

        A server that is not running is left alone.
        """
        if not self._running and not (self.data / "postmaster.pid").exists():
            return
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w")
        self._running = False

    def restart(self, mode: str = "fast") -> None:
        """Stop and start again on the same port; every client connection is cut."""
        self.stop(mode)
        self.start()

    def create_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def create_schema(self, prefix: str = "t") -> str:
        """A fresh, empty schema in the ``postgres`` database (much faster than a
        database); returns a URL whose ``search_path`` is that schema.
        """
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url}?options=-csearch_path%3D{name}"

    def close(self) -> None:
        """Stop the server (immediately) and remove its directory. Never raises."""
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
