"""The `Ledger`: the public face of the books.

Writes go through one writer thread per process that groups whatever requests are queued
into one store transaction (group commit): many concurrent submitters cost one fsync, and
each still gets its own result. Reads go straight to the store in snapshot transactions.

Several processes may open the same store: the store's write lock orders their batches,
and every batch reads the state it builds on inside that lock.

The reads live in `ledger_reads`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from paywire.ledger import merkle
from paywire.ledger.engine import Engine, requested_ids, requested_limits
from paywire.ledger.errors import LedgerError, LedgerUnavailable
from paywire.ledger.ids import new_id, new_ledger_id
from paywire.ledger.ledger_reads import LedgerReads
from paywire.ledger.log import TransparencyLog, TreeHead
from paywire.ledger.model import (
    Account,
    LimitStatus,
    Metadata,
    NewAccount,
    NewLimit,
    NewTransfer,
    Transfer,
    check_id,
    check_metadata,
)
from paywire.ledger.store import (
    BatchWrite,
    LogHead,
    Store,
    StoredNode,
    WriteTransaction,
)

MAX_BATCH_TRANSFERS = 8190
"""Transfers per group commit, as TigerBeetle's batch: big enough to amortize the fsync,
small enough that one batch's latency stays in milliseconds."""

MAX_LINKED_TRANSFERS = 8190
"""A linked batch must fit in one group commit."""

MAX_QUEUED_JOBS = 100_000
"""Requests waiting for the writer; past this, submitters are told the ledger is busy."""

QUEUE_WAIT_S = 5.0
"""How long a submitter waits for room in a full queue before `LedgerUnavailable`."""

EXPIRY_POLL_S = 1.0
"""How often an idle writer looks for holds whose timeout has passed."""

RECENT_LEAVES = 65_536
"""Leaf hashes of the latest entries kept in memory, for receipts without a read."""

MAX_EXPIRIES_PER_BATCH = 1024
"""Holds expired per group commit; the rest wait for the next one."""


@dataclass(slots=True)
class _Job:
    accounts: NewAccount | None
    transfers: Sequence[NewTransfer]
    linked: bool
    many: bool
    future: concurrent.futures.Future[Any]
    limit: NewLimit | None = None
    close_limit: tuple[str, Metadata | None] | None = None

    @property
    def size(self) -> int:
        return max(1, len(self.transfers))


