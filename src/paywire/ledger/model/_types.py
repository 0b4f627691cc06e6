"""Accounts, transfers and holds as the ledger reports them, and the kinds, flags and
states they carry."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from paywire.ledger.model._checks import Metadata
from paywire.money import Amount, Asset


class AccountKind(enum.StrEnum):
    """What an account is for; it decides the default bounds."""

    AGENT = "agent"
    """An agent's wallet: spends, may not go below zero."""
    PROVIDER = "provider"
    """A provider's revenue."""
    ESCROW = "escrow"
    """Funds held for a task until delivery."""
    FEES = "fees"
    """The operator's fees."""
    EXTERNAL = "external"
    """Value outside the ledger (a chain reserve, a faucet); its net balance is negative by
    the amount that entered the ledger, so it carries no bound."""


class AccountFlag(enum.StrEnum):
    """Bounds the ledger enforces atomically with every write."""

    DEBITS_MUST_NOT_EXCEED_CREDITS = "debits_must_not_exceed_credits"
    """debits_pending + debits_posted <= credits_posted: the account cannot be overdrawn."""
    CREDITS_MUST_NOT_EXCEED_DEBITS = "credits_must_not_exceed_debits"
    """credits_pending + credits_posted <= debits_posted."""


DEFAULT_FLAGS: Mapping[AccountKind, frozenset[AccountFlag]] = {
    AccountKind.AGENT: frozenset({AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS}),
    AccountKind.PROVIDER: frozenset({AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS}),
    AccountKind.ESCROW: frozenset({AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS}),
    AccountKind.FEES: frozenset({AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS}),
    AccountKind.EXTERNAL: frozenset(),
}


class TransferKind(enum.StrEnum):
    """What a transfer does to balances."""

    SINGLE = "single"
    """Posted at once."""
    PENDING = "pending"
    """A hold: reserves the amount until posted, voided or expired."""
    POST = "post"
    """Posts a pending transfer, in full or in part; the rest is released."""
    VOID = "void"
    """Releases a pending transfer."""
    EXPIRE = "expire"
    """Written by the ledger when a pending transfer's timeout passes; releases it."""


class HoldState(enum.StrEnum):
    """Where a pending transfer stands."""

    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


class TransferCode(enum.IntEnum):
    """Well-known reasons for a transfer (any code 1..65535 is allowed)."""

    TRANSFER = 1
    PAYMENT = 10
    DEPOSIT = 20
    WITHDRAWAL = 21
    ESCROW = 30
    RELEASE = 31
    REFUND = 32
    FEE = 40
    CORRECTION = 90


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's four counters, in atomic units of its asset."""

    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    @property
    def posted(self) -> int:
        """Net posted balance: credits minus debits (negative for a source of funds)."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What a debit-bounded account can still spend: posted net minus pending debits."""
        return self.credits_posted - self.debits_posted - self.debits_pending


@dataclass(frozen=True, slots=True)
class Account:
    """A committed account with its balance as of the read."""

    id: str
    asset: Asset
    kind: AccountKind
    owner: str | None
    flags: frozenset[AccountFlag]
    metadata: Metadata
    timestamp: int
    log_index: int
    balance: Balance

    def amount(self, atomic: int) -> Amount:
        return Amount(atomic, self.asset)


@dataclass(frozen=True, slots=True)
class Transfer:
    """A committed transfer: immutable, as written in the log.

    `replayed` is True when this is the answer to a retried request (same id, same body)
    rather than a new write; it is not part of the record.
    """

    id: str
    kind: TransferKind
    debit_account_id: str
    credit_account_id: str
    amount: Amount
    code: int
    timestamp: int
    log_index: int
    pending_id: str | None = None
    timeout_s: int | None = None
    expires_at: int | None = None
    metadata: Metadata = field(default_factory=dict)
    authorization: str | None = None
    limits: tuple[str, ...] = ()
    """The spend limits it counts against (a post or void: none of its own; its hold's)."""
    replayed: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class HoldStatus:
    """The state of a pending transfer and what resolved it."""

    transfer: Transfer
    state: HoldState
    resolved_by: str | None
