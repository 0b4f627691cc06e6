"""Reads of the SQLite store: the queries the write transaction shares, and the snapshot
reader (one deferred read transaction)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

from paywire.ledger import _sqlite_tasks, sqlite_limits
from paywire.ledger._sqlite_rows import _account, _blob, _transfer
from paywire.ledger._sqlite_schema import _ACCOUNT_COLUMNS, _TRANSFER_COLUMNS
from paywire.ledger.errors import StoreCorrupt
from paywire.ledger.model import AccountKind
from paywire.ledger.state import AccountState, LimitState, TransferState
from paywire.ledger.store import DEFAULT_PAGE_ROWS, MAX_READ_ROWS, LogHead, StoredCheckpoint

MAX_SQL_PARAMS = 900
"""Ids per IN (...) query; SQLite's limit is 32766 on recent builds, 999 on old ones."""


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

    def task_transfers(
        self, task: str, *, after: int | None = None, limit: int = DEFAULT_PAGE_ROWS
    ) -> list[tuple[TransferState, bytes]]:
        return _sqlite_tasks.task_page(self._db, task, after, limit)

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
