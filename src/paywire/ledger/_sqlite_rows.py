"""Rows of the SQLite store to states: accounts and transfers, with BLOB columns checked."""

from __future__ import annotations

import json
import sqlite3

from paywire.ledger.errors import StoreCorrupt
from paywire.ledger.model import AccountKind, HoldState, TransferKind
from paywire.ledger.state import AccountState, TransferState, flags_from_bits, limits_from_text
from paywire.money import Asset


def _account(row: sqlite3.Row | tuple[object, ...]) -> AccountState:
    (aid, asset, decimals, kind, owner, flags, metadata, dp, dpo, cp, cpo, index, ts, fp) = row
    return AccountState(
        id=str(aid),
        asset=Asset(str(asset), int(str(decimals))),
        kind=AccountKind(str(kind)),
        owner=None if owner is None else str(owner),
        flags=flags_from_bits(int(str(flags))),
        timestamp=int(str(ts)),
        log_index=int(str(index)),
        fingerprint=_blob(fp, "a fingerprint"),
        debits_pending=int(str(dp)),
        debits_posted=int(str(dpo)),
        credits_pending=int(str(cp)),
        credits_posted=int(str(cpo)),
        metadata=json.loads(str(metadata)),
    )


def _transfer(row: tuple[object, ...]) -> TransferState:
    (tid, kind, debit, credit, amount, asset, code, ts, index, fp) = row[:10]
    (pid, expires, state, by, lim, task) = row[10:16]  # a read may add columns after
    return TransferState(
        id=str(tid),
        kind=TransferKind(str(kind)),
        debit=str(debit),
        credit=str(credit),
        amount=int(str(amount)),
        asset=str(asset),
        code=int(str(code)),
        timestamp=int(str(ts)),
        log_index=int(str(index)),
        fingerprint=_blob(fp, "a fingerprint"),
        pending_id=None if pid is None else str(pid),
        expires_at=None if expires is None else int(str(expires)),
        hold_state=None if state is None else HoldState(str(state)),
        resolved_by=None if by is None else str(by),
        limits=limits_from_text(None if lim is None else str(lim)),
        task=None if task is None else str(task),
    )


def _blob(value: object, what: str) -> bytes:
    """A BLOB column's bytes; anything else means someone edited the file by hand."""
    if not isinstance(value, bytes):
        raise StoreCorrupt(f"{what} is stored as {type(value).__name__}, not bytes")
    return value
