"""Log entries: the canonical bytes the transparency log commits to.

Every committed account, transfer and spend limit (its opening, and its closing) becomes one
entry: a JSON object with sorted keys, no white space and ASCII-only escapes. Those bytes
are what the Merkle tree hashes and what `paywire ledger export` writes, one per line, so
an auditor can check that a line is canonical (re-encoding it gives the same bytes) and
that its hash is in a signed tree: any changed byte either breaks the JSON, breaks
canonical form, or changes the hash.

Optional fields are left out when empty, so an entry has one canonical form.

The parts: the entry kinds and their encoding (`_entries_encode`), and strict decoding
(`_entries_decode`).
"""

from paywire.ledger._entries_decode import MAX_ENTRY_BYTES, MalformedEntry, decode_entry
from paywire.ledger._entries_encode import (
    AccountEntry,
    LimitCloseEntry,
    LimitEntry,
    LogEntry,
    TransferEntry,
    canonical_json,
    encode_transfer,
)

__all__ = [
    "MAX_ENTRY_BYTES",
    "AccountEntry",
    "LimitCloseEntry",
    "LimitEntry",
    "LogEntry",
    "MalformedEntry",
    "TransferEntry",
    "canonical_json",
    "decode_entry",
    "encode_transfer",
]
