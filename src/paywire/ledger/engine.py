"""The ledger's state machine: applies requests to accounts, one batch at a time.

The engine is pure: it reads accounts and transfers through a `StateSource` (the store,
inside its write transaction, or an in-memory map for the offline auditor) and collects
what a batch changes: new log entries, new accounts and transfers, and the accounts and
holds whose state moved. The store then writes all of it in one transaction.

A request that fails leaves no trace: every mutation is recorded in an undo log, and the
engine rolls back to the request's savepoint. Replaying a log through the same engine
(`replay`) re-checks every entry against the rules that admitted it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from paywire.ledger.entries import (
    AccountEntry,
    TransferEntry,
    canonical_json,
    decode_entry,
    encode_transfer,
)
from paywire.ledger.errors import (
    AccountNotFound,
    AssetMismatch,
    BalanceOverflow,
    ExceedsCredits,
    ExceedsDebits,
    IdempotencyConflict,
    LedgerError,
    LinkedBatchFailed,
    NotPending,
    PendingAlreadyPosted,
    PendingAlreadyVoided,
    PendingExpired,
    PendingNotFound,
    PostExceedsPending,
    SameAccount,
    StoreCorrupt,
)
from paywire.ledger.model import (
    Account,
    HoldState,
    JsonValue,
    NewAccount,
    NewTransfer,
    Transfer,
    TransferKind,
)

# The state the engine works on lives in `state`; these names are re-exported for the
# modules that import them from here.
from paywire.ledger.state import FLAG_BITS as FLAG_BITS
from paywire.ledger.state import AccountState as AccountState
from paywire.ledger.state import NewRecord as NewRecord
from paywire.ledger.state import StateSource as StateSource
from paywire.ledger.state import TransferState as TransferState
from paywire.ledger.state import flags_from_bits as flags_from_bits
from paywire.ledger.state import flags_to_bits as flags_to_bits
from paywire.money import MAX_ATOMIC, Amount, Asset, format_atomic

NS_PER_S = 1_000_000_000

_SETTLED_STATE = {
    TransferKind.POST: HoldState.POSTED,
    TransferKind.VOID: HoldState.VOIDED,
    TransferKind.EXPIRE: HoldState.EXPIRED,
}

EXPIRE_ID_SUFFIX = "~expire"
"""Expire transfers are named after their hold; '~' never appears in a user's id."""


def fingerprint(body: Any) -> bytes:
    """What identifies a request for idempotency: a hash of its canonical body."""
    return hashlib.sha256(canonical_json(body)).digest()


@dataclass(slots=True)
class _Undo:
    # Each item restores one mutation: (object, attribute, old value) or a key to forget.
    sets: list[tuple[object, str, object]] = field(default_factory=list)
    new_accounts: list[str] = field(default_factory=list)
    new_transfers: list[str] = field(default_factory=list)


