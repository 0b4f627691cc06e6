"""The embedded store: one SQLite file in WAL mode.

One writer at a time (SQLite's own lock, taken with BEGIN IMMEDIATE, so several processes
may share a file), any number of snapshot readers. The ledger's writer thread groups many
requests into each transaction (group commit), which is what makes SQLite fast here.

Amounts and balances are u128, past SQLite's 64-bit integers, so they are stored as
decimal text; all arithmetic happens in Python, inside the write transaction.

The parts: the tables (`_sqlite_schema`), rows to states (`_sqlite_rows`), the snapshot
reader (`_sqlite_read`), the write transaction (`_sqlite_write`), spend limits
(`sqlite_limits`), the task index (`_sqlite_tasks`), and here the store with its
connections.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from paywire.ledger import _sqlite_tasks, sqlite_limits
from paywire.ledger._sqlite_read import MAX_SQL_PARAMS, SQLiteReader
from paywire.ledger._sqlite_schema import _SCHEMA
from paywire.ledger._sqlite_write import SQLiteWriteTransaction
from paywire.ledger.errors import LedgerUnavailable, StoreCorrupt
from paywire.ledger.store import SCHEMA_VERSION

__all__ = [
    "BUSY_TIMEOUT_S",
    "MAX_SQL_PARAMS",
    "SQLiteReader",
    "SQLiteStore",
    "SQLiteWriteTransaction",
]

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another process's write lock before giving up."""


class SQLiteStore:
    """A ledger in one SQLite file.

    `synchronous="FULL"` (the default) makes every commit durable against power loss;
    "NORMAL" keeps it durable against a process crash only, and is faster per commit.
    """

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        self.path = Path(path)
        self.description = f"sqlite:///{self.path}"
        self._synchronous = synchronous
        self._local = threading.local()
        self._writer: sqlite3.Connection | None = None
        self._writer_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise LedgerUnavailable("the ledger store is closed")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA synchronous = {self._synchronous}")
            connection.execute("PRAGMA cache_size = -65536")
        except sqlite3.Error as error:
            raise LedgerUnavailable(f"cannot open {self.description}: {error}") from None
        with self._connections_lock:
            self._connections.append(connection)
        return connection

    def _writer_connection(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = self._connect()
        return self._writer

    def initialize(self, meta: dict[str, str]) -> dict[str, str]:
        with self._writer_lock:
            db = self._writer_connection()
            try:
                # executescript commits first and runs its own statements: keep it alone.
                db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
                db.execute("BEGIN IMMEDIATE")
                version = db.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()
                # Each step brings the store one version up, in this one transaction.
                stored_version = None if version is None else str(version[0])
                stored_version = sqlite_limits.migrate(db, stored_version)
                _sqlite_tasks.migrate(db, stored_version)
                db.executemany(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                    [("schema_version", str(SCHEMA_VERSION)), *meta.items()],
                )
                stored = {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}
                db.execute("COMMIT")
            except sqlite3.Error as error:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise LedgerUnavailable(f"cannot initialize {self.description}: {error}") from None
        if stored.get("schema_version") != str(SCHEMA_VERSION):
            raise StoreCorrupt(
                f"{self.description} has schema version {stored.get('schema_version')}; "
                f"this paywire reads version {SCHEMA_VERSION}"
            )
        return stored

    def begin_write(self) -> SQLiteWriteTransaction:
        """Take the write lock; it is released by the transaction's commit or rollback."""
        self._writer_lock.acquire()
        try:
            return SQLiteWriteTransaction(self._writer_connection(), self._writer_lock.release)
        except BaseException:
            self._writer_lock.release()
            raise

    def _thread_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return connection

    @contextmanager
    def read(self) -> Iterator[SQLiteReader]:
        connection = self._thread_connection()
        try:
            connection.execute("BEGIN DEFERRED")
        except sqlite3.Error as error:
            raise LedgerUnavailable(f"cannot read {self.description}: {error}") from None
        try:
            yield SQLiteReader(connection)
        except sqlite3.Error as error:
            raise LedgerUnavailable(f"cannot read {self.description}: {error}") from None
        finally:
            if connection.in_transaction:
                connection.execute("COMMIT")

    def close(self) -> None:
        self._closed = True
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(sqlite3.Error):  # already closed: nothing to save
                    connection.close()
            self._connections.clear()
        self._writer = None
