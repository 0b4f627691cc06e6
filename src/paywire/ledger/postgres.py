"""The distributed store: the ledger in a PostgreSQL database (psycopg 3, synchronous).

The log is a total order, so writers are serialized by one row lock: every write
transaction starts with ``SELECT ... FROM log_head WHERE id = 1 FOR UPDATE``. Any number
of processes may share a database; each batch reads the state it builds on after taking
that lock. Readers use REPEATABLE READ, READ ONLY transactions: one stable snapshot each.

The tables mirror the SQLite store's, column for column. Amounts and balances are u128,
kept as NUMERIC(39, 0) (2^128 - 1 has 39 digits); all arithmetic happens in Python.
Text ids use the "C" collation so they sort by code point, as in SQLite, whatever the
database's locale.

A batch costs four round trips whatever its size: BEGIN with the lock and the first
holds to expire; load the transfers, then the accounts, it touches; one statement with
every insert and update (its rows passed as arrays that the server unnests) pipelined
with COMMIT.
Past `COPY_MIN_ROWS` rows, a table's inserts go by COPY instead (two more round trips,
half the server's time per row).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.numeric import Int8BinaryDumper, Int8Dumper

from paywire.ledger.engine import (
    AccountState,
    TransferState,
    flags_from_bits,
    flags_to_bits,
)
from paywire.ledger.errors import InvalidRequest, LedgerUnavailable, StoreCorrupt
from paywire.ledger.model import AccountFlag, AccountKind, HoldState, TransferKind
from paywire.ledger.store import (
    DEFAULT_PAGE_ROWS,
    MAX_READ_ROWS,
    SCHEMA_VERSION,
    BatchWrite,
    LogHead,
    StoredCheckpoint,
)
from paywire.money import Asset

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

Connection = psycopg.Connection[tuple[Any, ...]]

IDLE = psycopg.pq.TransactionStatus.IDLE

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
    fingerprint BYTEA NOT NULL
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

_ACCOUNT_COLUMNS = (
    "id, asset, decimals, kind, owner, flags, metadata, debits_pending, debits_posted, "
    "credits_pending, credits_posted, log_index, timestamp, fingerprint"
)
_TRANSFER_COLUMNS = (
    "id, kind, debit, credit, amount, asset, code, timestamp, log_index, fingerprint, "
    "pending_id, expires_at, hold_state, resolved_by"
)


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
# prepared statement with one plan: every int is sent as int8 (see _session), u128 numbers
# as text, and NULL in an array as a value no row can hold (psycopg would send an array
# of NULLs with no type).
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
        *("text", "int8", "text", "text"),
    ),
    nullable=frozenset({10, 11, 12, 13}),  # pending_id, expires_at, hold_state, resolved_by
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
}


@functools.cache
def _write_sql(parts: tuple[str, ...]) -> str:
    """One statement for a whole batch: its inserts and updates as data-modifying WITH
    clauses, and the log head's update. They all run on the snapshot the statement
    starts with and none needs another's rows: the balances updated are of accounts that
    existed before the batch, the holds resolved of transfers that did (new ones are
    inserted with their final state)."""
    if not parts:
        return _UPDATE_HEAD
    clauses = ", ".join(f"write_{name} AS ({_WRITE_PARTS[name]})" for name in parts)
    return f"WITH {clauses} {_UPDATE_HEAD}"


_BEGIN_WRITE = (
    "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE; "  # noqa: S608 (constants only)
    "SELECT size, frontier, last_timestamp FROM log_head WHERE id = 1 FOR UPDATE; "
    "SELECT id, expires_at FROM transfers WHERE hold_state = 'pending' "
    f"AND expires_at IS NOT NULL ORDER BY expires_at LIMIT {EXPIRY_PREFETCH}"
)

# Rows come back by the thousand per batch: share the immutable parts.
_ASSETS: dict[tuple[str, int], Asset] = {}
_FLAGS: dict[int, frozenset[AccountFlag]] = {}
_KINDS = {kind.value: kind for kind in AccountKind}
_TRANSFER_KINDS = {kind.value: kind for kind in TransferKind}
_HOLD_STATES = {state.value: state for state in HoldState}


def _asset(code: str, decimals: int) -> Asset:
    asset = _ASSETS.get((code, decimals))
    if asset is None:
        asset = _ASSETS.setdefault((code, decimals), Asset(code, decimals))
    return asset


def _flags(bits: int) -> frozenset[AccountFlag]:
    flags = _FLAGS.get(bits)
    if flags is None:
        flags = _FLAGS.setdefault(bits, flags_from_bits(bits))
    return flags


def _account(row: Sequence[Any]) -> AccountState:
    (aid, asset, decimals, kind, owner, flags, metadata, dp, dpo, cp, cpo, index, ts, fp) = row
    return AccountState(
        id=aid,
        asset=_asset(asset, decimals),
        kind=_KINDS[kind],
        owner=owner,
        flags=_flags(flags),
        timestamp=ts,
        log_index=index,
        fingerprint=fp,
        debits_pending=int(dp),
        debits_posted=int(dpo),
        credits_pending=int(cp),
        credits_posted=int(cpo),
        metadata={} if metadata == "{}" else json.loads(metadata),
    )


def _transfer(row: Sequence[Any]) -> TransferState:
    (tid, kind, debit, credit, amount, asset, code, ts, index, fp, pid, expires, state, by) = row
    return TransferState(
        id=tid,
        kind=_TRANSFER_KINDS[kind],
        debit=debit,
        credit=credit,
        amount=int(amount),
        asset=asset,
        code=code,
        timestamp=ts,
        log_index=index,
        fingerprint=fp,
        pending_id=pid,
        expires_at=expires,
        hold_state=None if state is None else _HOLD_STATES[state],
        resolved_by=by,
    )


# ----- URLs ----------------------------------------------------------------------------


def _describe(url: str) -> str:
    """The URL without its password (in the user info or the query), for messages."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    user_info, at, hosts = netloc.rpartition("@")
    if at:
        user_info = user_info.split(":", 1)[0]
        netloc = f"{user_info}@{hosts}"
    path, question, query = path.partition("?")
    if question:
        kept = [
            pair
            for pair in query.split("&")
            if urllib.parse.unquote(pair.split("=", 1)[0]) != "password"
        ]
        query = "&".join(kept)
        question = "?" if query else ""
    return f"{scheme}{sep}{netloc}{slash}{path}{question}{query}"


