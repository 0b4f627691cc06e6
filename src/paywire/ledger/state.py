"""The state the engine works on, as the stores load and write it.

`AccountState`, `TransferState` and `LimitState` are accounts, transfers and spend limits
with their mutable parts (balance counters, a hold's state, a limit's usage), read from a
`StateSource`; a `NewRecord` is one log entry a batch produced. Stores keep account flags
as bits (`flags_to_bits`, `flags_from_bits`) and a transfer's limits as one text
(`limits_to_text`, `limits_from_text`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from paywire.ledger.model import (
    NS_PER_S,
    Account,
    AccountFlag,
    AccountKind,
    Balance,
    HoldState,
    JsonValue,
    LimitStatus,
    TransferKind,
    bucket_seconds,
    window_span,
)
from paywire.money import Asset

FLAG_BITS = {
    AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS: 1,
    AccountFlag.CREDITS_MUST_NOT_EXCEED_DEBITS: 2,
}


def flags_to_bits(flags: Iterable[AccountFlag]) -> int:
    return sum(FLAG_BITS[flag] for flag in flags)


def flags_from_bits(bits: int) -> frozenset[AccountFlag]:
    return frozenset(flag for flag, bit in FLAG_BITS.items() if bits & bit)


@dataclass(slots=True)
class AccountState:
    """An account as the engine sees it: fixed fields plus four mutable counters."""

    id: str
    asset: Asset
    kind: AccountKind
    owner: str | None
    flags: frozenset[AccountFlag]
    timestamp: int
    log_index: int
    fingerprint: bytes
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    metadata: dict[str, JsonValue] = field(default_factory=dict)
    bounded_by_credits: bool = field(init=False)
    bounded_by_debits: bool = field(init=False)

    def __post_init__(self) -> None:
        self.bounded_by_credits = AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS in self.flags
        self.bounded_by_debits = AccountFlag.CREDITS_MUST_NOT_EXCEED_DEBITS in self.flags

    def balance(self) -> Balance:
        return Balance(
            self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted
        )

    def to_account(self) -> Account:
        return Account(
            id=self.id,
            asset=self.asset,
            kind=self.kind,
            owner=self.owner,
            flags=self.flags,
            metadata=self.metadata,
            timestamp=self.timestamp,
            log_index=self.log_index,
            balance=self.balance(),
        )


@dataclass(slots=True)
class TransferState:
    """A committed transfer as the engine needs it, plus a hold's mutable state."""

    id: str
    kind: TransferKind
    debit: str
    credit: str
    amount: int
    asset: str
    code: int
    timestamp: int
    log_index: int
    fingerprint: bytes
    pending_id: str | None = None
    expires_at: int | None = None
    hold_state: HoldState | None = None
    resolved_by: str | None = None
    limits: tuple[str, ...] = ()
    """The spend limits a transfer or hold counts against (a hold's are given back the
    unposted amount when it is resolved)."""
    task: str | None = None
    """The task the transfer belongs to (see `task_index`): its own metadata's, or for a
    post, void or expire without one, its hold's."""


def limits_to_text(limits: tuple[str, ...]) -> str | None:
    """A transfer's limits as one column: ids joined by ',' (no id holds one), or NULL."""
    return ",".join(limits) if limits else None


def limits_from_text(text: str | None) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()


@dataclass(slots=True, eq=False)
class UsageSlot:
    """One bucket of a windowed limit's usage, kept in slot `bucket % WINDOW_SLOTS`.

    Compared and hashed by identity: the engine tracks the slots a batch changed."""

    limit_id: str
    slot: int
    bucket: int
    used: int


@dataclass(slots=True)
class LimitState:
    """A spend limit as the engine sees it: fixed fields, whether it is closed, what it has
    used in all (`used_total`) and, for a window, per bucket (`slots`, by slot number).

    `cache_*` remember the usage of one span of buckets between checks in a batch; they
    are not stored."""

    id: str
    asset: Asset
    cap: int
    window_s: int | None
    timestamp: int
    log_index: int
    fingerprint: bytes
    metadata: dict[str, JsonValue] = field(default_factory=dict)
    closed: bool = False
    used_total: int = 0
    slots: dict[int, UsageSlot] = field(default_factory=dict)
    bucket_ns: int = field(init=False)
    """The length of a bucket in ns; 0 for a total (no window)."""
    window_ns: int = field(init=False)
    cache_first: int = field(default=0, init=False)
    cache_last: int = field(default=-1, init=False)
    cache_used: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        window = self.window_s
        self.bucket_ns = 0 if window is None else bucket_seconds(window) * NS_PER_S
        self.window_ns = 0 if window is None else window * NS_PER_S

    def used_at(self, at: int) -> int:
        """What counts against the cap at ledger time `at` (ns): the buckets overlapping
        the window that ends then, or everything, for a total."""
        if self.window_s is None:
            return self.used_total
        first, last = window_span(self.window_s, at)
        return sum(slot.used for slot in self.slots.values() if first <= slot.bucket <= last)

    def status(self, at: int) -> LimitStatus:
        used = self.used_at(at)
        return LimitStatus(
            id=self.id,
            asset=self.asset,
            cap_atomic=self.cap,
            window_s=self.window_s,
            used_atomic=used,
            remaining_atomic=0 if self.closed else max(0, self.cap - used),
            total_atomic=self.used_total,
            closed=self.closed,
            metadata=self.metadata,
            timestamp=self.timestamp,
            log_index=self.log_index,
            as_of=at,
        )


class StateSource(Protocol):
    """Where the engine reads committed state (inside the store's write transaction)."""

    def load_accounts(self, ids: Sequence[str]) -> dict[str, AccountState]: ...

    def load_transfers(self, ids: Sequence[str]) -> dict[str, TransferState]: ...

    def load_limits(self, ids: Sequence[str]) -> dict[str, LimitState]:
        """Limits with their usage slots."""
        ...

    def load_accounts_and_limits(
        self, account_ids: Sequence[str], limit_ids: Sequence[str]
    ) -> tuple[dict[str, AccountState], dict[str, LimitState]]:
        """Both at once (one round trip where the store is remote)."""
        ...

    def entry(self, index: int) -> bytes | None:
        """A committed log entry's bytes (to answer a replayed request in full)."""
        ...


@dataclass(slots=True)
class NewRecord:
    """One log entry produced by a batch, with what the store must write for it."""

    index: int
    data: bytes
    account: AccountState | None = None
    transfer: TransferState | None = None
    limit: LimitState | None = None
    """A limit opened by this entry (its row is inserted with the batch's final state)."""
