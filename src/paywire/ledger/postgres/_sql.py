"""The schema and the SQL text of the PostgreSQL store.

The tables mirror the SQLite store's, column for column. Amounts and balances are u128,
kept as NUMERIC(39, 0) (2^128 - 1 has 39 digits); all arithmetic happens in Python.
Text ids use the "C" collation so they sort by code point, as in SQLite, whatever the
database's locale.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from paywire.ledger import postgres

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS log_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL,
    frontier BYTEA NOT NULL,
    last_timestamp BIGINT NOT NULL
);
INSERT INTO log_head (id, size, frontier, last_timestamp) VALUES (1, 0, '\\x', 0)
    ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS log (
    idx BIGINT PRIMARY KEY,
    entry BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS log_nodes (
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT COLLATE "C" PRIMARY KEY,
    asset TEXT COLLATE "C" NOT NULL,
    decimals INTEGER NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    owner TEXT COLLATE "C",
    flags INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    debits_pending NUMERIC(39, 0) NOT NULL,
    debits_posted NUMERIC(39, 0) NOT NULL,
    credits_pending NUMERIC(39, 0) NOT NULL,
    credits_posted NUMERIC(39, 0) NOT NULL,
    log_index BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    fingerprint BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS accounts_owner ON accounts (owner) WHERE owner IS NOT NULL;
CREATE TABLE IF NOT EXISTS transfers (
    log_index BIGINT PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL UNIQUE,
    kind TEXT COLLATE "C" NOT NULL,
    debit TEXT COLLATE "C" NOT NULL,
    credit TEXT COLLATE "C" NOT NULL,
    amount NUMERIC(39, 0) NOT NULL,
    asset TEXT COLLATE "C" NOT NULL,
    code INTEGER NOT NULL,
    pending_id TEXT COLLATE "C",
    expires_at BIGINT,
    hold_state TEXT COLLATE "C",
    resolved_by TEXT COLLATE "C",
    timestamp BIGINT NOT NULL,
    fingerprint BYTEA NOT NULL,
    limits TEXT COLLATE "C",
    task TEXT COLLATE "C"
);
CREATE INDEX IF NOT EXISTS transfers_debit ON transfers (debit, log_index);
CREATE INDEX IF NOT EXISTS transfers_credit ON transfers (credit, log_index);
CREATE INDEX IF NOT EXISTS transfers_expiry ON transfers (expires_at)
    WHERE hold_state = 'pending' AND expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS checkpoints (
    tree_size BIGINT PRIMARY KEY,
    root_hash BYTEA NOT NULL,
    timestamp BIGINT NOT NULL,
    signature BYTEA NOT NULL
);
"""

_LIMITS_SCHEMA = """
CREATE TABLE IF NOT EXISTS limits (
    id TEXT COLLATE "C" PRIMARY KEY,
    asset TEXT COLLATE "C" NOT NULL,
    decimals INTEGER NOT NULL,
    cap NUMERIC(39, 0) NOT NULL,
    window_s BIGINT,
    metadata TEXT NOT NULL,
    closed INTEGER NOT NULL,
    used_total NUMERIC(39, 0) NOT NULL,
    log_index BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    fingerprint BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS limit_usage (
    limit_id TEXT COLLATE "C" NOT NULL,
    slot INTEGER NOT NULL,
    bucket BIGINT NOT NULL,
    used NUMERIC(39, 0) NOT NULL,
    PRIMARY KEY (limit_id, slot)
);
"""
_TASK_INDEX = """
CREATE INDEX IF NOT EXISTS transfers_task ON transfers (task, log_index)
    WHERE task IS NOT NULL;
"""
"""The task index (see `paywire.ledger.task_index`): only tagged transfers take room."""
_SCHEMA += _LIMITS_SCHEMA + _TASK_INDEX

_MIGRATE_FROM_1 = (
    'ALTER TABLE transfers ADD COLUMN IF NOT EXISTS limits TEXT COLLATE "C";'  # noqa: S608
    + _LIMITS_SCHEMA
    + "UPDATE meta SET value = '2' WHERE key = 'schema_version';"
)
"""Schema version 1 to 2: spend limits (run under the schema lock, in one transaction)."""

