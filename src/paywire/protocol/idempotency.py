"""Exactly once per payment id: x402's `payment-identifier` extension.

A client that may retry a paid request (its answer was lost, its connection dropped)
puts an id in the payment (``extensions["payment-identifier"]["info"]["id"]``, 16 to 128
characters of ``[A-Za-z0-9_-]``) and sends the *same* signed payment again. The server
and the facilitator then answer the retry with the first result and charge nothing more;
the same id with another payment is a conflict (HTTP 409), never a second charge.

The money itself cannot move twice whatever the id says: a payment's nonce is spent once
(a ledger transfer id, or the token's EIP-3009 nonce state). The id is what turns the
second attempt from a "nonce already used" refusal into the answer the client paid for.

Results are keyed by payer and id (an id is the client's choice, so two clients may
pick the same one) and kept only once money moved: a refused payment leaves nothing
behind, so an invalid payment cannot take an id from the payer who owns it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from x402.schemas import PaymentPayload

from paywire.protocol.errors import malformed

# The wire format of x402's payment-identifier extension. Written out here because the
# SDK's `x402.extensions` package cannot be imported without `jsonschema` (for another
# extension), a dependency paywire does not otherwise need.
PAYMENT_IDENTIFIER = "payment-identifier"
PAYMENT_ID_MIN_CHARS = 16
PAYMENT_ID_MAX_CHARS = 128
_PAYMENT_ID = re.compile(r"[A-Za-z0-9_-]+")
_PAYMENT_ID_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "required": {"type": "boolean"},
        "id": {
            "type": "string",
            "minLength": PAYMENT_ID_MIN_CHARS,
            "maxLength": PAYMENT_ID_MAX_CHARS,
            "pattern": "^[a-zA-Z0-9_-]+$",
        },
    },
    "required": ["required"],
}

__all__ = [
    "PAYMENT_IDENTIFIER",
    "IdempotencyStore",
    "KeyLocks",
    "MemoryIdempotencyStore",
    "PaidResult",
    "SqliteIdempotencyStore",
    "declare_payment_identifier_extension",
    "generate_payment_id",
    "idempotency_key",
    "payment_fingerprint",
    "payment_id",
    "with_payment_id",
]

DEFAULT_TTL_S = 24 * 3600
"""How long a result answers retries (Stripe keeps idempotency keys for 24 hours)."""

MAX_MEMORY_RESULTS = 50_000
"""Results an in-memory store keeps; the oldest go first (bounded memory under load)."""

MAX_KEPT_BODY_BYTES = 1024 * 1024
"""Largest response body kept for replay; a larger one is served again on a retry, free."""


@dataclass(frozen=True)
class PaidResult:
    """The answer to a paid request, kept to answer its retries.

    `body_kept` is False when the body was too large to keep: a retry then runs the
    handler again without a new charge (`settlement` is the `PAYMENT-RESPONSE` to send).
    """

    fingerprint: str
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    settlement: str
    created_at_s: float
    body_kept: bool = True


def is_valid_payment_id(value: str) -> bool:
    """Whether `value` is a payment id: 16 to 128 of ``[A-Za-z0-9_-]``."""
    return (
        PAYMENT_ID_MIN_CHARS <= len(value) <= PAYMENT_ID_MAX_CHARS
        and _PAYMENT_ID.fullmatch(value) is not None
    )


def generate_payment_id() -> str:
    """A fresh random payment id (128 bits)."""
    return f"pay_{secrets.token_hex(16)}"


def declare_payment_identifier_extension(required: bool = False) -> dict[str, Any]:
    """The extension as a `PaymentRequired` declares it (`required`: must payments carry
    an id)."""
    return {"info": {"required": required}, "schema": _PAYMENT_ID_SCHEMA}


def payment_id(payload: PaymentPayload) -> str | None:
    """The payment's id, None if it has none; a malformed one is a 400 (not silently
    ignored, which would turn a retry into a second payment attempt)."""
    extension = (payload.extensions or {}).get(PAYMENT_IDENTIFIER)
    if extension is None:
        return None
    info = extension.get("info") if isinstance(extension, dict) else None
    value = info.get("id") if isinstance(info, dict) else None
    if value is None:
        return None  # the extension echoed without an id: no id
    if not isinstance(value, str) or not is_valid_payment_id(value):
        raise malformed(
            "the payment-identifier id must be 16 to 128 characters of letters, digits, '-' and '_'"
        )
    return value


def with_payment_id(payload: PaymentPayload, value: str | None = None) -> PaymentPayload:
    """`payload` carrying a payment id (a fresh random one unless `value` is given)."""
    chosen = value if value is not None else generate_payment_id()
    if not is_valid_payment_id(chosen):
        raise ValueError("a payment id is 16 to 128 characters of letters, digits, '-', '_'")
    extensions = dict(payload.extensions or {})
    extensions[PAYMENT_IDENTIFIER] = {"info": {"required": False, "id": chosen}}
    return payload.model_copy(update={"extensions": extensions})


def payment_fingerprint(payload: PaymentPayload) -> str:
    """A hash of what the payer signed and what it accepted: the same payment, sent
    again, has the same fingerprint; any other payment has another."""
    signed = {
        "x402Version": payload.x402_version,
        "accepted": payload.accepted.model_dump(mode="json", by_alias=True),
        "payload": payload.payload,
    }
    text = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def idempotency_key(payload: PaymentPayload, value: str) -> str:
    """Where a payment id's result is kept: per claimed payer (a forged payer gets its
    own, empty, slot) and id."""
    authorization = payload.payload.get("authorization")
    payer = authorization.get("from") if isinstance(authorization, dict) else None
    return f"{payer.lower() if isinstance(payer, str) else '-'}:{value}"


class IdempotencyStore(Protocol):
    """Keeps paid results by key; the first result put for a key is the one kept."""

    async def get(self, key: str) -> PaidResult | None: ...

    async def put(self, key: str, result: PaidResult) -> None: ...


class MemoryIdempotencyStore:
    """Results in this process's memory: bounded, expiring; lost on restart (the money
    is not: a retry after a restart is refused as a used nonce, never charged twice)."""

    def __init__(
        self,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        max_results: int = MAX_MEMORY_RESULTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert ttl_s > 0 and max_results > 0
        self._ttl_s = ttl_s
        self._max_results = max_results
        self._clock = clock
        self._results: OrderedDict[str, PaidResult] = OrderedDict()

    async def get(self, key: str) -> PaidResult | None:
        result = self._results.get(key)
        if result is None:
            return None
        if self._clock() - result.created_at_s > self._ttl_s:
            del self._results[key]
            return None
        return result

    async def put(self, key: str, result: PaidResult) -> None:
        if key in self._results:
            return
        self._results[key] = result
        while len(self._results) > self._max_results:
            self._results.popitem(last=False)

    def __len__(self) -> int:
        return len(self._results)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS paid_results (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    settlement TEXT NOT NULL,
    body_kept INTEGER NOT NULL,
    created_at_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS paid_results_age ON paid_results (created_at_s);
"""


