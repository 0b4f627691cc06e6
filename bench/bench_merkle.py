"""The transparency log's Merkle tree: appends through `Frontier`, proofs through `TreeReader`.

Baselines, measured in the same run: raw hashlib SHA-256 of the same leaves (an append costs
about one node hash on average, so ~0.5x of it is the ceiling in Python), and for proofs the
bare hashing a verifier must do (one node hash per proof element).
"""

from __future__ import annotations

import hashlib
import itertools
import random

from bench._harness import measure, report
from paywire.ledger.merkle import (
    Frontier,
    InMemoryNodeStore,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

APPEND_BATCH = 1_000
"""Leaves per measured call, so the harness's per-call overhead stays out of the rate."""

PROOF_TREE_SIZE = 100_000
"""Tree size for the proof figures (about a day of a busy operator's journal)."""


def main() -> None:
    rng = random.Random(9162)
    leaves = [leaf_hash(rng.randbytes(64)) for _ in range(PROOF_TREE_SIZE)]
    batch = leaves[:APPEND_BATCH]
    sha256 = hashlib.sha256

    def raw() -> None:
        for leaf in batch:
            sha256(leaf).digest()

    frontier = Frontier.empty()

    def append() -> None:
        for leaf in batch:
            frontier.append(leaf)

    extended = Frontier.empty()

    def extend() -> None:
        extended.extend(batch)

    rates = [
        measure("raw hashlib sha256 of the same leaves", raw, ops_per_call=APPEND_BATCH),
        measure("Frontier.append (one leaf a call)", append, ops_per_call=APPEND_BATCH),
        measure("Frontier.extend (1000 leaves a call)", extend, ops_per_call=APPEND_BATCH),
        measure("Frontier.root at the size reached", frontier.root),
    ]
    report(
        f"Merkle appends (frontier reached {frontier.size:,} leaves)",
        rates,
        baseline="raw hashlib sha256 of the same leaves",
        goal="appends within ~2-3x of raw SHA-256: the tree is never the journal's bottleneck",
    )

    store = InMemoryNodeStore.of(leaves)
    reader = store.reader()
    root = reader.root()
    indexes = itertools.cycle([rng.randrange(PROOF_TREE_SIZE) for _ in range(4096)])
    old_sizes = itertools.cycle([rng.randrange(1, PROOF_TREE_SIZE) for _ in range(4096)])
    old_roots: dict[int, bytes] = {}
    proof_length = len(reader.inclusion_proof(0))
    sibling = leaves[1]

    def bare_hashing() -> None:
        value = leaves[0]
        for _ in range(proof_length):
            value = sha256(b"\x01" + value + sibling).digest()

    def generate() -> None:
        reader.inclusion_proof(next(indexes))

    def generate_and_verify() -> None:
        index = next(indexes)
        proof = reader.inclusion_proof(index)
        assert verify_inclusion(leaves[index], index, PROOF_TREE_SIZE, proof, root)

    fixed_proof = reader.inclusion_proof(12345)

    def verify() -> None:
        verify_inclusion(leaves[12345], 12345, PROOF_TREE_SIZE, fixed_proof, root)

    def consistency() -> None:
        old = next(old_sizes)
        if old not in old_roots:
            old_roots[old] = store.reader(old).root()
        proof = reader.consistency_proof(old)
        assert verify_consistency(old, PROOF_TREE_SIZE, old_roots[old], root, proof)

    for old in set(itertools.islice(old_sizes, 4096)):  # precompute, outside the timing
        old_roots[old] = store.reader(old).root()

    rates = [
        measure(f"bare hashing: {proof_length} node hashes", bare_hashing),
        measure("inclusion proof: generate", generate),
        measure("inclusion proof: verify", verify),
        measure("inclusion proof: generate + verify", generate_and_verify),
        measure("consistency proof: generate + verify", consistency),
        measure("root from the store", reader.root),
    ]
    report(
        f"Merkle proofs at {PROOF_TREE_SIZE:,} leaves (in-memory store)",
        rates,
        baseline=f"bare hashing: {proof_length} node hashes",
        goal="thousands of proofs per second per core; each O(log n) with a few batched reads",
    )


if __name__ == "__main__":
    main()