class _Scrubber:
    """Removes a password from error messages (libpq rarely echoes it, but never say it)."""

    def __init__(self, password: str | None) -> None:
        secrets: set[str] = set()
        if password:
            secrets.update((password, urllib.parse.quote(password, safe="")))
            secrets.add(urllib.parse.quote_plus(password))
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True)))
            if secrets
            else None
        )

    def __call__(self, error: BaseException) -> str:
        text = str(error).strip()
        if self._pattern is not None:
            text = self._pattern.sub("***", text)
        return text


def _parse_url(url: object) -> tuple[str, str, str | None]:
    """Check a URL and return (conninfo to connect with, description, password)."""
    if not isinstance(url, str) or not url.startswith(URL_SCHEMES):
        shown = url.split("://", 1)[0] if isinstance(url, str) else type(url).__name__
        raise InvalidRequest(
            f"a PostgreSQL ledger URL starts with postgresql://, not {shown!r} "
            "(e.g. postgresql://user@host:5432/paywire)"
        )
    description = _describe(url)
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as error:
        password = _password_guess(url)
        raise InvalidRequest(
            f"invalid PostgreSQL URL {description}: {_Scrubber(password)(error)}"
        ) from None
    password = None if params.get("password") is None else str(params["password"])
    for port in str(params.get("port", "")).split(","):
        if port and not port.isdigit():
            raise InvalidRequest(f"invalid PostgreSQL URL {description}: port {port!r}")
    extra: dict[str, Any] = {}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = CONNECT_TIMEOUT_S
    if "application_name" not in params:
        extra["application_name"] = "paywire-ledger"
    try:
        conninfo = make_conninfo(url, **extra)
    except psycopg.Error as error:
        raise InvalidRequest(
            f"invalid PostgreSQL URL {description}: {_Scrubber(password)(error)}"
        ) from None
    return conninfo, description, password


