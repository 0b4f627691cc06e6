"""The write transaction of the PostgreSQL store.

A batch costs four round trips whatever its size: BEGIN with the lock and the first
holds to expire; load the transfers, then the accounts, it touches; one statement with
every insert and update (its rows passed as arrays that the server unnests) pipelined
with COMMIT.
Past `COPY_MIN_ROWS` rows, a table's inserts go by COPY instead (two more round trips,
half the server's time per row).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence

import psycopg

from paywire.ledger import postgres
from paywire.ledger.errors import LedgerUnavailable, StoreCorrupt
from paywire.ledger.postgres._connection import Connection, _end_transaction, _StaleConnection
from paywire.ledger.postgres._read import _Reads
from paywire.ledger.postgres._sql import (
    _ACCOUNTS,
    _BEGIN_WRITE,
    _LIMITS,
    _LOG,
    _NODES,
    _TRANSFERS,
    _Table,
    _write_sql,
)
from paywire.ledger.postgres._url import _Scrubber
from paywire.ledger.state import (
    AccountState,
    LimitState,
    TransferState,
    flags_to_bits,
    limits_to_text,
)
from paywire.ledger.store import BatchWrite, LogHead, StoredCheckpoint


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

    def load_limits(self, ids: Sequence[str]) -> dict[str, LimitState]:
        try:
            return super().load_limits(ids)
        except psycopg.Error as error:
            raise self._unavailable("read limits from", error) from None

    def load_accounts_and_limits(
        self, account_ids: Sequence[str], limit_ids: Sequence[str]
    ) -> tuple[dict[str, AccountState], dict[str, LimitState]]:
        try:
            return super().load_accounts_and_limits(account_ids, limit_ids)
        except psycopg.Error as error:
            raise self._unavailable("read accounts and limits from", error) from None

    def entry(self, index: int) -> bytes | None:
        try:
            return super().entry(index)
        except psycopg.Error as error:
            raise self._unavailable("read the log of", error) from None

    def due_holds(self, now: int, limit: int) -> list[str]:
        first = self._first_expiries
        if len(first) < postgres.EXPIRY_PREFETCH or first[-1][1] > now:
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
        new_limits = [record.limit for record in records if record.limit is not None]
        created_limits = {limit.id for limit in new_limits}
        changed_limits = [x for x in batch.dirty_limits if x.id not in created_limits]
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
                        limits_to_text(t.limits),
                        t.task,
                    )
                    for t in new_transfers
                ],
            ),
            ("nodes", _NODES, [(node.level, node.index, node.hash) for node in batch.nodes]),
            (
                "limits",
                _LIMITS,
                [
                    (
                        limit.id,
                        limit.asset.code,
                        limit.asset.decimals,
                        limit.cap,
                        limit.window_s,
                        json.dumps(limit.metadata, sort_keys=True),
                        int(limit.closed),
                        limit.used_total,
                        limit.log_index,
                        limit.timestamp,
                        limit.fingerprint,
                    )
                    for limit in new_limits
                ],
            ),
        ]
        head = batch.head
        cursor = self._db.cursor()
        # COPY is about twice as fast per row as INSERT ... unnest, but takes two round
        # trips of its own: only big batches use it.
        parts: list[str] = []
        params: list[object] = []
        for name, table, rows in inserts:
            if len(rows) >= postgres.COPY_MIN_ROWS:
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
        if changed_limits:
            parts.append("limit_totals")
            params += (
                [x.id for x in changed_limits],
                [int(x.closed) for x in changed_limits],
                [str(x.used_total) for x in changed_limits],
            )
        if batch.usage:
            parts.append("usage")
            params += (
                [u.limit_id for u in batch.usage],
                [u.slot for u in batch.usage],
                [u.bucket for u in batch.usage],
                [str(u.used) for u in batch.usage],
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
