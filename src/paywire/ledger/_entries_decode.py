"""Reading log entries back: strict parsing of one line, canonical form and fields checked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paywire import _json
from paywire.ledger._entries_encode import (
    AccountEntry,
    LimitCloseEntry,
    LimitEntry,
    LogEntry,
    TransferEntry,
    canonical_json,
)
from paywire.ledger.errors import InvalidRequest
from paywire.ledger.model import (
    MAX_TRANSFER_LIMITS,
    AccountFlag,
    AccountKind,
    JsonValue,
    TransferKind,
    check_limit_ids,
    check_metadata,
)
from paywire.money import MAX_ATOMIC

MAX_ENTRY_BYTES = 32768
"""An entry holds at most 4 KiB of metadata and 16 KiB of authorization, plus fields."""


class MalformedEntry(InvalidRequest):
    """A log line that is not a well-formed, canonical entry."""

    code = "malformed_entry"


def decode_entry(data: bytes) -> LogEntry:
    """Parse one log line strictly: canonical JSON with exactly the expected fields."""
    if len(data) > MAX_ENTRY_BYTES:
        raise MalformedEntry(f"entry is larger than {MAX_ENTRY_BYTES} bytes")
    try:
        value = _json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedEntry(f"entry is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise MalformedEntry("entry is not a JSON object")
    if canonical_json(value) != data:
        raise MalformedEntry("entry is not in canonical form (sorted keys, no spaces, ASCII)")
    kind = value.get("type")
    if kind == "account":
        return _decode_account(value)
    if kind == "transfer":
        return _decode_transfer(value)
    if kind == "limit":
        return _decode_limit(value)
    if kind == "limit_close":
        return _decode_limit_close(value)
    raise MalformedEntry(f"unknown entry type {kind!r}")


_ACCOUNT_KEYS = {"type", "index", "timestamp", "id", "asset", "decimals", "kind", "flags"}
_ACCOUNT_OPTIONAL = {"owner", "metadata"}
_TRANSFER_KEYS = {
    "type",
    "index",
    "timestamp",
    "id",
    "kind",
    "debit",
    "credit",
    "amount",
    "asset",
    "code",
}
_TRANSFER_OPTIONAL = {
    "pending_id",
    "timeout_s",
    "expires_at",
    "metadata",
    "authorization",
    "limits",
}
_LIMIT_KEYS = {"type", "index", "timestamp", "id", "asset", "decimals", "cap"}
_LIMIT_OPTIONAL = {"window_s", "metadata"}
_LIMIT_CLOSE_KEYS = {"type", "index", "timestamp", "id"}
_LIMIT_CLOSE_OPTIONAL = {"metadata"}


def _keys(value: Mapping[str, Any], required: set[str], optional: set[str]) -> None:
    keys = set(value)
    if missing := required - keys:
        raise MalformedEntry(f"entry lacks {sorted(missing)}")
    if extra := keys - required - optional:
        raise MalformedEntry(f"entry has unknown fields {sorted(extra)}")


def _int(value: Mapping[str, Any], key: str, low: int = 0, high: int = 2**63 - 1) -> int:
    item = value[key]
    if not isinstance(item, int) or isinstance(item, bool) or not low <= item <= high:
        raise MalformedEntry(f"entry field {key!r} must be an integer in [{low}, {high}]")
    return item


def _str(value: Mapping[str, Any], key: str) -> str:
    item = value[key]
    if not isinstance(item, str):
        raise MalformedEntry(f"entry field {key!r} must be text")
    return item


def _metadata(value: Mapping[str, Any]) -> dict[str, JsonValue]:
    if "metadata" not in value:
        return {}
    try:
        checked = check_metadata(value["metadata"])
    except InvalidRequest as error:
        raise MalformedEntry(f"entry metadata: {error}") from None
    if not checked:
        raise MalformedEntry("empty metadata must be left out")
    return checked


def _decode_account(value: Mapping[str, Any]) -> AccountEntry:
    _keys(value, _ACCOUNT_KEYS, _ACCOUNT_OPTIONAL)
    flags = value["flags"]
    if not isinstance(flags, list) or not all(isinstance(flag, str) for flag in flags):
        raise MalformedEntry("entry field 'flags' must be a list of text")
    try:
        kind = AccountKind(_str(value, "kind"))
        parsed_flags = frozenset(AccountFlag(flag) for flag in flags)
    except ValueError as error:
        raise MalformedEntry(f"entry: {error}") from None
    if sorted(flags) != flags or len(parsed_flags) != len(flags):
        raise MalformedEntry("entry flags must be sorted and distinct")
    owner = value.get("owner")
    if owner is not None and not isinstance(owner, str):
        raise MalformedEntry("entry field 'owner' must be text")
    return AccountEntry(
        index=_int(value, "index"),
        timestamp=_int(value, "timestamp"),
        id=_str(value, "id"),
        asset=_str(value, "asset"),
        decimals=_int(value, "decimals"),
        kind=kind,
        owner=owner,
        flags=parsed_flags,
        metadata=_metadata(value),
    )


def _atomic(value: Mapping[str, Any], key: str, low: int) -> int:
    text = _str(value, key)
    if not text.isascii() or not text.isdigit() or text != str(int(text)):
        raise MalformedEntry(f"entry {key} must be a decimal integer without leading zeros")
    number = int(text)
    if not low <= number <= MAX_ATOMIC:
        raise MalformedEntry(f"entry {key} must be from {low} to 2^128 - 1")
    return number


def _limits(value: Mapping[str, Any], kind: TransferKind) -> tuple[str, ...]:
    if "limits" not in value:
        return ()
    if kind not in (TransferKind.SINGLE, TransferKind.PENDING):
        raise MalformedEntry(f"a {kind} entry names no limits (its hold's count)")
    limits = value["limits"]
    if not isinstance(limits, list) or not limits:
        raise MalformedEntry(
            f"entry field 'limits' must be a list of 1 to {MAX_TRANSFER_LIMITS} limit ids "
            "(left out when none)"
        )
    try:
        return check_limit_ids(limits)
    except InvalidRequest as error:
        raise MalformedEntry(f"entry limits: {error}") from None


def _decode_limit(value: Mapping[str, Any]) -> LimitEntry:
    _keys(value, _LIMIT_KEYS, _LIMIT_OPTIONAL)
    return LimitEntry(
        index=_int(value, "index"),
        timestamp=_int(value, "timestamp"),
        id=_str(value, "id"),
        asset=_str(value, "asset"),
        decimals=_int(value, "decimals"),
        cap=_atomic(value, "cap", 0),
        window_s=_int(value, "window_s", 1) if "window_s" in value else None,
        metadata=_metadata(value),
    )


def _decode_limit_close(value: Mapping[str, Any]) -> LimitCloseEntry:
    _keys(value, _LIMIT_CLOSE_KEYS, _LIMIT_CLOSE_OPTIONAL)
    return LimitCloseEntry(
        index=_int(value, "index"),
        timestamp=_int(value, "timestamp"),
        id=_str(value, "id"),
        metadata=_metadata(value),
    )


def _decode_transfer(value: Mapping[str, Any]) -> TransferEntry:
    _keys(value, _TRANSFER_KEYS, _TRANSFER_OPTIONAL)
    try:
        kind = TransferKind(_str(value, "kind"))
    except ValueError as error:
        raise MalformedEntry(f"entry: {error}") from None
    amount = _atomic(value, "amount", 1)
    authorization = value.get("authorization")
    if authorization is not None and not isinstance(authorization, str):
        raise MalformedEntry("entry field 'authorization' must be text")
    pending_id = value.get("pending_id")
    if pending_id is not None and not isinstance(pending_id, str):
        raise MalformedEntry("entry field 'pending_id' must be text")
    return TransferEntry(
        index=_int(value, "index"),
        timestamp=_int(value, "timestamp"),
        id=_str(value, "id"),
        kind=kind,
        debit=_str(value, "debit"),
        credit=_str(value, "credit"),
        amount=amount,
        asset=_str(value, "asset"),
        code=_int(value, "code", 1, 65535),
        pending_id=pending_id,
        timeout_s=_int(value, "timeout_s") if "timeout_s" in value else None,
        expires_at=_int(value, "expires_at") if "expires_at" in value else None,
        metadata=_metadata(value) or None,
        authorization=authorization,
        limits=_limits(value, kind),
    )
