"""The embedded store: one SQLite file in WAL mode.

One writer at a time (SQLite's own lock, taken with BEGIN IMMEDIATE, so several processes
may share a file), any number of snapshot readers. The ledger's writer thread groups many
requests into each transaction (group commit), which is what makes SQLite fast here.

Amounts and balances are u128, past SQLite's 64-bit integers, so they are stored as
decimal text; all arithmetic happens in Python, inside the write transaction.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from paywire.ledger import sqlite_limits
from paywire.ledger.errors import LedgerUnavailable, StoreCorrupt
from paywire.ledger.model import AccountKind, HoldState, TransferKind
from paywire.ledger.state import (
    AccountState,
    LimitState,
    TransferState,
    flags_from_bits,
    flags_to_bits,
    limits_from_text,
    limits_to_text,
)
from paywire.ledger.store import (
    DEFAULT_PAGE_ROWS,
    MAX_READ_ROWS,
    SCHEMA_VERSION,
    BatchWrite,
    LogHead,
    StoredCheckpoint,
)
from paywire.money import Asset

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another process's write lock before giving up."""

MAX_SQL_PARAMS = 900
"""Ids per IN (...) query; SQLite's limit is 32766 on recent builds, 999 on old ones."""

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
    limits TEXT
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
    "pending_id, expires_at, hold_state, resolved_by, limits"
)


def _account(row: sqlite3.Row | tuple[object, ...]) -> AccountState:
    (aid, asset, decimals, kind, owner, flags, metadata, dp, dpo, cp, cpo, index, ts, fp) = row
    return AccountState(
        id=str(aid),
        asset=Asset(str(asset), int(str(decimals))),
        kind=AccountKind(str(kind)),
        owner=None if owner is None else str(owner),
        flags=flags_from_bits(int(str(flags))),
        timestamp=int(str(ts)),
        log_index=int(str(index)),
        fingerprint=_blob(fp, "a fingerprint"),
        debits_pending=int(str(dp)),
        debits_posted=int(str(dpo)),
        credits_pending=int(str(cp)),
        credits_posted=int(str(cpo)),
        metadata=json.loads(str(metadata)),
    )


def _transfer(row: tuple[object, ...]) -> TransferState:
    (tid, kind, debit, credit, amount, asset, code, ts, index, fp, pid, expires, state, by, lim) = (
        row
    )
    return TransferState(
        id=str(tid),
        kind=TransferKind(str(kind)),
        debit=str(debit),
        credit=str(credit),
        amount=int(str(amount)),
        asset=str(asset),
        code=int(str(code)),
        timestamp=int(str(ts)),
        log_index=int(str(index)),
        fingerprint=_blob(fp, "a fingerprint"),
        pending_id=None if pid is None else str(pid),
        expires_at=None if expires is None else int(str(expires)),
        hold_state=None if state is None else HoldState(str(state)),
        resolved_by=None if by is None else str(by),
        limits=limits_from_text(None if lim is None else str(lim)),
    )


def _blob(value: object, what: str) -> bytes:
    """A BLOB column's bytes; anything else means someone edited the file by hand."""
    if not isinstance(value, bytes):
        raise StoreCorrupt(f"{what} is stored as {type(value).__name__}, not bytes")
    return value


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), MAX_SQL_PARAMS):
        yield ids[start : start + MAX_SQL_PARAMS]