class SqliteIdempotencyStore:
    """Results in a SQLite file: they survive restarts and are shared by the worker
    processes of one host (WAL; the first writer of a key wins)."""

    def __init__(
        self,
        path: str | Path,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert ttl_s > 0
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def _get(self, key: str) -> PaidResult | None:
        with self._lock:
            row = self._db.execute(
                "SELECT fingerprint, status, headers, body, settlement, body_kept, created_at_s"
                " FROM paid_results WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None or self._clock() - row[6] > self._ttl_s:
            return None
        headers = tuple(
            (bytes.fromhex(name), bytes.fromhex(value)) for name, value in json.loads(row[2])
        )
        return PaidResult(row[0], row[1], headers, bytes(row[3]), row[4], row[6], bool(row[5]))

    def _put(self, key: str, result: PaidResult) -> None:
        headers = json.dumps([[name.hex(), value.hex()] for name, value in result.headers])
        with self._lock:
            self._db.execute(
                "DELETE FROM paid_results WHERE created_at_s < ?", (self._clock() - self._ttl_s,)
            )
            self._db.execute(
                "INSERT OR IGNORE INTO paid_results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    result.fingerprint,
                    result.status,
                    headers,
                    result.body,
                    result.settlement,
                    int(result.body_kept),
                    result.created_at_s,
                ),
            )

    async def get(self, key: str) -> PaidResult | None:
        return await asyncio.to_thread(self._get, key)

    async def put(self, key: str, result: PaidResult) -> None:
        await asyncio.to_thread(self._put, key, result)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class KeyLocks:
    """One asyncio lock per key in use: requests with one payment id take turns in this
    process, so the second finds the first's result instead of racing it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
