"""Signed checkpoints: the operator's statement "the log had this size and this root".

A checkpoint is an EIP-712 message signed with the ledger operator's secp256k1 key, so
anyone can check it with standard Ethereum tooling, and it travels as one canonical JSON
line in an export. Its fields:

    Checkpoint(string ledgerId, uint64 treeSize, bytes32 rootHash, uint64 timestamp)

under the domain ``{name: "paywire ledger", version: "1"}``; `timestamp` is in ns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from paywire import _json
from paywire.crypto.eip712 import Eip712Domain, StructType, TypedMessage
from paywire.crypto.keys import PrivateKey, recover_address
from paywire.ledger.entries import canonical_json
from paywire.ledger.errors import InvalidRequest

CHECKPOINT_DOMAIN = Eip712Domain(name="paywire ledger", version="1")
CHECKPOINT_TYPES = {
    "Checkpoint": [
        {"name": "ledgerId", "type": "string"},
        {"name": "treeSize", "type": "uint64"},
        {"name": "rootHash", "type": "bytes32"},
        {"name": "timestamp", "type": "uint64"},
    ]
}
_MESSAGE = TypedMessage(CHECKPOINT_DOMAIN, StructType("Checkpoint", CHECKPOINT_TYPES))

MAX_CHECKPOINT_LINE_BYTES = 1024
"""A checkpoint line is ~300 bytes; more is not a checkpoint."""

_HEX32 = re.compile(r"[0-9a-f]{64}")
_SIGNATURE = re.compile(r"0x[0-9a-f]{130}")


class MalformedCheckpoint(InvalidRequest):
    code = "malformed_checkpoint"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head."""

    ledger_id: str
    tree_size: int
    root_hash: bytes
    timestamp: int
    signature: bytes

    def digest(self) -> bytes:
        return checkpoint_digest(self.ledger_id, self.tree_size, self.root_hash, self.timestamp)

    def signer(self) -> str:
        """The address that signed it (raises `InvalidSignature` for a malformed one)."""
        return recover_address(self.digest(), self.signature)

    def to_line(self) -> bytes:
        """The checkpoint as one canonical JSON line (without the newline)."""
        return canonical_json(
            {
                "type": "checkpoint",
                "ledger_id": self.ledger_id,
                "tree_size": self.tree_size,
                "root_hash": self.root_hash.hex(),
                "timestamp": self.timestamp,
                "signature": "0x" + self.signature.hex(),
            }
        )

    @classmethod
    def from_line(cls, data: bytes) -> Checkpoint:
        """Parse a checkpoint line strictly (canonical form, exact fields)."""
        if len(data) > MAX_CHECKPOINT_LINE_BYTES:
            raise MalformedCheckpoint("checkpoint line is too long")
        try:
            value: Any = _json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise MalformedCheckpoint("checkpoint line is not JSON") from None
        expected = {"type", "ledger_id", "tree_size", "root_hash", "timestamp", "signature"}
        if not isinstance(value, dict) or set(value) != expected:
            raise MalformedCheckpoint(f"a checkpoint has exactly the fields {sorted(expected)}")
        if canonical_json(value) != data:
            raise MalformedCheckpoint("checkpoint line is not in canonical form")
        ledger_id, size, root, timestamp, signature = (
            value["ledger_id"],
            value["tree_size"],
            value["root_hash"],
            value["timestamp"],
            value["signature"],
        )
        if (
            value["type"] != "checkpoint"
            or not isinstance(ledger_id, str)
            or not _is_uint64(size)
            or not _is_uint64(timestamp)
            or not isinstance(root, str)
            or not _HEX32.fullmatch(root)
            or not isinstance(signature, str)
            or not _SIGNATURE.fullmatch(signature)
        ):
            raise MalformedCheckpoint("checkpoint fields are malformed")
        return cls(ledger_id, size, bytes.fromhex(root), timestamp, bytes.fromhex(signature[2:]))


def _is_uint64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


def checkpoint_digest(ledger_id: str, tree_size: int, root_hash: bytes, timestamp: int) -> bytes:
    """The EIP-712 digest a checkpoint's signature covers."""
    return _MESSAGE.digest(
        {
            "ledgerId": ledger_id,
            "treeSize": tree_size,
            "rootHash": root_hash,
            "timestamp": timestamp,
        }
    )


def sign_checkpoint(
    key: PrivateKey, ledger_id: str, tree_size: int, root_hash: bytes, timestamp: int
) -> Checkpoint:
    """Sign a tree head with the operator's key."""
    digest = checkpoint_digest(ledger_id, tree_size, root_hash, timestamp)
    return Checkpoint(ledger_id, tree_size, root_hash, timestamp, key.sign_digest(digest))
