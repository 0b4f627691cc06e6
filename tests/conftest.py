"""Fixtures shared by every test: a throwaway PostgreSQL server, ledgers on both stores.

The PostgreSQL server is real: started once per test session from the machine's
`initdb`/`pg_ctl` in a temporary folder, each test getting its own database. Where those
binaries are missing the PostgreSQL variants skip with a visible reason.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from paywire.ledger import Ledger, open_ledger

PG_USER = "paywire"


@dataclass
class PostgresServer:
    host: str
    port: int
    _counter: Iterator[int]

    def url(self, database: str) -> str:
        return f"postgresql://{PG_USER}@{self.host}:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"t{next(self._counter)}_{os.getpid()}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not on PATH")
    base = Path(tempfile.mkdtemp(prefix="paywire-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as a plain user
        user = "postgres" if _has_user("postgres") else "nobody"
        prefix = ["runuser", "-u", user, "--"]
        base.chmod(0o755)
        shutil.chown(base, user=user)
    data, log = base / "data", base / "server.log"
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", PG_USER, "--auth=trust", "--no-sync", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    started = subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"],
        capture_output=True,
        text=True,
        check=False,
    )
    if started.returncode != 0:
        pytest.fail(f"PostgreSQL did not start: {started.stderr}\n{_tail(log)}")
    try:
        yield PostgresServer("127.0.0.1", port, itertools.count())
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _tail(path: Path) -> str:
    try:
        return path.read_text()[-2000:]
    except OSError:
        return ""


class FakeClock:
    """Wall time in ns that tests move by hand (starts at the real time)."""

    def __init__(self) -> None:
        self.now = time.time_ns()

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1_000_000_000)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty ledger store of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture
def make_ledger(store_url: str) -> Iterator[Callable[..., Ledger]]:
    """Open ledgers on the test's store (several may share it, like several processes)."""
    opened: list[Ledger] = []

    def make(**options: object) -> Ledger:
        ledger = open_ledger(store_url, **options)  # type: ignore[arg-type]
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(make_ledger: Callable[..., Ledger], clock: FakeClock) -> Ledger:
    return make_ledger(clock=clock)
