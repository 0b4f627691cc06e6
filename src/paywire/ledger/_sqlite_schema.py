"""The SQLite store's tables (spend limits' own come from `sqlite_limits`, the task index
from `_sqlite_tasks`) and the column lists that its reads and writes share."""

from __future__ import annotations

from paywire.ledger import sqlite_limits

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    frontier BLOB NOT NULL,
    last_timestamp INTEGER NOT NULL
);
INSERT OR IGNORE INTO log_head (id, size, frontier, last_timestamp) VALUES (1, 0, x'', 0);
CREATE TABLE IF NOT EXISTS log (
    idx INTEGER PRIMARY KEY,
    entry BLOB NOT NULL,
    leaf_hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS log_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    asset TEXT NOT NULL,
    decimals INTEGER NOT NULL,
    kind TEXT NOT NULL,
    owner TEXT,
    flags INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    debits_pending TEXT NOT NULL,
    debits_posted TEXT NOT NULL,
    credits_pending TEXT NOT NULL,
    credits_posted TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    fingerprint BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS accounts_owner ON accounts (owner) WHERE owner IS NOT NULL;
CREATE TABLE IF NOT EXISTS transfers (
    log_index INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    debit TEXT NOT NULL,
    credit TEXT NOT NULL,
    amount TEXT NOT NULL,
    asset TEXT NOT NULL,
    code INTEGER NOT NULL,
    pending_id TEXT,
    expires_at INTEGER,
    hold_state TEXT,
    resolved_by TEXT,
    timestamp INTEGER NOT NULL,
    fingerprint BLOB NOT NULL,
    limits TEXT,
    task TEXT
);
CREATE INDEX IF NOT EXISTS transfers_debit ON transfers (debit, log_index);
CREATE INDEX IF NOT EXISTS transfers_credit ON transfers (credit, log_index);
CREATE INDEX IF NOT EXISTS transfers_expiry ON transfers (expires_at)
    WHERE hold_state = 'pending' AND expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS checkpoints (
    tree_size INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    signature BLOB NOT NULL
);
"""
    + sqlite_limits.LIMITS_SCHEMA
)

_ACCOUNT_COLUMNS = (
    "id, asset, decimals, kind, owner, flags, metadata, debits_pending, debits_posted, "
    "credits_pending, credits_posted, log_index, timestamp, fingerprint"
)
_TRANSFER_COLUMNS = (
    "id, kind, debit, credit, amount, asset, code, timestamp, log_index, fingerprint, "
    "pending_id, expires_at, hold_state, resolved_by, limits, task"
)
