"""The distributed store: the ledger in a PostgreSQL database (psycopg 3, synchronous).

The log is a total order, so writers are serialized by one row lock: every write
transaction starts with ``SELECT ... FROM log_head WHERE id = 1 FOR UPDATE``. Any number
of processes may share a database; each batch reads the state it builds on after taking
that lock. Readers use REPEATABLE READ, READ ONLY transactions: one stable snapshot each.

The parts: the tables and the SQL text (`_sql`), URLs and password scrubbing (`_url`), the
session set-up of a connection (`_connection`), rows to states (`_rows`), the snapshot
reader (`_read`), the task index's read and rebuild (`_tasks`), the write transaction
and what a batch costs (`_write`), and the store with its connections (`_store`).
"""

# ruff: noqa: E402 (the tunables come first: the parts read them from this module)

URL_SCHEMES = ("postgresql://", "postgres://")

CONNECT_TIMEOUT_S = 10
"""How long opening a connection may take (unless the URL sets ``connect_timeout``)."""

LOCK_TIMEOUT_S = 30
"""How long a writer waits for another process's write lock before giving up (as
SQLite's busy timeout)."""

MAX_READERS = 32
"""Read connections one store keeps open at most (reads past this wait for one)."""

READER_WAIT_S = 30.0
"""How long a read waits for a free read connection before `LedgerUnavailable`."""

COPY_MIN_ROWS = 128
"""Rows of one table in one batch from which the batch writes them with COPY."""

EXPIRY_PREFETCH = 8
"""Pending holds (the first to expire) read with the write lock, so that a batch needs no
query of its own to find the holds due (unless all of these are due)."""

SCAN_ROWS = 1000
"""Rows per query when a reader streams a long range (accounts, log entries)."""

SCHEMA_LOCK_KEY = 0x7061_7977_6972_6531  # "paywire1"
"""The transaction-level advisory lock that serializes schema creation in a database."""

# The parts read the tunables above as attributes of this module (`postgres.SCAN_ROWS`),
# so that setting one here takes effect (the tests do); hence they come before the parts.
from paywire.ledger.postgres._connection import IDLE, Connection
from paywire.ledger.postgres._read import PostgresReader
from paywire.ledger.postgres._store import PostgresStore
from paywire.ledger.postgres._write import PostgresWriteTransaction

__all__ = [
    "CONNECT_TIMEOUT_S",
    "COPY_MIN_ROWS",
    "EXPIRY_PREFETCH",
    "IDLE",
    "LOCK_TIMEOUT_S",
    "MAX_READERS",
    "READER_WAIT_S",
    "SCAN_ROWS",
    "SCHEMA_LOCK_KEY",
    "URL_SCHEMES",
    "Connection",
    "PostgresReader",
    "PostgresStore",
    "PostgresWriteTransaction",
]
