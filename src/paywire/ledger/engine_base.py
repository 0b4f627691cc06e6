"""The engine's working state: what a batch has read, what it changed, and how to undo it.

`EngineBase` caches the accounts, transfers and spend limits a batch reads from its
`StateSource` (the store inside its write transaction, or nothing for the offline
auditor), collects the log records and the rows a batch dirties, and keeps an undo log so
a refused request rolls back to its savepoint and leaves no trace. It also makes the
log's timestamps: strictly increasing, from the clock.

The rules live in the subclasses: spend limits in `engine_limits`, accounts and transfers
in `engine`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from paywire.ledger.entries import canonical_json
from paywire.ledger.errors import AccountNotFound, LimitNotFound
from paywire.ledger.model import TransferKind
from paywire.ledger.state import (
    AccountState,
    LimitState,
    NewRecord,
    StateSource,
    TransferState,
    UsageSlot,
)

_MISSING = object()
"""The old value of a mapping key that was not there (undone by deleting the key)."""

Savepoint = tuple[int, int, int, int, int, int]


def fingerprint(body: Any) -> bytes:
    """What identifies a request for idempotency: a hash of its canonical body."""
    return hashlib.sha256(canonical_json(body)).digest()


@dataclass(slots=True)
class _Undo:
    # Each item restores one mutation: (object, attribute, old value), (object, tuple of
    # attributes, tuple of old values), or (dict, key, old value or _MISSING); or a key to
    # forget.
    sets: list[tuple[Any, Any, Any]] = field(default_factory=list)
    new_accounts: list[str] = field(default_factory=list)
    new_transfers: list[str] = field(default_factory=list)
    new_limits: list[str] = field(default_factory=list)


class EngineBase:
    """State, undo log and time for an `Engine` over `source`.

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
        self._limits: dict[str, LimitState | None] = {}
        self.records: list[NewRecord] = []
        self.dirty_accounts: dict[str, AccountState] = {}
        self.dirty_holds: dict[str, TransferState] = {}
        self.dirty_limits: dict[str, LimitState] = {}
        self.dirty_slots: set[UsageSlot] = set()
        """Usage slots changed (by identity: a slot's bucket and usage change in place)."""
        self._undo = _Undo()

    # ----- reading state ---------------------------------------------------------------

    def prefetch(
        self,
        account_ids: Iterable[str],
        transfer_ids: Iterable[str],
        limit_ids: Iterable[str] = (),
    ) -> None:
        """Load in bulk what a batch will touch, so the engine reads the store twice per
        batch instead of once per transfer."""
        transfer_wanted = [tid for tid in set(transfer_ids) if tid not in self._transfers]
        if transfer_wanted:
            found = self._source.load_transfers(transfer_wanted)
            for tid in transfer_wanted:
                self._transfers[tid] = found.get(tid)
        # A post or void needs its hold's accounts (and limits) too.
        wanted = set(account_ids)
        limits_wanted = set(limit_ids)
        for state in self._transfers.values():
            if state is not None and state.kind is TransferKind.PENDING:
                wanted.update((state.debit, state.credit))
                limits_wanted.update(state.limits)
        account_wanted = [aid for aid in wanted if aid not in self._accounts]
        limit_wanted = [lid for lid in limits_wanted if lid not in self._limits]
        if limit_wanted:
            found_accounts, found_limits = self._source.load_accounts_and_limits(
                account_wanted, limit_wanted
            )
            for lid in limit_wanted:
                self._limits[lid] = found_limits.get(lid)
        elif account_wanted:
            found_accounts = self._source.load_accounts(account_wanted)
        else:
            return
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

    def limit(self, limit_id: str) -> LimitState | None:
        if limit_id not in self._limits:
            self._limits[limit_id] = self._source.load_limits([limit_id]).get(limit_id)
        return self._limits[limit_id]

    def replayed_accounts(self) -> dict[str, AccountState]:
        """Every account this engine has seen (for a replay, all of them)."""
        return {aid: state for aid, state in self._accounts.items() if state is not None}

    def replayed_transfers(self) -> dict[str, TransferState]:
        """Every transfer this engine has seen (for a replay, all of them)."""
        return {tid: state for tid, state in self._transfers.items() if state is not None}

    def replayed_limits(self) -> dict[str, LimitState]:
        """Every limit this engine has seen (for a replay, all of them)."""
        return {lid: state for lid, state in self._limits.items() if state is not None}

    def _require_account(self, account_id: str) -> AccountState:
        state = self.account(account_id)
        if state is None:
            raise AccountNotFound(f"account {account_id!r} does not exist")
        return state

    def _require_limit(self, limit_id: str) -> LimitState:
        state = self.limit(limit_id)
        if state is None:
            raise LimitNotFound(f"limit {limit_id!r} does not exist")
        return state

    def usage_rows(self) -> list[UsageSlot]:
        """The usage slots the batch changed, as they stand (for the store to write)."""
        rows = []
        for slot in self.dirty_slots:
            limit = self._limits.get(slot.limit_id)
            if limit is not None and limit.slots.get(slot.slot) is slot:
                rows.append(slot)  # else made by a request that was rolled back
        return rows

    # ----- undo log --------------------------------------------------------------------

    def _savepoint(self) -> Savepoint:
        undo = self._undo
        return (
            len(undo.sets),
            len(undo.new_accounts),
            len(undo.new_transfers),
            len(undo.new_limits),
            len(self.records),
            self.next_index,
        )

    def _rollback(self, savepoint: Savepoint) -> None:
        sets, accounts, transfers, limits, records, next_index = savepoint
        undo = self._undo
        while len(undo.sets) > sets:
            target, name, old = undo.sets.pop()
            if isinstance(target, dict):
                if old is _MISSING:
                    del target[name]
                else:
                    target[name] = old
            elif isinstance(name, tuple):
                for attribute, value in zip(name, old, strict=True):
                    setattr(target, attribute, value)
            else:
                setattr(target, name, old)
        while len(undo.new_accounts) > accounts:
            self._accounts[undo.new_accounts.pop()] = None
        while len(undo.new_transfers) > transfers:
            self._transfers[undo.new_transfers.pop()] = None
        while len(undo.new_limits) > limits:
            self._limits[undo.new_limits.pop()] = None
        del self.records[records:]
        self.next_index = next_index

    def _set(self, target: object, name: str, value: object) -> None:
        self._undo.sets.append((target, name, getattr(target, name)))
        setattr(target, name, value)

    def _set_item(self, mapping: dict[Any, Any], key: object, value: object) -> None:
        self._undo.sets.append((mapping, key, mapping.get(key, _MISSING)))
        mapping[key] = value

    def forget_batch(self) -> None:
        """Drop what the current batch collected, keeping the state it reached (for a
        replay that feeds the engine one entry at a time)."""
        self.records.clear()
        self.dirty_accounts.clear()
        self.dirty_holds.clear()
        self.dirty_limits.clear()
        self.dirty_slots.clear()
        self._undo = _Undo()

    # ----- time and the log ------------------------------------------------------------

    def _peek_timestamp(self) -> int:
        """The timestamp the next entry gets (taken with `_take_timestamp`)."""
        now = self.clock()
        return now if now > self.last_timestamp else self.last_timestamp + 1

    def _take_timestamp(self, timestamp: int) -> int:
        assert timestamp > self.last_timestamp
        self.last_timestamp = timestamp
        return timestamp

    def _next_timestamp(self) -> int:
        return self._take_timestamp(self._peek_timestamp())

    def _append(self, record: NewRecord) -> None:
        assert record.index == self.next_index
        self.records.append(record)
        self.next_index += 1
