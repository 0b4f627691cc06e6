"""The state the engine works on, as the stores load and write it.

`AccountState` and `TransferState` are accounts and transfers with their mutable parts
(balance counters, a hold's state), read from a `StateSource`; a `NewRecord` is one log
entry a batch produced. Stores keep account flags as bits (`flags_to_bits`,
`flags_from_bits`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from paywire.ledger.model import (
    Account,
    AccountFlag,
    AccountKind,
    Balance,
    HoldState,
    JsonValue,
    TransferKind,
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


class StateSource(Protocol):
    """Where the engine reads committed state (inside the store's write transaction)."""

    def load_accounts(self, ids: Sequence[str]) -> dict[str, AccountState]: ...

    def load_transfers(self, ids: Sequence[str]) -> dict[str, TransferState]: ...

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
