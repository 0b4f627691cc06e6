"""The Merkle tree of the ledger's transparency log, per RFC 9162 (Certificate Transparency v2).

Pure and dependency-free (hashlib only). Four parts:

- **Hashes.** `leaf_hash(entry) = SHA-256(0x00 || entry)`, `node_hash(l, r) = SHA-256(0x01 || l
  || r)`, and `root_of(leaf_hashes)`, the Merkle Tree Hash (MTH) of RFC 9162 section 2.1.1;
  the empty tree's root is `EMPTY_ROOT = SHA-256("")`.
- **Writing.** A `Frontier` is the compact right edge of the append-only tree: the roots of the
  perfect subtrees that make up its size (one per set bit of the size). Appending is O(1)
  amortized, the root O(log n), and it serializes to one short blob so the ledger can persist it
  and continue after a restart or in another process. Each append returns the completed
  perfect-subtree `Node`s that the ledger must store (see "Storage" below).
- **Reading.** A `TreeReader` computes subtree hashes, the root, inclusion proofs (RFC 9162 PATH)
  and consistency proofs (RFC 9162 PROOF) from a `NodeStore`, with O(log n) work and a few
  batched range reads, never touching O(n) leaves.
- **Verifying.** `verify_inclusion` and `verify_consistency` implement RFC 9162 sections 2.1.3.2
  and 2.1.4.2 exactly. They never raise for a hostile proof (wrong length, wrong hash sizes,
  wrong contents): they return False.

Storage: the ledger stores every leaf hash (level 0) and, of the inner nodes, only the perfect
subtrees whose level is a positive multiple of `STORED_LEVEL_STRIDE` (4, 8, 12...). That costs
about 1/15 of a row per append, and any perfect subtree hashes from at most 2**(STRIDE-1) = 8
stored hashes of the nearest stored level below it. A `Node(level, index, hash)` is the
perfect subtree over the leaves [index * 2**level, (index + 1) * 2**level).

Sizes are at most `MAX_TREE_SIZE` = 2**63 - 1 so they fit the signed 64-bit integers of SQLite
and PostgreSQL; then every inclusion and consistency proof has at most 64 hashes.

The parts: hashes and the `Frontier` (`_tree`), the `TreeReader` and its `NodeStore`
(`_reader`), the verifiers (`_verify`).
"""

from paywire.ledger.merkle._reader import (
    MAX_LEVEL,
    MAX_READ_SPAN,
    InMemoryNodeStore,
    NodeStore,
    NodeStoreError,
    TreeReader,
)
from paywire.ledger.merkle._tree import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_TREE_SIZE,
    STORED_LEVEL_STRIDE,
    Frontier,
    MerkleInputError,
    Node,
    is_stored_level,
    leaf_hash,
    node_hash,
    root_of,
)
from paywire.ledger.merkle._verify import MAX_PROOF_HASHES, verify_consistency, verify_inclusion

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_LEVEL",
    "MAX_PROOF_HASHES",
    "MAX_READ_SPAN",
    "MAX_TREE_SIZE",
    "STORED_LEVEL_STRIDE",
    "Frontier",
    "InMemoryNodeStore",
    "MerkleInputError",
    "Node",
    "NodeStore",
    "NodeStoreError",
    "TreeReader",
    "is_stored_level",
    "leaf_hash",
    "node_hash",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]
