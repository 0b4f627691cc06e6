"""The task index in the PostgreSQL store: its read, and the move from schema version 2,
which rebuilds it from the log.

The `transfers.task` column and its index are in the schema (`_sql`); the column is
written with the rest of the transfer's row (see `paywire.ledger.task_index`).
"""

from __future__ import annotations

from paywire.ledger import task_index
from paywire.ledger.postgres._connection import Connection
from paywire.ledger.postgres._rows import _transfer
from paywire.ledger.postgres._sql import _TASK_INDEX, _TRANSFER_COLUMNS
from paywire.ledger.state import TransferState
from paywire.ledger.store import MAX_READ_ROWS

_PAGE = (
    f"SELECT {', '.join('t.' + name for name in _TRANSFER_COLUMNS.split(', '))}, "  # noqa: S608
    "l.entry FROM transfers AS t JOIN log AS l ON l.idx = t.log_index "
    "WHERE t.task = %s AND t.log_index > %s ORDER BY t.log_index LIMIT %s"
)
"""One page of a task's transfers with their entries: `t.task = %s` implies the partial
index's `task IS NOT NULL`, so the plan walks `transfers_task` in order."""


def task_page(
    db: Connection, task: str, after: int | None, limit: int
) -> list[tuple[TransferState, bytes]]:
    rows = db.execute(
        _PAGE, (task, -1 if after is None else after, max(1, min(limit, MAX_READ_ROWS)))
    )
    return [(_transfer(row), bytes(row[-1])) for row in rows]


def migrate_from_2(db: Connection) -> None:
    """Schema version 2 to 3: the task index, rebuilt from the log (run under the schema
    lock, in the caller's transaction)."""
    existing = db.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = 'transfers'::regclass "
        "AND attname = 'task' AND NOT attisdropped"
    ).fetchone()
    if existing is not None:  # left by a later paywire: derive it afresh all the same
        db.execute("UPDATE transfers SET task = NULL WHERE task IS NOT NULL")
    else:
        db.execute('ALTER TABLE transfers ADD COLUMN task TEXT COLLATE "C"')
    _backfill(db)
    db.execute(_TASK_INDEX)  # after the backfill: one build instead of an update per row
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")


def _backfill(db: Connection) -> None:
    """Set `transfers.task` from the log: each tagged transfer's own task, then the posts,
    voids and expires without one take their hold's (a hold always precedes them)."""
    after = -1
    while True:
        # Only the entries that hold the key travel to the client at all.
        rows = [
            (int(index), bytes(data))
            for index, data in db.execute(
                "SELECT idx, entry FROM log WHERE idx > %s AND position(%s IN entry) > 0 "
                "ORDER BY idx LIMIT %s",
                (after, task_index.TASK_KEY, task_index.BACKFILL_ROWS),
            )
        ]
        tagged = task_index.tagged_transfers(rows)
        if tagged:
            db.execute(
                "UPDATE transfers AS t SET task = u.task "
                "FROM unnest(%s::text[], %s::int8[]) AS u (task, log_index) "
                "WHERE t.log_index = u.log_index",
                ([task for task, _ in tagged], [index for _, index in tagged]),
            )
        if len(rows) < task_index.BACKFILL_ROWS:
            break
        after = rows[-1][0]
    db.execute(
        "UPDATE transfers AS t SET task = h.task FROM transfers AS h "
        "WHERE t.task IS NULL AND t.pending_id IS NOT NULL AND h.id = t.pending_id "
        "AND h.task IS NOT NULL"
    )
