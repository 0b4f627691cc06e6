"""The hashes of the Merkle tree, and the `Frontier` that appends to it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, cast

from paywire.errors import InvalidInput

HASH_SIZE: Final = 32
"""Bytes in every hash of the tree: SHA-256."""

MAX_TREE_SIZE: Final = 2**63 - 1
"""Largest tree size and leaf count: a signed 64-bit integer, as SQLite and PostgreSQL store it."""

STORED_LEVEL_STRIDE: Final = 4
"""Inner nodes are stored at levels 4, 8, 12...: ~1/15 of a row per append, <= 8 reads a node."""

EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""The root of the empty tree (RFC 9162: MTH({}) = HASH())."""

_sha256 = hashlib.sha256
_LEAF_BASE = _sha256(b"\x00")  # copying a primed hasher beats hashing a concatenation
_NODE_BASE = _sha256(b"\x01")


class MerkleInputError(InvalidInput):
    """An argument that can never be valid: a hash of the wrong size, an index past the tree."""

    code = "invalid_merkle_input"


# -- hashes -----------------------------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    """The leaf hash of one log entry: SHA-256(0x00 || entry)."""
    hasher = _LEAF_BASE.copy()
    hasher.update(entry)
    return hasher.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an inner node: SHA-256(0x01 || left || right)."""
    _check_hash(left, "left")
    _check_hash(right, "right")
    return _node(left, right)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash (MTH) of a list of leaf hashes, in O(n) time and O(n) memory.

    Hashes level by level, carrying an odd last node up unchanged: that builds exactly the
    left-balanced tree of RFC 9162 (split at the largest power of two below the size).
    """
    if len(leaf_hashes) > MAX_TREE_SIZE:
        raise MerkleInputError(f"a tree has at most {MAX_TREE_SIZE} leaves")
    level = list(leaf_hashes)
    for index, leaf in enumerate(level):
        _check_hash(leaf, f"leaf hash {index}")
    if not level:
        return EMPTY_ROOT
    return _fold(level)


def is_stored_level(level: int) -> bool:
    """True for the inner-node levels the ledger stores (4, 8, 12...); leaves (0) are always
    stored, separately, as leaf hashes."""
    return level > 0 and level % STORED_LEVEL_STRIDE == 0


def _node(left: bytes, right: bytes) -> bytes:
    hasher = _NODE_BASE.copy()
    hasher.update(left)
    hasher.update(right)
    return hasher.digest()


def _fold(level: list[bytes]) -> bytes:
    """MTH of a non-empty list of checked hashes (consumes the list)."""
    node_base = _NODE_BASE
    while len(level) > 1:
        paired = []
        for i in range(0, len(level) - 1, 2):
            hasher = node_base.copy()
            hasher.update(level[i])
            hasher.update(level[i + 1])
            paired.append(hasher.digest())
        if len(level) & 1:  # an odd last node moves up a level unchanged
            paired.append(level[-1])
        level = paired
    return level[0]


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _all_hashes(values: Sequence[object]) -> bool:
    # map() keeps the per-item checks in C: this runs on every hash the store returns.
    if not set(map(type, values)) <= {bytes}:
        return False
    return set(map(len, cast("Sequence[bytes]", values))) <= {HASH_SIZE}


def _check_hash(value: object, what: str) -> None:
    if not _is_hash(value):
        raise MerkleInputError(f"{what} must be {HASH_SIZE} bytes (a SHA-256 digest)")


def _check_size(size: object, what: str) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_TREE_SIZE:
        raise MerkleInputError(f"{what} must be an integer from 0 to {MAX_TREE_SIZE}")


# -- writing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """A perfect subtree: `hash` is the MTH of leaves [index * 2**level, (index+1) * 2**level)."""

    level: int
    index: int
    hash: bytes

    @property
    def start(self) -> int:
        """The first leaf it covers."""
        return self.index << self.level

    @property
    def end(self) -> int:
        """One past the last leaf it covers."""
        return (self.index + 1) << self.level


