"""The engine's rules for spend limits: open and close them, check and charge transfers.

A transfer that names limits is checked against each one before anything moves (the limit
exists, is open, caps the transfer's asset, and has room for the amount), then charged to
each, in the same batch and so the same store transaction as the transfer itself. A hold
is charged in full when it is made, in the bucket of its own timestamp; resolving it gives
back what was not posted (all of it for a void or an expiry) to that bucket, if the bucket
is still kept, and to the limit's total.

Why the window check is sound: a transfer (or hold) at ledger time t is charged to bucket
t // bucket_ns. The check at time t sums the buckets from (t - window) // bucket_ns to
t // bucket_ns: they hold every charge made in [t - window, t] (and perhaps some made up
to one bucket earlier), so a transfer that passes leaves no window ending at t past the
cap. A window ending at any other time s holds only charges made up to the last charge
before it, at t <= s; as s - window >= t - window, they all lie in [t - window, t], whose
check passed when t was charged (give-backs since then only lowered usage). Ledger time
only moves forward (timestamps strictly increase), so a bucket's slot is reused only once
the bucket has fallen out of every window still to be checked.
What counts is the time of the commitment: a hold counts from when it was made, and what a
post of it keeps stays in the hold's bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from paywire.ledger.engine_base import EngineBase, fingerprint
from paywire.ledger.entries import LimitCloseEntry, LimitEntry
from paywire.ledger.errors import (
    AssetMismatch,
    BalanceOverflow,
    IdempotencyConflict,
    LimitClosed,
    LimitExceeded,
    StoreCorrupt,
)
from paywire.ledger.model import WINDOW_SLOTS, Metadata, NewLimit, check_metadata
from paywire.ledger.state import LimitState, NewRecord, TransferState, UsageSlot
from paywire.money import MAX_ATOMIC, Asset

# Undo entries that restore several attributes at once (see `EngineBase._rollback`).
_TOTALS = ("used_total", "cache_used")
_USED = ("used",)
_CACHE = ("cache_first", "cache_last", "cache_used")

_UndoLog = list[tuple[Any, Any, Any]]


class LimitRules(EngineBase):
    """Opening, closing, checking and charging spend limits."""

    # ----- opening and closing ---------------------------------------------------------

    def open_limit(self, request: NewLimit) -> tuple[LimitState, bool]:
        """Open a limit; returns it and whether it already existed (same request)."""
        body = {
            "id": request.id,
            "asset": request.asset.code,
            "decimals": request.asset.decimals,
            "cap": str(request.cap_atomic),
            "window_s": request.window_s,
            "metadata": request.metadata,
        }
        print_ = fingerprint(body)
        existing = self.limit(request.id)
        if existing is not None:
            if existing.fingerprint != print_:
                window = "all time" if existing.window_s is None else f"{existing.window_s} s"
                raise IdempotencyConflict(
                    f"limit {request.id!r} already exists with other settings (a cap of "
                    f"{existing.cap} {existing.asset.code} for {window}); use a new id"
                )
            return existing, True
        savepoint = self._savepoint()
        try:
            timestamp = self._next_timestamp()
            metadata = dict(request.metadata or {})
            entry = LimitEntry(
                index=self.next_index,
                timestamp=timestamp,
                id=request.id,
                asset=request.asset.code,
                decimals=request.asset.decimals,
                cap=request.cap_atomic,
                window_s=request.window_s,
                metadata=metadata,
            )
            state = LimitState(
                id=request.id,
                asset=request.asset,
                cap=request.cap_atomic,
                window_s=request.window_s,
                timestamp=timestamp,
                log_index=entry.index,
                fingerprint=print_,
                metadata=metadata,
            )
            self._limits[request.id] = state
            self._undo.new_limits.append(request.id)
            self._append(NewRecord(entry.index, entry.encode(), limit=state))
        except BaseException:
            self._rollback(savepoint)
            raise
        return state, False

    def close_limit(
        self, limit_id: str, metadata: Metadata | None = None
    ) -> tuple[LimitState, bool]:
        """Close (revoke) a limit for good; returns it and whether it was closed already.

        Holds already charged to it stay as they are: they may still be posted (the
        spending was allowed when they were made) and a void or expiry gives back."""
        checked = check_metadata(metadata)
        limit = self._require_limit(limit_id)
        if limit.closed:
            return limit, True
        savepoint = self._savepoint()
        try:
            timestamp = self._next_timestamp()
            entry = LimitCloseEntry(self.next_index, timestamp, limit_id, checked)
            self._set(limit, "closed", True)
            self.dirty_limits[limit_id] = limit
            self._append(NewRecord(entry.index, entry.encode()))
        except BaseException:
            self._rollback(savepoint)
            raise
        return limit, False

    # ----- checking and charging transfers ---------------------------------------------

    def _check_limits(
        self,
        limit_ids: Sequence[str],
        asset: Asset,
        amount: int,
        at: int,
        undo: _UndoLog | None,
    ) -> list[LimitState]:
        """The limits a transfer of `amount` at time `at` names, if it fits every one;
        else the refusal of the first it does not fit. Changes nothing but caches (kept in
        `undo`, unless None: then nothing can roll this request back)."""
        limits = []
        known = self._limits
        for limit_id in limit_ids:
            limit = known.get(limit_id) or self._require_limit(limit_id)
            if limit.closed:
                raise LimitClosed(
                    f"limit {limit_id!r} was closed; no transfer may count against it"
                )
            if limit.asset is not asset:
                if limit.asset != asset:
                    raise AssetMismatch(
                        f"transfer is in {asset.code} but limit {limit_id!r} caps "
                        f"{limit.asset.code}"
                    )
                limit.asset = asset  # an equal instance: the next check is by identity
            used = self._used(limit, at, undo)
            if used + amount > limit.cap:
                raise LimitExceeded(
                    limit_id, limit.cap, used, amount, limit.window_s, asset_code=asset.code
                )
            if limit.used_total + amount > MAX_ATOMIC:
                raise BalanceOverflow(f"limit {limit_id!r} total would pass 2^128 - 1")
            limits.append(limit)
        return limits

    def _charge_limits(
        self,
        limits: Sequence[LimitState],
        amount: int,
        at: int,
        undo: _UndoLog | None,
    ) -> None:
        """Count `amount`, spent at time `at`, against each of `limits` (checked).

        The hot path of a transfer under a mandate: one undo entry per limit (its total
        and cached window usage) and one per bucket when the bucket is there already (none
        when `undo` is None: nothing can roll this request back)."""
        for limit in limits:
            if undo is not None:
                undo.append((limit, _TOTALS, (limit.used_total, limit.cache_used)))
            limit.used_total += amount
            bucket_ns = limit.bucket_ns
            if bucket_ns:
                bucket = at // bucket_ns
                slot = limit.slots.get(bucket % WINDOW_SLOTS)
                if slot is not None and slot.bucket == bucket:
                    if undo is not None:
                        undo.append((slot, _USED, (slot.used,)))
                    slot.used += amount
                    if limit.cache_first <= bucket <= limit.cache_last:
                        limit.cache_used += amount
                    self.dirty_slots.add(slot)
                else:
                    self._add_usage(limit, bucket, amount)
            self.dirty_limits[limit.id] = limit

    def _give_back(self, hold: TransferState, amount: int) -> None:
        """Give `amount` of a hold back to its limits (to the bucket it was charged in)."""
        if not amount:
            return
        for limit_id in hold.limits:
            limit = self.limit(limit_id)
            if limit is None:
                raise StoreCorrupt(f"hold {hold.id!r} counts against a missing limit {limit_id!r}")
            total = limit.used_total - amount
            if total < 0:
                raise StoreCorrupt(f"limit {limit_id!r} would give back more than it charged")
            self._set(limit, "used_total", total)
            if limit.bucket_ns:
                self._add_usage(limit, hold.timestamp // limit.bucket_ns, -amount)
            self.dirty_limits[limit_id] = limit

    def _add_usage(self, limit: LimitState, bucket: int, delta: int) -> None:
        number = bucket % WINDOW_SLOTS
        slot = limit.slots.get(number)
        if slot is None or slot.bucket != bucket:
            if delta < 0:  # giving back to a bucket charged earlier
                if slot is not None and slot.bucket > bucket:
                    return  # it fell out of every window and was reused: nothing to lower
                raise StoreCorrupt(f"limit {limit.id!r} lost the usage of bucket {bucket}")
            if slot is None:
                slot = UsageSlot(limit.id, number, bucket, 0)
                self._set_item(limit.slots, number, slot)
            else:  # the slot's bucket fell out of every window: reuse it
                if slot.bucket > bucket:
                    raise StoreCorrupt(f"limit {limit.id!r} has usage from the future")
                if limit.cache_first <= slot.bucket <= limit.cache_last:
                    self._set(limit, "cache_used", limit.cache_used - slot.used)
                self._set(slot, "bucket", bucket)
                self._set(slot, "used", 0)
        used = slot.used + delta
        if used < 0:
            raise StoreCorrupt(f"limit {limit.id!r} bucket {bucket} would go below zero")
        self._set(slot, "used", used)
        if limit.cache_first <= bucket <= limit.cache_last:
            self._set(limit, "cache_used", limit.cache_used + delta)
        self.dirty_slots.add(slot)

    def _used(self, limit: LimitState, at: int, undo: _UndoLog | None) -> int:
        """What counts against `limit` at time `at`: its total, or the buckets of the
        window ending at `at`. Kept per span, so the transfers of one batch (which share
        a span, mostly) add up the buckets once."""
        bucket_ns = limit.bucket_ns
        if not bucket_ns:
            return limit.used_total
        first = (at - limit.window_ns) // bucket_ns
        last = at // bucket_ns
        if first != limit.cache_first or last != limit.cache_last:
            if undo is not None:
                undo.append(
                    (limit, _CACHE, (limit.cache_first, limit.cache_last, limit.cache_used))
                )
            limit.cache_first, limit.cache_last = first, last
            limit.cache_used = sum(
                s.used for s in limit.slots.values() if first <= s.bucket <= last
            )
        return limit.cache_used
