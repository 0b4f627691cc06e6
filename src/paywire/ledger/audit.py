"""Re-derive the books from the log alone, and say where they go wrong.

`Auditor` takes log entries and signed checkpoints in order and checks, for each entry:
that it is canonical and in sequence, that the ledger's own rules admit it (by replaying it
through the same `Engine` and comparing the bytes it produces: a transfer that names spend
limits is checked against them again, their usage recomputed from the log), and for each
checkpoint: that it is signed by the operator, names this ledger, and commits to the Merkle root of
exactly the entries before it, consistently with the checkpoint before it. At the end,
every asset's postings must sum to zero.

`paywire ledger verify` runs it over a store (and also compares the store's balances and
indexes with what the log says); `paywire audit` runs it over an exported file with no
database at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from paywire.errors import PaywireError
from paywire.ledger import merkle
from paywire.ledger.checkpoint import Checkpoint
from paywire.ledger.engine import Engine
from paywire.ledger.entries import (
    AccountEntry,
    LimitCloseEntry,
    LimitEntry,
    TransferEntry,
    decode_entry,
)
from paywire.ledger.model import (
    Balance,
    NewAccount,
    NewLimit,
    NewTransfer,
    TransferKind,
)
from paywire.ledger.state import AccountState, LimitState, TransferState
from paywire.money import Amount, Asset

MAX_PROBLEMS = 100
"""Problems kept in a report; the first is what matters, the rest are context."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, located by log index (None: not tied to one entry)."""

    index: int | None
    message: str
    line: int | None = None
    """The line of an exported file it was found on, when auditing a file."""

    def __str__(self) -> str:
        where = "log" if self.index is None else f"entry {self.index}"
        if self.line is not None:
            where += f" (line {self.line})"
        return f"{where}: {self.message}"


@dataclass(slots=True)
class AuditReport:
    """What an audit found. `ok` only when there is no problem at all."""

    ledger_id: str
    operator: str | None
    entries: int = 0
    accounts: int = 0
    transfers: int = 0
    limits: int = 0
    """Spend limits opened."""
    checkpoints: int = 0
    covered_size: int = 0
    root_hash: bytes = merkle.EMPTY_ROOT
    balances: dict[str, Balance] = field(default_factory=dict)
    assets: dict[str, int] = field(default_factory=dict)
    """Per asset, the sum of every account's posted net balance (zero when conserved)."""
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None


class _NoState:
    """The auditor's engine starts from nothing: all state comes from the log."""

    def load_accounts(self, ids: Sequence[str]) -> dict[str, AccountState]:
        return {}

    def load_transfers(self, ids: Sequence[str]) -> dict[str, TransferState]:
        return {}

    def load_limits(self, ids: Sequence[str]) -> dict[str, LimitState]:
        return {}

    def load_accounts_and_limits(
        self, account_ids: Sequence[str], limit_ids: Sequence[str]
    ) -> tuple[dict[str, AccountState], dict[str, LimitState]]:
        return {}, {}

    def entry(self, index: int) -> bytes | None:
        return None


class _Stop(Exception):
    """The first problem in the log: replaying further would only echo it."""