class Engine:
    """Applies a batch of requests to the state read from `source`.

    `next_index` and `last_timestamp` continue the log; `clock` gives wall time in ns
    (timestamps are made strictly increasing from it).
    """

    def __init__(
        self,
        source: StateSource,
        *,
        next_index: int,
        last_timestamp: int,
        clock: Callable[[], int],
    ) -> None:
        self._source = source
        self.clock = clock
        self.next_index = next_index
        self.last_timestamp = last_timestamp
        self._accounts: dict[str, AccountState | None] = {}
        self._transfers: dict[str, TransferState | None] = {}
        self.records: list[NewRecord] = []
        self.dirty_accounts: dict[str, AccountState] = {}
        self.dirty_holds: dict[str, TransferState] = {}
        self._undo = _Undo()

    # ----- reading state ---------------------------------------------------------------

    def prefetch(self, account_ids: Iterable[str], transfer_ids: Iterable[str]) -> None:
        """Load in bulk what a batch will touch, so the engine reads the store twice per
        batch instead of once per transfer."""
        transfer_wanted = [tid for tid in set(transfer_ids) if tid not in self._transfers]
        if transfer_wanted:
            found = self._source.load_transfers(transfer_wanted)
            for tid in transfer_wanted:
                self._transfers[tid] = found.get(tid)
        # A post or void needs its hold's accounts too.
        wanted = set(account_ids)
        for state in self._transfers.values():
            if state is not None and state.kind is TransferKind.PENDING:
                wanted.update((state.debit, state.credit))
        account_wanted = [aid for aid in wanted if aid not in self._accounts]
        if account_wanted:
            found_accounts = self._source.load_accounts(account_wanted)
            for aid in account_wanted:
                self._accounts[aid] = found_accounts.get(aid)

    def account(self, account_id: str) -> AccountState | None:
        if account_id not in self._accounts:
            self._accounts[account_id] = self._source.load_accounts([account_id]).get(account_id)
        return self._accounts[account_id]

    def transfer_state(self, transfer_id: str) -> TransferState | None:
        if transfer_id not in self._transfers:
            found = self._source.load_transfers([transfer_id])
            self._transfers[transfer_id] = found.get(transfer_id)
        return self._transfers[transfer_id]

    def replayed_accounts(self) -> dict[str, AccountState]:
        """Every account this engine has seen (for a replay, all of them)."""
        return {aid: state for aid, state in self._accounts.items() if state is not None}

    def replayed_transfers(self) -> dict[str, TransferState]:
        """Every transfer this engine has seen (for a replay, all of them)."""
        return {tid: state for tid, state in self._transfers.items() if state is not None}

    def _require_account(self, account_id: str) -> AccountState:
        state = self.account(account_id)
        if state is None:
            raise AccountNotFound(f"account {account_id!r} does not exist")
        return state

    # ----- undo log --------------------------------------------------------------------

    def _savepoint(self) -> tuple[int, int, int, int, int]:
        undo = self._undo
        return (
            len(undo.sets),
            len(undo.new_accounts),
            len(undo.new_transfers),
            len(self.records),
            self.next_index,
        )

    def _rollback(self, savepoint: tuple[int, int, int, int, int]) -> None:
        sets, accounts, transfers, records, next_index = savepoint
        undo = self._undo
        while len(undo.sets) > sets:
            target, name, old = undo.sets.pop()
            setattr(target, name, old)
        while len(undo.new_accounts) > accounts:
            self._accounts[undo.new_accounts.pop()] = None
        while len(undo.new_transfers) > transfers:
            self._transfers[undo.new_transfers.pop()] = None
        del self.records[records:]
        self.next_index = next_index

    def _set(self, target: object, name: str, value: object) -> None:
        self._undo.sets.append((target, name, getattr(target, name)))
        setattr(target, name, value)

    def forget_batch(self) -> None:
        """Drop what the current batch collected, keeping the state it reached (for a
        replay that feeds the engine one entry at a time)."""
        self.records.clear()
        self.dirty_accounts.clear()
        self.dirty_holds.clear()
        self._undo = _Undo()

    # ----- time ------------------------------------------------------------------------

    def _next_timestamp(self) -> int:
        now = self.clock()
        timestamp = now if now > self.last_timestamp else self.last_timestamp + 1
        self.last_timestamp = timestamp
        return timestamp

    # ----- accounts --------------------------------------------------------------------

    def open_account(self, request: NewAccount) -> tuple[Account, bool]:
        """Open an account; returns it and whether it already existed (same request)."""
        body = {
            "id": request.id,
            "asset": request.asset.code,
            "decimals": request.asset.decimals,
            "kind": str(request.kind),
            "owner": request.owner,
            "flags": sorted(str(flag) for flag in request.resolved_flags),
            "metadata": request.metadata,
        }
        print_ = fingerprint(body)
        existing = self.account(request.id)
        if existing is not None:
            if existing.fingerprint != print_:
                raise IdempotencyConflict(
                    f"account {request.id!r} already exists with other settings "
                    f"({existing.asset.code}, {existing.kind})"
                )
            return existing.to_account(), True
        savepoint = self._savepoint()
        try:
            timestamp = self._next_timestamp()
            metadata = dict(request.metadata or {})
            entry = AccountEntry(
                index=self.next_index,
                timestamp=timestamp,
                id=request.id,
                asset=request.asset.code,
                decimals=request.asset.decimals,
                kind=request.kind,
                owner=request.owner,
                flags=request.resolved_flags,
                metadata=metadata,
            )
            state = AccountState(
                id=request.id,
                asset=request.asset,
                kind=request.kind,
                owner=request.owner,
                flags=request.resolved_flags,
                timestamp=timestamp,
                log_index=entry.index,
                fingerprint=print_,
                metadata=metadata,
            )
            self._accounts[request.id] = state
            self._undo.new_accounts.append(request.id)
            self._append(NewRecord(entry.index, entry.encode(), account=state))
        except BaseException:
            self._rollback(savepoint)
            raise
        return state.to_account(), False

    # ----- transfers -------------------------------------------------------------------

    def submit(self, requests: Sequence[NewTransfer], *, linked: bool) -> list[Transfer]:
        """Apply `requests`; with `linked`, all or none (raises `LinkedBatchFailed`)."""
        if not linked:
            return [self._one(request) for request in requests]
        fingerprints = [request.fingerprint() for request in requests]
        existing = [self.transfer_state(request.id) for request in requests]
        if any(state is not None for state in existing):
            return self._replay_linked(fingerprints, existing)
        savepoint = self._savepoint()
        results: list[Transfer] = []
        for position, (request, print_) in enumerate(zip(requests, fingerprints, strict=True)):
            try:
                results.append(self._apply(request, print_))
            except LedgerError as error:
                self._rollback(savepoint)
                raise LinkedBatchFailed(position, error) from error
            except BaseException:
                self._rollback(savepoint)
                raise
        return results

    def _replay_linked(
        self,
        fingerprints: Sequence[bytes],
        existing: Sequence[TransferState | None],
    ) -> list[Transfer]:
        results = []
        for print_, state in zip(fingerprints, existing, strict=True):
            if state is None or state.fingerprint != print_:
                raise IdempotencyConflict(
                    "part of this linked batch was already committed under the same ids; "
                    "a retry must repeat the whole batch exactly"
                )
            results.append(self.to_transfer(state, replayed=True))
        return results

    def _one(self, request: NewTransfer) -> Transfer:
        print_ = request.fingerprint()
        existing = self.transfer_state(request.id)
        if existing is not None:
            return self._replayed(existing, request, print_)
        if request.kind is TransferKind.SINGLE or request.kind is TransferKind.PENDING:
            return self._move(request, print_)  # checks everything before it mutates
        savepoint = self._savepoint()
        try:
            return self._resolve(request, print_)
        except BaseException:
            self._rollback(savepoint)
            raise

    def submit_each(self, requests: Sequence[NewTransfer]) -> list[Transfer | LedgerError]:
        """Apply independent requests; each gets its result or its refusal."""
        results: list[Transfer | LedgerError] = []
        for request in requests:
            try:
                results.append(self._one(request))
            except LedgerError as error:
                results.append(error)
        return results

    def _replayed(self, existing: TransferState, request: NewTransfer, print_: bytes) -> Transfer:
        if existing.fingerprint != print_:
            raise IdempotencyConflict(
                f"transfer id {request.id!r} was already used for a different transfer; "
                "use a new id for a new transfer"
            )
        return self.to_transfer(existing, replayed=True)

    def _apply(self, request: NewTransfer, print_: bytes) -> Transfer:
        existing = self.transfer_state(request.id)
        if existing is not None:  # a duplicate inside one linked batch
            return self._replayed(existing, request, print_)
        if request.kind in (TransferKind.SINGLE, TransferKind.PENDING):
            return self._move(request, print_)
        return self._resolve(request, print_)

    def _move(self, request: NewTransfer, print_: bytes) -> Transfer:
        # The hot path: every check runs before the first mutation, so a refused transfer
        # has nothing to undo.
        assert request.debit_account_id is not None and request.credit_account_id is not None
        assert request.amount is not None and request.code is not None
        debit = self._require_account(request.debit_account_id)
        credit = self._require_account(request.credit_account_id)
        if debit is credit:
            raise SameAccount(f"a transfer needs two different accounts, not {debit.id!r} twice")
        amount = request.amount
        asset = amount.asset
        if debit.asset != asset or credit.asset != asset:
            raise AssetMismatch(
                f"transfer is in {asset.code} but {debit.id!r} holds {debit.asset.code} "
                f"and {credit.id!r} holds {credit.asset.code}"
            )
        atomic = amount.atomic
        pending = request.kind is TransferKind.PENDING
        if pending:
            debit_field, credit_field = "debits_pending", "credits_pending"
            debit_value = debit.debits_pending + atomic
            credit_value = credit.credits_pending + atomic
        else:
            debit_field, credit_field = "debits_posted", "credits_posted"
            debit_value = debit.debits_posted + atomic
            credit_value = credit.credits_posted + atomic
        if debit_value > MAX_ATOMIC or credit_value > MAX_ATOMIC:
            raise BalanceOverflow(f"a counter of {debit.id!r} or {credit.id!r} would pass 2^128-1")
        if debit.bounded_by_credits and (
            debit.debits_pending + debit.debits_posted + atomic > debit.credits_posted
        ):
            raise _overdraft(debit, atomic)
        if credit.bounded_by_debits and (
            credit.credits_pending + credit.credits_posted + atomic > credit.debits_posted
        ):
            raise ExceedsDebits(
                f"account {credit.id!r} may not be credited beyond its debits; the transfer "
                f"of {format_atomic(atomic, asset.decimals)} {asset.code} would"
            )
        timestamp = self._next_timestamp()
        self._set(debit, debit_field, debit_value)
        self._set(credit, credit_field, credit_value)
        self.dirty_accounts[debit.id] = debit
        self.dirty_accounts[credit.id] = credit
        expires_at = None
        if pending and request.timeout_s is not None:
            expires_at = timestamp + request.timeout_s * NS_PER_S
        index = self.next_index
        state = TransferState(
            request.id,
            request.kind,
            debit.id,
            credit.id,
            atomic,
            asset.code,
            request.code,
            timestamp,
            index,
            print_,
            None,
            expires_at,
            HoldState.PENDING if pending else None,
        )
        data = encode_transfer(
            index,
            timestamp,
            request.id,
            request.kind,
            debit.id,
            credit.id,
            atomic,
            asset.code,
            request.code,
            None,
            request.timeout_s,
            expires_at,
            request.metadata_json,
            request.authorization,
        )
        self._transfers[request.id] = state
        self._undo.new_transfers.append(request.id)
        self.records.append(NewRecord(index, data, transfer=state))
        self.next_index = index + 1
        return Transfer(
            request.id,
            request.kind,
            debit.id,
            credit.id,
            amount,
            request.code,
            timestamp,
            index,
            None,
            request.timeout_s,
            expires_at,
            request.metadata or {},
            request.authorization,
        )

    def _resolve(self, request: NewTransfer, print_: bytes) -> Transfer:
        assert request.pending_id is not None
        hold = self.transfer_state(request.pending_id)
        if hold is None:
            raise PendingNotFound(f"pending transfer {request.pending_id!r} does not exist")
        if hold.kind is not TransferKind.PENDING:
            raise NotPending(f"transfer {hold.id!r} was not created as pending")
        timestamp = self._next_timestamp()
        self._check_open(hold, timestamp)
        debit = self._require_account(hold.debit)
        posted = hold.amount
        if request.kind is TransferKind.POST and request.amount is not None:
            if request.amount.asset != debit.asset:
                raise AssetMismatch(
                    f"post is in {request.amount.asset.code}, the hold in {debit.asset.code}"
                )
            posted = request.amount.atomic
            if posted > hold.amount:
                raise PostExceedsPending(
                    f"cannot post {format_atomic(posted, debit.asset.decimals)} of a hold of "
                    f"{format_atomic(hold.amount, debit.asset.decimals)} {debit.asset.code}"
                )
        return self._settle_hold(
            hold,
            transfer_id=request.id,
            kind=request.kind,
            amount=posted,
            code=request.code if request.code is not None else hold.code,
            timestamp=timestamp,
            fingerprint=print_,
            metadata=dict(request.metadata or {}) or None,
            metadata_json=request.metadata_json,
            authorization=request.authorization,
        )

    def expire(self, hold_id: str) -> Transfer:
        """Release a hold whose timeout has passed, writing an expire transfer."""
        savepoint = self._savepoint()
        try:
            hold = self.transfer_state(hold_id)
            if hold is None or hold.kind is not TransferKind.PENDING:
                raise PendingNotFound(f"pending transfer {hold_id!r} does not exist")
            if hold.hold_state is not HoldState.PENDING:
                raise NotPending(f"hold {hold_id!r} is already {hold.hold_state}")
            timestamp = self._next_timestamp()
            if hold.expires_at is None or timestamp < hold.expires_at:
                raise NotPending(f"hold {hold_id!r} has not expired")
            return self._settle_hold(
                hold,
                transfer_id=hold.id + EXPIRE_ID_SUFFIX,
                kind=TransferKind.EXPIRE,
                amount=hold.amount,
                code=hold.code,
                timestamp=timestamp,
                fingerprint=b"",
            )
        except BaseException:
            self._rollback(savepoint)
            raise

    def _settle_hold(
        self,
        hold: TransferState,
        *,
        transfer_id: str,
        kind: TransferKind,
        amount: int,
        code: int,
        timestamp: int,
        fingerprint: bytes,
        metadata: dict[str, JsonValue] | None = None,
        metadata_json: str = "",
        authorization: str | None = None,
    ) -> Transfer:
        """Release a hold and post `amount` of it (a post) or nothing (void, expire)."""
        debit = self._require_account(hold.debit)
        credit = self._require_account(hold.credit)
        self._release(hold, debit, credit)
        if kind is TransferKind.POST:
            self._add(debit, "debits_posted", amount)
            self._add(credit, "credits_posted", amount)
        self._set(hold, "hold_state", _SETTLED_STATE[kind])
        self._set(hold, "resolved_by", transfer_id)
        self.dirty_holds[hold.id] = hold
        state = TransferState(
            id=transfer_id,
            kind=kind,
            debit=hold.debit,
            credit=hold.credit,
            amount=amount,
            asset=hold.asset,
            code=code,
            timestamp=timestamp,
            log_index=self.next_index,
            fingerprint=fingerprint,
            pending_id=hold.id,
        )
        entry = TransferEntry(
            index=self.next_index,
            timestamp=timestamp,
            id=transfer_id,
            kind=kind,
            debit=hold.debit,
            credit=hold.credit,
            amount=amount,
            asset=hold.asset,
            code=code,
            pending_id=hold.id,
            metadata=metadata,
            authorization=authorization,
            metadata_json=metadata_json,
        )
        return self._record_transfer(state, entry)

    def _check_open(self, hold: TransferState, timestamp: int) -> None:
        if hold.hold_state is HoldState.POSTED:
            raise PendingAlreadyPosted(f"hold {hold.id!r} was already posted by {hold.resolved_by}")
        if hold.hold_state is HoldState.VOIDED:
            raise PendingAlreadyVoided(f"hold {hold.id!r} was already voided by {hold.resolved_by}")
        if hold.hold_state is HoldState.EXPIRED or (
            hold.expires_at is not None and timestamp >= hold.expires_at
        ):
            raise PendingExpired(f"hold {hold.id!r} expired; its amount was released")
        assert hold.hold_state is HoldState.PENDING

    def _release(self, hold: TransferState, debit: AccountState, credit: AccountState) -> None:
        self._add(debit, "debits_pending", -hold.amount)
        self._add(credit, "credits_pending", -hold.amount)

    def _add(self, account: AccountState, counter: str, delta: int) -> None:
        value: int = getattr(account, counter) + delta
        if value > MAX_ATOMIC:
            raise BalanceOverflow(f"account {account.id!r} {counter} would pass 2^128 - 1")
        if value < 0:  # only a corrupt store can get here: releases never exceed holds
            raise StoreCorrupt(f"account {account.id!r} {counter} would go below zero")
        self._set(account, counter, value)
        self.dirty_accounts[account.id] = account

    def _record_transfer(self, state: TransferState, entry: TransferEntry) -> Transfer:
        self._transfers[state.id] = state
        self._undo.new_transfers.append(state.id)
        self._append(NewRecord(entry.index, entry.encode(), transfer=state))
        return self.to_transfer(state, entry=entry)

    def _append(self, record: NewRecord) -> None:
        assert record.index == self.next_index
        self.records.append(record)
        self.next_index += 1

    def to_transfer(
        self,
        state: TransferState,
        *,
        entry: TransferEntry | None = None,
        replayed: bool = False,
    ) -> Transfer:
        """The public record of a transfer state (metadata comes from its log entry)."""
        account = self.account(state.debit)
        if account is None:
            raise StoreCorrupt(f"transfer {state.id!r} names a missing account {state.debit!r}")
        if entry is None:
            entry = self._entry_of(state)
        return public_transfer(state, entry, account.asset, replayed=replayed)

    def _entry_of(self, state: TransferState) -> TransferEntry:
        first = self.records[0].index if self.records else self.next_index
        if state.log_index >= first:
            data: bytes | None = self.records[state.log_index - first].data
        else:
            data = self._source.entry(state.log_index)
        entry = decode_entry(data) if data is not None else None
        if not isinstance(entry, TransferEntry) or entry.id != state.id:
            raise StoreCorrupt(f"log entry {state.log_index} is not transfer {state.id!r}")
        return entry


