"""The ledger's journal as a transparency log: checkpoints, proofs, verify, export.

Every committed account and transfer is a log entry (see `entries`); the entries are the
leaves of an RFC 9162 Merkle tree. The operator signs tree heads (`checkpoint`); a client
asks for an `inclusion_proof` of its transfer and a `consistency_proof` between two
checkpoints; anyone can `verify` the whole log or audit an `export` of it offline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO

from paywire.crypto.keys import PrivateKey
from paywire.ledger import merkle
from paywire.ledger.audit import AuditReport
from paywire.ledger.checkpoint import Checkpoint, sign_checkpoint
from paywire.ledger.errors import LedgerError, TransferNotFound
from paywire.ledger.export import ExportSummary, export_log
from paywire.ledger.proofs import ConsistencyProof, InclusionProof
from paywire.ledger.store import Store, StoredCheckpoint, StoreReader
from paywire.ledger.verify import verify_store

OPERATOR_META = "operator"
"""The meta key holding the operator's address."""


@dataclass(frozen=True, slots=True)
class TreeHead:
    """The log's size and Merkle root at one instant."""

    size: int
    root_hash: bytes
    last_timestamp: int


class TransparencyLog:
    """The log of one ledger's store (reached as `Ledger.log`)."""

    def __init__(
        self, store: Store, ledger_id: str, clock: Callable[[], int] = time.time_ns
    ) -> None:
        self.store = store
        self.ledger_id = ledger_id
        self.clock = clock

    def reader(self) -> AbstractContextManager[StoreReader]:
        return self.store.read()

    def head(self) -> TreeHead:
        """The log's current size and Merkle root."""
        with self.reader() as reader:
            head = reader.head()
        frontier = merkle.Frontier.from_bytes(head.size, head.frontier)
        return TreeHead(head.size, frontier.root(), head.last_timestamp)

    @property
    def operator(self) -> str | None:
        """The address whose key signs this ledger's checkpoints, once one is set."""
        with self.reader() as reader:
            return reader.meta().get(OPERATOR_META)

    def set_operator(self, address: str) -> None:
        """Bind the ledger to its operator's address (once; it cannot change)."""
        stored = self.store.initialize({OPERATOR_META: address})[OPERATOR_META]
        if stored != address:
            raise LedgerError(f"this ledger's operator is {stored}, not {address}")

    def checkpoint(self, key: PrivateKey) -> Checkpoint:
        """Sign the log's current head with the operator's key and keep it.

        The first checkpoint binds the ledger to the key's address; later ones must be
        signed by the same key. Checkpointing an unchanged log returns the last checkpoint.
        """
        self.set_operator(key.address)
        # Under the write lock: the head cannot move while it is signed, and a concurrent
        # signer cannot slip an older or newer checkpoint in between (they would be out of
        # order, and verify would fail for good).
        transaction = self.store.begin_write()
        try:
            head = transaction.head
            latest = transaction.latest_checkpoint()
            if head.size == 0:
                raise LedgerError("the log is empty: there is nothing to checkpoint yet")
            if latest is not None and latest.tree_size >= head.size:
                transaction.rollback()
                return self._checkpoint(latest)
            root = merkle.Frontier.from_bytes(head.size, head.frontier).root()
            timestamp = max(self.clock(), head.last_timestamp, latest.timestamp if latest else 0)
            signed = sign_checkpoint(key, self.ledger_id, head.size, root, timestamp)
            transaction.add_checkpoint(
                StoredCheckpoint(
                    signed.tree_size, signed.root_hash, signed.timestamp, signed.signature
                )
            )
            transaction.commit()
        except BaseException:
            transaction.rollback()
            raise
        return signed

    def checkpoints(self) -> list[Checkpoint]:
        """Every signed checkpoint, oldest first."""
        with self.reader() as reader:
            return [self._checkpoint(stored) for stored in reader.checkpoints()]

    def _checkpoint(self, stored: StoredCheckpoint) -> Checkpoint:
        return Checkpoint(
            self.ledger_id, stored.tree_size, stored.root_hash, stored.timestamp, stored.signature
        )

    def inclusion_proof(self, transfer_id: str, *, tree_size: int | None = None) -> InclusionProof:
        """Prove that a transfer's log entry is in the tree of `tree_size` entries (default:
        the latest checkpoint, else the whole log)."""
        with self.reader() as reader:
            state = reader.get_transfer(transfer_id)
            if state is None:
                raise TransferNotFound(f"transfer {transfer_id!r} does not exist")
            size = self._proof_size(reader, tree_size)
            if state.log_index >= size:
                raise LedgerError(
                    f"transfer {transfer_id!r} is entry {state.log_index}, after tree size {size}"
                    "; checkpoint first"
                )
            tree = merkle.TreeReader(reader, size)
            return InclusionProof(
                log_index=state.log_index,
                tree_size=size,
                leaf_hash=reader.leaf_hashes(state.log_index, state.log_index + 1)[0],
                hashes=tuple(tree.inclusion_proof(state.log_index)),
                root_hash=tree.root(),
            )

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """Prove that the tree of `new_size` entries (default: all) extends `old_size`."""
        with self.reader() as reader:
            size = reader.head().size if new_size is None else new_size
            if not 0 <= old_size <= size <= reader.head().size:
                raise LedgerError(f"need 0 <= old size <= new size <= {reader.head().size}")
            new_tree = merkle.TreeReader(reader, size)
            return ConsistencyProof(
                old_size=old_size,
                new_size=size,
                old_root=merkle.TreeReader(reader, old_size).root(),
                new_root=new_tree.root(),
                hashes=tuple(new_tree.consistency_proof(old_size)),
            )

    @staticmethod
    def _proof_size(reader: StoreReader, tree_size: int | None) -> int:
        head = reader.head().size
        if tree_size is None:
            stored = reader.checkpoints()
            return stored[-1].tree_size if stored else head
        if not 0 < tree_size <= head:
            raise LedgerError(f"tree size must be from 1 to {head}")
        return tree_size

    def verify(self) -> AuditReport:
        """Re-derive every balance from the log and check the store against it (see
        `paywire.ledger.verify`)."""
        with self.reader() as reader:
            return verify_store(reader, self.ledger_id)

    def export(self, out: BinaryIO) -> ExportSummary:
        """Write the log, up to its latest checkpoint, as JSON Lines (see `export`)."""
        return export_log(self, out)
