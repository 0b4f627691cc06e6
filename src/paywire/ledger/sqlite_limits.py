"""Spend limits in the SQLite store: their tables, the move from schema version 1, their
reads and their part of a batch's write.

`limits` holds one row per limit (fixed fields, whether it is closed, its total);
`limit_usage` one row per usage slot of a windowed limit (at most `WINDOW_SLOTS` per
limit: slots are overwritten, never deleted). Amounts are decimal text, as elsewhere.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence

from paywire.ledger.errors import StoreCorrupt
from paywire.ledger.state import LimitState, UsageSlot
from paywire.ledger.store import BatchWrite
from paywire.money import Asset

LIMITS_SCHEMA = """
CREATE TABLE IF NOT EXISTS limits (
    id TEXT PRIMARY KEY,
    asset TEXT NOT NULL,
    decimals INTEGER NOT NULL,
    cap TEXT NOT NULL,
    window_s INTEGER,
    metadata TEXT NOT NULL,
    closed INTEGER NOT NULL,
    used_total TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    fingerprint BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS limit_usage (
    limit_id TEXT NOT NULL,
    slot INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    used TEXT NOT NULL,
    PRIMARY KEY (limit_id, slot)
) WITHOUT ROWID;
"""

_LIMIT_COLUMNS = (
    "id, asset, decimals, cap, window_s, metadata, closed, used_total, log_index, timestamp, "
    "fingerprint"
)
_USAGE_COLUMNS = "limit_id, slot, bucket, used"


def migrate(db: sqlite3.Connection, version: str | None) -> str | None:
    """Bring a store of schema version 1 to version 2, inside the caller's transaction (the
    new tables exist already: `LIMITS_SCHEMA` is part of the schema script); return the
    version the store is at now."""
    if version != "1":
        return version
    columns = {str(row[1]) for row in db.execute("PRAGMA table_info(transfers)")}
    if "limits" not in columns:
        db.execute("ALTER TABLE transfers ADD COLUMN limits TEXT")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    return "2"


def _limit(row: tuple[object, ...], slots: dict[int, UsageSlot]) -> LimitState:
    (lid, asset, decimals, cap, window, metadata, closed, total, index, ts, fp) = row
    if not isinstance(fp, bytes):
        raise StoreCorrupt(f"limit {lid!r} fingerprint is not bytes")
    return LimitState(
        id=str(lid),
        asset=Asset(str(asset), int(str(decimals))),
        cap=int(str(cap)),
        window_s=None if window is None else int(str(window)),
        timestamp=int(str(ts)),
        log_index=int(str(index)),
        fingerprint=fp,
        metadata=json.loads(str(metadata)),
        closed=bool(int(str(closed))),
        used_total=int(str(total)),
        slots=slots,
    )


def _slot(row: tuple[object, ...]) -> UsageSlot:
    lid, slot, bucket, used = row
    return UsageSlot(str(lid), int(str(slot)), int(str(bucket)), int(str(used)))


def load_limits(db: sqlite3.Connection, chunks: Iterator[Sequence[str]]) -> dict[str, LimitState]:
    found: dict[str, LimitState] = {}
    for chunk in chunks:
        marks = ",".join("?" * len(chunk))
        slots: dict[str, dict[int, UsageSlot]] = {}
        sql = f"SELECT {_USAGE_COLUMNS} FROM limit_usage WHERE limit_id IN ({marks})"  # noqa: S608
        for row in db.execute(sql, chunk):
            slot = _slot(row)
            slots.setdefault(slot.limit_id, {})[slot.slot] = slot
        sql = f"SELECT {_LIMIT_COLUMNS} FROM limits WHERE id IN ({marks})"  # noqa: S608
        for row in db.execute(sql, chunk):
            state = _limit(row, slots.get(str(row[0]), {}))
            found[state.id] = state
    return found


def all_limits(db: sqlite3.Connection) -> Iterator[LimitState]:
    slots: dict[str, dict[int, UsageSlot]] = {}
    for row in db.execute(f"SELECT {_USAGE_COLUMNS} FROM limit_usage"):  # noqa: S608
        slot = _slot(row)
        slots.setdefault(slot.limit_id, {})[slot.slot] = slot
    for row in db.execute(f"SELECT {_LIMIT_COLUMNS} FROM limits ORDER BY id"):  # noqa: S608
        yield _limit(row, slots.get(str(row[0]), {}))


def write_limits(db: sqlite3.Connection, batch: BatchWrite) -> None:
    """The batch's new limits, changed limits and usage slots."""
    new_limits = [record.limit for record in batch.records if record.limit is not None]
    if new_limits:
        db.executemany(
            f"INSERT INTO limits ({_LIMIT_COLUMNS}) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    limit.id,
                    limit.asset.code,
                    limit.asset.decimals,
                    str(limit.cap),
                    limit.window_s,
                    json.dumps(limit.metadata, sort_keys=True),
                    int(limit.closed),
                    str(limit.used_total),
                    limit.log_index,
                    limit.timestamp,
                    limit.fingerprint,
                )
                for limit in new_limits
            ],
        )
    created = {limit.id for limit in new_limits}
    if batch.dirty_limits:
        db.executemany(
            "UPDATE limits SET closed = ?, used_total = ? WHERE id = ?",
            [
                (int(limit.closed), str(limit.used_total), limit.id)
                for limit in batch.dirty_limits
                if limit.id not in created
            ],
        )
    if batch.usage:
        db.executemany(
            f"INSERT INTO limit_usage ({_USAGE_COLUMNS}) VALUES (?, ?, ?, ?) "  # noqa: S608
            "ON CONFLICT (limit_id, slot) DO UPDATE SET bucket = excluded.bucket, "
            "used = excluded.used",
            [(s.limit_id, s.slot, s.bucket, str(s.used)) for s in batch.usage],
        )
