"""The PostgreSQL store: its connections (one writer, a pool of readers), the schema's
creation, and the write transactions and snapshot readers it hands out."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from paywire.ledger import postgres
from paywire.ledger.errors import LedgerUnavailable, StoreCorrupt
from paywire.ledger.postgres._connection import (
    IDLE,
    Connection,
    _end_transaction,
    _session,
    _StaleConnection,
)
from paywire.ledger.postgres._read import PostgresReader
from paywire.ledger.postgres._sql import _MIGRATE_FROM_1, _SCHEMA
from paywire.ledger.postgres._tasks import migrate_from_2
from paywire.ledger.postgres._url import _parse_url, _Scrubber
from paywire.ledger.postgres._write import PostgresWriteTransaction
from paywire.ledger.store import SCHEMA_VERSION


class PostgresStore:
    """A ledger in a PostgreSQL database, shared by any number of processes.

    ``url`` is a libpq URL, ``postgresql://user[:password]@host[:port]/database``. Nothing
    connects until the first use. One connection writes (the ledger's writer thread);
    reads borrow from a small pool of connections (at most `max_readers`).
    """

    def __init__(self, url: str, *, max_readers: int = postgres.MAX_READERS) -> None:
        if not 1 <= max_readers <= 1024:
            raise ValueError("max_readers must be 1..1024")
        self._conninfo, self.description, password = _parse_url(url)
        self._scrub = _Scrubber(password)
        self._writer: Connection | None = None
        self._writer_lock = threading.Lock()
        self._idle: list[Connection] = []
        self._readers = threading.BoundedSemaphore(max_readers)
        self._connections: set[Connection] = set()
        self._connections_lock = threading.Lock()
        self._closed = False

    # ----- connections -------------------------------------------------------------------

    def _connect(self, *, writer: bool = False) -> Connection:
        if self._closed:
            raise LedgerUnavailable("the ledger store is closed")
        try:
            connection: Connection = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as error:
            raise LedgerUnavailable(
                f"cannot connect to {self.description}: {self._scrub(error)}"
            ) from None
        try:
            _session(connection, writer=writer)
        except psycopg.Error as error:
            connection.close()
            raise LedgerUnavailable(
                f"cannot set up a session on {self.description}: {self._scrub(error)}"
            ) from None
        with self._connections_lock:
            if self._is_closed():  # closed while connecting
                connection.close()
                raise LedgerUnavailable("the ledger store is closed")
            self._connections.add(connection)
        return connection

    def _is_closed(self) -> bool:
        return self._closed

    def _discard(self, connection: Connection) -> None:
        with self._connections_lock:
            self._connections.discard(connection)
        with contextlib.suppress(psycopg.Error):  # already gone: nothing to save
            connection.close()

    def _writer_connection(self) -> Connection:
        writer = self._writer
        if writer is not None and (
            writer.closed or writer.broken or writer.info.transaction_status != IDLE
        ):
            self._discard(writer)
            writer = self._writer = None
        if writer is None:
            writer = self._writer = self._connect(writer=True)
        return writer

    def _release_writer(self, healthy: bool) -> None:
        if not healthy and self._writer is not None:
            self._discard(self._writer)
            self._writer = None
        self._writer_lock.release()

    @contextmanager
    def _pooled(self, begin: str) -> Iterator[Connection]:
        """A pooled connection on which `begin` has run; back to the pool afterwards
        (its transaction rolled back), if it is idle and sound."""
        if not self._readers.acquire(timeout=postgres.READER_WAIT_S):
            raise LedgerUnavailable(
                f"all {self.description} read connections stayed busy; retry later"
            )
        try:
            connection = self._start(begin)
            try:
                yield connection
            finally:
                self._give_back(connection)
        finally:
            self._readers.release()

    def _start(self, begin: str) -> Connection:
        with self._connections_lock:
            connection = self._idle.pop() if self._idle else None
        if connection is not None:
            try:
                connection.execute(begin)
            except psycopg.Error as error:
                if not connection.broken:  # the statement failed, not the connection
                    self._give_back(connection)
                    raise self._unavailable("read", error) from None
                # The server restarted or dropped us: the other idle connections most
                # likely went with this one. Start over on a new one.
                self._discard(connection)
                self._discard_idle()
            else:
                return connection
        connection = self._connect()
        try:
            connection.execute(begin)
        except psycopg.Error as error:
            self._give_back(connection)
            raise self._unavailable("read", error) from None
        return connection

    def _give_back(self, connection: Connection) -> None:
        if _end_transaction(connection) and not self._closed:
            with self._connections_lock:
                self._idle.append(connection)
        else:
            self._discard(connection)

    def _discard_idle(self) -> None:
        with self._connections_lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            self._discard(connection)

    def _unavailable(self, doing: str, error: psycopg.Error) -> LedgerUnavailable:
        return LedgerUnavailable(f"cannot {doing} {self.description}: {self._scrub(error)}")

    # ----- the Store protocol ------------------------------------------------------------

    def initialize(self, meta: dict[str, str]) -> dict[str, str]:
        with self._writer_lock:
            db = self._writer_connection()
            try:
                stored = self._initialize(db, meta)
            except psycopg.Error as error:
                if not _end_transaction(db):
                    self._discard(db)
                    self._writer = None
                raise LedgerUnavailable(
                    f"cannot initialize {self.description}: {self._scrub(error)}"
                ) from None
        if stored.get("schema_version") != str(SCHEMA_VERSION):
            raise StoreCorrupt(
                f"{self.description} has schema version {stored.get('schema_version')}; "
                f"this paywire reads version {SCHEMA_VERSION}"
            )
        return stored

    @staticmethod
    def _initialize(db: Connection, meta: dict[str, str]) -> dict[str, str]:
        # READ COMMITTED whatever the server's default, so that what the process before
        # us committed is visible once the advisory lock is ours.
        db.execute("BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE")
        # Two processes creating the tables at once would collide in the catalogs; the
        # advisory lock (released at commit) makes them take turns. DDL is transactional,
        # so the tables exist all together or not at all.
        db.execute("SELECT pg_advisory_xact_lock(%s)", (postgres.SCHEMA_LOCK_KEY,))
        exists = db.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
        if exists is None or not exists[0]:
            db.execute(_SCHEMA)  # no parameters: one simple-protocol message
        version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        # Each step brings the store one version up, in this one transaction.
        if version is not None and version[0] == "1":  # a store from before spend limits
            db.execute(_MIGRATE_FROM_1)
            version = ("2",)
        if version is not None and version[0] == "2":  # from before the task index
            migrate_from_2(db)
            version = ("3",)
        if version is None or version[0] == str(SCHEMA_VERSION):  # never touch another's
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                    [("schema_version", str(SCHEMA_VERSION)), *meta.items()],
                )
        stored = {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}
        db.execute("COMMIT")
        return stored

    def begin_write(self) -> PostgresWriteTransaction:
        """Take the write lock; it is released by the transaction's commit or rollback."""
        while True:
            self._writer_lock.acquire()
            reused = self._writer is not None
            try:
                connection = self._writer_connection()
            except BaseException:
                self._writer_lock.release()
                raise
            try:
                # On failure the transaction has already released the lock.
                return PostgresWriteTransaction(
                    connection, self.description, self._scrub, self._release_writer
                )
            except _StaleConnection:
                if not reused:
                    raise
                # The server dropped a connection that sat idle (a restart, a failover):
                # nothing was sent but the BEGIN, so begin again on a new one.

    @contextmanager
    def read(self) -> Iterator[PostgresReader]:
        # The read-only transaction ends (ROLLBACK) as the connection goes back to the pool.
        with self._pooled("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY") as connection:
            try:
                yield PostgresReader(connection)
            except psycopg.Error as error:
                raise self._unavailable("read", error) from None

    def close(self) -> None:
        self._closed = True
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
            self._idle.clear()
        for connection in connections:
            with contextlib.suppress(psycopg.Error):  # closing twice: nothing to save
                connection.close()
        self._writer = None
