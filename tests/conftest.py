"""Fixtures shared by every test: a throwaway PostgreSQL server, ledgers on both stores.

The PostgreSQL server is real: started once per test session from the machine's
`initdb`/`pg_ctl` in a temporary folder, each test getting its own database. Where those
binaries are missing the PostgreSQL variants skip with a visible reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Wide enough that the CLI's rich output never wraps a long temporary path (pytest-xdist's
# are longer), for this process and the `paywire` children the tests start.
os.environ["COLUMNS"] = "240"

from paywire._dev.postgres import PostgresServer, binaries
from paywire._dev.postgres import postgres_server as postgres_server_running
from paywire.ledger import Ledger, open_ledger


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session; skips visibly where it cannot run."""
    if binaries() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not on PATH")
    with postgres_server_running() as server:
        yield server


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
