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
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, cast

from paywire.errors import InvalidInput, PaywireError

HASH_SIZE: Final = 32
"""Bytes in every hash of the tree: SHA-256."""

MAX_TREE_SIZE: Final = 2**63 - 1
"""Largest tree size and leaf count: a signed 64-bit integer, as SQLite and PostgreSQL store it."""

MAX_LEVEL: Final = 62
"""Highest level of a perfect subtree in a tree of at most MAX_TREE_SIZE leaves."""

MAX_PROOF_HASHES: Final = 64
"""Longest proof: a tree of < 2**63 leaves has height <= 63, and PROOF adds at most one hash."""

STORED_LEVEL_STRIDE: Final = 4
"""Inner nodes are stored at levels 4, 8, 12...: ~1/15 of a row per append, <= 8 reads a node."""

MAX_READ_SPAN: Final = 2 * 2**STORED_LEVEL_STRIDE
"""Nearby reads at one level merge into one range read of at most this many hashes: a few
wasted rows cost less than another round trip to the database."""

EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""The root of the empty tree (RFC 9162: MTH({}) = HASH())."""

_sha256 = hashlib.sha256
_LEAF_BASE = _sha256(b"\x00")  # copying a primed hasher beats hashing a concatenation
_NODE_BASE = _sha256(b"\x01")


class MerkleInputError(InvalidInput):
    """An argument that can never be valid: a hash of the wrong size, an index past the tree."""

    code = "invalid_merkle_input"


class NodeStoreError(PaywireError):
    """The node store answered a read with the wrong number or size of hashes (a bug or
    corruption in the store: the tree it describes is not the one that was written)."""

    code = "merkle_store_inconsistent"


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


# -- reading ----------------------------------------------------------------------------------


class NodeStore(Protocol):
    """What the tree reads from the ledger's storage. Each read is one range query and must
    return exactly `end - start` hashes of 32 bytes, in index order."""

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        """The leaf hashes [start, end)."""
        ...

    def stored_nodes(self, level: int, start: int, end: int) -> Sequence[bytes]:
        """The hashes of the stored nodes at `level` (a stored level) with index [start, end)."""
        ...


class InMemoryNodeStore:
    """A `NodeStore` in lists, filled by appending leaf hashes (tests, the auditor, benches)."""

    __slots__ = ("_frontier", "_leaves", "_nodes")

    def __init__(self) -> None:
        self._frontier = Frontier.empty()
        self._leaves: list[bytes] = []
        self._nodes: dict[int, list[bytes]] = {}

    @classmethod
    def of(cls, leaf_hashes: Iterable[bytes]) -> InMemoryNodeStore:
        """A store holding these leaf hashes."""
        store = cls()
        store.extend(leaf_hashes)
        return store

    @property
    def size(self) -> int:
        """Leaves stored."""
        return self._frontier.size

    @property
    def frontier(self) -> Frontier:
        """A copy of the frontier at the current size."""
        return self._frontier.copy()

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash, storing it and the nodes it completes."""
        self._store(self._frontier.append(leaf_hash), [leaf_hash])

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes."""
        leaves = list(leaf_hashes)
        self._store(self._frontier.extend(leaves), leaves)

    def _store(self, completed: list[Node], leaves: list[bytes]) -> None:
        self._leaves += leaves
        for node in completed:
            stored = self._nodes.setdefault(node.level, [])
            assert node.index == len(stored), "nodes complete left to right"
            stored.append(node.hash)

    def reader(self, size: int | None = None) -> TreeReader:
        """A reader of the tree at `size` leaves (default: all of them)."""
        return TreeReader(self, self.size if size is None else size)

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        """The leaf hashes [start, end)."""
        if not 0 <= start <= end <= len(self._leaves):
            raise MerkleInputError(f"leaves [{start}, {end}) are not all stored")
        return self._leaves[start:end]

    def stored_nodes(self, level: int, start: int, end: int) -> Sequence[bytes]:
        """The stored nodes at `level` with index [start, end)."""
        if not is_stored_level(level):
            raise MerkleInputError(f"level {level} is not a stored level")
        stored = self._nodes.get(level, [])
        if not 0 <= start <= end <= len(stored):
            raise MerkleInputError(f"nodes [{start}, {end}) at level {level} are not all stored")
        return stored[start:end]


class TreeReader:
    """Reads the tree of the first `size` leaves of a `NodeStore`: subtree hashes, the root,
    inclusion and consistency proofs.

    Every answer costs O(log n) hashing and a handful of range reads: the perfect subtrees it
    needs are grouped by the stored level just below them, and nearby ones at one level are
    read together (a 1e5-leaf tree needs ~5 reads for an inclusion proof).
    The store may hold more leaves than `size` (a proof against an older checkpoint).
    """

    __slots__ = ("_size", "_store")

    def __init__(self, store: NodeStore, size: int) -> None:
        _check_size(size, "tree size")
        self._store = store
        self._size = size

    @property
    def size(self) -> int:
        """The number of leaves of the tree read."""
        return self._size

    def subtree_hash(self, level: int, index: int) -> bytes:
        """The hash of the perfect subtree over leaves [index * 2**level, (index+1) * 2**level),
        which must lie within the tree."""
        if not _is_int(level) or not 0 <= level <= MAX_LEVEL:
            raise MerkleInputError(f"level must be an integer from 0 to {MAX_LEVEL}")
        if not _is_int(index) or index < 0 or (index + 1) << level > self._size:
            raise MerkleInputError(
                f"subtree {index} at level {level} is not within a tree of {self._size} leaves"
            )
        return self._fetch({(level, index)})[level, index]

    def range_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a non-empty range that is a node of the tree's shape: `start`
        a multiple of the smallest power of two >= end - start (the ranges PATH and PROOF use).
        """
        if not (_is_int(start) and _is_int(end) and 0 <= start < end <= self._size):
            raise MerkleInputError(
                f"range [{start}, {end}) is not a non-empty range within {self._size} leaves"
            )
        if start % (1 << (end - start - 1).bit_length()):
            raise MerkleInputError(
                f"range [{start}, {end}) does not start at a multiple of the smallest power "
                "of two covering its length"
            )
        return self._range_hashes([(start, end)])[0]

    def root(self) -> bytes:
        """The root of the tree (MTH of its `size` leaves)."""
        if self._size == 0:
            return EMPTY_ROOT
        return self._range_hashes([(0, self._size)])[0]

    def frontier(self) -> Frontier:
        """The `Frontier` of the tree, from the store (to recover or check a persisted one)."""
        pieces = _decompose(0, self._size)
        hashes = self._fetch(set(pieces))
        return Frontier(self._size, [hashes[piece] for piece in pieces])

    def inclusion_proof(self, leaf_index: int) -> list[bytes]:
        """The audit path PATH(leaf_index, D[size]) of RFC 9162 section 2.1.3.1, bottom up."""
        if not _is_int(leaf_index) or not 0 <= leaf_index < self._size:
            raise MerkleInputError(
                f"leaf index {leaf_index} is not within a tree of {self._size} leaves"
            )
        return self._range_hashes(_path_ranges(leaf_index, self._size))

    def consistency_proof(self, old_size: int) -> list[bytes]:
        """The consistency proof PROOF(old_size, D[size]) of RFC 9162 section 2.1.4.1; empty
        when old_size is 0 or equals size."""
        if not _is_int(old_size) or not 0 <= old_size <= self._size:
            raise MerkleInputError(
                f"old size {old_size} must be from 0 to the tree size {self._size}"
            )
        if old_size in (0, self._size):
            return []
        return self._range_hashes(_proof_ranges(old_size, self._size))

    def _range_hashes(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """MTH of each range, reading every perfect subtree they decompose into once."""
        decomposed = [_decompose(start, end) for start, end in ranges]
        hashes = self._fetch({piece for pieces in decomposed for piece in pieces})
        out = []
        for pieces in decomposed:
            value = hashes[pieces[-1]]
            for piece in reversed(pieces[:-1]):
                value = _node(hashes[piece], value)
            out.append(value)
        return out

    def _fetch(self, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The hashes of perfect subtrees (level, index), from batched reads of stored levels."""
        # Each subtree is computed from its descendants at the nearest stored level at or
        # below it (`base`): the index range [index << shift, (index + 1) << shift) there.
        by_base: dict[int, list[tuple[int, int, int, int]]] = {}
        for level, index in wanted:
            base = level - level % STORED_LEVEL_STRIDE
            shift = level - base
            by_base.setdefault(base, []).append(
                (index << shift, (index + 1) << shift, level, index)
            )
        out: dict[tuple[int, int], bytes] = {}
        for base, spans in by_base.items():
            spans.sort()
            group: list[tuple[int, int, int, int]] = []
            group_start = group_end = 0
            for span in spans:
                if group and max(group_end, span[1]) - group_start <= MAX_READ_SPAN:
                    group.append(span)
                    group_end = max(group_end, span[1])
                    continue
                if group:
                    self._read_group(base, group_start, group_end, group, out)
                group, group_start, group_end = [span], span[0], span[1]
            self._read_group(base, group_start, group_end, group, out)
        return out

    def _read_group(
        self,
        base: int,
        start: int,
        end: int,
        spans: list[tuple[int, int, int, int]],
        out: dict[tuple[int, int], bytes],
    ) -> None:
        if base == 0:
            read = self._store.leaf_hashes(start, end)
        else:
            read = self._store.stored_nodes(base, start, end)
        if len(read) != end - start or not _all_hashes(read):
            raise NodeStoreError(
                f"the store answered {len(read)} values for {end - start} hashes at level "
                f"{base}, [{start}, {end}), or some were not {HASH_SIZE} bytes"
            )
        for span_start, span_end, level, index in spans:
            if span_end - span_start == 1:  # a stored node itself: nothing to hash
                out[level, index] = read[span_start - start]
            else:
                out[level, index] = _fold(list(read[span_start - start : span_end - start]))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decompose(start: int, end: int) -> list[tuple[int, int]]:
    """The aligned perfect subtrees (level, index), largest first, whose MTHs fold (right to
    left) into MTH(D[start:end]); `start` must be aligned as `TreeReader.range_hash` says."""
    length = end - start
    pieces = []
    while length:
        level = length.bit_length() - 1
        pieces.append((level, start >> level))
        start += 1 << level
        length -= 1 << level
    return pieces


def _split(length: int) -> int:
    """The largest power of two smaller than `length` (> 1): where MTH splits a tree."""
    return 1 << ((length - 1).bit_length() - 1)


def _path_ranges(leaf_index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs make PATH(leaf_index, D[size]), bottom up.

    Unrolls PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) if m < k, else
    PATH(m - k, D[k:n]) : MTH(D[0:k]), walking from the root down, then reverses.
    """
    ranges = []
    start, end = 0, size
    while end - start > 1:
        middle = start + _split(end - start)
        if leaf_index < middle:
            ranges.append((middle, end))
            end = middle
        else:
            ranges.append((start, middle))
            start = middle
    ranges.reverse()
    return ranges


def _proof_ranges(old_size: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs make PROOF(old_size, D[size]) for 0 < old_size < size.

    Unrolls SUBPROOF(m, D[n], b): if m == n, it is {} when b else {MTH(D[n])}; otherwise, with
    k the split, SUBPROOF(m, D[0:k], b) : MTH(D[k:n]) if m <= k, else
    SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]).
    """
    ranges = []
    start, end = 0, size
    whole = True  # b: the old tree is still the whole left part, whose hash the verifier has
    while old_size != end:
        middle = start + _split(end - start)
        if old_size <= middle:
            ranges.append((middle, end))
            end = middle
        else:
            ranges.append((start, middle))
            start = middle
            whole = False
    if not whole:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


# -- verifying --------------------------------------------------------------------------------


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
