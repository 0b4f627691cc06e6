"""The write transaction of the SQLite store: one batch's rows, inserted and updated
under the write lock."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from paywire.ledger import sqlite_limits
from paywire.ledger._sqlite_read import _Reads
from paywire.ledger._sqlite_rows import _blob
from paywire.ledger._sqlite_schema import _ACCOUNT_COLUMNS, _TRANSFER_COLUMNS
from paywire.ledger.errors import LedgerUnavailable
from paywire.ledger.state import flags_to_bits, limits_to_text
from paywire.ledger.store import BatchWrite, StoredCheckpoint


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
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                        t.task,
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
