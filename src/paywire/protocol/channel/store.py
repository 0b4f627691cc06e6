"""The provider's durable voucher book: one SQLite row per channel.

A row holds what the provider must never lose: the highest voucher it acknowledged (its
signature included: it is what a claim is made on), the total it charged, what was
claimed, and the channel as it was read. SQLite runs in WAL mode with ``synchronous=FULL``:
a write returns only once it is on disk, so a provider killed at any instant loses no
voucher it acknowledged and no charge it answered for.

Writes are whole rows, queued to one writer thread that commits whatever is queued in one
transaction (group commit): many concurrent requests cost one fsync, each still waits for
its own row to be durable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_BATCH_ROWS = 1024
"""Rows per group commit."""

MAX_QUEUED_WRITES = 100_000
"""Writes waiting for the writer; past this, writers wait."""

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS channels (
    channel_id TEXT PRIMARY KEY,
    info TEXT NOT NULL,
    voucher_max TEXT NOT NULL,
    voucher_signature BLOB NOT NULL,
    charged TEXT NOT NULL,
    claimed TEXT NOT NULL,
    closed INTEGER NOT NULL,
    summary TEXT NOT NULL,
    unclaimed_since REAL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS book_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_UPSERT = """
INSERT INTO channels (channel_id, info, voucher_max, voucher_signature, charged, claimed,
                      closed, summary, unclaimed_since, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (channel_id) DO UPDATE SET
    info = excluded.info, voucher_max = excluded.voucher_max,
    voucher_signature = excluded.voucher_signature, charged = excluded.charged,
    claimed = excluded.claimed, closed = excluded.closed, summary = excluded.summary,
    unclaimed_since = excluded.unclaimed_since, updated_at = excluded.updated_at
"""


class BookUnavailable(Exception):
    """The voucher book could not write (disk full, file gone): nothing may be served."""


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """A channel's durable state (amounts in atomic units; `info` is `ChannelInfo` JSON)."""

    channel_id: str
    info: str
    voucher_max: int
    voucher_signature: bytes
    charged: int
    claimed: int
    closed: bool
    summary: str
    unclaimed_since: float | None

    def values(self) -> tuple[object, ...]:
        return (
            self.channel_id,
            self.info,
            str(self.voucher_max),
            self.voucher_signature,
            str(self.charged),
            str(self.claimed),
            int(self.closed),
            self.summary,
            self.unclaimed_since,
            time.time(),
        )


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=10000")
    return connection


class ChannelStore:
    """The voucher book at `path` (created if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        setup = _connect(self.path)
        try:
            setup.executescript(_SCHEMA)
            setup.execute(
                "INSERT OR IGNORE INTO book_meta (key, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )
        finally:
            setup.close()
        self._queue: queue.Queue[tuple[ChannelRow, concurrent.futures.Future[None]] | None] = (
            queue.Queue(maxsize=MAX_QUEUED_WRITES)
        )
        self._writer = threading.Thread(target=self._write_loop, name="paywire-channel-book")
        self._writer.daemon = True
        self._closed = False
        self._writer.start()

    def rows(self) -> Iterator[ChannelRow]:
        """Every channel in the book, as last written."""
        reader = _connect(self.path)
        try:
            for record in reader.execute(
                "SELECT channel_id, info, voucher_max, voucher_signature, charged, claimed, "
                "closed, summary, unclaimed_since FROM channels ORDER BY channel_id"
            ):
                yield ChannelRow(
                    channel_id=record[0],
                    info=record[1],
                    voucher_max=int(record[2]),
                    voucher_signature=bytes(record[3]),
                    charged=int(record[4]),
                    claimed=int(record[5]),
                    closed=bool(record[6]),
                    summary=record[7],
                    unclaimed_since=record[8],
                )
        finally:
            reader.close()

    def submit(self, row: ChannelRow) -> concurrent.futures.Future[None]:
        """Queue `row`; the future is done once it is on disk."""
        if self._closed:
            raise BookUnavailable("the voucher book is closed")
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put((row, future))
        return future

    async def write(self, row: ChannelRow) -> None:
        """Write `row` and wait until it is durable (`BookUnavailable` if it cannot be)."""
        await asyncio.wrap_future(self.submit(row))

    def close(self) -> None:
        """Finish the queued writes and stop the writer."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._writer.join()

    def _write_loop(self) -> None:
        connection = _connect(self.path)
        try:
            stop = False
            while not stop:
                first = self._queue.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < MAX_BATCH_ROWS:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                self._commit(connection, batch)
        finally:
            connection.close()

    @staticmethod
    def _commit(
        connection: sqlite3.Connection,
        batch: list[tuple[ChannelRow, concurrent.futures.Future[None]]],
    ) -> None:
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(_UPSERT, [row.values() for row, _ in batch])
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            failure = BookUnavailable(f"the voucher book could not write: {error}")
            for _, future in batch:
                future.set_exception(failure)
            return
        for _, future in batch:
            future.set_result(None)
