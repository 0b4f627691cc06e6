"""What a ledger store provides: one write transaction at a time, snapshot reads.

Two stores implement it (SQLite, the embedded default, and PostgreSQL) and the same test
suite runs against both. The store holds no ledger logic: the `Engine` decides, the store
persists a batch atomically and answers reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from paywire.ledger.model import AccountKind
from paywire.ledger.state import (
    AccountState,
    LimitState,
    NewRecord,
    StateSource,
    TransferState,
    UsageSlot,
)

SCHEMA_VERSION = 3
"""Bumped with every change to the tables; a store refuses a version it does not know,
and brings an older one it knows up to date when it opens (version 2 added spend limits:
the `limits` and `limit_usage` tables and the `transfers.limits` column; version 3 added
the task index: the `transfers.task` column and its index `transfers_task`, rebuilt from
the log entries when a version 2 store opens)."""

MAX_READ_ROWS = 10_000
"""Largest page a listing returns; callers page with `after`/`before`."""

DEFAULT_PAGE_ROWS = 50
"""Page size for listings when the caller does not say."""


@dataclass(frozen=True, slots=True)
class LogHead:
    """Where the log stands: its size, the Merkle frontier, and the last timestamp."""

    size: int
    frontier: bytes
    last_timestamp: int


@dataclass(frozen=True, slots=True)
class StoredNode:
    """A perfect Merkle subtree hash kept by the store (see `merkle.is_stored_level`)."""

    level: int
    index: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed tree head as kept by the store."""

    tree_size: int
    root_hash: bytes
    timestamp: int
    signature: bytes


@dataclass(slots=True)
class BatchWrite:
    """Everything one group commit writes, in one transaction."""

    records: list[NewRecord]
    leaf_hashes: list[bytes]
    nodes: list[StoredNode]
    dirty_accounts: list[AccountState]
    dirty_holds: list[TransferState]
    head: LogHead
    dirty_limits: list[LimitState] = field(default_factory=list)
    """Limits whose total or closing changed (those opened in the batch are in `records`,
    inserted with their final state)."""
    usage: list[UsageSlot] = field(default_factory=list)
    """Usage slots to insert or overwrite, each at most once."""


class WriteTransaction(StateSource, Protocol):
    """The store's single writer: holds the write lock from `begin_write` to commit."""

    head: LogHead

    def due_holds(self, now: int, limit: int) -> list[str]:
        """Ids of pending holds whose `expires_at` is at or before `now`, oldest first."""
        ...

    def write(self, batch: BatchWrite) -> None: ...

    def latest_checkpoint(self) -> StoredCheckpoint | None: ...

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Keep a signed tree head (its size must be past the latest one's)."""
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class StoreReader(StateSource, Protocol):
    """Reads inside one snapshot: everything it returns is from the same instant."""

    def head(self) -> LogHead: ...

    def meta(self) -> dict[str, str]: ...

    def get_account(self, account_id: str) -> AccountState | None: ...

    def list_accounts(
        self,
        *,
        kind: AccountKind | None = None,
        owner: str | None = None,
        after: str | None = None,
        limit: int = DEFAULT_PAGE_ROWS,
    ) -> list[AccountState]: ...

    def all_accounts(self) -> Iterator[AccountState]: ...

    def get_transfer(self, transfer_id: str) -> TransferState | None: ...

    def get_limit(self, limit_id: str) -> LimitState | None: ...

    def all_limits(self) -> Iterator[LimitState]:
        """Every limit with its usage slots, in id order."""
        ...

    def history(
        self, account_id: str, *, before: int | None = None, limit: int = DEFAULT_PAGE_ROWS
    ) -> list[int]:
        """Log indexes of transfers touching `account_id`, newest first."""
        ...

    def task_transfers(
        self, task: str, *, after: int | None = None, limit: int = DEFAULT_PAGE_ROWS
    ) -> list[tuple[TransferState, bytes]]:
        """Transfers of `task` (see `task_index`) with log index past `after`, oldest
        first, each with its log entry: from the task index, not a scan of the log."""
        ...

    def entries(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """Log entries with index in [start, end), in order."""
        ...

    def entry(self, index: int) -> bytes | None: ...

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]: ...

    def stored_nodes(self, level: int, start: int, end: int) -> Sequence[bytes]: ...

    def checkpoints(self) -> list[StoredCheckpoint]: ...

    def next_expiry(self) -> int | None:
        """The earliest `expires_at` of a pending hold, if any."""
        ...


class Store(Protocol):
    """A ledger's durable state."""

    description: str
    """Where the store is, for messages (never with a password)."""

    def begin_write(self) -> WriteTransaction: ...

    def read(self) -> AbstractContextManager[StoreReader]: ...

    def initialize(self, meta: dict[str, str]) -> dict[str, str]:
        """Create the tables if missing and set `meta` keys not yet set; return all meta."""
        ...

    def close(self) -> None: ...
