"""The engine's rules for holds: posting, voiding and expiring pending transfers, and
the public record of a transfer.

A hold (a pending transfer) reserves its amount on both accounts until it is resolved,
once: a post moves all or part of it and releases the rest, a void releases it, and the
ledger expires it when its timeout passes. Resolving gives back to the hold's spend limits
what was not posted (see `engine_limits`).
"""

from __future__ import annotations

from paywire.ledger.engine_limits import LimitRules
from paywire.ledger.entries import TransferEntry, decode_entry
from paywire.ledger.errors import (
    AssetMismatch,
    BalanceOverflow,
    NotPending,
    PendingAlreadyPosted,
    PendingAlreadyVoided,
    PendingExpired,
    PendingNotFound,
    PostExceedsPending,
    StoreCorrupt,
)
from paywire.ledger.model import HoldState, JsonValue, NewTransfer, Transfer, TransferKind
from paywire.ledger.state import AccountState, NewRecord, TransferState
from paywire.ledger.task_index import task_of
from paywire.money import MAX_ATOMIC, Amount, Asset, format_atomic

_SETTLED_STATE = {
    TransferKind.POST: HoldState.POSTED,
    TransferKind.VOID: HoldState.VOIDED,
    TransferKind.EXPIRE: HoldState.EXPIRED,
}

EXPIRE_ID_SUFFIX = "~expire"
"""Expire transfers are named after their hold; '~' never appears in a user's id."""


class HoldRules(LimitRules):
    """Resolving holds, and reading back the transfers a batch wrote or found."""

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
            self._give_back(hold, hold.amount - amount)
        else:
            self._give_back(hold, hold.amount)
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
            # An expire has no metadata, and a post or void need not repeat the tag: the
            # hold's task keeps them in its books.
            task=task_of(metadata) or hold.task,
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
        limits=entry.limits,
        replayed=replayed,
    )
