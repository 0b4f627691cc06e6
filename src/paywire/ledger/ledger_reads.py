"""The `Ledger`'s reads: snapshots of the store, straight from the caller's thread.

Every read runs in one snapshot transaction of the store (`reader`), so what a call
returns is from one instant, whatever the writers do meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from paywire.ledger import task_index
from paywire.ledger.engine import TransferState, public_transfer
from paywire.ledger.entries import MalformedEntry, TransferEntry, decode_entry
from paywire.ledger.errors import (
    AccountNotFound,
    LimitNotFound,
    StoreCorrupt,
    TooManyTransfers,
    TransferNotFound,
)
from paywire.ledger.log import TransparencyLog, TreeHead
from paywire.ledger.model import (
    Account,
    AccountKind,
    Balance,
    HoldStatus,
    LimitStatus,
    Transfer,
)
from paywire.ledger.store import DEFAULT_PAGE_ROWS, MAX_READ_ROWS, Store, StoreReader


class LedgerReads:
    """The read half of `Ledger` (which sets `store`, `clock` and `log`)."""

    store: Store
    clock: Callable[[], int]
    log: TransparencyLog

    @contextmanager
    def reader(self) -> Iterator[StoreReader]:
        """A snapshot of the store: every read inside sees the same instant."""
        with self.store.read() as reader:
            yield reader

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """Several reads that all see one instant (one read transaction: on PostgreSQL
        one connection and one BEGIN for all of them)."""
        with self.reader() as reader:
            yield Snapshot(reader)

    def account(self, account_id: str) -> Account:
        """An account with its balance now."""
        with self.snapshot() as snapshot:
            return snapshot.account(account_id)

    def balance(self, account_id: str) -> Balance:
        return self.account(account_id).balance

    def accounts(
        self,
        *,
        kind: AccountKind | None = None,
        owner: str | None = None,
        after: str | None = None,
        limit: int = DEFAULT_PAGE_ROWS,
    ) -> list[Account]:
        """Accounts in id order, a page at a time (pass the last id as `after`)."""
        with self.reader() as reader:
            states = reader.list_accounts(kind=kind, owner=owner, after=after, limit=limit)
        return [state.to_account() for state in states]

    def transfer(self, transfer_id: str) -> Transfer:
        """A committed transfer by id."""
        with self.snapshot() as snapshot:
            return snapshot.transfer(transfer_id)

    def hold_status(self, transfer_id: str) -> HoldStatus:
        """Whether a pending transfer is still pending, posted, voided or expired."""
        with self.snapshot() as snapshot:
            return snapshot.hold_status(transfer_id)

    def history(
        self, account_id: str, *, before: int | None = None, limit: int = DEFAULT_PAGE_ROWS
    ) -> list[Transfer]:
        """Transfers touching an account, newest first (page with `before=<log_index>`)."""
        with self.reader() as reader:
            if reader.get_account(account_id) is None:
                raise AccountNotFound(f"account {account_id!r} does not exist")
            transfers = []
            for index in reader.history(account_id, before=before, limit=limit):
                data = reader.entry(index)
                if data is None:
                    raise StoreCorrupt(f"log entry {index} is missing")
                entry = decode_entry(data)
                if not isinstance(entry, TransferEntry):
                    raise StoreCorrupt(f"log entry {index} is not a transfer")
                state = reader.get_transfer(entry.id)
                if state is None:
                    raise StoreCorrupt(f"transfer {entry.id!r} is in the log but not indexed")
                transfers.append(_read_transfer(reader, state))
        return transfers

    def task_transfers(
        self, task_id: str, *, after: int | None = None, limit: int = DEFAULT_PAGE_ROWS
    ) -> list[Transfer]:
        """A task's transfers, oldest first (log order), a page at a time (pass the last
        one's `log_index` as `after`): those tagged ``metadata["task"] = task_id``, and
        the posts, voids and expiries of its holds. An empty list for a task never seen."""
        task = task_index.check_task_id(task_id)
        task_index.check_page(after, limit)
        with self.reader() as reader:
            return _task_page(reader, task, after, limit)

    def all_task_transfers(self, task_id: str) -> list[Transfer]:
        """All of a task's transfers, oldest first, read in one snapshot; `TooManyTransfers`
        past `task_index.MAX_TASK_TRANSFERS` (page with `task_transfers` then)."""
        task = task_index.check_task_id(task_id)
        bound = task_index.MAX_TASK_TRANSFERS
        found: list[Transfer] = []
        with self.reader() as reader:  # one snapshot: the pages join without a seam
            while True:
                want = min(MAX_READ_ROWS, bound + 1 - len(found))  # one past: to tell
                after = found[-1].log_index if found else None
                page = _task_page(reader, task, after, want)
                found += page
                if len(found) > bound:
                    raise TooManyTransfers(
                        f"task {task!r} has more than {bound} transfers; read them in pages "
                        "with task_transfers(after=...)"
                    )
                if len(page) < want:
                    return found

    def limit(self, limit_id: str) -> LimitStatus:
        """A spend limit and what it has used now (in its window ending now, or in all)."""
        with self.reader() as reader:
            state = reader.get_limit(limit_id)
        if state is None:
            raise LimitNotFound(f"limit {limit_id!r} does not exist")
        return state.status(self.clock())

    def head(self) -> TreeHead:
        """The log's current size and Merkle root (see `log` for proofs and checkpoints)."""
        return self.log.head()