_ACCOUNT_COLUMNS = (
    "id, asset, decimals, kind, owner, flags, metadata, debits_pending, debits_posted, "
    "credits_pending, credits_posted, log_index, timestamp, fingerprint"
)
_TRANSFER_COLUMNS = (
    "id, kind, debit, credit, amount, asset, code, timestamp, log_index, fingerprint, "
    "pending_id, expires_at, hold_state, resolved_by, limits, task"
)
_LIMIT_COLUMNS = (
    "id, asset, decimals, cap, window_s, metadata, closed, used_total, log_index, timestamp, "
    "fingerprint"
)
_LOAD_LIMITS = (
    f"SELECT {', '.join('l.' + name for name in _LIMIT_COLUMNS.split(', '))}, "  # noqa: S608
    "u.slots, u.buckets, u.used FROM limits AS l "
    "LEFT JOIN LATERAL (SELECT array_agg(slot) AS slots, array_agg(bucket) AS buckets, "
    "array_agg(used) AS used FROM limit_usage WHERE limit_id = l.id) AS u ON TRUE "
    "WHERE l.id = ANY(%s::text[])"
)
"""Limits with their usage slots as three parallel arrays (one aggregate: one order)."""
_LOAD_ACCOUNTS = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY(%s::text[])"  # noqa: S608


@dataclass(frozen=True, slots=True)
class _Table:
    """How a batch inserts rows into one table: with COPY when there are many, else in
    the batch's one statement, the rows travelling as arrays (binary) that the server
    unnests."""

    name: str
    columns: str
    types: tuple[str, ...]
    nullable: frozenset[int] = frozenset()

    @property
    def copy_sql(self) -> str:
        return f"COPY {self.name} ({self.columns}) FROM STDIN (FORMAT BINARY)"

    @property
    def insert_sql(self) -> str:
        arrays = ", ".join(f"%b::{_ARRAY_PARAM[kind]}" for kind in self.types)
        names = ", ".join(f"c{position}" for position in range(len(self.types)))
        values = ", ".join(
            f"NULLIF(u.c{position}, {_NULL_SQL[kind]})"
            if position in self.nullable
            else f"u.c{position}"
            for position, kind in enumerate(self.types)
        )
        return (
            f"INSERT INTO {self.name} ({self.columns}) "  # noqa: S608 (constants only)
            f"SELECT {values} FROM unnest({arrays}) AS u ({names})"
        )

    def arrays(self, rows: list[tuple[object, ...]]) -> list[list[object]]:
        """The rows as one array per column, for `insert_sql`."""
        columns = [list(column) for column in zip(*rows, strict=True)]
        for position, kind in enumerate(self.types):
            if kind == "numeric":
                columns[position] = [str(value) for value in columns[position]]
            elif position in self.nullable:
                null = _NULL_VALUE[kind]
                columns[position] = [
                    null if value is None else value for value in columns[position]
                ]
        return columns


# Each parameter keeps one type whatever the batch holds, so that each statement is one
# prepared statement with one plan: every int is sent as int8 (see _connection._session),
# u128 numbers as text, and NULL in an array as a value no row can hold (psycopg would
# send an array of NULLs with no type).
_ARRAY_PARAM = {
    "int4": "int4[]",
    "int8": "int8[]",
    "bytea": "bytea[]",
    "text": "text[]",
    "numeric": "text[]::numeric[]",
}
_NULL_VALUE: dict[str, object] = {"text": "", "int8": -1}
_NULL_SQL = {"text": "''", "int8": "-1"}


