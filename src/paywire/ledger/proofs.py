"""Proofs a client keeps: that its transfer is in the log, that the log only grew."""

from __future__ import annotations

from dataclasses import dataclass

from paywire.ledger import merkle


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Log entry `log_index`, whose bytes hash to `leaf_hash`, is in the tree of
    `tree_size` entries with root `root_hash` (RFC 9162 audit path, bottom up)."""

    log_index: int
    tree_size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]
    root_hash: bytes

    def verify(self) -> bool:
        return merkle.verify_inclusion(
            self.leaf_hash, self.log_index, self.tree_size, list(self.hashes), self.root_hash
        )


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """The tree of `new_size` entries extends the tree of `old_size` entries."""

    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    hashes: tuple[bytes, ...]

    def verify(self) -> bool:
        return merkle.verify_consistency(
            self.old_size, self.new_size, self.old_root, self.new_root, list(self.hashes)
        )