def _task_page(reader: StoreReader, task: str, after: int | None, limit: int) -> list[Transfer]:
    rows = reader.task_transfers(task, after=after, limit=limit)
    # One query for the accounts of the whole page (a transfer's asset is its account's).
    accounts = reader.load_accounts(sorted({state.debit for state, _ in rows}))
    transfers = []
    for state, data in rows:
        try:
            entry = decode_entry(data)
        except MalformedEntry as error:
            raise StoreCorrupt(f"log entry {state.log_index}: {error}") from None
        account = accounts.get(state.debit)
        if not isinstance(entry, TransferEntry) or entry.id != state.id or account is None:
            raise StoreCorrupt(f"log entry {state.log_index} is not transfer {state.id!r}")
        transfers.append(public_transfer(state, entry, account.asset))
    return transfers


class Snapshot:
    """Reads of one instant of the store (`LedgerReads.snapshot`); valid inside its block."""

    def __init__(self, reader: StoreReader) -> None:
        self._reader = reader

    def find_account(self, account_id: str) -> Account | None:
        """An account with its balance, or None if there is none."""
        state = self._reader.get_account(account_id)
        return None if state is None else state.to_account()

    def account(self, account_id: str) -> Account:
        found = self.find_account(account_id)
        if found is None:
            raise AccountNotFound(f"account {account_id!r} does not exist")
        return found

    def has_transfer(self, transfer_id: str) -> bool:
        return self._reader.get_transfer(transfer_id) is not None

    def transfer(self, transfer_id: str) -> Transfer:
        state = self._reader.get_transfer(transfer_id)
        if state is None:
            raise TransferNotFound(f"transfer {transfer_id!r} does not exist")
        return _read_transfer(self._reader, state)

    def hold_status(self, transfer_id: str) -> HoldStatus:
        state = self._reader.get_transfer(transfer_id)
        if state is None or state.hold_state is None:
            raise TransferNotFound(f"no pending transfer {transfer_id!r}")
        return HoldStatus(_read_transfer(self._reader, state), state.hold_state, state.resolved_by)


def _read_transfer(reader: StoreReader, state: TransferState) -> Transfer:
    data = reader.entry(state.log_index)
    account = reader.get_account(state.debit)
    if data is None or account is None:
        raise StoreCorrupt(f"transfer {state.id!r} has no log entry or account")
    entry = decode_entry(data)
    if not isinstance(entry, TransferEntry) or entry.id != state.id:
        raise StoreCorrupt(f"log entry {state.log_index} is not transfer {state.id!r}")
    return public_transfer(state, entry, account.asset)