def public_transfer(
    state: TransferState, entry: TransferEntry, asset: Asset, *, replayed: bool = False
) -> Transfer:
    """The public `Transfer` of a committed transfer's state and log entry."""
    return Transfer(
        id=state.id,
        kind=state.kind,
        debit_account_id=state.debit,
        credit_account_id=state.credit,
        amount=Amount(state.amount, asset),
        code=state.code,
        timestamp=state.timestamp,
        log_index=state.log_index,
        pending_id=state.pending_id,
        timeout_s=entry.timeout_s,
        expires_at=state.expires_at,
        metadata=entry.metadata or {},
        authorization=entry.authorization,
        replayed=replayed,
    )


def _overdraft(debit: AccountState, amount: int) -> ExceedsCredits:
    available = debit.credits_posted - debit.debits_posted - debit.debits_pending
    decimals, code = debit.asset.decimals, debit.asset.code
    return ExceedsCredits(
        f"account {debit.id!r} would be overdrawn: it has "
        f"{format_atomic(available, decimals)} {code} available and the "
        f"transfer is {format_atomic(amount, decimals)} {code}"
    )


def requested_ids(requests: Iterable[NewTransfer]) -> tuple[set[str], set[str]]:
    """Account and transfer ids a batch of requests will read (for `Engine.prefetch`)."""
    accounts: set[str] = set()
    transfers: set[str] = set()
    for request in requests:
        transfers.add(request.id)
        if request.debit_account_id is not None:
            accounts.add(request.debit_account_id)
        if request.credit_account_id is not None:
            accounts.add(request.credit_account_id)
        if request.pending_id is not None:
            transfers.add(request.pending_id)
    return accounts, transfers
