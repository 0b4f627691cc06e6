"""Rows of the PostgreSQL store to the engine's states (and the shared parts they hold)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from paywire.ledger.model import AccountFlag, AccountKind, HoldState, TransferKind
from paywire.ledger.state import (
    AccountState,
    LimitState,
    TransferState,
    UsageSlot,
    flags_from_bits,
    limits_from_text,
)
from paywire.money import Asset

# Rows come back by the thousand per batch: share the immutable parts.
_ASSETS: dict[tuple[str, int], Asset] = {}
_FLAGS: dict[int, frozenset[AccountFlag]] = {}
_KINDS = {kind.value: kind for kind in AccountKind}
_TRANSFER_KINDS = {kind.value: kind for kind in TransferKind}
_HOLD_STATES = {state.value: state for state in HoldState}


def _asset(code: str, decimals: int) -> Asset:
    asset = _ASSETS.get((code, decimals))
    if asset is None:
        asset = _ASSETS.setdefault((code, decimals), Asset(code, decimals))
    return asset


def _flags(bits: int) -> frozenset[AccountFlag]:
    flags = _FLAGS.get(bits)
    if flags is None:
        flags = _FLAGS.setdefault(bits, flags_from_bits(bits))
    return flags


def _account(row: Sequence[Any]) -> AccountState:
    (aid, asset, decimals, kind, owner, flags, metadata, dp, dpo, cp, cpo, index, ts, fp) = row
    return AccountState(
        id=aid,
        asset=_asset(asset, decimals),
        kind=_KINDS[kind],
        owner=owner,
        flags=_flags(flags),
        timestamp=ts,
        log_index=index,
        fingerprint=fp,
        debits_pending=int(dp),
        debits_posted=int(dpo),
        credits_pending=int(cp),
        credits_posted=int(cpo),
        metadata={} if metadata == "{}" else json.loads(metadata),
    )


def _transfer(row: Sequence[Any]) -> TransferState:
    (tid, kind, debit, credit, amount, asset, code, ts, index, fp) = row[:10]
    (pid, expires, state, by, lim, task) = row[10:16]  # a read may add columns after
    return TransferState(
        id=tid,
        kind=_TRANSFER_KINDS[kind],
        debit=debit,
        credit=credit,
        amount=int(amount),
        asset=asset,
        code=code,
        timestamp=ts,
        log_index=index,
        fingerprint=fp,
        pending_id=pid,
        expires_at=expires,
        hold_state=None if state is None else _HOLD_STATES[state],
        resolved_by=by,
        limits=limits_from_text(lim),
        task=task,
    )


def _limit(row: Sequence[Any]) -> LimitState:
    (lid, asset, decimals, cap, window, metadata, closed, total, index, ts, fp) = row[:11]
    slots, buckets, used = row[11:]
    return LimitState(
        id=lid,
        asset=_asset(asset, decimals),
        cap=int(cap),
        window_s=window,
        timestamp=ts,
        log_index=index,
        fingerprint=fp,
        metadata={} if metadata == "{}" else json.loads(metadata),
        closed=bool(closed),
        used_total=int(total),
        slots={}
        if slots is None
        else {
            slot: UsageSlot(lid, slot, bucket, int(amount))
            for slot, bucket, amount in zip(slots, buckets, used, strict=True)
        },
    )