def _password_guess(url: str) -> str | None:
    """The password in a URL libpq would not parse (only to scrub it from messages)."""
    netloc = url.partition("://")[2].partition("/")[0]
    user_info, at, _ = netloc.rpartition("@")
    if not at or ":" not in user_info:
        return None
    return urllib.parse.unquote(user_info.split(":", 1)[1])


def _session(connection: Connection, *, writer: bool) -> None:
    """Set up a new connection; session settings only, nothing changes on the server."""
    adapters = connection.adapters
    adapters.register_dumper(int, Int8Dumper)
    adapters.register_dumper(int, Int8BinaryDumper)
    settings = [
        # Every query here has an index to follow. A prepared statement keeps the generic
        # plan made when it was prepared, and one made while a table was nearly empty
        # scans the table: a lookup of a few ids would grow linear in the table's size
        # until the next ANALYZE. Without sequential scans the plans do not depend on the
        # size the tables had then.
        "SET enable_seqscan = off",
    ]
    if writer:  # wait this long for another process's write lock
        settings.append(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'")
    connection.execute("; ".join(settings))


class _StaleConnection(LedgerUnavailable):
    """The writer's connection was found dead at BEGIN (nothing was written)."""


def _end_transaction(connection: Connection) -> bool:
    """Roll back whatever transaction is open; whether the connection is fit for reuse."""
    try:
        if connection.closed or connection.broken:
            return False
        if connection.info.transaction_status != IDLE:
            connection.execute("ROLLBACK")
    except psycopg.Error:
        return False
    return not connection.broken and connection.info.transaction_status == IDLE


# ----- reads ---------------------------------------------------------------------------


class _Reads:
    """Queries shared by the write transaction and snapshot readers."""

    def __init__(self, connection: Connection) -> None:
        self._db = connection

    def load_accounts(self, ids: Sequence[str]) -> dict[str, AccountState]:
        if not ids:
            return {}
        rows = self._db.execute(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY(%s::text[])",  # noqa: S608
            (list(ids),),
        )
        found: dict[str, AccountState] = {}
        for row in rows:
            state = _account(row)
            found[state.id] = state
        return found

    def load_transfers(self, ids: Sequence[str]) -> dict[str, TransferState]:
        if not ids:
            return {}
        rows = self._db.execute(
            f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE id = ANY(%s::text[])",  # noqa: S608
            (list(ids),),
        )
        found: dict[str, TransferState] = {}
        for row in rows:
            state = _transfer(row)
            found[state.id] = state
        return found

    def entry(self, index: int) -> bytes | None:
        row = self._db.execute("SELECT entry FROM log WHERE idx = %s", (index,)).fetchone()
        return None if row is None else bytes(row[0])


class PostgresWriteTransaction(_Reads):
    """The write lock (the log head's row lock), held from begin until commit or rollback.

    The transaction runs at READ COMMITTED, where every statement takes a fresh snapshot
    when it starts. The row lock is granted only once the previous writer's transaction
    has ended, and PostgreSQL makes a commit visible before it releases the committer's
    locks; `FOR UPDATE` itself returns the newest committed version of the row. So the
    head read here, and every statement after it in this transaction, sees all that any
    writer in any process committed before. (At REPEATABLE READ the snapshot would be the
    first statement's, and `FOR UPDATE` would fail with a serialization error each time
    another writer had committed in between.)
    """

    head: LogHead

    def __init__(
        self,
        connection: Connection,
        description: str,
        scrub: _Scrubber,
        release: Callable[[bool], None],
    ) -> None:
        """Begin; `release(healthy)` is called once, when the transaction ends."""
        super().__init__(connection)
        self._description = description
        self._scrub = scrub
        self._release: Callable[[bool], None] | None = release
        self._pipeline: contextlib.ExitStack | None = None
        try:
            # One round trip, one simple-protocol message: BEGIN, the lock, and the holds
            # that expire first. Each statement of the message takes its own snapshot as it
            # starts, so the third one, which runs once the lock is ours, sees every commit
            # before (a subquery in the second would not: that statement's snapshot is
            # taken before it waits for the lock).
            cursor = connection.execute(_BEGIN_WRITE)
            cursor.nextset()
            row = cursor.fetchone()
            cursor.nextset()
            self._first_expiries: list[tuple[str, int]] = cursor.fetchall()
        except psycopg.Error as error:
            stale = connection.broken
            self._abandon()
            message = f"cannot take the write lock of {description}: {scrub(error)}"
            raise (_StaleConnection if stale else LedgerUnavailable)(message) from None
        if row is None:
            self._abandon()
            raise StoreCorrupt("the store has no log head; was it initialized?")
        self.head = LogHead(int(row[0]), bytes(row[1]), int(row[2]))

    def _abandon(self) -> None:
        self._done(_end_transaction(self._db))

    def _done(self, healthy: bool) -> None:
        release, self._release = self._release, None
        if release is not None:
            release(healthy)

    def _unavailable(self, doing: str, error: psycopg.Error) -> LedgerUnavailable:
        return LedgerUnavailable(f"cannot {doing} {self._description}: {self._scrub(error)}")

    def load_accounts(self, ids: Sequence[str]) -> dict[str, AccountState]:
        try:
            return super().load_accounts(ids)
        except psycopg.Error as error:
            raise self._unavailable("read accounts from", error) from None

    def load_transfers(self, ids: Sequence[str]) -> dict[str, TransferState]:
        try:
            return super().load_transfers(ids)
        except psycopg.Error as error:
            raise self._unavailable("read transfers from", error) from None

    def entry(self, index: int) -> bytes | None:
        try:
            return super().entry(index)
        except psycopg.Error as error:
            raise self._unavailable("read the log of", error) from None

    def due_holds(self, now: int, limit: int) -> list[str]:
        first = self._first_expiries
        if len(first) < EXPIRY_PREFETCH or first[-1][1] > now:
            # The holds read at BEGIN include every one due by `now`: no query.
            return [hold_id for hold_id, expires_at in first if expires_at <= now][:limit]
        try:
            rows = self._db.execute(
                "SELECT id FROM transfers WHERE hold_state = 'pending' "
                "AND expires_at IS NOT NULL AND expires_at <= %s ORDER BY expires_at LIMIT %s",
                (now, limit),
            ).fetchall()
        except psycopg.Error as error:
            raise self._unavailable("read holds from", error) from None
        return [str(row[0]) for row in rows]

    def write(self, batch: BatchWrite) -> None:
        try:
            self._write(batch)
        except psycopg.Error as error:
            raise self._unavailable("write to", error) from None

    def _write(self, batch: BatchWrite) -> None:
        records = batch.records
        new_accounts = [record.account for record in records if record.account is not None]
        new_transfers = [record.transfer for record in records if record.transfer is not None]
        created_accounts = {a.id for a in new_accounts}
        updated = [a for a in batch.dirty_accounts if a.id not in created_accounts]
        # Holds created in this batch are inserted with their final state.
        first_new = records[0].index if records else batch.head.size
        resolved = [t for t in batch.dirty_holds if t.log_index < first_new]
        inserts: list[tuple[str, _Table, list[tuple[object, ...]]]] = [
            (
                "log",
                _LOG,
                [
                    (record.index, record.data, leaf)
                    for record, leaf in zip(records, batch.leaf_hashes, strict=True)
                ],
            ),
            (
                "accounts",
                _ACCOUNTS,
                [
                    (
                        a.id,
                        a.asset.code,
                        a.asset.decimals,
                        str(a.kind),
                        a.owner,
                        flags_to_bits(a.flags),
                        json.dumps(a.metadata, sort_keys=True),
                        a.debits_pending,
                        a.debits_posted,
                        a.credits_pending,
                        a.credits_posted,
                        a.log_index,
                        a.timestamp,
                        a.fingerprint,
                    )
                    for a in new_accounts
                ],
            ),
            (
                "transfers",
                _TRANSFERS,
                [
                    (
                        t.id,
                        str(t.kind),
                        t.debit,
                        t.credit,
                        t.amount,
                        t.asset,
                        t.code,
                        t.timestamp,
                        t.log_index,
                        t.fingerprint,
                        t.pending_id,
                        t.expires_at,
                        None if t.hold_state is None else str(t.hold_state),
                        t.resolved_by,
                    )
                    for t in new_transfers
                ],
            ),
            ("nodes", _NODES, [(node.level, node.index, node.hash) for node in batch.nodes]),
        ]
        head = batch.head
        cursor = self._db.cursor()
        # COPY is about twice as fast per row as INSERT ... unnest, but takes two round
        # trips of its own: only big batches use it.
        parts: list[str] = []
        params: list[object] = []
        for name, table, rows in inserts:
            if len(rows) >= COPY_MIN_ROWS:
                with cursor.copy(table.copy_sql) as copy:
                    copy.set_types(list(table.types))
                    for row in rows:
                        copy.write_row(row)
            elif rows:
                parts.append(name)
                params += table.arrays(rows)
        if updated:
            parts.append("balances")
            params += (
                [a.id for a in updated],
                [str(a.debits_pending) for a in updated],
                [str(a.debits_posted) for a in updated],
                [str(a.credits_pending) for a in updated],
                [str(a.credits_posted) for a in updated],
            )
        if resolved:
            parts.append("holds")
            params += (
                [t.log_index for t in resolved],
                [str(t.hold_state) for t in resolved],
                [str(t.resolved_by) for t in resolved],
            )
        params += (head.size, head.frontier, head.last_timestamp)
        # The rest is one statement, queued in a pipeline that `commit` ends with COMMIT:
        # the batch and its commit travel in one round trip (and its errors come back then).
        self._pipeline = contextlib.ExitStack()
        self._pipeline.enter_context(self._db.pipeline())
        cursor.execute(_write_sql(tuple(parts)), params)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        try:
            row = self._db.execute(
                "SELECT tree_size, root_hash, timestamp, signature FROM checkpoints "
                "ORDER BY tree_size DESC LIMIT 1"
            ).fetchone()
        except psycopg.Error as error:
            raise self._unavailable("read the checkpoints of", error) from None
        return None if row is None else StoredCheckpoint(*row)

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        latest = self.latest_checkpoint()
        assert latest is None or latest.tree_size < checkpoint.tree_size
        try:
            self._db.execute(
                "INSERT INTO checkpoints (tree_size, root_hash, timestamp, signature) "
                "VALUES (%s, %s, %s, %s)",
                (
                    checkpoint.tree_size,
                    checkpoint.root_hash,
                    checkpoint.timestamp,
                    checkpoint.signature,
                ),
            )
        except psycopg.Error as error:
            raise self._unavailable("store a checkpoint in", error) from None

    def commit(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        try:
            cursor = self._db.cursor()
            try:
                cursor.execute("COMMIT")
            except psycopg.Error:
                if pipeline is not None:  # leave pipeline mode; the first error is the one
                    with contextlib.suppress(psycopg.Error):
                        pipeline.close()
                raise
            if pipeline is not None:
                pipeline.close()  # sends the batch and COMMIT; raises the first error
            status = cursor.statusmessage
        except psycopg.Error as error:
            raise self._unavailable("write to", error) from None
        finally:
            self._abandon()  # the connection goes back only if it is idle and sound
        if status != "COMMIT":  # COMMIT of a failed transaction answers ROLLBACK
            raise LedgerUnavailable(f"{self._description} rolled the transaction back")

    def rollback(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            with contextlib.suppress(psycopg.Error):  # the transaction is rolled back anyway
                pipeline.close()
        if self._release is not None:
            self._abandon()


class PostgresReader(_Reads):
    """Snapshot reads (one REPEATABLE READ, READ ONLY transaction)."""

    def head(self) -> LogHead:
        row = self._db.execute(
            "SELECT size, frontier, last_timestamp FROM log_head WHERE id = 1"
        ).fetchone()
        if row is None:
            raise StoreCorrupt("the store has no log head; was it initialized?")
        return LogHead(int(row[0]), bytes(row[1]), int(row[2]))

    def meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def get_account(self, account_id: str) -> AccountState | None:
        row = self._db.execute(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = %s",  # noqa: S608
            (account_id,),
        ).fetchone()
        return None if row is None else _account(row)

    def list_accounts(
        self,
        *,
        kind: AccountKind | None = None,
        owner: str | None = None,
        after: str | None = None,
        limit: int = DEFAULT_PAGE_ROWS,
    ) -> list[AccountState]:
        clauses, params = ["TRUE"], list[object]()
        if kind is not None:
            clauses.append("kind = %s")
            params.append(str(kind))
        if owner is not None:
            clauses.append("owner = %s")
            params.append(owner)
        if after is not None:
            clauses.append("id > %s")
            params.append(after)
        params.append(max(1, min(limit, MAX_READ_ROWS)))
        sql = (
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE {' AND '.join(clauses)} "  # noqa: S608
            "ORDER BY id LIMIT %s"
        )
        return [_account(row) for row in self._db.execute(sql, params)]

    def all_accounts(self) -> Iterator[AccountState]:
        # Pages by id inside the snapshot, so the whole table is never in memory at once.
        after: str | None = None
        while True:
            page = self.list_accounts(after=after, limit=SCAN_ROWS)
            yield from page
            if len(page) < SCAN_ROWS:
                return
            after = page[-1].id

    def get_transfer(self, transfer_id: str) -> TransferState | None:
        row = self._db.execute(
            f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE id = %s",  # noqa: S608
            (transfer_id,),
        ).fetchone()
        return None if row is None else _transfer(row)

    def history(
        self, account_id: str, *, before: int | None = None, limit: int = DEFAULT_PAGE_ROWS
    ) -> list[int]:
        bound = (2**63 - 1) if before is None else before
        limit = max(1, min(limit, MAX_READ_ROWS))
        # Each side walks its index backwards and stops at `limit`.
        rows = self._db.execute(
            "(SELECT log_index FROM transfers WHERE debit = %(a)s AND log_index < %(b)s"
            " ORDER BY log_index DESC LIMIT %(n)s)"
            " UNION (SELECT log_index FROM transfers WHERE credit = %(a)s AND log_index < %(b)s"
            " ORDER BY log_index DESC LIMIT %(n)s)"
            " ORDER BY log_index DESC LIMIT %(n)s",
            {"a": account_id, "b": bound, "n": limit},
        )
        return [int(row[0]) for row in rows]

    def entries(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        while start < end:
            stop = min(end, start + SCAN_ROWS)
            rows = self._db.execute(
                "SELECT idx, entry FROM log WHERE idx >= %s AND idx < %s ORDER BY idx",
                (start, stop),
            ).fetchall()
            for index, data in rows:
                yield int(index), bytes(data)
            start = stop

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        rows = self._db.execute(
            "SELECT leaf_hash FROM log WHERE idx >= %s AND idx < %s ORDER BY idx", (start, end)
        ).fetchall()
        if len(rows) != end - start:
            raise StoreCorrupt(f"log leaves [{start}, {end}) are missing from the store")
        return [bytes(row[0]) for row in rows]

    def stored_nodes(self, level: int, start: int, end: int) -> Sequence[bytes]:
        rows = self._db.execute(
            "SELECT hash FROM log_nodes WHERE level = %s AND idx >= %s AND idx < %s ORDER BY idx",
            (level, start, end),
        ).fetchall()
        if len(rows) != end - start:
            raise StoreCorrupt(f"Merkle nodes at level {level} [{start}, {end}) are missing")
        return [bytes(row[0]) for row in rows]

    def checkpoints(self) -> list[StoredCheckpoint]:
        rows = self._db.execute(
            "SELECT tree_size, root_hash, timestamp, signature FROM checkpoints ORDER BY tree_size"
        )
        return [StoredCheckpoint(int(s), bytes(r), int(t), bytes(sig)) for s, r, t, sig in rows]

    def next_expiry(self) -> int | None:
        row = self._db.execute(
            "SELECT MIN(expires_at) FROM transfers WHERE hold_state = 'pending' "
            "AND expires_at IS NOT NULL"
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])


class PostgresStore:
    """A ledger in a PostgreSQL database, shared by any number of processes.

    ``url`` is a libpq URL, ``postgresql://user[:password]@host[:port]/database``. Nothing
    connects until the first use. One connection writes (the ledger's writer thread);
    reads borrow from a small pool of connections (at most `max_readers`).
    """

    def __init__(self, url: str, *, max_readers: int = MAX_READERS) -> None:
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
        if not self._readers.acquire(timeout=READER_WAIT_S):
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
        db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        exists = db.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
        if exists is None or not exists[0]:
            db.execute(_SCHEMA)  # no parameters: one simple-protocol message
        version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
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
