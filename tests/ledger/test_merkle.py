"""The Merkle tree against a naive reference written from RFC 9162's recursive definitions.

The reference (`Ref`) is deliberately the RFC's text, not the module's algorithms: MTH splits at
the largest power of two below n, PATH and PROOF/SUBPROOF recurse exactly as section 2.1
states. The module must match it byte for byte, and its verifiers must accept every honest
proof and reject every altered one.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paywire.errors import InvalidInput, PaywireError
from paywire.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_PROOF_HASHES,
    MAX_READ_SPAN,
    MAX_TREE_SIZE,
    STORED_LEVEL_STRIDE,
    Frontier,
    InMemoryNodeStore,
    MerkleInputError,
    Node,
    NodeStoreError,
    TreeReader,
    is_stored_level,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# -- the reference, straight from RFC 9162 section 2.1 ----------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def largest_power_of_two_below(n: int) -> int:
    """k: the largest power of two smaller than n (n > 1), as RFC 9162 defines the split."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Ref:
    """MTH, PATH and PROOF over the entries D[0:n], from the RFC's recursions (memoized)."""

    def __init__(self, entries: Sequence[bytes]) -> None:
        self.entries = list(entries)
        self.leaves = [sha256(b"\x00" + entry) for entry in self.entries]
        self._mth: dict[tuple[int, int], bytes] = {}

    def mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi])."""
        key = (lo, hi)
        if key not in self._mth:
            n = hi - lo
            if n == 0:
                value = sha256(b"")
            elif n == 1:
                value = sha256(b"\x00" + self.entries[lo])
            else:
                k = largest_power_of_two_below(n)
                value = sha256(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi))
            self._mth[key] = value
        return self._mth[key]

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        """PATH(m, D[lo:hi]), m relative to lo."""
        n = hi - lo
        if n == 1:
            return []
        k = largest_power_of_two_below(n)
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""
        return self.subproof(m, 0, n, True)

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = largest_power_of_two_below(n)
        if m <= k:
            return [*self.subproof(m, lo, lo + k, b), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]


def random_entries(seed: int, size: int, duplicates: bool = False) -> list[bytes]:
    rng = random.Random(seed)
    if duplicates:  # few distinct entries: equal subtrees must not confuse anything
        pool = [rng.randbytes(rng.randrange(3)) for _ in range(2)]
        return [rng.choice(pool) for _ in range(size)]
    return [rng.randbytes(rng.randrange(40)) for _ in range(size)]


def flip(value: bytes, position: int = 0) -> bytes:
    return value[:position] + bytes([value[position] ^ 0x08]) + value[position + 1 :]


SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")

sizes = st.one_of(
    st.integers(min_value=0, max_value=300),
    st.sampled_from([511, 512, 513, 1000, 1024, 4097]),
)
seeds = st.integers(min_value=0, max_value=2**32)
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- known answers: the RFC 6962 test vectors of transparency-dev/merkle (testonly, proof) ----

KAT_ENTRIES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]

KAT_NODES = [  # [level][index]
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]

KAT_ROOTS = [  # by tree size 0..8
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

KAT_INCLUSION = [  # (leaf index, tree size, proof)
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (0, 1, []),
]

KAT_CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


def kat_store() -> InMemoryNodeStore:
    return InMemoryNodeStore.of(leaf_hash(entry) for entry in KAT_ENTRIES)


def test_known_leaf_and_node_hashes() -> None:
    assert EMPTY_ROOT.hex() == KAT_ROOTS[0]
    assert [leaf_hash(entry).hex() for entry in KAT_ENTRIES] == KAT_NODES[0]
    reader = kat_store().reader()
    for level, hashes in enumerate(KAT_NODES):
        for index, expected in enumerate(hashes):
            assert reader.subtree_hash(level, index).hex() == expected
    assert (
        node_hash(bytes.fromhex(KAT_NODES[0][0]), bytes.fromhex(KAT_NODES[0][1])).hex()
        == (KAT_NODES[1][0])
    )


def test_known_roots() -> None:
    leaves = [leaf_hash(entry) for entry in KAT_ENTRIES]
    store = kat_store()
    frontier = Frontier.empty()
    assert frontier.root().hex() == KAT_ROOTS[0]
    for size, expected in enumerate(KAT_ROOTS):
        assert root_of(leaves[:size]).hex() == expected
        assert store.reader(size).root().hex() == expected
        if size:
            frontier.append(leaves[size - 1])
            assert frontier.root().hex() == expected


@pytest.mark.parametrize(("index", "size", "proof"), KAT_INCLUSION)
def test_known_inclusion_proofs(index: int, size: int, proof: list[str]) -> None:
    got = kat_store().reader(size).inclusion_proof(index)
    assert [value.hex() for value in got] == proof
    assert verify_inclusion(
        leaf_hash(KAT_ENTRIES[index]), index, size, got, bytes.fromhex(KAT_ROOTS[size])
    )


@pytest.mark.parametrize(("old", "new", "proof"), KAT_CONSISTENCY)
def test_known_consistency_proofs(old: int, new: int, proof: list[str]) -> None:
    got = kat_store().reader(new).consistency_proof(old)
    assert [value.hex() for value in got] == proof
    assert verify_consistency(
        old, new, bytes.fromhex(KAT_ROOTS[old]), bytes.fromhex(KAT_ROOTS[new]), got
    )


# -- hashing and the frontier -----------------------------------------------------------------


def test_hash_domain_separation() -> None:
    left, right = sha256(b"l"), sha256(b"r")
    assert leaf_hash(b"abc") == sha256(b"\x00abc")
    assert node_hash(left, right) == sha256(b"\x01" + left + right)
    assert leaf_hash(left + right) != node_hash(left, right)  # RFC 9162's second-preimage guard


@given(seed=seeds, size=sizes, duplicates=st.booleans())
@FAST
def test_frontier_and_root_of_match_reference_at_every_size(
    seed: int, size: int, duplicates: bool
) -> None:
    ref = Ref(random_entries(seed, size, duplicates))
    frontier = Frontier.empty()
    assert frontier.root() == ref.mth(0, 0)
    for n, leaf in enumerate(ref.leaves, start=1):
        frontier.append(leaf)
        assert frontier.size == n
        assert frontier.root() == ref.mth(0, n)
        assert len(frontier.hashes) == n.bit_count()
    assert root_of(ref.leaves) == ref.mth(0, size)
    # The frontier's nodes are the perfect subtrees making up the size.
    for node in frontier.nodes():
        assert node.hash == ref.mth(node.start, node.end)
        assert node.end - node.start == 1 << node.level


@given(seed=seeds, size=st.integers(min_value=0, max_value=600))
@FAST
def test_append_returns_exactly_the_completed_stored_nodes(seed: int, size: int) -> None:
    ref = Ref(random_entries(seed, size))
    frontier = Frontier.empty()
    for n, leaf in enumerate(ref.leaves, start=1):
        completed = frontier.append(leaf)
        # Brute force: the perfect subtrees at stored levels whose last leaf is leaf n - 1.
        expected = [
            Node(level, n // (1 << level) - 1, ref.mth(n - (1 << level), n))
            for level in range(1, n.bit_length())
            if is_stored_level(level) and n % (1 << level) == 0
        ]
        assert completed == expected


def test_extend_equals_appends_and_is_all_or_nothing() -> None:
    leaves = [sha256(bytes([i])) for i in range(100)]
    one_by_one = Frontier.empty()
    appended: list[Node] = []
    for leaf in leaves:
        appended += one_by_one.append(leaf)
    at_once = Frontier.empty()
    assert at_once.extend(leaves) == appended
    assert at_once == one_by_one
    with pytest.raises(MerkleInputError):
        at_once.extend([sha256(b"ok"), b"short"])
    assert at_once == one_by_one  # the good leaf before the bad one was not appended


def test_is_stored_level() -> None:
    assert STORED_LEVEL_STRIDE == 4
    assert [level for level in range(17) if is_stored_level(level)] == [4, 8, 12, 16]


@given(seed=seeds, size=sizes, cut=st.integers(min_value=0))
@FAST
def test_frontier_serialization_round_trip_and_restart(seed: int, size: int, cut: int) -> None:
    leaves = Ref(random_entries(seed, size)).leaves
    cut %= size + 1
    straight = Frontier.empty()
    straight.extend(leaves)
    first = Frontier.empty()
    first.extend(leaves[:cut])
    blob = first.to_bytes()
    assert len(blob) == HASH_SIZE * cut.bit_count()
    restarted = Frontier.from_bytes(cut, blob)  # as another process would, from the row
    assert restarted == first
    assert restarted.root() == first.root()
    restarted.extend(leaves[cut:])
    assert restarted == straight
    assert restarted.root() == straight.root() == root_of(leaves)


def test_frontier_from_bytes_rejects_malformed_blobs() -> None:
    frontier = Frontier.empty()
    frontier.extend(sha256(bytes([i])) for i in range(13))  # 13 = 0b1101: 3 hashes
    blob = frontier.to_bytes()
    assert len(blob) == 3 * HASH_SIZE
    for size, data in [
        (13, blob[:-1]),
        (13, blob + b"\x00"),
        (13, blob[:-HASH_SIZE]),
        (13, blob + blob[:HASH_SIZE]),
        (12, blob),  # 2 hashes expected
        (14, blob[: 2 * HASH_SIZE] + b"\x00"),
        (0, blob),
        (-1, b""),
        (MAX_TREE_SIZE + 1, b""),
    ]:
        with pytest.raises(MerkleInputError):
            Frontier.from_bytes(size, data)
    with pytest.raises(MerkleInputError):
        Frontier.from_bytes(13, bytearray(blob))  # type: ignore[arg-type]
    with pytest.raises(MerkleInputError):
        Frontier(1, [b"x" * 31])
    assert Frontier.from_bytes(0, b"") == Frontier.empty()
    assert Frontier.from_bytes(0, b"").root() == EMPTY_ROOT


def test_frontier_copy_is_independent() -> None:
    frontier = Frontier.empty()
    frontier.append(sha256(b"a"))
    clone = frontier.copy()
    clone.append(sha256(b"b"))
    assert frontier.size == 1
    assert clone.size == 2
    assert frontier != clone


def test_frontier_refuses_to_grow_past_the_limit() -> None:
    full = Frontier.from_bytes(MAX_TREE_SIZE, SOME_HASH * MAX_TREE_SIZE.bit_count())
    assert len(full.hashes) == 63
    with pytest.raises(MerkleInputError):
        full.append(SOME_HASH)
    almost = Frontier.from_bytes(MAX_TREE_SIZE - 1, SOME_HASH * (MAX_TREE_SIZE - 1).bit_count())
    completed = almost.append(SOME_HASH)  # 2**63 - 2 is ...110: the carry stops at once
    assert completed == []
    assert almost.size == MAX_TREE_SIZE
    with pytest.raises(MerkleInputError):
        almost.extend([SOME_HASH])


def test_hash_arguments_are_checked() -> None:
    for bad in [b"", b"x" * 31, b"x" * 33, "x" * 32]:
        with pytest.raises(MerkleInputError):
            Frontier.empty().append(bad)  # type: ignore[arg-type]
        with pytest.raises(MerkleInputError):
            root_of([SOME_HASH, bad])  # type: ignore[list-item]
        with pytest.raises(MerkleInputError):
            node_hash(SOME_HASH, bad)  # type: ignore[arg-type]
    assert issubclass(MerkleInputError, InvalidInput)
    assert root_of([]) == EMPTY_ROOT
    assert root_of([SOME_HASH]) == SOME_HASH


# -- reading and proofs -----------------------------------------------------------------------


def inclusion_shape(index: int, size: int) -> list[bool]:
    """For each PATH element bottom up, whether it is a right sibling (from the RFC recursion)."""
    shape: list[bool] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = largest_power_of_two_below(hi - lo)
        shape.append(index < lo + k)
        if index < lo + k:
            hi = lo + k
        else:
            lo = lo + k
    return shape[::-1]


def check_inclusion(ref: Ref, reader: TreeReader, index: int, size: int) -> None:
    """The proof equals the reference, verifies, and every alteration fails."""
    proof = reader.inclusion_proof(index)
    assert proof == ref.path(index, 0, size)
    assert len(proof) <= MAX_PROOF_HASHES
    leaf, root = ref.leaves[index], ref.mth(0, size)
    assert verify_inclusion(leaf, index, size, proof, root)

    def fails(*args: object) -> None:
        assert not verify_inclusion(*args)  # type: ignore[arg-type]

    for i in range(len(proof)):
        fails(leaf, index, size, [*proof[:i], flip(proof[i], i % HASH_SIZE), *proof[i + 1 :]], root)
        fails(leaf, index, size, [*proof[:i], proof[i][:-1], *proof[i + 1 :]], root)
        fails(leaf, index, size, [*proof[:i], proof[i] + b"\x00", *proof[i + 1 :]], root)
    if proof:
        fails(leaf, index, size, proof[:-1], root)
        fails(leaf, index, size, proof[1:], root)
    for extra in (SOME_HASH, root, leaf, b""):
        fails(leaf, index, size, [*proof, extra], root)
        fails(leaf, index, size, [extra, *proof], root)
    fails(flip(leaf), index, size, proof, root)
    fails(leaf, index, size, proof, flip(root, 31))
    fails(leaf, index, size, proof, EMPTY_ROOT)
    fails(leaf, index, size, proof, root[:-1])
    fails(leaf[:-1], index, size, proof, root)
    fails(leaf, index, index, proof, root)  # index >= size
    fails(leaf, -1, size, proof, root)
    # Another index or size, against that tree's true root and leaf hash: an RFC proof verifies
    # there exactly when it is that tree's proof (and the leaf hash is that tree's leaf).
    others = {(index ^ 1, size), (index ^ 2, size), (index + 1, size), (index - 1, size)}
    others |= {(index, size + 1), (index, size - 1), (index, size * 2), (index, size // 2)}
    for other_index, other_size in others:
        if 0 <= other_index < other_size <= len(ref.leaves):
            genuine = ref.path(other_index, 0, other_size)
            for claimed_leaf in (leaf, ref.leaves[other_index]):
                assert verify_inclusion(
                    claimed_leaf, other_index, other_size, proof, ref.mth(0, other_size)
                ) == (proof == genuine and claimed_leaf == ref.leaves[other_index])
            # Against this tree's root, only a proof of the same shape can verify (with
            # distinct leaves; equal siblings make left and right indistinguishable).
            distinct = len(set(ref.leaves)) == len(ref.leaves)
            if distinct and inclusion_shape(other_index, other_size) != inclusion_shape(
                index, size
            ):
                fails(leaf, other_index, other_size, proof, root)


@given(seed=seeds, size=sizes, duplicates=st.booleans(), data=st.data())
@FAST
def test_inclusion_proofs_match_reference_and_resist_tampering(
    seed: int, size: int, duplicates: bool, data: st.DataObject
) -> None:
    extra = data.draw(st.integers(min_value=0, max_value=40))
    ref = Ref(random_entries(seed, size + extra, duplicates))
    store = InMemoryNodeStore.of(ref.leaves)  # the store may run ahead of the checkpoint
    reader = store.reader(size)
    assert reader.root() == ref.mth(0, size)
    if size == 0:
        return
    indexes = set(range(size)) if size <= 40 else {0, size - 1, size // 2}
    indexes |= set(data.draw(st.lists(st.integers(0, size - 1), max_size=5)))
    for index in sorted(indexes):
        check_inclusion(ref, reader, index, size)


def check_consistency(ref: Ref, reader: TreeReader, old: int, new: int) -> None:
    proof = reader.consistency_proof(old)
    expected = [] if old in (0, new) else ref.proof(old, new)
    assert proof == expected
    assert len(proof) <= MAX_PROOF_HASHES
    old_root, new_root = ref.mth(0, old), ref.mth(0, new)
    assert verify_consistency(old, new, old_root, new_root, proof)

    def fails(*args: object) -> None:
        assert not verify_consistency(*args)  # type: ignore[arg-type]

    for i in range(len(proof)):
        flipped = flip(proof[i], i % HASH_SIZE)
        fails(old, new, old_root, new_root, [*proof[:i], flipped, *proof[i + 1 :]])
        fails(old, new, old_root, new_root, [*proof[:i], proof[i][:-1], *proof[i + 1 :]])
    if proof:
        fails(old, new, old_root, new_root, proof[:-1])
        fails(old, new, old_root, new_root, proof[1:])
        fails(old, new, old_root, new_root, [proof[0], *proof])
        fails(old, new, new_root, old_root, proof)
    for extra in (SOME_HASH, old_root, new_root, b""):
        fails(old, new, old_root, new_root, [*proof, extra])
        fails(old, new, old_root, new_root, [extra, *proof])
    fails(old, new, flip(old_root), new_root, proof)
    fails(old, new, old_root[:-1], new_root, proof)
    if old > 0 or new == 0:  # otherwise any new root extends the empty tree
        fails(old, new, old_root, flip(new_root, 31), proof)
    if old != new:
        fails(new, old, new_root, old_root, proof)
    # Other sizes, against those trees' true roots: verifies exactly when it is their proof.
    others = {(old - 1, new), (old + 1, new), (old ^ 2, new), (old, new + 1), (old, new - 1)}
    others |= {(old, new * 2), (old, new // 2)}
    for other_old, other_new in others:
        if 0 <= other_old <= other_new <= len(ref.leaves):
            genuine = [] if other_old in (0, other_new) else ref.proof(other_old, other_new)
            assert verify_consistency(
                other_old, other_new, ref.mth(0, other_old), ref.mth(0, other_new), proof
            ) == (proof == genuine)


@given(seed=seeds, size=st.integers(min_value=0, max_value=40), duplicates=st.booleans())
@settings(max_examples=10, deadline=None)
def test_consistency_between_every_pair_of_small_sizes(
    seed: int, size: int, duplicates: bool
) -> None:
    ref = Ref(random_entries(seed, size, duplicates))
    store = InMemoryNodeStore.of(ref.leaves)
    for new in range(size + 1):
        reader = store.reader(new)
        assert reader.root() == ref.mth(0, new)
        for old in range(new + 1):
            check_consistency(ref, reader, old, new)


@given(seed=seeds, size=sizes, data=st.data())
@FAST
def test_consistency_between_random_sizes(seed: int, size: int, data: st.DataObject) -> None:
    ref = Ref(random_entries(seed, size))
    store = InMemoryNodeStore.of(ref.leaves)
    for _ in range(4):
        new = data.draw(st.integers(min_value=0, max_value=size))
        old = data.draw(st.integers(min_value=0, max_value=new))
        check_consistency(ref, store.reader(new), old, new)


def test_consistency_proof_of_every_size_up_to_a_big_tree() -> None:
    ref = Ref(random_entries(7, 4097))
    reader = InMemoryNodeStore.of(ref.leaves).reader()
    new_root = ref.mth(0, 4097)
    for old in range(1, 4097):
        proof = reader.consistency_proof(old)
        assert verify_consistency(old, 4097, ref.mth(0, old), new_root, proof), old
    for old in (1, 2, 3, 1000, 2048, 2049, 4095, 4096):
        assert reader.consistency_proof(old) == ref.proof(old, 4097)


@given(seed=seeds, size=st.integers(min_value=1, max_value=300))
@FAST
def test_subtree_and_range_hashes_match_reference(seed: int, size: int) -> None:
    ref = Ref(random_entries(seed, size))
    reader = InMemoryNodeStore.of(ref.leaves).reader()
    for level in range(size.bit_length()):
        for index in range(size >> level):
            start = index << level
            assert reader.subtree_hash(level, index) == ref.mth(start, start + (1 << level))
    for length in range(1, size + 1):
        aligned = 1 << (length - 1).bit_length()
        for start in range(0, size - length + 1, aligned):
            assert reader.range_hash(start, start + length) == ref.mth(start, start + length)
    frontier = Frontier.empty()
    frontier.extend(ref.leaves)
    assert reader.frontier() == frontier


def test_stored_nodes_are_the_perfect_subtrees_at_stored_levels() -> None:
    ref = Ref(random_entries(3, 1000))
    store = InMemoryNodeStore.of(ref.leaves)
    assert store.leaf_hashes(0, 1000) == ref.leaves
    for level in (4, 8):
        count = 1000 >> level
        assert store.stored_nodes(level, 0, count) == [
            ref.mth(i << level, (i + 1) << level) for i in range(count)
        ]
        with pytest.raises(MerkleInputError):
            store.stored_nodes(level, 0, count + 1)
    with pytest.raises(MerkleInputError):
        store.stored_nodes(12, 0, 1)  # 1000 < 4096: nothing at level 12 yet
    with pytest.raises(MerkleInputError):
        store.stored_nodes(3, 0, 1)
    assert store.frontier.root() == ref.mth(0, 1000)


def test_reader_argument_errors() -> None:
    reader = kat_store().reader(7)
    calls: list[Callable[[], object]] = [
        lambda: reader.inclusion_proof(7),
        lambda: reader.inclusion_proof(-1),
        lambda: reader.consistency_proof(8),
        lambda: reader.consistency_proof(-1),
        lambda: reader.subtree_hash(3, 0),  # leaves [0, 8) are not all in a tree of 7
        lambda: reader.subtree_hash(1, 3),
        lambda: reader.subtree_hash(-1, 0),
        lambda: reader.subtree_hash(63, 0),
        lambda: reader.subtree_hash(0, -1),
        lambda: reader.range_hash(3, 3),
        lambda: reader.range_hash(1, 3),  # not a node of the tree's shape
        lambda: reader.range_hash(2, 6),  # length 4 must start at a multiple of 4
        lambda: reader.range_hash(4, 8),
        lambda: TreeReader(kat_store(), -1),
        lambda: TreeReader(kat_store(), MAX_TREE_SIZE + 1),
        lambda: kat_store().reader(9).root(),  # the store has only 8 leaves
    ]
    for call in calls:
        with pytest.raises(InvalidInput):
            call()
    assert reader.consistency_proof(0) == reader.consistency_proof(7) == []
    assert kat_store().reader(0).root() == EMPTY_ROOT
    with pytest.raises(InvalidInput):
        kat_store().reader(0).inclusion_proof(0)


class BrokenStore:
    """Answers reads with too few hashes, or hashes of the wrong size."""

    def __init__(self, short: bool) -> None:
        self.short = short

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        return self._answer(end - start)

    def stored_nodes(self, level: int, start: int, end: int) -> Sequence[bytes]:
        return self._answer(end - start)

    def _answer(self, count: int) -> Sequence[bytes]:
        return [SOME_HASH] * (count - 1) if self.short else [b"x"] * count


def test_a_broken_store_is_reported_not_trusted() -> None:
    for short in (True, False):
        reader = TreeReader(BrokenStore(short), 100)
        with pytest.raises(NodeStoreError):
            reader.root()
        with pytest.raises(NodeStoreError):
            reader.inclusion_proof(5)
    assert issubclass(NodeStoreError, PaywireError)
    assert not issubclass(NodeStoreError, InvalidInput)


class UniformStore:
    """A consistent tree of any size (up to 2**63 - 1) whose leaves all hash to `LEAF`: every
    perfect subtree at level L has the same hash, so no leaf is ever materialized. Counts reads.
    """

    LEAF = sha256(b"\x00uniform")

    def __init__(self) -> None:
        self.levels = [self.LEAF]
        for _ in range(63):
            self.levels.append(sha256(b"\x01" + self.levels[-1] + self.levels[-1]))
        self.reads: list[tuple[int, int, int]] = []

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        return self.stored_nodes(0, start, end)

    def stored_nodes(self, level: int, start: int, end: int) -> Sequence[bytes]:
        assert level == 0 or is_stored_level(level)
        self.reads.append((level, start, end))
        return [self.levels[level]] * (end - start)


@given(
    size=st.one_of(
        st.integers(min_value=1, max_value=MAX_TREE_SIZE),
        st.sampled_from([MAX_TREE_SIZE, MAX_TREE_SIZE - 1, 2**62, 2**62 + 1, 100_000]),
    ),
    data=st.data(),
)
@settings(max_examples=60, deadline=None)
def test_huge_trees_need_few_small_reads_and_proofs_fit_the_limit(
    size: int, data: st.DataObject
) -> None:
    store = UniformStore()
    reader = TreeReader(store, size)
    root = reader.root()
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    store.reads.clear()
    proof = reader.inclusion_proof(index)
    # Reads are batched per stored level: about one per 4 levels, each at most MAX_READ_SPAN.
    max_reads = 2 * (size.bit_length() // STORED_LEVEL_STRIDE + 1)
    assert len(store.reads) <= max_reads
    assert all(end - start <= MAX_READ_SPAN for _, start, end in store.reads)
    assert len(proof) <= MAX_PROOF_HASHES
    assert verify_inclusion(UniformStore.LEAF, index, size, proof, root)

    old = data.draw(st.integers(min_value=0, max_value=size))
    store.reads.clear()
    consistency = reader.consistency_proof(old)
    assert len(store.reads) <= max_reads
    assert all(end - start <= MAX_READ_SPAN for _, start, end in store.reads)
    assert len(consistency) <= MAX_PROOF_HASHES
    old_root = TreeReader(store, old).root()
    assert verify_consistency(old, size, old_root, root, consistency)


def test_the_longest_consistency_proof_fits_the_limit() -> None:
    # PROOF(n - 2, D[n]) for n = 2**63 - 1 (...11101 vs ...11111) walks the full height.
    store = UniformStore()
    size = MAX_TREE_SIZE
    proof = TreeReader(store, size).consistency_proof(size - 2)
    assert len(proof) == MAX_PROOF_HASHES
    assert verify_consistency(
        size - 2, size, TreeReader(store, size - 2).root(), TreeReader(store, size).root(), proof
    )


# -- verifier edge cases ----------------------------------------------------------------------


def test_verify_inclusion_edge_cases() -> None:
    leaf = leaf_hash(b"data")
    assert verify_inclusion(leaf, 0, 1, [], leaf)  # a one-leaf tree's root is its leaf
    assert not verify_inclusion(leaf, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], leaf)
    assert not verify_inclusion(leaf, 0, 1, [leaf], leaf)
    for index, size in [(0, 0), (1, 0), (2, 1), (1, 1), (-1, 1), (0, MAX_TREE_SIZE + 1)]:
        assert not verify_inclusion(leaf, index, size, [], leaf)
        assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)
    too_long = [SOME_HASH] * (MAX_PROOF_HASHES + 1)
    assert not verify_inclusion(leaf, 0, MAX_TREE_SIZE, too_long, leaf)
    assert not verify_inclusion(leaf, 0, 2, ["x" * 32], leaf)  # type: ignore[list-item]
    assert not verify_inclusion(leaf, 0, 2, [None], leaf)  # type: ignore[list-item]
    assert not verify_inclusion("x" * 32, 0, 1, [], "x" * 32)  # type: ignore[arg-type]


def test_verify_consistency_edge_cases() -> None:
    a, b = sha256(b"a"), sha256(b"b")
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, b, [])
    assert verify_consistency(1, 1, a, a, [])
    assert verify_consistency(7, 7, a, a, [])
    assert not verify_consistency(0, 0, a, a, [])  # the empty tree's root is known
    assert not verify_consistency(0, 0, EMPTY_ROOT, a, [])
    assert not verify_consistency(0, 5, a, b, [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, b, [EMPTY_ROOT])
    assert not verify_consistency(1, 1, a, b, [])
    assert not verify_consistency(1, 1, a, a, [a])
    assert not verify_consistency(1, 0, a, b, [])
    assert not verify_consistency(2, 1, a, b, [a])
    assert not verify_consistency(1, 2, a, b, [])  # growth needs a proof
    assert not verify_consistency(-1, 2, a, b, [a])
    assert not verify_consistency(1, MAX_TREE_SIZE + 1, a, b, [a])
    assert not verify_consistency(1, 2, a, b, [b"short"])
    assert not verify_consistency(1, 2, a, b, [None])  # type: ignore[list-item]
    assert not verify_consistency(3, 2**40, a, b, [a] * (MAX_PROOF_HASHES + 1))
    assert not verify_consistency(1, 1, b"", b"", [])
    # A genuine one-step proof, then wrong in every way that matters.
    leaves = [leaf_hash(b"a"), leaf_hash(b"b")]
    root1, root2 = leaves[0], root_of(leaves)
    assert verify_consistency(1, 2, root1, root2, [leaves[1]])
    assert not verify_consistency(1, 2, root1, root2, [leaves[0]])
    assert not verify_consistency(1, 2, root2, root1, [leaves[1]])
    assert not verify_consistency(1, 3, root1, root2, [leaves[1]])
