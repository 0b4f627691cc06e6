"""Log entries and their canonical bytes: the entry kinds, `canonical_json`, and the
transfer's direct encoding (the hot path of every write)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from paywire.ledger.model import AccountFlag, AccountKind, JsonValue, TransferKind

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no white space, ASCII escapes: one byte string per value."""
    return _ENCODER.encode(value).encode("ascii")


@dataclass(frozen=True, slots=True)
class AccountEntry:
    """An account as opened (its balances are derived from the transfers after it)."""

    index: int
    timestamp: int
    id: str
    asset: str
    decimals: int
    kind: AccountKind
    owner: str | None
    flags: frozenset[AccountFlag]
    metadata: dict[str, JsonValue]

    def encode(self) -> bytes:
        fields: dict[str, Any] = {
            "type": "account",
            "index": self.index,
            "timestamp": self.timestamp,
            "id": self.id,
            "asset": self.asset,
            "decimals": self.decimals,
            "kind": str(self.kind),
            "flags": sorted(str(flag) for flag in self.flags),
        }
        if self.owner is not None:
            fields["owner"] = self.owner
        if self.metadata:
            fields["metadata"] = self.metadata
        return canonical_json(fields)


@dataclass(frozen=True, slots=True)
class TransferEntry:
    """A transfer as committed. For post, void and expire, `amount` is what was posted or
    released and the accounts are the pending transfer's."""

    index: int
    timestamp: int
    id: str
    kind: TransferKind
    debit: str
    credit: str
    amount: int
    asset: str
    code: int
    pending_id: str | None = None
    timeout_s: int | None = None
    expires_at: int | None = None
    metadata: dict[str, JsonValue] | None = None
    authorization: str | None = None
    metadata_json: str = field(default="", compare=False, repr=False)
    """`metadata` as canonical JSON when the caller has it already (saves encoding twice)."""
    limits: tuple[str, ...] = ()
    """The spend limits a transfer or hold counts against (left out when none)."""

    def encode(self) -> bytes:
        return encode_transfer(
            self.index,
            self.timestamp,
            self.id,
            self.kind,
            self.debit,
            self.credit,
            self.amount,
            self.asset,
            self.code,
            self.pending_id,
            self.timeout_s,
            self.expires_at,
            self.metadata_json or (_ENCODER.encode(self.metadata) if self.metadata else ""),
            self.authorization,
            self.limits,
        )


def encode_transfer(
    index: int,
    timestamp: int,
    id: str,
    kind: str,
    debit: str,
    credit: str,
    amount: int,
    asset: str,
    code: int,
    pending_id: str | None,
    timeout_s: int | None,
    expires_at: int | None,
    metadata_json: str,
    authorization: str | None,
    limits: tuple[str, ...] = (),
) -> bytes:
    """A transfer entry's canonical bytes, built directly: the hot path of every write.

    Keys go in sorted order. Ids, asset codes and kinds are restricted to characters JSON
    never escapes, so they go in as they are; `metadata_json` is already canonical ("" for
    none). A test checks this equals `canonical_json` of the same fields.
    """
    parts = [f'{{"amount":"{amount}","asset":"{asset}"']
    if authorization is not None:
        parts.append(f',"authorization":{_ENCODER.encode(authorization)}')
    parts.append(f',"code":{code},"credit":"{credit}","debit":"{debit}"')
    if expires_at is not None:
        parts.append(f',"expires_at":{expires_at}')
    parts.append(f',"id":"{id}","index":{index},"kind":"{kind}"')
    if limits:
        parts.append(',"limits":["' + '","'.join(limits) + '"]')
    if metadata_json:
        parts.append(f',"metadata":{metadata_json}')
    if pending_id is not None:
        parts.append(f',"pending_id":"{pending_id}"')
    if timeout_s is not None:
        parts.append(f',"timeout_s":{timeout_s}')
    parts.append(f',"timestamp":{timestamp},"type":"transfer"}}')
    return "".join(parts).encode("ascii")


@dataclass(frozen=True, slots=True)
class LimitEntry:
    """A spend limit as opened (its usage is derived from the transfers after it)."""

    index: int
    timestamp: int
    id: str
    asset: str
    decimals: int
    cap: int
    window_s: int | None
    metadata: dict[str, JsonValue]

    def encode(self) -> bytes:
        fields: dict[str, Any] = {
            "type": "limit",
            "index": self.index,
            "timestamp": self.timestamp,
            "id": self.id,
            "asset": self.asset,
            "decimals": self.decimals,
            "cap": str(self.cap),
        }
        if self.window_s is not None:
            fields["window_s"] = self.window_s
        if self.metadata:
            fields["metadata"] = self.metadata
        return canonical_json(fields)


@dataclass(frozen=True, slots=True)
class LimitCloseEntry:
    """A spend limit closed (revoked): no transfer may count against it from here on."""

    index: int
    timestamp: int
    id: str
    metadata: dict[str, JsonValue]

    def encode(self) -> bytes:
        fields: dict[str, Any] = {
            "type": "limit_close",
            "index": self.index,
            "timestamp": self.timestamp,
            "id": self.id,
        }
        if self.metadata:
            fields["metadata"] = self.metadata
        return canonical_json(fields)


LogEntry = AccountEntry | TransferEntry | LimitEntry | LimitCloseEntry