class _Reads:
    """Queries shared by the write transaction and snapshot readers."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    def load_accounts(self, ids: Sequence[str]) -> dict[str, AccountState]:
        found: dict[str, AccountState] = {}
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id IN ({marks})"  # noqa: S608
            for row in self._db.execute(sql, chunk):
                state = _account(row)
                found[state.id] = state
        return found

    def load_transfers(self, ids: Sequence[str]) -> dict[str, TransferState]:
        found: dict[str, TransferState] = {}
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE id IN ({marks})"  # noqa: S608
            for row in self._db.execute(sql, chunk):
                state = _transfer(row)
                found[state.id] = state
        return found

    def load_limits(self, ids: Sequence[str]) -> dict[str, LimitState]:
        return sqlite_limits.load_limits(self._db, _chunks(list(ids)))

    def load_accounts_and_limits(
        self, account_ids: Sequence[str], limit_ids: Sequence[str]
    ) -> tuple[dict[str, AccountState], dict[str, LimitState]]:
        return self.load_accounts(account_ids), self.load_limits(limit_ids)

    def entry(self, index: int) -> bytes | None:
        row = self._db.execute("SELECT entry FROM log WHERE idx = ?", (index,)).fetchone()
        return None if row is None else _blob(row[0], f"log entry {index}")

    def _read_head(self) -> LogHead:
        row = self._db.execute("SELECT size, frontier, last_timestamp FROM log_head").fetchone()
        if row is None:
            raise StoreCorrupt("the store has no log head; was it initialized?")
        return LogHead(int(row[0]), _blob(row[1], "the log frontier"), int(row[2]))


class SQLiteWriteTransaction(_Reads):
    """The write lock, held from BEGIN IMMEDIATE until commit or rollback."""

    def __init__(self, connection: sqlite3.Connection, release: Callable[[], None]) -> None:
        super().__init__(connection)
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise LedgerUnavailable(f"cannot take the ledger's write lock: {error}") from None
        self._release: Callable[[], None] | None = release
        self.head = self._read_head()

    def _done(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def due_holds(self, now: int, limit: int) -> list[str]:
        rows = self._db.execute(
            "SELECT id FROM transfers WHERE hold_state = 'pending' AND expires_at IS NOT NULL "
            "AND expires_at <= ? ORDER BY expires_at LIMIT ?",
            (now, limit),
        )
        return [str(row[0]) for row in rows]

    def write(self, batch: BatchWrite) -> None:
        db = self._db
        records = batch.records
        db.executemany(
            "INSERT INTO log (idx, entry, leaf_hash) VALUES (?, ?, ?)",
            [
                (record.index, record.data, leaf)
                for record, leaf in zip(records, batch.leaf_hashes, strict=True)
            ],
        )
        new_accounts = [record.account for record in records if record.account is not None]
        new_transfers = [record.transfer for record in records if record.transfer is not None]
        if new_accounts:
            db.executemany(
                f"INSERT INTO accounts ({_ACCOUNT_COLUMNS}) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        a.id,
                        a.asset.code,
                        a.asset.decimals,
                        str(a.kind),
                        a.owner,
                        flags_to_bits(a.flags),
                        json.dumps(a.metadata, sort_keys=True),
                        str(a.debits_pending),
                        str(a.debits_posted),
                        str(a.credits_pending),
                        str(a.credits_posted),
                        a.log_index,
                        a.timestamp,
                        a.fingerprint,
                    )
                    for a in new_accounts
                ],
            )
        if new_transfers:
            db.executemany(
                f"INSERT INTO transfers ({_TRANSFER_COLUMNS}) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        t.id,
                        str(t.kind),
                        t.debit,
                        t.credit,
                        str(t.amount),
                        t.asset,
                        t.code,
                        t.timestamp,
                        t.log_index,
                        t.fingerprint,
                        t.pending_id,
                        t.expires_at,
                        None if t.hold_state is None else str(t.hold_state),
                        t.resolved_by,
                        limits_to_text(t.limits),
                    )
                    for t in new_transfers
                ],
            )
        created_accounts = {a.id for a in new_accounts}
        db.executemany(
            "UPDATE accounts SET debits_pending = ?, debits_posted = ?, credits_pending = ?, "
            "credits_posted = ? WHERE id = ?",
            [
                (
                    str(a.debits_pending),
                    str(a.debits_posted),
                    str(a.credits_pending),
                    str(a.credits_posted),
                    a.id,
                )
                for a in batch.dirty_accounts
                if a.id not in created_accounts
            ],
        )
        first_new = records[0].index if records else batch.head.size
        db.executemany(
            "UPDATE transfers SET hold_state = ?, resolved_by = ? WHERE log_index = ?",
            [
                (str(t.hold_state), t.resolved_by, t.log_index)
                for t in batch.dirty_holds
                if t.log_index < first_new
            ],
        )
        sqlite_limits.write_limits(db, batch)
        if batch.nodes:
            db.executemany(
                "INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)",
                [(node.level, node.index, node.hash) for node in batch.nodes],
            )
        head = batch.head
        db.execute(
            "UPDATE log_head SET size = ?, frontier = ?, last_timestamp = ? WHERE id = 1",
            (head.size, head.frontier, head.last_timestamp),
        )

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        row = self._db.execute(
            "SELECT tree_size, root_hash, timestamp, signature FROM checkpoints "
            "ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        size, root, timestamp, signature = row
        return StoredCheckpoint(
            int(size), _blob(root, "a root"), int(timestamp), _blob(signature, "a signature")
        )

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        latest = self.latest_checkpoint()
        assert latest is None or latest.tree_size < checkpoint.tree_size
        self._db.execute(
            "INSERT INTO checkpoints (tree_size, root_hash, timestamp, signature) "
            "VALUES (?, ?, ?, ?)",
            (
                checkpoint.tree_size,
                checkpoint.root_hash,
                checkpoint.timestamp,
                checkpoint.signature,
            ),
        )

    def commit(self) -> None:
        try:
            self._db.execute("COMMIT")
        finally:
            self._done()

    def rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        finally:
            self._done()


class SQLiteReader(_Reads):
    """Snapshot reads (one deferred read transaction: WAL gives a stable view)."""

    def head(self) -> LogHead:
        return self._read_head()

    def meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def get_account(self, account_id: str) -> AccountState | None:
        return self.load_accounts([account_id]).get(account_id)

    def list_accounts(
        self,
        *,
        kind: AccountKind | None = None,
        owner: str | None = None,
        after: str | None = None,
        limit: int = DEFAULT_PAGE_ROWS,
    ) -> list[AccountState]:
        clauses, params = ["1 = 1"], list[object]()
        if kind is not None:
            clauses.append("kind = ?")
            params.append(str(kind))
        if owner is not None:
            clauses.append("owner = ?")
            params.append(owner)
        if after is not None:
            clauses.append("id > ?")
            params.append(after)
        params.append(max(1, min(limit, MAX_READ_ROWS)))
        sql = (
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE {' AND '.join(clauses)} "  # noqa: S608
            "ORDER BY id LIMIT ?"
        )
        return [_account(row) for row in self._db.execute(sql, params)]

    def all_accounts(self) -> Iterator[AccountState]:
        sql = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY id"  # noqa: S608
        for row in self._db.execute(sql):
            yield _account(row)

    def get_transfer(self, transfer_id: str) -> TransferState | None:
        return self.load_transfers([transfer_id]).get(transfer_id)

    def get_limit(self, limit_id: str) -> LimitState | None:
        return self.load_limits([limit_id]).get(limit_id)

    def all_limits(self) -> Iterator[LimitState]:
        return sqlite_limits.all_limits(self._db)

    def history(
        self, account_id: str, *, before: int | None = None, limit: int = DEFAULT_PAGE_ROWS
    ) -> list[int]:
        bound = (2**63 - 1) if before is None else before
        rows = self._db.execute(
            "SELECT log_index FROM ("
            " SELECT log_index FROM transfers WHERE debit = ? AND log_index < ?"
            " UNION SELECT log_index FROM transfers WHERE credit = ? AND log_index < ?"
            ") ORDER BY log_index DESC LIMIT ?",
            (account_id, bound, account_id, bound, max(1, min(limit, MAX_READ_ROWS))),
        )
        return [int(row[0]) for row in rows]

    def entries(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        rows = self._db.execute(
            "SELECT idx, entry FROM log WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
        )
        for index, data in rows:
            yield int(index), _blob(data, f"log entry {index}")

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        rows = self._db.execute(
            "SELECT leaf_hash FROM log WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
        ).fetchall()
        if len(rows) != end - start:
            raise StoreCorrupt(f"log leaves [{start}, {end}) are missing from the store")
        return [_blob(row[0], "a leaf hash") for row in rows]

    def stored_nodes(self, level: int, start: int, end: int) -> Sequence[bytes]:
        rows = self._db.execute(
            "SELECT hash FROM log_nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
            (level, start, end),
        ).fetchall()
        if len(rows) != end - start:
            raise StoreCorrupt(f"Merkle nodes at level {level} [{start}, {end}) are missing")
        return [_blob(row[0], "a Merkle node") for row in rows]

    def checkpoints(self) -> list[StoredCheckpoint]:
        rows = self._db.execute(
            "SELECT tree_size, root_hash, timestamp, signature FROM checkpoints ORDER BY tree_size"
        )
        return [
            StoredCheckpoint(int(s), _blob(r, "a root"), int(t), _blob(sig, "a signature"))
            for s, r, t, sig in rows
        ]

    def next_expiry(self) -> int | None:
        row = self._db.execute(
            "SELECT MIN(expires_at) FROM transfers WHERE hold_state = 'pending' "
            "AND expires_at IS NOT NULL"
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])


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
                sqlite_limits.migrate(db, None if version is None else str(version[0]))
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
