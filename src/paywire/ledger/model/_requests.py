"""The requests that write to the ledger (`NewAccount`, `NewTransfer`) and the builders of
transfers (`transfer`, `hold`, `post`, `void`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from paywire.ledger.errors import InvalidRequest
from paywire.ledger.model._checks import (
    MAX_AUTHORIZATION_BYTES,
    MAX_OWNER_CHARS,
    MAX_TIMEOUT_S,
    Metadata,
    _check_code,
    canonical_metadata,
    check_id,
    check_metadata,
)
from paywire.ledger.model._limits import check_limit_ids
from paywire.ledger.model._types import (
    DEFAULT_FLAGS,
    AccountFlag,
    AccountKind,
    TransferCode,
    TransferKind,
)
from paywire.money import MAX_ATOMIC, Amount, Asset


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
    limits: tuple[str, ...] = ()
    """Ids of the spend limits this transfer (or hold) counts against, each at most once;
    a post or void counts against its hold's."""
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
            object.__setattr__(self, "limits", check_limit_ids(self.limits))
        else:
            check_id(self.pending_id, "pending transfer id")
            if self.limits:
                raise InvalidRequest(f"a {kind} counts against the pending transfer's limits")
            object.__setattr__(self, "limits", ())
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
        Limits, when there are any, go after the timeout, marked by '@' (which neither
        metadata, '{...}', nor the empty metadata's separator starts with), so a request
        without limits keeps the fingerprint it had before limits existed.
        """
        auth = (
            "-" if self.authorization is None else f"{len(self.authorization)}:{self.authorization}"
        )
        amount = "-" if self.amount is None else f"{self.amount.atomic}{self.amount.asset.code}"
        text = (
            f"{self.kind}|{self.debit_account_id}|{self.credit_account_id}|{amount}|{self.code}|"
            f"{self.pending_id}|{self.timeout_s}|"
            + (f"@{','.join(self.limits)}|" if self.limits else "")
            + f"{self.metadata_json}|{auth}"
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
    limits: Sequence[str] = (),
) -> NewTransfer:
    """A transfer posted at once (counted against every limit in `limits`)."""
    return NewTransfer(
        id=id,
        kind=TransferKind.SINGLE,
        debit_account_id=debit_account_id,
        credit_account_id=credit_account_id,
        amount=amount,
        code=int(code),
        metadata=metadata,
        authorization=authorization,
        limits=tuple(limits),
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
    limits: Sequence[str] = (),
) -> NewTransfer:
    """A pending transfer: reserves `amount` until posted, voided, or `timeout_s` passes.

    It counts against every limit in `limits` in full when it is made; a void or an expiry
    gives the amount back, a partial post the part not posted."""
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
        limits=tuple(limits),
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
