"""The task index in the SQLite store: its index, its read, and the move from schema
version 2, which rebuilds it from the log.

The `transfers.task` column itself is in the schema script and written with the rest of
the transfer's row (see `task_index`).
"""

from __future__ import annotations

import sqlite3

from paywire.ledger import task_index
from paywire.ledger._sqlite_rows import _blob, _transfer
from paywire.ledger._sqlite_schema import _TRANSFER_COLUMNS
from paywire.ledger.state import TransferState
from paywire.ledger.store import MAX_READ_ROWS

TASK_INDEX = (
    "CREATE INDEX IF NOT EXISTS transfers_task ON transfers (task, log_index) "
    "WHERE task IS NOT NULL"
)
"""Only tagged transfers take room in it. Not part of the schema script, which runs on
every open: on a version 2 store the column does not exist until `migrate` adds it."""

_PAGE = (
    f"SELECT {', '.join('t.' + name for name in _TRANSFER_COLUMNS.split(', '))}, "  # noqa: S608
    "l.entry FROM transfers AS t JOIN log AS l ON l.idx = t.log_index "
    "WHERE t.task = ? AND t.log_index > ? ORDER BY t.log_index LIMIT ?"
)
"""One page of a task's transfers with their entries; `t.task = ?` implies the partial
index's `task IS NOT NULL`, so the planner walks `transfers_task` in order."""


def task_page(
    db: sqlite3.Connection, task: str, after: int | None, limit: int
) -> list[tuple[TransferState, bytes]]:
    rows = db.execute(
        _PAGE, (task, -1 if after is None else after, max(1, min(limit, MAX_READ_ROWS)))
    )
    return [(_transfer(row), _blob(row[-1], "a log entry")) for row in rows]


def migrate(db: sqlite3.Connection, version: str | None) -> str | None:
    """Bring a store of schema version 2 to version 3, inside the caller's transaction,
    and give a new store (no version yet) its index; return the version it is at now."""
    if version is None:
        db.execute(TASK_INDEX)
        return version
    if version != "2":
        return version
    columns = {str(row[1]) for row in db.execute("PRAGMA table_info(transfers)")}
    if "task" in columns:  # left by a later paywire: derive it afresh all the same
        db.execute("UPDATE transfers SET task = NULL WHERE task IS NOT NULL")
    else:
        db.execute("ALTER TABLE transfers ADD COLUMN task TEXT")
    backfill(db)
    db.execute(TASK_INDEX)  # after the backfill: one sort instead of an update per row
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    return "3"


def backfill(db: sqlite3.Connection) -> None:
    """Set `transfers.task` from the log: each tagged transfer's own task, then the posts,
    voids and expires without one take their hold's (a hold always precedes them)."""
    after = -1
    while True:
        # Only entries that hold the key are read out of the file at all.
        rows = [
            (int(index), _blob(data, f"log entry {index}"))
            for index, data in db.execute(
                "SELECT idx, entry FROM log WHERE idx > ? AND instr(entry, ?) > 0 "
                "ORDER BY idx LIMIT ?",
                (after, task_index.TASK_KEY, task_index.BACKFILL_ROWS),
            )
        ]
        db.executemany(
            "UPDATE transfers SET task = ? WHERE log_index = ?",
            task_index.tagged_transfers(rows),
        )
        if len(rows) < task_index.BACKFILL_ROWS:
            break
        after = rows[-1][0]
    db.execute(
        "UPDATE transfers SET task = (SELECT h.task FROM transfers AS h "
        "WHERE h.id = transfers.pending_id) WHERE task IS NULL AND pending_id IS NOT NULL"
    )
