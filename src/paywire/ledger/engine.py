"""The ledger's state machine: applies requests to accounts, one batch at a time.

The engine is pure: it reads accounts, transfers and spend limits through a `StateSource`
(the store, inside its write transaction, or an in-memory map for the offline auditor) and
collects what a batch changes: new log entries, new accounts, transfers and limits, and the
accounts, holds and limits whose state moved. The store then writes all of it in one
transaction.

A request that fails leaves no trace: every mutation is recorded in an undo log, and the
engine rolls back to the request's savepoint. Replaying a log through the same engine
(`replay`) re-checks every entry against the rules that admitted it.

The parts: the working state, undo log and timestamps (`engine_base`), spend limits
(`engine_limits`), holds and the public record of transfers (`engine_holds`), accounts
and new transfers (here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from paywire.ledger.engine_base import fingerprint as fingerprint
from paywire.ledger.engine_holds import EXPIRE_ID_SUFFIX as EXPIRE_ID_SUFFIX
from paywire.ledger.engine_holds import HoldRules
from paywire.ledger.engine_holds import public_transfer as public_transfer
from paywire.ledger.entries import (
    AccountEntry,
    encode_transfer,
)
from paywire.ledger.errors import (
    AssetMismatch,
    BalanceOverflow,
    ExceedsCredits,
    ExceedsDebits,
    IdempotencyConflict,
    LedgerError,
    LinkedBatchFailed,
    SameAccount,
)
from paywire.ledger.model import NS_PER_S as NS_PER_S
from paywire.ledger.model import (
    Account,
    HoldState,
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
from paywire.ledger.task_index import task_of
from paywire.money import MAX_ATOMIC, format_atomic


class Engine(HoldRules):
    """Applies a batch of requests to the state read from `source`.

    `next_index` and `last_timestamp` continue the log; `clock` gives wall time in ns
    (timestamps are made strictly increasing from it).
    """

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
            # It checks everything before it mutates, and nothing can roll it back.
            return self._move(request, print_, undoable=False)
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

    def _move(self, request: NewTransfer, print_: bytes, *, undoable: bool = True) -> Transfer:
        # The hot path: every check runs before the first mutation, so a refused transfer
        # has nothing to undo. Outside a linked batch nothing can roll it back once it
        # passed (`undoable` False): its limits then keep no undo log.
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
        limit_ids = request.limits
        if limit_ids:  # checked at the very timestamp the transfer is charged at
            undo = self._undo.sets if undoable else None
            timestamp = self._peek_timestamp()
            limits = self._check_limits(limit_ids, asset, atomic, timestamp, undo)
            self._take_timestamp(timestamp)
            self._charge_limits(limits, atomic, timestamp, undo)
        else:
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
            None,
            limit_ids,
            task_of(request.metadata),
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
            limit_ids,
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
            limit_ids,
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


def requested_limits(requests: Iterable[NewTransfer]) -> set[str]:
    """Limit ids a batch of requests names (a post's or void's come with its hold)."""
    limits: set[str] = set()
    for request in requests:
        limits.update(request.limits)
    return limits
