"""Reads of the PostgreSQL store: the queries the write transaction shares, and the
snapshot reader (one REPEATABLE READ, READ ONLY transaction)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from paywire.ledger import postgres
from paywire.ledger.errors import StoreCorrupt
from paywire.ledger.model import AccountKind
from paywire.ledger.postgres._connection import Connection
from paywire.ledger.postgres._rows import _account, _limit, _transfer
from paywire.ledger.postgres._sql import (
    _ACCOUNT_COLUMNS,
    _LOAD_ACCOUNTS,
    _LOAD_LIMITS,
    _TRANSFER_COLUMNS,
)
from paywire.ledger.postgres._tasks import task_page
from paywire.ledger.state import AccountState, LimitState, TransferState
from paywire.ledger.store import DEFAULT_PAGE_ROWS, MAX_READ_ROWS, LogHead, StoredCheckpoint


class _Reads:
    """Queries shared by the write transaction and snapshot readers."""

    def __init__(self, connection: Connection) -> None:
        self._db = connection

    def load_accounts(self, ids: Sequence[str]) -> dict[str, AccountState]:
        if not ids:
            return {}
        rows = self._db.execute(_LOAD_ACCOUNTS, (list(ids),))
        found: dict[str, AccountState] = {}
        for row in rows:
            state = _account(row)
            found[state.id] = state
        return found

    def load_limits(self, ids: Sequence[str]) -> dict[str, LimitState]:
        if not ids:
            return {}
        found: dict[str, LimitState] = {}
        for row in self._db.execute(_LOAD_LIMITS, (list(ids),)):
            state = _limit(row)
            found[state.id] = state
        return found

    def load_accounts_and_limits(
        self, account_ids: Sequence[str], limit_ids: Sequence[str]
    ) -> tuple[dict[str, AccountState], dict[str, LimitState]]:
        if not account_ids or not limit_ids:
            return self.load_accounts(account_ids), self.load_limits(limit_ids)
        # Both queries in one round trip: the pipeline sends them together and reads both
        # answers when it ends.
        with self._db.pipeline():
            accounts = self._db.execute(_LOAD_ACCOUNTS, (list(account_ids),))
            limits = self._db.execute(_LOAD_LIMITS, (list(limit_ids),))
        found_accounts = {state.id: state for state in map(_account, accounts.fetchall())}
        found_limits = {state.id: state for state in map(_limit, limits.fetchall())}
        return found_accounts, found_limits

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
            page = self.list_accounts(after=after, limit=postgres.SCAN_ROWS)
            yield from page
            if len(page) < postgres.SCAN_ROWS:
                return
            after = page[-1].id

    def get_transfer(self, transfer_id: str) -> TransferState | None:
        row = self._db.execute(
            f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE id = %s",  # noqa: S608
            (transfer_id,),
        ).fetchone()
        return None if row is None else _transfer(row)

    def get_limit(self, limit_id: str) -> LimitState | None:
        return self.load_limits([limit_id]).get(limit_id)

    def all_limits(self) -> Iterator[LimitState]:
        # Pages by id inside the snapshot, as `all_accounts`.
        after = ""
        while True:
            rows = self._db.execute(
                "SELECT id FROM limits WHERE id > %s ORDER BY id LIMIT %s",
                (after, postgres.SCAN_ROWS),
            ).fetchall()
            ids = [str(row[0]) for row in rows]
            found = self.load_limits(ids)
            yield from (found[limit_id] for limit_id in ids)
            if len(ids) < postgres.SCAN_ROWS:
                return
            after = ids[-1]

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

    def task_transfers(
        self, task: str, *, after: int | None = None, limit: int = DEFAULT_PAGE_ROWS
    ) -> list[tuple[TransferState, bytes]]:
        return task_page(self._db, task, after, limit)

    def entries(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        while start < end:
            stop = min(end, start + postgres.SCAN_ROWS)
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