class Ledger(LedgerReads):
    """A double-entry ledger with a transparency log over a `Store`.

    Open one with `open_ledger(url)`; close it (or use ``with``) to stop its writer.
    `clock` returns wall time in nanoseconds (tests pass their own to move time).
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], int] = time.time_ns,
        max_batch_transfers: int = MAX_BATCH_TRANSFERS,
    ) -> None:
        if not 1 <= max_batch_transfers <= MAX_BATCH_TRANSFERS:
            raise ValueError(f"max_batch_transfers must be 1..{MAX_BATCH_TRANSFERS}")
        self.store = store
        self.clock = clock
        self._max_batch = max_batch_transfers
        meta = store.initialize({"ledger_id": new_ledger_id()})
        self.ledger_id = meta["ledger_id"]
        self.log = TransparencyLog(store, self.ledger_id, clock)
        """The transparency log: checkpoints, proofs, verification and export."""
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=MAX_QUEUED_JOBS)
        self._writer: threading.Thread | None = None
        self._writer_start = threading.Lock()
        self._closed = False
        self._recent_leaves: OrderedDict[int, bytes] = OrderedDict()
        self._leaves_lock = threading.Lock()

    @property
    def network(self) -> str:
        """This ledger as a CAIP-2 style network id: ``paywire:<ledger-id>``."""
        return f"paywire:{self.ledger_id}"

    # ----- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Finish queued writes, stop the writer, close the store."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- writes ----------------------------------------------------------------------

    def open_account(self, request: NewAccount) -> Account:
        """Open an account; opening the same account again returns it unchanged."""
        account: Account = self._enqueue(_Job(request, (), False, False, _future())).result()
        return account

    def open_limit(self, request: NewLimit) -> LimitStatus:
        """Open a spend limit; opening the same limit again returns it as it stands now
        (other fields under the same id: `IdempotencyConflict`)."""
        if not isinstance(request, NewLimit):  # checked here: the writer must not fail on it
            raise LedgerError("open_limit takes a NewLimit request")
        job = _Job(None, (), False, False, _future(), limit=request)
        status: LimitStatus = self._enqueue(job).result()
        return status

    def close_limit(self, limit_id: str, *, metadata: Metadata | None = None) -> LimitStatus:
        """Close (revoke) a spend limit, for good, as of the next write: every transfer
        naming it from then on is refused with `LimitClosed`. Closing it again changes
        nothing. Holds charged to it before may still be posted, voided or expire."""
        check_id(limit_id, "limit id")
        checked = check_metadata(metadata)  # refused here, not in the writer
        job = _Job(None, (), False, False, _future(), close_limit=(limit_id, checked))
        status: LimitStatus = self._enqueue(job).result()
        return status

    def submit(self, request: NewTransfer) -> Transfer:
        """Write one transfer (or return the first result of a retried id)."""
        results: list[Transfer] = self._enqueue(self._job([request], linked=False)).result()
        return results[0]

    def submit_linked(self, requests: Sequence[NewTransfer]) -> list[Transfer]:
        """Write transfers that succeed or fail together (`LinkedBatchFailed` names which)."""
        self._check_linked(requests)
        results: list[Transfer] = self._enqueue(self._job(requests, linked=True)).result()
        return results

    def submit_many(self, requests: Sequence[NewTransfer]) -> list[Transfer | LedgerError]:
        """Write independent transfers in one group; each gets its own result or error."""
        if not requests:
            return []
        job = _Job(None, list(requests), False, True, _future())
        results: list[Transfer | LedgerError] = self._enqueue(job).result()
        return results

    async def asubmit(self, request: NewTransfer) -> Transfer:
        """`submit` for async code: waits for the group commit without blocking the loop."""
        results: list[Transfer] = await asyncio.wrap_future(
            self._enqueue(self._job([request], linked=False))
        )
        return results[0]

    async def asubmit_linked(self, requests: Sequence[NewTransfer]) -> list[Transfer]:
        """`submit_linked` for async code."""
        self._check_linked(requests)
        results: list[Transfer] = await asyncio.wrap_future(
            self._enqueue(self._job(requests, linked=True))
        )
        return results

    def expire_due(self) -> None:
        """Expire every hold whose timeout has passed now (the writer also does this)."""
        self._enqueue(_Job(None, (), False, False, _future())).result()

    @staticmethod
    def _check_linked(requests: Sequence[NewTransfer]) -> None:
        if not requests:
            raise LedgerError("a linked batch needs at least one transfer")
        if len(requests) > MAX_LINKED_TRANSFERS:
            raise LedgerError(f"a linked batch holds at most {MAX_LINKED_TRANSFERS} transfers")

    @staticmethod
    def _job(requests: Sequence[NewTransfer], *, linked: bool) -> _Job:
        for request in requests:
            if not isinstance(request, NewTransfer):
                raise LedgerError("submit takes NewTransfer requests (see paywire.ledger.transfer)")
        return _Job(None, list(requests), linked, False, _future())

    def _enqueue(self, job: _Job) -> concurrent.futures.Future[Any]:
        if self._closed:
            raise LedgerUnavailable("the ledger is closed")
        self._ensure_writer()
        try:
            self._queue.put(job, timeout=QUEUE_WAIT_S)
        except queue.Full:
            raise LedgerUnavailable("the ledger is overloaded; retry later") from None
        return job.future

    def _ensure_writer(self) -> None:
        if self._writer is not None:
            return
        with self._writer_start:
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="paywire-ledger-writer", daemon=True
                )
                self._writer.start()

    def _write_loop(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=EXPIRY_POLL_S)
            except queue.Empty:
                self._commit([])  # nothing queued: only expire holds that are due
                continue
            if first is None:
                break
            jobs = [first]
            count = first.size
            while count < self._max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
                count += job.size
            self._commit(jobs)

    def _commit(self, jobs: list[_Job]) -> None:
        try:
            transaction = self.store.begin_write()
        except Exception as error:
            _fail(jobs, _unavailable(error))
            return
        try:
            results = self._apply(transaction, jobs)
        except Exception as error:
            transaction.rollback()
            _fail(jobs, _unavailable(error))
            return
        for job, (ok, value) in zip(jobs, results, strict=True):
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)

    def _apply(self, transaction: WriteTransaction, jobs: list[_Job]) -> list[tuple[bool, Any]]:
        head = transaction.head
        engine = Engine(
            transaction,
            next_index=head.size,
            last_timestamp=head.last_timestamp,
            clock=self.clock,
        )
        account_ids, transfer_ids = requested_ids(r for job in jobs for r in job.transfers)
        account_ids.update(job.accounts.id for job in jobs if job.accounts is not None)
        limit_ids = requested_limits(r for job in jobs for r in job.transfers)
        for job in jobs:
            if job.limit is not None:
                limit_ids.add(job.limit.id)
            elif job.close_limit is not None:
                limit_ids.add(job.close_limit[0])
        due = transaction.due_holds(max(self.clock(), head.last_timestamp), MAX_EXPIRIES_PER_BATCH)
        engine.prefetch(account_ids, transfer_ids | set(due), limit_ids)
        for hold_id in due:
            try:
                engine.expire(hold_id)
            except LedgerError:  # resolved since the query: nothing to expire
                continue
        results: list[tuple[bool, Any]] = []
        for job in jobs:
            try:
                if job.accounts is not None:
                    results.append((True, engine.open_account(job.accounts)[0]))
                elif job.limit is not None:
                    state = engine.open_limit(job.limit)[0]
                    results.append((True, state.status(self._now(engine))))
                elif job.close_limit is not None:
                    state = engine.close_limit(*job.close_limit)[0]
                    results.append((True, state.status(self._now(engine))))
                elif job.many:
                    results.append((True, engine.submit_each(job.transfers)))
                else:
                    results.append((True, engine.submit(job.transfers, linked=job.linked)))
            except LedgerError as error:
                results.append((False, error))
        if engine.records:
            frontier = merkle.Frontier.from_bytes(head.size, head.frontier)
            leaves = [merkle.leaf_hash(record.data) for record in engine.records]
            nodes = [
                StoredNode(node.level, node.index, node.hash)
                for leaf in leaves
                for node in frontier.append(leaf)
                if merkle.is_stored_level(node.level)
            ]
            assert frontier.size == engine.next_index
            first_index = engine.records[0].index
            transaction.write(
                BatchWrite(
                    records=engine.records,
                    leaf_hashes=leaves,
                    nodes=nodes,
                    dirty_accounts=list(engine.dirty_accounts.values()),
                    dirty_holds=list(engine.dirty_holds.values()),
                    head=LogHead(frontier.size, frontier.to_bytes(), engine.last_timestamp),
                    dirty_limits=list(engine.dirty_limits.values()),
                    usage=engine.usage_rows(),
                )
            )
            transaction.commit()
            self._remember_leaves(first_index, leaves)
        else:
            transaction.rollback()
        return results

    def _now(self, engine: Engine) -> int:
        return max(self.clock(), engine.last_timestamp)

    def _remember_leaves(self, first_index: int, leaves: list[bytes]) -> None:
        with self._leaves_lock:
            for offset, leaf in enumerate(leaves):
                self._recent_leaves[first_index + offset] = leaf
            while len(self._recent_leaves) > RECENT_LEAVES:
                self._recent_leaves.popitem(last=False)

    def leaf_hash(self, log_index: int) -> bytes:
        """The Merkle leaf hash of log entry `log_index` (recent ones from memory)."""
        with self._leaves_lock:
            leaf = self._recent_leaves.get(log_index)
        if leaf is not None:
            return leaf
        with self.reader() as reader:
            return reader.leaf_hashes(log_index, log_index + 1)[0]


def _future() -> concurrent.futures.Future[Any]:
    return concurrent.futures.Future()


def _unavailable(error: Exception) -> LedgerError:
    if isinstance(error, LedgerError):
        return error
    return LedgerUnavailable(f"the ledger could not commit ({type(error).__name__}: {error})")


def _fail(jobs: list[_Job], error: LedgerError) -> None:
    for job in jobs:
        job.future.set_exception(error)


__all__ = ["Ledger", "TreeHead", "new_id"]
