"""A throwaway PostgreSQL server in a temporary folder, from the machine's own binaries.

Used by the tests and the benchmarks: `initdb` a cluster, start it on a free loopback port
with its socket in the same folder, hand out fresh databases, stop and delete it all.
As root, the server runs as the `postgres` user (or `nobody`): initdb refuses root.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

USER = "paywire"
"""The database superuser the cluster is created with (trust auth on loopback only)."""

START_TIMEOUT_S = 60
"""pg_ctl's wait for the server to accept connections."""


class PostgresUnavailable(RuntimeError):
    """The binaries are missing or the server would not start."""


@dataclass
class PostgresServer:
    host: str
    port: int
    _names: Iterator[int] = field(default_factory=itertools.count)

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@{self.host}:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        name = f"t{next(self._names)}_{os.getpid()}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def binaries() -> tuple[str, str] | None:
    """Paths of initdb and pg_ctl, or None where PostgreSQL is not installed."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    return None if initdb is None or pg_ctl is None else (initdb, pg_ctl)


@contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[PostgresServer]:
    """Run a server for the duration of the block. `durable=False` turns fsync off: the
    tests kill clients, never the server, so they do not need it."""
    found = binaries()
    if found is None:
        raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) are not on PATH")
    initdb, pg_ctl = found
    base = Path(tempfile.mkdtemp(prefix="paywire-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = "postgres" if _has_user("postgres") else "nobody"
        prefix = ["runuser", "-u", user, "--"]
        base.chmod(0o755)
        shutil.chown(base, user=user)
    data, log = base / "data", base / "server.log"
    try:
        created = subprocess.run(
            [*prefix, initdb, "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8"]
            + ([] if durable else ["--no-sync"]),
            capture_output=True,
            text=True,
            check=False,
        )
        if created.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {created.stderr.strip()[-500:]}")
        port = _free_port()
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=200" + (
            "" if durable else " -c fsync=off"
        )
        started = subprocess.run(
            [
                *prefix,
                pg_ctl,
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(log),
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if started.returncode != 0:
            raise PostgresUnavailable(f"PostgreSQL did not start: {_tail(log)}")
        try:
            yield PostgresServer("127.0.0.1", port)
        finally:
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                check=False,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _tail(path: Path) -> str:
    try:
        return path.read_text()[-1000:]
    except OSError:
        return "(no server log)"