_LOG = _Table("log", "idx, entry, leaf_hash", ("int8", "bytea", "bytea"))
_NODES = _Table("log_nodes", "level, idx, hash", ("int4", "int8", "bytea"))
# Column types, in the order of _ACCOUNT_COLUMNS and _TRANSFER_COLUMNS. Ids and owners
# are never empty, timestamps never negative: those are the NULLs of the arrays.
_ACCOUNTS = _Table(
    "accounts",
    _ACCOUNT_COLUMNS,
    (
        *("text", "text", "int4", "text", "text", "int4", "text"),
        *("numeric", "numeric", "numeric", "numeric", "int8", "int8", "bytea"),
    ),
    nullable=frozenset({4}),  # owner
)
_TRANSFERS = _Table(
    "transfers",
    _TRANSFER_COLUMNS,
    (
        *("text", "text", "text", "text", "numeric", "text", "int4", "int8", "int8", "bytea"),
        *("text", "int8", "text", "text", "text", "text"),
    ),
    # pending_id, expires_at, hold_state, resolved_by, limits, task (never empty)
    nullable=frozenset({10, 11, 12, 13, 14, 15}),
)
_LIMITS = _Table(
    "limits",
    _LIMIT_COLUMNS,
    (
        *("text", "text", "int4", "numeric", "int8", "text"),
        *("int4", "numeric", "int8", "int8", "bytea"),
    ),
    nullable=frozenset({4}),  # window_s (never negative)
)
_UPDATE_LIMITS = (
    "UPDATE limits AS l SET closed = u.closed, used_total = u.total "
    "FROM unnest(%b::text[], %b::int4[], %b::text[]::numeric[]) AS u (id, closed, total) "
    "WHERE l.id = u.id"
)
_UPSERT_USAGE = (
    "INSERT INTO limit_usage (limit_id, slot, bucket, used) "
    "SELECT * FROM unnest(%b::text[], %b::int4[], %b::int8[], %b::text[]::numeric[]) "
    "ON CONFLICT (limit_id, slot) DO UPDATE SET bucket = excluded.bucket, used = excluded.used"
)
_UPDATE_BALANCES = (
    "UPDATE accounts AS a SET debits_pending = u.dp, debits_posted = u.dpo, "
    "credits_pending = u.cp, credits_posted = u.cpo "
    "FROM unnest(%b::text[], %b::text[]::numeric[], %b::text[]::numeric[], "
    "%b::text[]::numeric[], %b::text[]::numeric[]) "
    "AS u (id, dp, dpo, cp, cpo) WHERE a.id = u.id"
)
_UPDATE_HOLDS = (
    "UPDATE transfers AS t SET hold_state = u.state, resolved_by = u.resolved_by "
    "FROM unnest(%b::int8[], %b::text[], %b::text[]) AS u (log_index, state, resolved_by) "
    "WHERE t.log_index = u.log_index"
)
_UPDATE_HEAD = "UPDATE log_head SET size = %b, frontier = %b, last_timestamp = %b WHERE id = 1"
_WRITE_PARTS = {
    "log": _LOG.insert_sql,
    "accounts": _ACCOUNTS.insert_sql,
    "transfers": _TRANSFERS.insert_sql,
    "nodes": _NODES.insert_sql,
    "balances": _UPDATE_BALANCES,
    "holds": _UPDATE_HOLDS,
    "limits": _LIMITS.insert_sql,
    "limit_totals": _UPDATE_LIMITS,
    "usage": _UPSERT_USAGE,
}


@functools.cache
def _write_sql(parts: tuple[str, ...]) -> str:
    """One statement for a whole batch: its inserts and updates as data-modifying WITH
    clauses, and the log head's update. They all run on the snapshot the statement
    starts with and none needs another's rows: the balances updated are of accounts that
    existed before the batch, the holds resolved of transfers that did, the limits updated
    of limits that did (new ones are inserted with their final state), and each usage
    slot is written once."""
    if not parts:
        return _UPDATE_HEAD
    clauses = ", ".join(f"write_{name} AS ({_WRITE_PARTS[name]})" for name in parts)
    return f"WITH {clauses} {_UPDATE_HEAD}"


_BEGIN_WRITE = (
    "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE; "  # noqa: S608 (constants only)
    "SELECT size, frontier, last_timestamp FROM log_head WHERE id = 1 FOR UPDATE; "
    "SELECT id, expires_at FROM transfers WHERE hold_state = 'pending' "
    f"AND expires_at IS NOT NULL ORDER BY expires_at LIMIT {postgres.EXPIRY_PREFETCH}"
)
