"""Log entries: one canonical byte string each, strictly parsed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paywire.ledger.entries import (
    AccountEntry,
    LimitCloseEntry,
    LimitEntry,
    MalformedEntry,
    TransferEntry,
    canonical_json,
    decode_entry,
)
from paywire.ledger.model import AccountFlag, AccountKind, TransferKind, canonical_metadata

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,20}", fullmatch=True)
json_leaf = st.none() | st.booleans() | st.integers(-(2**63) + 1, 2**63 - 1) | st.text(max_size=10)
metadata = st.dictionaries(
    st.text(min_size=1, max_size=8),
    json_leaf
    | st.lists(json_leaf, max_size=3)
    | st.dictionaries(st.text(min_size=1, max_size=4), json_leaf, max_size=3),
    max_size=4,
)


@given(
    index=st.integers(0, 2**40),
    timestamp=st.integers(0, 2**63 - 1),
    tid=ids,
    kind=st.sampled_from(list(TransferKind)),
    debit=ids,
    credit=ids,
    amount=st.integers(1, 2**128 - 1),
    code=st.integers(1, 65535),
    pending_id=st.none() | ids,
    timeout_s=st.none() | st.integers(1, 10**6),
    expires_at=st.none() | st.integers(0, 2**63 - 1),
    meta=metadata,
    authorization=st.none() | st.text(max_size=40),
    limits=st.lists(ids, max_size=5, unique=True),
)
def test_fast_transfer_encoding_is_canonical(
    index,
    timestamp,
    tid,
    kind,
    debit,
    credit,
    amount,
    code,
    pending_id,
    timeout_s,
    expires_at,
    meta,
    authorization,
    limits,
) -> None:  # type: ignore[no-untyped-def]
    if kind not in (TransferKind.SINGLE, TransferKind.PENDING):
        limits = []  # only transfers and holds name limits
    checked, text = canonical_metadata(meta)
    entry = TransferEntry(
        index,
        timestamp,
        tid,
        kind,
        debit,
        credit,
        amount,
        "USDC",
        code,
        pending_id,
        timeout_s,
        expires_at,
        checked or None,
        authorization,
        metadata_json=text,
        limits=tuple(limits),
    )
    fields = {
        "type": "transfer",
        "index": index,
        "timestamp": timestamp,
        "id": tid,
        "kind": str(kind),
        "debit": debit,
        "credit": credit,
        "amount": str(amount),
        "asset": "USDC",
        "code": code,
    }
    optional = {
        "pending_id": pending_id,
        "timeout_s": timeout_s,
        "expires_at": expires_at,
        "authorization": authorization,
        "metadata": checked or None,
        "limits": limits or None,
    }
    fields.update({k: v for k, v in optional.items() if v is not None})
    data = entry.encode()
    assert data == canonical_json(fields)
    assert decode_entry(data) == entry


def test_account_entry_round_trip() -> None:
    entry = AccountEntry(
        3,
        99,
        "alice",
        "USDC",
        6,
        AccountKind.AGENT,
        "0xA",
        frozenset({AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS}),
        {"team": "x"},
    )
    assert decode_entry(entry.encode()) == entry


@pytest.mark.parametrize("window_s", [None, 1, 86400])
@pytest.mark.parametrize("metadata", [{}, {"mandate": "m-1"}])
def test_limit_entries_round_trip(window_s: int | None, metadata: dict[str, str]) -> None:
    opened = LimitEntry(4, 100, "daily", "USDC", 6, 2**128 - 1, window_s, dict(metadata))
    data = opened.encode()
    assert decode_entry(data) == opened
    fields = {"type": "limit", "index": 4, "timestamp": 100, "id": "daily", "asset": "USDC"}
    fields |= {"decimals": 6, "cap": str(2**128 - 1)}
    if window_s is not None:
        fields["window_s"] = window_s
    if metadata:
        fields["metadata"] = metadata
    assert data == canonical_json(fields)
    closed = LimitCloseEntry(5, 101, "daily", dict(metadata))
    assert decode_entry(closed.encode()) == closed


_TRANSFER = b'"amount":"1","asset":"USDC","code":1,"credit":"b","debit":"a","id":"t","index":0'


@pytest.mark.parametrize(
    "data",
    [
        b"{" + _TRANSFER + b',"kind":"single","limits":[],"timestamp":1,"type":"transfer"}',
        b"{" + _TRANSFER + b',"kind":"single","limits":"a","timestamp":1,"type":"transfer"}',
        b"{" + _TRANSFER + b',"kind":"single","limits":["a","a"],"timestamp":1,"type":"transfer"}',
        b"{" + _TRANSFER + b',"kind":"single","limits":["a b"],"timestamp":1,"type":"transfer"}',
        b"{" + _TRANSFER + b',"kind":"single","limits":[1],"timestamp":1,"type":"transfer"}',
        b"{" + _TRANSFER + b',"kind":"post","limits":["a"],"timestamp":1,"type":"transfer"}',
        b'{"asset":"USDC","cap":"-1","decimals":6,"id":"l","index":0,"timestamp":1,"type":"limit"}',
        b'{"asset":"USDC","cap":"01","decimals":6,"id":"l","index":0,"timestamp":1,"type":"limit"}',
        b'{"asset":"USDC","cap":1,"decimals":6,"id":"l","index":0,"timestamp":1,"type":"limit"}',
        b'{"asset":"USDC","decimals":6,"id":"l","index":0,"timestamp":1,"type":"limit"}',
        b'{"asset":"USDC","cap":"1","decimals":6,"id":"l","index":0,"timestamp":1,"type":"limit",'
        b'"window_s":0}',
        b'{"asset":"USDC","cap":"1","decimals":6,"id":"l","index":0,"metadata":{},"timestamp":1,'
        b'"type":"limit"}',
        b'{"id":"l","index":0,"timestamp":1,"type":"limit_close","why":"x"}',
        b'{"id":"l","index":0,"type":"limit_close"}',
    ],
)
def test_malformed_limit_entries(data: bytes) -> None:
    with pytest.raises(MalformedEntry):
        decode_entry(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b"not json",
        b'{"type":"transfer"}',
        b'{"type":"other"}',
        b'{ "type":"account"}',
        b'{"amount":"01","asset":"USDC","code":1,"credit":"b","debit":"a","id":"t","index":0,"kind":"single","timestamp":1,"type":"transfer"}',
        b'{"amount":"0","asset":"USDC","code":1,"credit":"b","debit":"a","id":"t","index":0,"kind":"single","timestamp":1,"type":"transfer"}',
        b'{"amount":"1","asset":"USDC","code":0,"credit":"b","debit":"a","id":"t","index":0,"kind":"single","timestamp":1,"type":"transfer"}',
        b'{"amount":"1","asset":"USDC","code":1,"credit":"b","debit":"a","id":"t","index":-1,"kind":"single","timestamp":1,"type":"transfer"}',
        b'{"amount":"1","asset":"USDC","code":1,"credit":"b","debit":"a","extra":1,"id":"t","index":0,"kind":"single","timestamp":1,"type":"transfer"}',
        b'{"amount":"1","asset":"USDC","code":1,"credit":"b","debit":"a","id":"t","index":0,"kind":"bogus","timestamp":1,"type":"transfer"}',
        b'{"amount":"1","asset":"USDC","code":1,"credit":"b","debit":"a","id":"t","index":0,"kind":"single","metadata":{},"timestamp":1,"type":"transfer"}',
        b'{"amount":"1","asset":"USDC","code":1,"credit":"b","debit":"a","id":"t","index":0,"kind":"single","metadata":{"f":1.5},"timestamp":1,"type":"transfer"}',
        b'{"amount":"1","asset":"USDC","code":true,"credit":"b","debit":"a","id":"t","index":0,"kind":"single","timestamp":1,"type":"transfer"}',
        b'{"asset":"USDC","decimals":6,"flags":["b","a"],"id":"x","index":0,"kind":"agent","timestamp":1,"type":"account"}',
        b"x" * 40000,
    ],
)
def test_malformed_entries(data: bytes) -> None:
    with pytest.raises(MalformedEntry):
        decode_entry(data)