class Frontier:
    """The compact right edge of an append-only tree: the perfect-subtree roots making up `size`.

    Holds one hash per set bit of `size`, the largest subtree first (at most 63 hashes). Not
    thread-safe: one writer appends, as the ledger's single journal writer does.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int, hashes: Sequence[bytes]) -> None:
        """Build from a size and its subtree roots, largest first; prefer `empty`/`from_bytes`."""
        _check_size(size, "frontier size")
        if len(hashes) != size.bit_count():
            raise MerkleInputError(
                f"a frontier of size {size} has {size.bit_count()} hashes, not {len(hashes)}"
            )
        for index, value in enumerate(hashes):
            _check_hash(value, f"frontier hash {index}")
        self._size = size
        self._hashes = list(hashes)

    @classmethod
    def empty(cls) -> Frontier:
        """The frontier of the empty tree."""
        return cls(0, [])

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> Frontier:
        """Rebuild the frontier that `to_bytes` serialized at `size` (validated: the blob must
        hold exactly popcount(size) hashes)."""
        _check_size(size, "frontier size")
        if not isinstance(data, bytes) or len(data) != HASH_SIZE * size.bit_count():
            raise MerkleInputError(
                f"a frontier of size {size} serializes to {HASH_SIZE * size.bit_count()} bytes"
            )
        hashes = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
        return cls(size, hashes)

    def to_bytes(self) -> bytes:
        """The subtree roots concatenated, largest first: 32 * popcount(size) bytes."""
        return b"".join(self._hashes)

    @property
    def size(self) -> int:
        """Leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect-subtree roots, largest (leftmost) first."""
        return tuple(self._hashes)

    def nodes(self) -> list[Node]:
        """The perfect subtrees making up the tree, left to right."""
        out = []
        start = 0
        hashes = iter(self._hashes)
        for level in range(self._size.bit_length() - 1, -1, -1):
            if self._size >> level & 1:
                out.append(Node(level, start >> level, next(hashes)))
                start += 1 << level
        return out

    def copy(self) -> Frontier:
        """An independent copy (to compute a tentative root without touching this one)."""
        clone = Frontier.__new__(Frontier)
        clone._size = self._size
        clone._hashes = list(self._hashes)
        return clone

    def append(self, leaf_hash: bytes) -> list[Node]:
        """Append one leaf hash; return the nodes to store that this append completed.

        Only nodes at stored levels (`is_stored_level`) are returned, lowest first, so the
        storage rule lives here and the caller persists the list as is; it is empty for 15 of
        16 appends. The leaf hash itself (level 0) is for the caller to store too.
        """
        _check_hash(leaf_hash, "leaf hash")
        return self._append_checked(leaf_hash)

    def extend(self, leaf_hashes: Iterable[bytes]) -> list[Node]:
        """Append many leaf hashes; return all nodes to store that they completed, in order.

        All are checked before any is appended, so a bad one leaves the frontier unchanged.
        """
        leaves = list(leaf_hashes)
        for index, leaf in enumerate(leaves):
            _check_hash(leaf, f"leaf hash {index}")
        if len(leaves) > MAX_TREE_SIZE - self._size:
            raise MerkleInputError(f"a tree has at most {MAX_TREE_SIZE} leaves")
        completed: list[Node] = []
        for leaf in leaves:
            completed += self._append_checked(leaf)
        return completed

    def _append_checked(self, value: bytes) -> list[Node]:
        size = self._size
        if size >= MAX_TREE_SIZE:
            raise MerkleInputError(f"a tree has at most {MAX_TREE_SIZE} leaves")
        hashes = self._hashes
        completed: list[Node] = []
        # Each set low bit of the old size is a subtree of that level waiting for a right
        # sibling of the same level: merge while they pair up (binary carry).
        level = 0
        carry = size
        while carry & 1:
            hasher = _NODE_BASE.copy()
            hasher.update(hashes.pop())
            hasher.update(value)
            value = hasher.digest()
            level += 1
            carry >>= 1
            if level % STORED_LEVEL_STRIDE == 0:
                completed.append(Node(level, carry, value))
        hashes.append(value)
        self._size = size + 1
        return completed

    def root(self) -> bytes:
        """The tree's root (MTH of all leaves appended), in O(log n)."""
        hashes = self._hashes
        if not hashes:
            return EMPTY_ROOT
        value = hashes[-1]
        for left in reversed(hashes[:-1]):
            value = _node(left, value)
        return value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frontier):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, root={self.root().hex()})"
