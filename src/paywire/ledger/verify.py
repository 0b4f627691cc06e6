"""`paywire ledger verify`: re-derive the books from the log and hold the store to them.

Runs the `Auditor` over the store's log (with its checkpoints at their sizes), then checks
that what the store serves matches what the log says: every account's four counters, every
transfer's index row, hold state and task (the task index), every spend limit's row and
usage slots, every stored Merkle leaf and node, and the log head.
All of it inside one snapshot, so a running ledger can be verified while it writes.
"""

from __future__ import annotations

from paywire.ledger import merkle
from paywire.ledger.audit import Auditor, AuditReport
from paywire.ledger.checkpoint import Checkpoint
from paywire.ledger.state import LimitState, TransferState
from paywire.ledger.store import StoreReader

READ_CHUNK = 10_000
"""Entries and ids read per query while verifying, to bound memory per read."""


def verify_store(reader: StoreReader, ledger_id: str) -> AuditReport:
    """Audit the log held by `reader` and compare the store's derived state with it."""
    meta = reader.meta()
    head = reader.head()
    auditor = Auditor(ledger_id, meta.get("operator"))
    checkpoints = {stored.tree_size: stored for stored in reader.checkpoints()}
    for start in range(0, head.size, READ_CHUNK):
        end = min(head.size, start + READ_CHUNK)
        expected = start
        stored_leaves = reader.leaf_hashes(start, end)
        for (index, data), stored_leaf in zip(
            reader.entries(start, end), stored_leaves, strict=True
        ):
            if index != expected:
                auditor.problem(expected, "the log has a gap here")
                return auditor.finish(require_checkpoint=False)
            if merkle.leaf_hash(data) != stored_leaf:
                auditor.problem(index, "the stored leaf hash does not match the entry")
            auditor.add_entry(data)
            expected += 1
            stored = checkpoints.get(index + 1)
            if stored is not None:
                auditor.add_checkpoint(
                    Checkpoint(
                        ledger_id,
                        stored.tree_size,
                        stored.root_hash,
                        stored.timestamp,
                        stored.signature,
                    )
                )
    if extra := sorted(size for size in checkpoints if size > head.size or size == 0):
        auditor.problem(None, f"checkpoints at sizes {extra} lie beyond the log")
    report = auditor.finish(require_checkpoint=False)
    if not report.ok:
        return report
    _compare_head(auditor, reader, head.size, head.frontier, report)
    _compare_accounts(auditor, reader)
    _compare_transfers(auditor, reader)
    _compare_limits(auditor, reader)
    _compare_nodes(auditor, reader, head.size)
    return report


def _compare_head(
    auditor: Auditor, reader: StoreReader, size: int, frontier: bytes, report: AuditReport
) -> None:
    try:
        stored_root = merkle.Frontier.from_bytes(size, frontier).root()
    except merkle.MerkleInputError as error:
        auditor.problem(None, f"the stored log head is malformed: {error}")
        return
    if stored_root != report.root_hash:
        auditor.problem(None, "the stored log head's root does not match the entries")


def _compare_accounts(auditor: Auditor, reader: StoreReader) -> None:
    replayed = auditor.accounts()
    seen = 0
    for stored in reader.all_accounts():
        seen += 1
        state = replayed.get(stored.id)
        if state is None:
            auditor.problem(None, f"account {stored.id!r} is in the store but not in the log")
        elif stored.balance() != state.balance():
            auditor.problem(
                state.log_index,
                f"account {stored.id!r} balance in the store {stored.balance()} differs from "
                f"the log's {state.balance()}",
            )
        elif (stored.asset, stored.kind, stored.flags, stored.owner) != (
            state.asset,
            state.kind,
            state.flags,
            state.owner,
        ):
            auditor.problem(state.log_index, f"account {stored.id!r} differs from its entry")
    if seen != len(replayed):
        auditor.problem(None, f"the log opens {len(replayed)} accounts, the store has {seen}")


def _same(stored: TransferState, state: TransferState) -> bool:
    return (
        stored.kind,
        stored.debit,
        stored.credit,
        stored.amount,
        stored.log_index,
        stored.pending_id,
        stored.expires_at,
        stored.hold_state,
        stored.resolved_by,
        stored.limits,
        stored.task,
    ) == (
        state.kind,
        state.debit,
        state.credit,
        state.amount,
        state.log_index,
        state.pending_id,
        state.expires_at,
        state.hold_state,
        state.resolved_by,
        state.limits,
        state.task,
    )


def _compare_transfers(auditor: Auditor, reader: StoreReader) -> None:
    replayed = auditor.transfers()
    ids = sorted(replayed)
    for start in range(0, len(ids), READ_CHUNK):
        chunk = ids[start : start + READ_CHUNK]
        stored = reader.load_transfers(chunk)
        for transfer_id in chunk:
            state = replayed[transfer_id]
            row = stored.get(transfer_id)
            if row is None:
                auditor.problem(state.log_index, f"transfer {transfer_id!r} is not indexed")
            elif not _same(row, state):
                auditor.problem(
                    state.log_index, f"transfer {transfer_id!r} in the store differs from the log"
                )


def _limit_fields(state: LimitState) -> tuple[object, ...]:
    return (
        state.asset,
        state.cap,
        state.window_s,
        state.metadata,
        state.log_index,
        state.timestamp,
        state.fingerprint,
    )


def _usage(state: LimitState) -> dict[int, tuple[int, int]]:
    return {number: (slot.bucket, slot.used) for number, slot in state.slots.items()}


def _compare_limits(auditor: Auditor, reader: StoreReader) -> None:
    replayed = auditor.limits()
    seen = 0
    for stored in reader.all_limits():
        seen += 1
        state = replayed.get(stored.id)
        if state is None:
            auditor.problem(None, f"limit {stored.id!r} is in the store but not in the log")
        elif _limit_fields(stored) != _limit_fields(state):
            auditor.problem(state.log_index, f"limit {stored.id!r} differs from its entry")
        elif stored.closed != state.closed:
            auditor.problem(
                state.log_index,
                f"limit {stored.id!r} is {'closed' if stored.closed else 'open'} in the store, "
                f"{'closed' if state.closed else 'open'} in the log",
            )
        elif stored.used_total != state.used_total:
            auditor.problem(
                state.log_index,
                f"limit {stored.id!r} total in the store {stored.used_total} differs from the "
                f"log's {state.used_total}",
            )
        elif (kept := _usage(stored)) != (derived := _usage(state)):
            slot = min(n for n in kept.keys() | derived.keys() if kept.get(n) != derived.get(n))
            auditor.problem(
                state.log_index,
                f"limit {stored.id!r} usage slot {slot} (bucket, used) is {kept.get(slot)} in "
                f"the store, {derived.get(slot)} by the log",
            )
    if seen != len(replayed):
        auditor.problem(None, f"the log opens {len(replayed)} limits, the store has {seen}")


def _compare_nodes(auditor: Auditor, reader: StoreReader, size: int) -> None:
    # Every stored node must equal the subtree hash computed from the entries.
    level = merkle.STORED_LEVEL_STRIDE
    while (1 << level) <= size:
        count = size >> level
        try:
            stored = reader.stored_nodes(level, 0, count)
        except Exception as error:  # a missing node is a problem to report, not a crash
            auditor.problem(None, f"stored Merkle nodes at level {level}: {error}")
            return
        expected = auditor.tree.stored_nodes(level, 0, count)
        if list(stored) != list(expected):
            auditor.problem(None, f"stored Merkle nodes at level {level} do not match the leaves")
        level += merkle.STORED_LEVEL_STRIDE