class Auditor:
    """Feed entries (`add_entry`) and checkpoints (`add_checkpoint`) in log order, then
    call `finish`. Checkpoints go right after the entry that completes their tree size."""

    def __init__(self, ledger_id: str, operator: str | None) -> None:
        self.report = AuditReport(ledger_id=ledger_id, operator=operator)
        self._timestamp = 0
        self._engine = Engine(_NoState(), next_index=0, last_timestamp=0, clock=self._now)
        self._tree = merkle.InMemoryNodeStore()
        self._last_checkpoint: Checkpoint | None = None
        self._stopped = False
        self.line: int | None = None
        """The file line being read, set by an export reader to locate problems."""

    def _now(self) -> int:
        return self._timestamp

    @property
    def size(self) -> int:
        return self._tree.size

    @property
    def tree(self) -> merkle.InMemoryNodeStore:
        """The Merkle tree of the entries replayed so far."""
        return self._tree

    def problem(self, index: int | None, message: str) -> None:
        if len(self.report.problems) < MAX_PROBLEMS:
            self.report.problems.append(Problem(index, message, self.line))

    def add_entry(self, data: bytes, *, recorded_leaf: bytes | None = None) -> None:
        """Replay one log entry (its exact bytes). `recorded_leaf` is the leaf hash the
        ledger recorded for it, when known: the tree is built from those, so a changed
        entry is named here, and a changed record is caught by the signed root."""
        if self._stopped:
            return
        index = self.size
        leaf = merkle.leaf_hash(data)
        try:
            if recorded_leaf is not None and recorded_leaf != leaf:
                self._stop(index, "its bytes do not hash to the leaf the ledger recorded")
            self._replay(index, data)
        except _Stop:
            self._stopped = True
            return
        self._tree.append(leaf)
        self.report.entries += 1

    def _replay(self, index: int, data: bytes) -> None:
        try:
            entry = decode_entry(data)
        except PaywireError as error:
            self._stop(index, str(error))
        if entry.index != index:
            self._stop(index, f"entry says it is number {entry.index}, expected {index}")
        if entry.timestamp <= self._engine.last_timestamp:
            self._stop(index, "timestamp does not increase")
        self._timestamp = entry.timestamp
        engine = self._engine
        try:
            if isinstance(entry, AccountEntry):
                if engine.account(entry.id) is not None:
                    self._stop(index, f"account {entry.id!r} is opened twice")
                engine.open_account(
                    NewAccount(
                        id=entry.id,
                        asset=Asset(entry.asset, entry.decimals),
                        kind=entry.kind,
                        owner=entry.owner,
                        flags=entry.flags,
                        metadata=entry.metadata,
                    )
                )
                self.report.accounts += 1
            elif isinstance(entry, LimitEntry):
                if engine.limit(entry.id) is not None:
                    self._stop(index, f"limit {entry.id!r} is opened twice")
                engine.open_limit(
                    NewLimit(
                        id=entry.id,
                        asset=Asset(entry.asset, entry.decimals),
                        cap_atomic=entry.cap,
                        window_s=entry.window_s,
                        metadata=entry.metadata,
                    )
                )
                self.report.limits += 1
            elif isinstance(entry, LimitCloseEntry):
                limit = engine.limit(entry.id)
                if limit is not None and limit.closed:
                    self._stop(index, f"limit {entry.id!r} is closed twice")
                engine.close_limit(entry.id, entry.metadata)
            else:
                if engine.transfer_state(entry.id) is not None:
                    self._stop(index, f"transfer id {entry.id!r} is used twice")
                self._replay_transfer(entry)
                self.report.transfers += 1
        except PaywireError as error:
            self._stop(index, f"the ledger's rules refuse it: {error}")
        produced = engine.records[-1].data if engine.records else b""
        engine.forget_batch()
        if produced != data:
            self._stop(index, f"it is not what its own request produces ({_diff(data, produced)})")

    def _replay_transfer(self, entry: TransferEntry) -> None:
        engine = self._engine
        if entry.kind is TransferKind.EXPIRE:
            if entry.pending_id is None or entry.id != entry.pending_id + "~expire":
                self._stop(entry.index, "an expire transfer must be named <hold id>~expire")
            engine.expire(entry.pending_id)
            return
        account = engine.account(entry.debit)
        asset = (
            account.asset
            if account is not None and account.asset.code == entry.asset
            else Asset(entry.asset, 0)  # a mismatch the engine reports in its own words
        )
        amount = Amount(entry.amount, asset)
        common = {"metadata": entry.metadata, "authorization": entry.authorization}
        if entry.kind in (TransferKind.SINGLE, TransferKind.PENDING):
            request = NewTransfer(
                id=entry.id,
                kind=entry.kind,
                debit_account_id=entry.debit,
                credit_account_id=entry.credit,
                amount=amount,
                code=entry.code,
                timeout_s=entry.timeout_s,
                limits=entry.limits,
                **common,  # type: ignore[arg-type]
            )
        else:
            request = NewTransfer(
                id=entry.id,
                kind=entry.kind,
                pending_id=entry.pending_id,
                amount=amount if entry.kind is TransferKind.POST else None,
                code=entry.code,
                **common,  # type: ignore[arg-type]
            )
        engine.submit([request], linked=False)

    def _stop(self, index: int, message: str) -> NoReturn:
        self.problem(index, message)
        raise _Stop

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Check a signed checkpoint against the entries replayed so far."""
        if self._stopped:
            return
        size = self.size
        where = f"checkpoint at tree size {checkpoint.tree_size}"
        if checkpoint.tree_size != size:
            self.problem(None, f"{where} comes after {size} entries")
            return
        if checkpoint.ledger_id != self.report.ledger_id:
            self.problem(None, f"{where} is for ledger {checkpoint.ledger_id!r}")
        try:
            signer = checkpoint.signer()
        except PaywireError as error:
            self.problem(None, f"{where} has a bad signature: {error}")
            return
        operator = self.report.operator
        if operator is None:
            self.report.operator = signer
        elif signer != operator:
            self.problem(None, f"{where} is signed by {signer}, not the operator {operator}")
        root = self._tree.reader(size).root()
        if root != checkpoint.root_hash:
            self.problem(None, f"{where}: its root does not match the entries before it")
        previous = self._last_checkpoint
        if previous is not None:
            if checkpoint.tree_size <= previous.tree_size:
                self.problem(None, f"{where} does not grow the tree")
            elif checkpoint.timestamp < previous.timestamp:
                self.problem(None, f"{where} is older than the checkpoint before it")
            else:
                proof = self._tree.reader(size).consistency_proof(previous.tree_size)
                if not merkle.verify_consistency(
                    previous.tree_size, size, previous.root_hash, checkpoint.root_hash, proof
                ):
                    self.problem(
                        None, f"{where} is not consistent with tree size {previous.tree_size}"
                    )
        if checkpoint.timestamp < self._engine.last_timestamp:
            self.problem(None, f"{where} is dated before its last entry")
        self._last_checkpoint = checkpoint
        self.report.checkpoints += 1
        self.report.covered_size = size

    def accounts(self) -> dict[str, AccountState]:
        """Every account as the replay left it."""
        return self._engine.replayed_accounts()

    def transfers(self) -> dict[str, TransferState]:
        """Every transfer as the replay left it (holds with their final state)."""
        return self._engine.replayed_transfers()

    def limits(self) -> dict[str, LimitState]:
        """Every spend limit as the replay left it (closed or not, with its usage)."""
        return self._engine.replayed_limits()

    def finish(self, *, require_checkpoint: bool = True) -> AuditReport:
        """Close the audit: conservation per asset, and a signature over every entry."""
        report = self.report
        report.root_hash = self._tree.reader(self.size).root()
        totals: dict[str, list[int]] = {}
        for state in self.accounts().values():
            report.balances[state.id] = state.balance()
            sums = totals.setdefault(state.asset.code, [0, 0])
            sums[0] += state.credits_posted - state.debits_posted
            sums[1] += state.credits_pending - state.debits_pending
        for code, (posted, pending) in sorted(totals.items()):
            report.assets[code] = posted
            if posted != 0 or pending != 0:
                self.problem(None, f"{code} does not balance: postings sum to {posted}/{pending}")
        if require_checkpoint and not self._stopped and report.covered_size < self.size:
            self.problem(
                report.covered_size if report.covered_size < self.size else None,
                f"entries {report.covered_size}..{self.size - 1} are not covered by a signed "
                "checkpoint",
            )
        return report


def _diff(expected: bytes, produced: bytes) -> str:
    try:
        left, right = decode_entry(expected), decode_entry(produced)
    except PaywireError:
        return "the bytes differ"
    fields = [
        name
        for name in left.__dataclass_fields__
        if getattr(left, name, None) != getattr(right, name, None)
    ]
    return "fields differ: " + ", ".join(fields) if fields else "the bytes differ"
