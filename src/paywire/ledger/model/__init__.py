"""The ledger's data model: accounts, transfers, and the requests that create them.

In the spirit of TigerBeetle: an account has an asset, bound flags and four balance
counters (debits and credits, pending and posted); a transfer moves a positive amount of
one asset from a debit account to a credit account and is immutable once committed.
Mistakes are fixed by correcting transfers, never by edits.

Requests (`NewAccount`, `NewTransfer`) validate everything that can be checked without
the ledger's state when they are built, so a malformed request fails before any I/O.

The parts: limits and the checks of ids and metadata (`_checks`), accounts, transfers and
their kinds (`_types`), the requests and their builders (`_requests`), spend limits and
their rolling windows (`_limits`).
"""

from paywire.ledger.model._checks import (
    ID_PATTERN,
    MAX_AUTHORIZATION_BYTES,
    MAX_CODE,
    MAX_ID_CHARS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_INT,
    MAX_METADATA_KEY_CHARS,
    MAX_OWNER_CHARS,
    MAX_TIMEOUT_S,
    JsonValue,
    Metadata,
    canonical_metadata,
    check_id,
    check_metadata,
)
from paywire.ledger.model._limits import (
    MAX_TRANSFER_LIMITS,
    MAX_WINDOW_S,
    NS_PER_S,
    WINDOW_BUCKETS,
    WINDOW_SLOTS,
    LimitStatus,
    NewLimit,
    bucket_seconds,
    check_limit_ids,
    window_span,
)
from paywire.ledger.model._requests import NewAccount, NewTransfer, hold, post, transfer, void
from paywire.ledger.model._types import (
    DEFAULT_FLAGS,
    Account,
    AccountFlag,
    AccountKind,
    Balance,
    HoldState,
    HoldStatus,
    Transfer,
    TransferCode,
    TransferKind,
)

__all__ = [
    "DEFAULT_FLAGS",
    "ID_PATTERN",
    "MAX_AUTHORIZATION_BYTES",
    "MAX_CODE",
    "MAX_ID_CHARS",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "MAX_METADATA_INT",
    "MAX_METADATA_KEY_CHARS",
    "MAX_OWNER_CHARS",
    "MAX_TIMEOUT_S",
    "MAX_TRANSFER_LIMITS",
    "MAX_WINDOW_S",
    "NS_PER_S",
    "WINDOW_BUCKETS",
    "WINDOW_SLOTS",
    "Account",
    "AccountFlag",
    "AccountKind",
    "Balance",
    "HoldState",
    "HoldStatus",
    "JsonValue",
    "LimitStatus",
    "Metadata",
    "NewAccount",
    "NewLimit",
    "NewTransfer",
    "Transfer",
    "TransferCode",
    "TransferKind",
    "bucket_seconds",
    "canonical_metadata",
    "check_id",
    "check_limit_ids",
    "check_metadata",
    "hold",
    "post",
    "transfer",
    "void",
    "window_span",
]
