"""The verifiers of inclusion and consistency proofs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from paywire.ledger.merkle._tree import EMPTY_ROOT, MAX_TREE_SIZE, _all_hashes, _is_hash, _node

MAX_PROOF_HASHES: Final = 64
"""Longest proof: a tree of < 2**63 leaves has height <= 63, and PROOF adds at most one hash."""


def verify_inclusion(
    leaf_hash: bytes, leaf_index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True iff `proof` proves `leaf_hash` is leaf `leaf_index` of the tree of `tree_size`
    leaves with `root` (RFC 9162 section 2.1.3.2). False, never an exception, for any proof."""
    if not (_is_hash(leaf_hash) and _is_hash(root)):
        return False
    if not 0 <= leaf_index < tree_size <= MAX_TREE_SIZE or len(proof) > MAX_PROOF_HASHES:
        return False
    fn, sn = leaf_index, tree_size - 1
    value = leaf_hash
    for sibling in proof:
        if sn == 0 or not _is_hash(sibling):
            return False
        if fn & 1 or fn == sn:
            value = _node(sibling, value)
            # A right edge node with no right sibling: climb to where it is a right child.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            value = _node(value, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and value == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True iff `proof` proves the tree (`new_size`, `new_root`) extends (`old_size`,
    `old_root`) (RFC 9162 section 2.1.4.2). False, never an exception, for any proof.

    Edge cases: equal sizes need an empty proof and equal roots; old_size 0 needs an empty
    proof and old_root == EMPTY_ROOT (the empty tree is a prefix of every tree).
    """
    if not (_is_hash(old_root) and _is_hash(new_root)):
        return False
    if not 0 <= old_size <= new_size <= MAX_TREE_SIZE or len(proof) > MAX_PROOF_HASHES:
        return False
    if not _all_hashes(proof):
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT and (new_size > 0 or new_root == EMPTY_ROOT)
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)  # the old tree is a perfect subtree: its root is the seed
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_value = new_value = path[0]
    for sibling in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            old_value = _node(sibling, old_value)
            new_value = _node(sibling, new_value)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            new_value = _node(new_value, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and old_value == old_root and new_value == new_root
