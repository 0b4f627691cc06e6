"""The ledger's data model: accounts, transfers, and the requests that create them.

In the spirit of TigerBeetle: an account has an asset, bound flags and four balance
counters (debits and credits, pending and posted); a transfer moves a positive amount of
one asset from a debit account to a credit account and is immutable once committed.
Mistakes are fixed by correcting transfers, never by edits.

Requests (`NewAccount`, `NewTransfer`) validate everything that can be checked without
the ledger's state when they are built, so a malformed request fails before any I/O.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from paywire.ledger.errors import InvalidRequest
from paywire.money import MAX_ATOMIC, Amount, Asset

JsonValue: TypeAlias = bool | int | str | list["JsonValue"] | dict[str, "JsonValue"] | None
Metadata: TypeAlias = Mapping[str, JsonValue]

MAX_ID_CHARS = 128
"""Ids are idempotency keys: long enough for a UUID, a ULID or a hash with a prefix."""

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,127}")
"""Printable, shell- and URL-safe; '~' is kept back for ids the ledger makes itself."""

MAX_METADATA_BYTES = 4096
"""Metadata is for tags (task, request, model, tokens), not documents."""

MAX_METADATA_DEPTH = 4
"""Nesting deeper than this is a mistake or an attack on the parser."""

MAX_METADATA_KEY_CHARS = 64
"""Keys are names, not data."""

MAX_METADATA_INT = 2**63 - 1
"""Integers in metadata fit a signed 64-bit column in every store and language."""

MAX_AUTHORIZATION_BYTES = 16384
"""A signed payment payload with a mandate chain of depth 3 fits with room to spare."""

MAX_OWNER_CHARS = 128
"""An owner is an address or a short name."""

MAX_CODE = 65535
"""Transfer codes are u16, as in TigerBeetle."""

MAX_TIMEOUT_S = 366 * 24 * 3600
"""A hold longer than a year is not a hold; escrow that long should be a posted transfer."""


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
    replayed: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class HoldStatus:
    """The state of a pending transfer and what resolved it."""

    transfer: Transfer
    state: HoldState
    resolved_by: str | None


def check_id(value: object, what: str) -> str:
    """Validate a user-chosen id (account or transfer) and return it."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} must be text, not {type(value).__name__}")
    if not ID_PATTERN.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise InvalidRequest(
            f"{what} {shown!r} must be 1-{MAX_ID_CHARS} characters of letters, digits "
            "and . _ : / @ + = -, starting with a letter or digit"
        )
    return value


def check_metadata(value: object) -> dict[str, JsonValue]:
    """Validate metadata: JSON without floats, bounded in size and depth."""
    return canonical_metadata(value)[0]


