"""Reading the Merkle tree from a `NodeStore`: the `TreeReader`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, Protocol

from paywire.errors import PaywireError
from paywire.ledger.merkle._tree import (
    EMPTY_ROOT,
    HASH_SIZE,
    STORED_LEVEL_STRIDE,
    Frontier,
    MerkleInputError,
    Node,
    _all_hashes,
    _check_size,
    _fold,
    _node,
    is_stored_level,
)

MAX_LEVEL: Final = 62
"""Highest level of a perfect subtree in a tree of at most MAX_TREE_SIZE leaves."""

MAX_READ_SPAN: Final = 2 * 2**STORED_LEVEL_STRIDE
"""Nearby reads at one level merge into one range read of at most this many hashes: a few
wasted rows cost less than another round trip to the database."""


class NodeStoreError(PaywireError):
    """The node store answered a read with the wrong number or size of hashes (a bug or
    corruption in the store: the tree it describes is not the one that was written)."""

    code = "merkle_store_inconsistent"


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