def canonical_metadata(value: object) -> tuple[dict[str, JsonValue], str]:
    """Validated metadata and its canonical JSON text (sorted keys, no spaces, ASCII), which
    the log entry and the idempotency fingerprint reuse."""
    if value is None:
        return {}, ""
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"metadata must be a mapping, not {type(value).__name__}")
    checked = _check_json(value, depth=1)
    assert isinstance(checked, dict)
    if not checked:
        return {}, ""
    text = json.dumps(checked, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    if len(text) > MAX_METADATA_BYTES:
        raise InvalidRequest(f"metadata is {len(text)} bytes; the limit is {MAX_METADATA_BYTES}")
    return checked, text


def _check_json(value: object, depth: int) -> JsonValue:
    if depth > MAX_METADATA_DEPTH:
        raise InvalidRequest(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_METADATA_INT:
            raise InvalidRequest("metadata integers must fit in 64 bits; write big numbers as text")
        return value
    if isinstance(value, float):
        raise InvalidRequest("metadata must not hold floats (money is integers); use text")
    if isinstance(value, Mapping):
        out: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not 0 < len(key) <= MAX_METADATA_KEY_CHARS:
                raise InvalidRequest(
                    f"metadata keys must be text of 1-{MAX_METADATA_KEY_CHARS} characters"
                )
            out[key] = _check_json(item, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_check_json(item, depth + 1) for item in value]
    raise InvalidRequest(f"metadata cannot hold a {type(value).__name__}")


def _check_code(code: object) -> int:
    if not isinstance(code, int) or isinstance(code, bool) or not 1 <= code <= MAX_CODE:
        raise InvalidRequest(f"code must be an integer from 1 to {MAX_CODE}, not {code!r}")
    return int(code)


@dataclass(frozen=True, slots=True)
class NewAccount:
    """A request to open an account. Opening is idempotent on `id`."""

    id: str
    asset: Asset
    kind: AccountKind = AccountKind.AGENT
    owner: str | None = None
    flags: frozenset[AccountFlag] | None = None
    """None means the kind's defaults (`DEFAULT_FLAGS`)."""
    metadata: Metadata | None = None

    def __post_init__(self) -> None:
        check_id(self.id, "account id")
        if not isinstance(self.asset, Asset):
            raise InvalidRequest("asset must be an Asset")
        try:
            kind = AccountKind(self.kind)
        except ValueError:
            kinds = ", ".join(kind.value for kind in AccountKind)
            raise InvalidRequest(f"unknown account kind {self.kind!r}; one of {kinds}") from None
        object.__setattr__(self, "kind", kind)
        if self.owner is not None and (
            not isinstance(self.owner, str)
            or not 0 < len(self.owner) <= MAX_OWNER_CHARS
            or not self.owner.isprintable()
        ):
            raise InvalidRequest(f"owner must be printable text of 1-{MAX_OWNER_CHARS} characters")
        flags = DEFAULT_FLAGS[kind] if self.flags is None else frozenset(self.flags)
        try:
            flags = frozenset(AccountFlag(flag) for flag in flags)
        except ValueError:
            raise InvalidRequest(f"unknown account flag in {sorted(flags)}") from None
        if len(flags) == 2:
            raise InvalidRequest(
                "an account cannot bound both debits by credits and credits by debits "
                "(it could never move)"
            )
        object.__setattr__(self, "flags", flags)
        object.__setattr__(self, "metadata", check_metadata(self.metadata))

    @property
    def resolved_flags(self) -> frozenset[AccountFlag]:
        assert self.flags is not None  # set in __post_init__
        return self.flags


@dataclass(frozen=True, slots=True)
class NewTransfer:
    """A request to write one transfer; `id` is its idempotency key.

    Build these with `transfer`, `hold`, `post` and `void` rather than by hand.
    """

    id: str
    kind: TransferKind
    debit_account_id: str | None = None
    credit_account_id: str | None = None
    amount: Amount | None = None
    code: int | None = None
    pending_id: str | None = None
    timeout_s: int | None = None
    metadata: Metadata | None = None
    authorization: str | None = None
    metadata_json: str = field(init=False, repr=False, compare=False, default="")
    """`metadata` as canonical JSON ("" when empty), computed once."""

    def __post_init__(self) -> None:
        check_id(self.id, "transfer id")
        try:
            kind = TransferKind(self.kind)
        except ValueError:
            raise InvalidRequest(f"unknown transfer kind {self.kind!r}") from None
        if kind is TransferKind.EXPIRE:
            raise InvalidRequest("only the ledger writes expire transfers")
        object.__setattr__(self, "kind", kind)
        if self.amount is not None:
            if not isinstance(self.amount, Amount):
                raise InvalidRequest("amount must be an Amount (see paywire.parse_amount)")
            if not 0 < self.amount.atomic <= MAX_ATOMIC:
                raise InvalidRequest(
                    f"amount must be more than 0 and below 2^128 atomic units, "
                    f"not {self.amount.atomic}"
                )
        if kind in (TransferKind.SINGLE, TransferKind.PENDING):
            check_id(self.debit_account_id, "debit account id")
            check_id(self.credit_account_id, "credit account id")
            if self.amount is None:
                raise InvalidRequest("a transfer needs an amount")
            if self.pending_id is not None:
                raise InvalidRequest("pending_id is only for post and void")
            object.__setattr__(self, "code", _check_code(self.code))
        else:
            check_id(self.pending_id, "pending transfer id")
            if self.debit_account_id is not None or self.credit_account_id is not None:
                raise InvalidRequest(f"a {kind} takes its accounts from the pending transfer")
            if kind is TransferKind.VOID and self.amount is not None:
                raise InvalidRequest("a void releases the whole pending amount; give no amount")
            if self.code is not None:
                object.__setattr__(self, "code", _check_code(self.code))
        if kind is TransferKind.PENDING:
            if self.timeout_s is not None and (
                not isinstance(self.timeout_s, int)
                or isinstance(self.timeout_s, bool)
                or not 0 < self.timeout_s <= MAX_TIMEOUT_S
            ):
                raise InvalidRequest(
                    f"timeout_s must be whole seconds from 1 to {MAX_TIMEOUT_S}, "
                    "or None for no expiry"
                )
        elif self.timeout_s is not None:
            raise InvalidRequest("timeout_s is only for pending transfers")
        metadata, metadata_json = canonical_metadata(self.metadata)
        object.__setattr__(self, "metadata", metadata)
        object.__setattr__(self, "metadata_json", metadata_json)
        if self.authorization is not None:
            if not isinstance(self.authorization, str):
                raise InvalidRequest("authorization must be text (the signed payload, verbatim)")
            if len(self.authorization.encode()) > MAX_AUTHORIZATION_BYTES:
                raise InvalidRequest(
                    f"authorization is larger than {MAX_AUTHORIZATION_BYTES} bytes"
                )

    def fingerprint(self) -> bytes:
        """What identifies this request for idempotency: a hash of every field as sent.

        Ids, kinds and asset codes cannot hold the separator; metadata is canonical JSON;
        the authorization goes last, length-prefixed, so no two requests share a text.
        """
        auth = (
            "-" if self.authorization is None else f"{len(self.authorization)}:{self.authorization}"
        )
        amount = "-" if self.amount is None else f"{self.amount.atomic}{self.amount.asset.code}"
        text = (
            f"{self.kind}|{self.debit_account_id}|{self.credit_account_id}|{amount}|{self.code}|"
            f"{self.pending_id}|{self.timeout_s}|{self.metadata_json}|{auth}"
        )
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def transfer(
    id: str,
    debit_account_id: str,
    credit_account_id: str,
    amount: Amount,
    *,
    code: int = TransferCode.TRANSFER,
    metadata: Metadata | None = None,
    authorization: str | None = None,
) -> NewTransfer:
    """A transfer posted at once."""
    return NewTransfer(
        id=id,
        kind=TransferKind.SINGLE,
        debit_account_id=debit_account_id,
        credit_account_id=credit_account_id,
        amount=amount,
        code=int(code),
        metadata=metadata,
        authorization=authorization,
    )


def hold(
    id: str,
    debit_account_id: str,
    credit_account_id: str,
    amount: Amount,
    *,
    timeout_s: int | None = None,
    code: int = TransferCode.TRANSFER,
    metadata: Metadata | None = None,
    authorization: str | None = None,
) -> NewTransfer:
    """A pending transfer: reserves `amount` until posted, voided, or `timeout_s` passes."""
    return NewTransfer(
        id=id,
        kind=TransferKind.PENDING,
        debit_account_id=debit_account_id,
        credit_account_id=credit_account_id,
        amount=amount,
        code=int(code),
        timeout_s=timeout_s,
        metadata=metadata,
        authorization=authorization,
    )


def post(
    id: str,
    pending_id: str,
    amount: Amount | None = None,
    *,
    metadata: Metadata | None = None,
    authorization: str | None = None,
) -> NewTransfer:
    """Post a pending transfer: `amount` of it (all of it when None); the rest is released."""
    return NewTransfer(
        id=id,
        kind=TransferKind.POST,
        pending_id=pending_id,
        amount=amount,
        metadata=metadata,
        authorization=authorization,
    )


def void(id: str, pending_id: str, *, metadata: Metadata | None = None) -> NewTransfer:
    """Release a pending transfer."""
    return NewTransfer(id=id, kind=TransferKind.VOID, pending_id=pending_id, metadata=metadata)
