"""A stateful property test: random sequences of ledger operations against a reference model.

Hypothesis drives a `LedgerMachine` through opening accounts (two assets, bounded and
unbounded kinds), transfers, holds with and without timeouts, posts (in full, in part, too
much), voids, linked batches (some failing), `submit_many`, spend limits (opened, closed,
named by transfers and holds: totals and rolling windows of a few seconds that roll as the
clock moves), retries of earlier requests
(same body: a replay; another body: a conflict), the clock moving past timeouts,
checkpoints with proofs and an offline audit of an export, and switching between two
ledgers open on the same store (like two processes) or closing one and opening it again.

The model (`Model`) is a plain re-statement of the ledger's rules over dicts. After every
step the machine checks that the ledger agrees with it: every balance, every hold's state,
every limit's usage, the log's size, conservation per asset, every account bound, and
`log.verify()`. Every
refusal the ledger gives must be the one the model predicts, and every write the model
expects must succeed with the predicted log index and fields.

Each example runs on a fresh store of the parametrized kind: a new SQLite file, or a new
PostgreSQL database on the session's throwaway server.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from paywire.crypto.keys import PrivateKey
from paywire.ledger import (
    AccountFlag,
    AccountKind,
    AccountNotFound,
    AssetMismatch,
    Balance,
    BalanceOverflow,
    ExceedsCredits,
    ExceedsDebits,
    HoldState,
    IdempotencyConflict,
    Ledger,
    LedgerError,
    LimitClosed,
    LimitExceeded,
    LimitNotFound,
    LinkedBatchFailed,
    NewAccount,
    NewLimit,
    NewTransfer,
    NotPending,
    PendingAlreadyPosted,
    PendingAlreadyVoided,
    PendingExpired,
    PendingNotFound,
    PostExceedsPending,
    SameAccount,
    Transfer,
    TransferKind,
    TransferNotFound,
    hold,
    open_ledger,
    post,
    transfer,
    void,
)
from paywire.ledger.export import audit_export
from paywire.ledger.model import Metadata, bucket_seconds, window_span
from paywire.money import EURC, MAX_ATOMIC, USDC, Amount, Asset

NS = 1_000_000_000
HAIR_NS = 1_000_000
"""Clock steps are whole seconds plus a millisecond, so no hold's expiry ever falls within
the few nanoseconds by which ledger timestamps run ahead of the frozen clock."""

BOUND_DEBITS = AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS
BOUND_CREDITS = AccountFlag.CREDITS_MUST_NOT_EXCEED_DEBITS

ACCOUNTS: dict[str, NewAccount] = {
    spec.id: spec
    for spec in (
        NewAccount("world", USDC, AccountKind.EXTERNAL),
        NewAccount("alice", USDC, AccountKind.AGENT, owner="0xA11CE"),
        NewAccount("bob", USDC, AccountKind.PROVIDER),
        NewAccount("escrow", USDC, AccountKind.ESCROW, metadata={"task": "t-1"}),
        NewAccount("capped", USDC, AccountKind.EXTERNAL, flags=frozenset({BOUND_CREDITS})),
        NewAccount("eu-world", EURC, AccountKind.EXTERNAL),
        NewAccount("eve", EURC, AccountKind.AGENT),
        NewAccount("fees", EURC, AccountKind.FEES),
    )
}
INITIAL = ("world", "alice", "eu-world", "eve")
ACCOUNT_IDS = sorted(ACCOUNTS)

LIMITS: dict[str, NewLimit] = {
    spec.id: spec
    for spec in (
        NewLimit("budget", USDC, 2_000, metadata={"mandate": "m-1"}),
        NewLimit("per-3s", USDC, 300, 3),
        NewLimit("per-10s", USDC, 600, 10),
        NewLimit("per-2m", USDC, 900, 120),  # buckets of 2 seconds
        NewLimit("eu-budget", EURC, 1_000),
    )
}
INITIAL_LIMITS = ("budget", "per-3s", "per-2m", "eu-budget")
LIMIT_IDS = sorted(LIMITS)

account_ids = st.sampled_from(ACCOUNT_IDS)
amount_kinds = st.sampled_from(["small"] * 14 + ["available"] * 2 + ["available+1"] * 2 + ["huge"])
"""A small number, exactly what the debit account can spend, one more, or 2^128 - 1."""
asset_choices = st.sampled_from(["own"] * 7 + ["other"])
timeouts = st.sampled_from([None, None, 1, 2, 5, 30])
metadatas: st.SearchStrategy[Metadata | None] = st.sampled_from(
    [None, None, {"task": "t-9"}, {"tokens": {"in": 3, "out": 5}}]
)
authorizations = st.sampled_from([None, None, '{"sig":"0x01","payer":"alice"}'])
clock_steps = st.sampled_from([0, 1, 2, 5, 31])


def body(request: NewTransfer) -> tuple[object, ...]:
    """What makes two requests under one id "the same request" (every field as sent)."""
    amount = request.amount
    return (
        str(request.kind),
        request.debit_account_id,
        request.credit_account_id,
        None if amount is None else (amount.atomic, amount.asset.code),
        request.code,
        request.pending_id,
        request.timeout_s,
        json.dumps(request.metadata or {}, sort_keys=True),
        request.authorization,
        request.limits,
    )


class Clock:
    """Wall time in ns that the machine moves by hand."""

    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


# ----- the reference model ----------------------------------------------------------------


class Refused(Exception):
    """What the model predicts the ledger refuses, and why."""

    def __init__(
        self,
        error: type[LedgerError],
        *,
        index: int | None = None,
        cause: type[LedgerError] | None = None,
    ) -> None:
        super().__init__(error.__name__ if index is None else f"{error.__name__}[{index}]")
        self.error = error
        self.index = index
        self.cause = cause


@dataclass
class MAccount:
    spec: NewAccount
    log_index: int
    dp: int = 0
    dpo: int = 0
    cp: int = 0
    cpo: int = 0

    def balance(self) -> Balance:
        return Balance(self.dp, self.dpo, self.cp, self.cpo)

    def add(self, counter: str, delta: int) -> None:
        value = getattr(self, counter) + delta
        if value > MAX_ATOMIC:
            raise Refused(BalanceOverflow)
        assert value >= 0, f"model bug: {self.spec.id}.{counter} < 0"
        setattr(self, counter, value)


@dataclass
class MTransfer:
    id: str
    kind: TransferKind
    body: tuple[object, ...] | None
    """The request's body (None for the ledger's own expire transfers)."""
    request: NewTransfer | None
    debit: str
    credit: str
    amount: int
    asset: Asset
    code: int
    log_index: int
    pending_id: str | None = None
    expires_at: int | None = None
    """The model's expiry: the clock when the hold was written plus its timeout."""
    state: HoldState | None = None
    resolved_by: str | None = None
    limits: tuple[str, ...] = ()
    charged_at: int = 0
    """The model's time when it was written: its limits count it in that time's bucket."""
    charged: int = 0
    """What it counts against its limits: a transfer its amount, a hold its amount until
    resolved, then what was posted of it (nothing once voided or expired)."""


@dataclass
class MLimit:
    spec: NewLimit
    log_index: int
    closed: bool = False


@dataclass
class Model:
    now: int
    accounts: dict[str, MAccount] = field(default_factory=dict)
    transfers: dict[str, MTransfer] = field(default_factory=dict)
    entries: int = 0
    limits: dict[str, MLimit] = field(default_factory=dict)

    def clone(self) -> Model:
        return Model(
            self.now,
            {k: dataclasses.replace(v) for k, v in self.accounts.items()},
            {k: dataclasses.replace(v) for k, v in self.transfers.items()},
            self.entries,
            {k: dataclasses.replace(v) for k, v in self.limits.items()},
        )

    # -- limits

    def open_limit(self, spec: NewLimit) -> MLimit:
        existing = self.limits.get(spec.id)
        if existing is not None:
            if existing.spec != spec:
                raise Refused(IdempotencyConflict)
            return existing
        made = self.limits[spec.id] = MLimit(spec, self.entries)
        self.entries += 1
        return made

    def close_limit(self, limit_id: str) -> MLimit:
        limit = self.limits.get(limit_id)
        if limit is None:
            raise Refused(LimitNotFound)
        if not limit.closed:
            limit.closed = True
            self.entries += 1
        return limit

    def limit_total(self, limit_id: str) -> int:
        return sum(t.charged for t in self.transfers.values() if limit_id in t.limits)

    def limit_used(self, limit_id: str, at: int) -> int:
        """The charges of the buckets that overlap the window ending at `at` (all of
        them, for a total)."""
        window_s = self.limits[limit_id].spec.window_s
        if window_s is None:
            return self.limit_total(limit_id)
        first, last = window_span(window_s, at)
        bucket_ns = bucket_seconds(window_s) * NS
        return sum(
            t.charged
            for t in self.transfers.values()
            if limit_id in t.limits and first <= t.charged_at // bucket_ns <= last
        )

    # -- accounts

    def open_account(self, spec: NewAccount) -> tuple[MAccount, bool]:
        existing = self.accounts.get(spec.id)
        if existing is not None:
            if existing.spec != spec:
                raise Refused(IdempotencyConflict)
            return existing, True
        account = MAccount(spec, self.entries)
        self.accounts[spec.id] = account
        self.entries += 1
        return account, False

    # -- time

    def expire_due(self) -> list[MTransfer]:
        """What every write transaction does first: expire the holds whose time is up."""
        due = sorted(
            (
                t
                for t in self.transfers.values()
                if t.state is HoldState.PENDING
                and t.expires_at is not None
                and t.expires_at <= self.now
            ),
            key=lambda t: (t.expires_at, t.log_index),
        )
        expired = []
        for held in due:
            self.accounts[held.debit].add("dp", -held.amount)
            self.accounts[held.credit].add("cp", -held.amount)
            held.state = HoldState.EXPIRED
            held.charged = 0
            held.resolved_by = held.id + "~expire"
            expired.append(
                self._record(
                    held.resolved_by,
                    TransferKind.EXPIRE,
                    None,
                    None,
                    held.debit,
                    held.credit,
                    held.amount,
                    held.asset,
                    held.code,
                    pending_id=held.id,
                )
            )
        return expired

    # -- transfers

    def _record(
        self,
        tid: str,
        kind: TransferKind,
        body: tuple[object, ...] | None,
        request: NewTransfer | None,
        debit: str,
        credit: str,
        amount: int,
        asset: Asset,
        code: int,
        **extra: Any,
    ) -> MTransfer:
        made = MTransfer(
            tid, kind, body, request, debit, credit, amount, asset, code, self.entries, **extra
        )
        self.transfers[tid] = made
        self.entries += 1
        return made

    def submit(self, request: NewTransfer) -> tuple[MTransfer, bool]:
        """One request on its own (mutates: call it on a clone)."""
        existing = self.transfers.get(request.id)
        if existing is not None:
            if existing.body != body(request):
                raise Refused(IdempotencyConflict)
            return existing, True
        return self._apply(request), False

    def submit_linked(self, requests: Sequence[NewTransfer]) -> list[tuple[MTransfer, bool]]:
        """All or nothing (mutates: call it on a clone)."""
        existing = [self.transfers.get(r.id) for r in requests]
        if any(e is not None for e in existing):
            replays = []
            for request, found in zip(requests, existing, strict=True):
                if found is None or found.body != body(request):
                    raise Refused(IdempotencyConflict)
                replays.append((found, True))
            return replays
        done = []
        for index, request in enumerate(requests):
            try:
                done.append(self.submit(request))  # a duplicate in the batch is a replay
            except Refused as refusal:
                raise Refused(LinkedBatchFailed, index=index, cause=refusal.error) from None
        return done

    def _apply(self, request: NewTransfer) -> MTransfer:
        if request.kind in (TransferKind.SINGLE, TransferKind.PENDING):
            return self._move(request)
        return self._resolve(request)

    def _move(self, request: NewTransfer) -> MTransfer:
        assert request.debit_account_id and request.credit_account_id and request.amount
        debit = self.accounts.get(request.debit_account_id)
        credit = self.accounts.get(request.credit_account_id)
        if debit is None or credit is None:
            raise Refused(AccountNotFound)
        if debit is credit:
            raise Refused(SameAccount)
        asset = request.amount.asset
        if debit.spec.asset != asset or credit.spec.asset != asset:
            raise Refused(AssetMismatch)
        atomic = request.amount.atomic
        pending = request.kind is TransferKind.PENDING
        debit.add("dp" if pending else "dpo", atomic)
        credit.add("cp" if pending else "cpo", atomic)
        if BOUND_DEBITS in debit.spec.resolved_flags and debit.dp + debit.dpo > debit.cpo:
            raise Refused(ExceedsCredits)
        if BOUND_CREDITS in credit.spec.resolved_flags and credit.cp + credit.cpo > credit.dpo:
            raise Refused(ExceedsDebits)
        for limit_id in request.limits:
            limit = self.limits.get(limit_id)
            if limit is None:
                raise Refused(LimitNotFound)
            if limit.closed:
                raise Refused(LimitClosed)
            if limit.spec.asset != asset:
                raise Refused(AssetMismatch)
            if self.limit_used(limit_id, self.now) + atomic > limit.spec.cap_atomic:
                raise Refused(LimitExceeded)
        assert request.code is not None
        expires_at = None
        if pending and request.timeout_s is not None:
            expires_at = self.now + request.timeout_s * NS
        return self._record(
            request.id,
            request.kind,
            body(request),
            request,
            debit.spec.id,
            credit.spec.id,
            atomic,
            asset,
            request.code,
            expires_at=expires_at,
            state=HoldState.PENDING if pending else None,
            limits=request.limits,
            charged_at=self.now,
            charged=atomic,
        )

    def _resolve(self, request: NewTransfer) -> MTransfer:
        assert request.pending_id is not None
        held = self.transfers.get(request.pending_id)
        if held is None:
            raise Refused(PendingNotFound)
        if held.kind is not TransferKind.PENDING:
            raise Refused(NotPending)
        if held.state is HoldState.POSTED:
            raise Refused(PendingAlreadyPosted)
        if held.state is HoldState.VOIDED:
            raise Refused(PendingAlreadyVoided)
        if held.state is HoldState.EXPIRED or (
            held.expires_at is not None and held.expires_at <= self.now
        ):
            raise Refused(PendingExpired)
        debit, credit = self.accounts[held.debit], self.accounts[held.credit]
        posted = held.amount
        if request.kind is TransferKind.POST and request.amount is not None:
            if request.amount.asset != held.asset:
                raise Refused(AssetMismatch)
            posted = request.amount.atomic
            if posted > held.amount:
                raise Refused(PostExceedsPending)
        debit.add("dp", -held.amount)
        credit.add("cp", -held.amount)
        if request.kind is TransferKind.POST:
            debit.add("dpo", posted)
            credit.add("cpo", posted)
            held.state = HoldState.POSTED
            held.charged = posted
        else:
            held.state = HoldState.VOIDED
            held.charged = 0
        held.resolved_by = request.id
        return self._record(
            request.id,
            request.kind,
            body(request),
            request,
            held.debit,
            held.credit,
            posted,
            held.asset,
            request.code if request.code is not None else held.code,
            pending_id=held.id,
        )


# ----- the machine -------------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, new_store: Callable[[], str]) -> None:
        super().__init__()
        self.workdir = Path(tempfile.mkdtemp(prefix="paywire-stateful-"))
        self.url = new_store()
        self.clock = Clock(1_800_000_000 * NS)
        self.ledgers: list[Ledger] = [open_ledger(self.url, clock=self.clock) for _ in range(2)]
        """Two ledgers on one store, like two processes; `ledger` is the one in use."""
        self.current = 0
        self.model = Model(self.clock.now)
        self.key = PrivateKey.generate()
        self.ids = 0
        self.requests: list[NewTransfer | list[NewTransfer]] = []
        """Every request (or linked batch) submitted, for retries."""
        self.last_timestamp = 0
        self.last_checkpoint: tuple[int, bytes] | None = None
        self.first_results: dict[str, Transfer] = {}
        """The ledger's first answer for each id written (what every replay must return)."""

    @property
    def ledger(self) -> Ledger:
        return self.ledgers[self.current]

    def teardown(self) -> None:
        for ledger in self.ledgers:
            ledger.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- helpers

    def fresh_id(self) -> str:
        self.ids += 1
        return f"t{self.ids}"

    def amount(self, spec: int | str, debit: str, asset_choice: str) -> Amount:
        asset = ACCOUNTS[debit].asset
        if asset_choice == "other":
            asset = EURC if asset == USDC else USDC
        if isinstance(spec, int):
            return asset.atomic(spec)
        if spec == "huge":
            return asset.atomic(MAX_ATOMIC)
        account = self.model.accounts.get(debit)
        available = account.balance().available if account is not None else 0
        return asset.atomic(max(1, available + (spec == "available+1")))

    def pick_hold(self, data: st.DataObject) -> str:
        """Mostly a hold still pending; sometimes any hold, a transfer that is not a hold,
        or an id that names nothing."""
        transfers = self.model.transfers.values()
        pending = [t.id for t in transfers if t.state is HoldState.PENDING]
        holds = [t.id for t in transfers if t.kind is TransferKind.PENDING]
        others = [t.id for t in transfers if t.kind in (TransferKind.SINGLE, TransferKind.POST)]
        which = data.draw(st.sampled_from(["pending"] * 6 + ["hold"] * 2 + ["other", "none"]))
        choices = {"pending": pending, "hold": holds, "other": others}.get(which) or ["no-hold"]
        choice: str = data.draw(st.sampled_from(choices), label="pending_id")
        return choice

    def post_amount(self, data: st.DataObject, pending_id: str) -> Amount | None:
        held = self.model.transfers.get(pending_id)
        asset = held.asset if held is not None else USDC
        size = held.amount if held is not None else 10
        how = data.draw(st.sampled_from(["full", "full", "part", "exact", "over", "asset"]))
        if how == "full":
            return None
        if how == "part":
            return asset.atomic(max(1, size // 2))
        if how == "exact":
            return asset.atomic(size)
        if how == "over":
            return asset.atomic(min(size + 1, MAX_ATOMIC))
        return (EURC if asset == USDC else USDC).atomic(1)

    def pick_accounts(self, data: st.DataObject) -> tuple[str, str]:
        """Mostly two open accounts of one asset; one time in ten, any two names at all."""
        opened = sorted(self.model.accounts)
        if data.draw(st.integers(0, 9), label="any accounts") == 0:
            return data.draw(account_ids, label="debit"), data.draw(account_ids, label="credit")
        debit = data.draw(st.sampled_from(opened), label="debit")
        asset = ACCOUNTS[debit].asset
        peers = [a for a in opened if a != debit and ACCOUNTS[a].asset == asset]
        credit = data.draw(st.sampled_from(peers) if peers else account_ids, label="credit")
        return debit, credit

    def pick_limits(self, data: st.DataObject, asset: Asset) -> list[str]:
        """Half the time none; else one or two of the asset's limits (one time in ten, of
        any asset)."""
        if data.draw(st.booleans(), label="no limits"):
            return []
        fitting = [lid for lid in LIMIT_IDS if LIMITS[lid].asset == asset]
        if not fitting or data.draw(st.integers(0, 9), label="any limits") == 0:
            fitting = LIMIT_IDS
        choice: list[str] = data.draw(
            st.lists(st.sampled_from(fitting), min_size=1, max_size=2, unique=True),
            label="limits",
        )
        return choice

    def build_transfer(self, data: st.DataObject) -> NewTransfer:
        kind = data.draw(st.sampled_from(["transfer", "transfer", "hold"]), label="kind")
        debit, credit = self.pick_accounts(data)
        how = data.draw(amount_kinds, label="amount")
        spec: int | str = data.draw(st.integers(1, 400), label="atomic") if how == "small" else how
        amount = self.amount(spec, debit, data.draw(asset_choices, label="asset"))
        metadata = data.draw(metadatas)
        authorization = data.draw(authorizations)
        limits = self.pick_limits(data, amount.asset)
        tid = self.fresh_id()
        if kind == "hold":
            return hold(
                tid,
                debit,
                credit,
                amount,
                timeout_s=data.draw(timeouts, label="timeout_s"),
                metadata=metadata,
                authorization=authorization,
                limits=limits,
            )
        return transfer(
            tid,
            debit,
            credit,
            amount,
            metadata=metadata,
            authorization=authorization,
            limits=limits,
        )

    def check_result(self, made: MTransfer, replayed: bool, result: Transfer) -> None:
        """The ledger's answer against the model's transfer."""
        if replayed:
            assert result.replayed, f"{made.id}: a retry was written anew"
            first = self.first_results[made.id]
            assert result == first, f"{made.id}: a replay differs from the first result"
            return
        assert not result.replayed, f"{made.id}: a new write answered as a replay"
        request = made.request
        assert request is not None
        assert result.id == made.id and result.kind is made.kind
        assert result.debit_account_id == made.debit
        assert result.credit_account_id == made.credit
        assert result.amount == Amount(made.amount, made.asset)
        assert result.code == made.code
        assert result.pending_id == made.pending_id
        assert result.log_index == made.log_index, f"{made.id}: log index"
        assert result.metadata == (request.metadata or {})
        assert result.authorization == request.authorization
        assert result.limits == request.limits
        assert result.timeout_s == request.timeout_s
        assert self.clock.now <= result.timestamp < self.clock.now + HAIR_NS
        assert result.timestamp > self.last_timestamp, "timestamps must increase"
        self.last_timestamp = result.timestamp
        if made.expires_at is None:
            assert result.expires_at is None
        else:
            assert request.timeout_s is not None
            assert result.expires_at == result.timestamp + request.timeout_s * NS
        self.first_results[made.id] = result

    def check_refusal(self, error: LedgerError, refusal: Refused) -> None:
        event(
            f"refused: {refusal.error.__name__}"
            + (f" ({refusal.cause.__name__})" if refusal.cause else "")
        )
        assert type(error) is refusal.error, f"ledger: {error!r}; model: {refusal}"
        if isinstance(error, LinkedBatchFailed):
            assert error.index == refusal.index, f"ledger: {error!r}; model: {refusal}"
            assert type(error.cause) is refusal.cause, f"ledger: {error!r}; model: {refusal}"

    def submit(self, request: NewTransfer) -> None:
        """Submit one request to the ledger and to the model; they must agree."""
        self.requests.append(request)
        self.model.expire_due()
        trial = self.model.clone()
        try:
            predicted: tuple[MTransfer, bool] | Refused = trial.submit(request)
        except Refused as refusal:
            predicted = refusal
        try:
            result: Transfer | LedgerError = self.ledger.submit(request)
        except LedgerError as error:
            result = error
        self.compare(request.id, predicted, result)
        if not isinstance(predicted, Refused):
            self.model = trial

    def compare(
        self,
        tid: str,
        predicted: tuple[MTransfer, bool] | Refused,
        result: Transfer | LedgerError,
    ) -> None:
        if isinstance(predicted, Refused):
            assert isinstance(result, LedgerError), (
                f"{tid}: model refuses ({predicted}), ledger wrote it"
            )
            self.check_refusal(result, predicted)
        else:
            assert not isinstance(result, LedgerError), f"{tid}: ledger refused: {result!r}"
            self.check_result(*predicted, result)

    # -- rules

    @initialize()
    def open_initial_accounts(self) -> None:
        for account_id in INITIAL:
            self.open(ACCOUNTS[account_id])
        self.submit(transfer(self.fresh_id(), "world", "alice", USDC.atomic(5_000)))
        self.submit(transfer(self.fresh_id(), "eu-world", "eve", EURC.atomic(5_000)))
        for limit_id in INITIAL_LIMITS:
            self.open_a_limit(LIMITS[limit_id])

    def open_a_limit(self, spec: NewLimit) -> None:
        self.model.expire_due()
        trial = self.model.clone()
        try:
            predicted: MLimit | Refused = trial.open_limit(spec)
        except Refused as refusal:
            predicted = refusal
        try:
            status = self.ledger.open_limit(spec)
        except LedgerError as error:
            assert isinstance(predicted, Refused), f"open limit {spec.id}: {error!r}"
            self.check_refusal(error, predicted)
            return
        assert not isinstance(predicted, Refused), f"open limit {spec.id}: model {predicted}"
        assert (status.id, status.asset, status.cap_atomic, status.window_s) == (
            spec.id,
            spec.asset,
            spec.cap_atomic,
            spec.window_s,
        )
        assert status.log_index == predicted.log_index and status.closed == predicted.closed
        self.model = trial

    def open(self, spec: NewAccount) -> None:
        self.model.expire_due()
        trial = self.model.clone()
        try:
            predicted: tuple[MAccount, bool] | Refused = trial.open_account(spec)
        except Refused as refusal:
            predicted = refusal
        try:
            account = self.ledger.open_account(spec)
        except LedgerError as error:
            assert isinstance(predicted, Refused), f"open {spec.id}: {error!r}"
            self.check_refusal(error, predicted)
            return
        assert not isinstance(predicted, Refused), f"open {spec.id}: model says {predicted}"
        expected, _ = predicted
        assert (account.id, account.asset, account.kind, account.owner) == (
            spec.id,
            spec.asset,
            spec.kind,
            spec.owner,
        )
        assert account.flags == spec.resolved_flags
        assert account.metadata == (spec.metadata or {})
        assert account.log_index == expected.log_index
        assert account.balance == expected.balance()
        self.model = trial

    @rule(account_id=account_ids, change=st.sampled_from([None, None, "owner", "kind"]))
    def open_account(self, account_id: str, change: str | None) -> None:
        spec = ACCOUNTS[account_id]
        if change == "owner":
            spec = dataclasses.replace(spec, owner="someone-else")
        elif change == "kind":
            other = AccountKind.ESCROW if spec.kind is not AccountKind.ESCROW else AccountKind.FEES
            spec = dataclasses.replace(spec, kind=other, flags=None)
        if change is not None and account_id not in self.model.accounts:
            spec = ACCOUNTS[account_id]  # a changed spec only makes sense as a conflict
        self.open(spec)

    @rule(limit_id=st.sampled_from(LIMIT_IDS), conflict=st.sampled_from([False, False, True]))
    def open_limit(self, limit_id: str, conflict: bool) -> None:
        spec = LIMITS[limit_id]
        if conflict and limit_id in self.model.limits:  # same id, another cap
            spec = dataclasses.replace(spec, cap_atomic=spec.cap_atomic + 1)
        self.open_a_limit(spec)

    @rule(limit_id=st.sampled_from(LIMIT_IDS), now=st.integers(0, 5))
    def close_limit(self, limit_id: str, now: int) -> None:
        """Revoke a limit (one time in six, so that limits live long enough to fill)."""
        if now:
            return
        self.model.expire_due()
        trial = self.model.clone()
        try:
            predicted: MLimit | Refused = trial.close_limit(limit_id)
        except Refused as refusal:
            predicted = refusal
        try:
            status = self.ledger.close_limit(limit_id)
        except LedgerError as error:
            assert isinstance(predicted, Refused), f"close {limit_id}: {error!r}"
            self.check_refusal(error, predicted)
            return
        assert not isinstance(predicted, Refused), f"close {limit_id}: model {predicted}"
        assert status.closed and status.remaining_atomic == 0
        self.model = trial

    @rule(data=st.data())
    def submit_transfer_or_hold(self, data: st.DataObject) -> None:
        self.submit(self.build_transfer(data))

    @rule(data=st.data(), metadata=metadatas)
    def post_hold(self, data: st.DataObject, metadata: Metadata | None) -> None:
        pending_id = self.pick_hold(data)
        self.submit(
            post(self.fresh_id(), pending_id, self.post_amount(data, pending_id), metadata=metadata)
        )

    @rule(data=st.data(), metadata=metadatas)
    def void_hold(self, data: st.DataObject, metadata: Metadata | None) -> None:
        self.submit(void(self.fresh_id(), self.pick_hold(data), metadata=metadata))

    @rule(data=st.data(), size=st.integers(1, 4))
    def submit_linked(self, data: st.DataObject, size: int) -> None:
        batch: list[NewTransfer] = []
        for _ in range(size):
            shape = data.draw(st.sampled_from(["move", "move", "post", "void", "repeat"]))
            in_batch = [r.id for r in batch if r.kind is TransferKind.PENDING]
            if shape == "repeat" and batch:
                batch.append(data.draw(st.sampled_from(batch)))  # same id, same body
            elif shape in ("post", "void") and (in_batch or self.model.transfers):
                pending_id = (
                    data.draw(st.sampled_from(in_batch)) if in_batch else self.pick_hold(data)
                )
                held = self.model.transfers.get(pending_id)
                if shape == "post":
                    amount = None
                    if held is None and pending_id in in_batch:
                        request = next(r for r in batch if r.id == pending_id)
                        assert request.amount is not None
                        amount = data.draw(st.sampled_from([None, request.amount.asset.atomic(1)]))
                    elif held is not None:
                        amount = self.post_amount(data, pending_id)
                    batch.append(post(self.fresh_id(), pending_id, amount))
                else:
                    batch.append(void(self.fresh_id(), pending_id))
            else:
                batch.append(self.build_transfer(data))
        self.requests.append(batch)
        self.submit_batch(batch)

    def submit_batch(self, batch: list[NewTransfer]) -> None:
        self.model.expire_due()
        trial = self.model.clone()
        try:
            predicted: list[tuple[MTransfer, bool]] | Refused = trial.submit_linked(batch)
        except Refused as refusal:
            predicted = refusal
        try:
            results: list[Transfer] | LedgerError = self.ledger.submit_linked(batch)
        except LedgerError as error:
            results = error
        if isinstance(predicted, Refused):
            assert isinstance(results, LedgerError), f"model refuses ({predicted}), ledger wrote"
            self.check_refusal(results, predicted)
            return
        assert not isinstance(results, LedgerError), f"ledger refused: {results!r}"
        assert len(results) == len(predicted)
        for (made, replayed), result in zip(predicted, results, strict=True):
            self.check_result(made, replayed, result)
        self.model = trial

    @rule(data=st.data(), size=st.integers(1, 4))
    def submit_many(self, data: st.DataObject, size: int) -> None:
        batch = [self.build_transfer(data) for _ in range(size)]
        if size > 1 and data.draw(st.booleans(), label="repeat an id"):
            batch.append(batch[0])
        self.requests.extend(batch)
        self.model.expire_due()
        predictions: list[tuple[MTransfer, bool] | Refused] = []
        for request in batch:
            trial = self.model.clone()
            try:
                predictions.append(trial.submit(request))
                self.model = trial
            except Refused as refusal:
                predictions.append(refusal)
        results = self.ledger.submit_many(batch)
        assert len(results) == len(batch)
        for request, predicted, result in zip(batch, predictions, results, strict=True):
            self.compare(request.id, predicted, result)

    @precondition(lambda self: bool(self.requests))
    @rule(data=st.data(), same=st.booleans())
    def retry_a_request(self, data: st.DataObject, same: bool) -> None:
        """Resubmit an earlier request: the same body is replayed (or, if it was refused,
        tried afresh); a different body under a used id is a conflict."""
        earlier = data.draw(st.sampled_from(self.requests), label="earlier request")
        if isinstance(earlier, list):
            batch = list(earlier)
            if not same:
                index = data.draw(st.integers(0, len(batch) - 1))
                batch[index] = dataclasses.replace(batch[index], metadata={"retry": "changed"})
            self.submit_batch(batch)
        elif same:
            self.submit(earlier)
        else:
            self.submit(dataclasses.replace(earlier, metadata={"retry": "changed"}))

    @rule(seconds=clock_steps, then=st.sampled_from(["expire_due", "write"]), data=st.data())
    def advance_clock(self, seconds: int, then: str, data: st.DataObject) -> None:
        """Move time on; due holds expire at the start of the next write transaction (the
        writer's idle poll may do it first: either way before anything else is written)."""
        self.clock.now += seconds * NS + HAIR_NS
        self.model.now = self.clock.now
        if then == "expire_due":
            self.model.expire_due()
            self.ledger.expire_due()
        else:
            self.submit(self.build_transfer(data))

    @rule(action=st.sampled_from(["switch", "reopen"]))
    def switch_or_reopen_ledger(self, action: str) -> None:
        """Go on through the other ledger on the store, or close this one and open it anew
        (a restart): the books, the log and the idempotency keys carry over."""
        if action == "switch":
            self.current = 1 - self.current
        else:
            self.ledger.close()
            self.ledgers[self.current] = open_ledger(self.url, clock=self.clock)

    @rule(audit=st.booleans(), data=st.data())
    def checkpoint(self, audit: bool, data: st.DataObject) -> None:
        if self.model.entries == 0:  # pragma: no cover (the machine opens accounts first)
            with pytest.raises(LedgerError):
                self.ledger.log.checkpoint(self.key)
            return
        signed = self.ledger.log.checkpoint(self.key)
        head = self.ledger.head()
        assert signed.tree_size == self.model.entries == head.size
        assert signed.root_hash == head.root_hash
        assert signed.signer() == self.key.address
        if self.last_checkpoint is not None:
            old_size, old_root = self.last_checkpoint
            grown = self.ledger.log.consistency_proof(old_size, signed.tree_size)
            assert grown.old_root == old_root and grown.new_root == signed.root_hash
            assert grown.verify()
        self.last_checkpoint = (signed.tree_size, signed.root_hash)
        if self.model.transfers:
            tid = data.draw(st.sampled_from(sorted(self.model.transfers)), label="prove")
            proof = self.ledger.log.inclusion_proof(tid)
            assert proof.tree_size == signed.tree_size
            assert proof.log_index == self.model.transfers[tid].log_index
            assert proof.root_hash == signed.root_hash and proof.verify()
        if audit:
            path = self.workdir / "export.jsonl"
            with path.open("wb") as out:
                self.ledger.log.export(out)
            report = audit_export(path, operator=self.key.address)
            assert report.ok, report.problems
            assert report.entries == self.model.entries
            expected = {aid: a.balance() for aid, a in self.model.accounts.items()}
            assert report.balances == expected

    # -- invariants, after every step

    @invariant()
    def balances_match_the_model(self) -> None:
        accounts = {a.id: a for a in self.ledger.accounts(limit=1000)}
        assert sorted(accounts) == sorted(self.model.accounts)
        for account_id, account in accounts.items():
            assert account.balance == self.model.accounts[account_id].balance(), account_id
        for account_id in set(ACCOUNT_IDS) - set(accounts):
            with pytest.raises(AccountNotFound):
                self.ledger.balance(account_id)

    @invariant()
    def value_is_conserved_and_bounds_hold(self) -> None:
        posted: dict[str, int] = {}
        pending: dict[str, int] = {}
        for account in self.ledger.accounts(limit=1000):
            b = account.balance
            code = account.asset.code
            posted[code] = posted.get(code, 0) + b.credits_posted - b.debits_posted
            pending[code] = pending.get(code, 0) + b.credits_pending - b.debits_pending
            if BOUND_DEBITS in account.flags:
                assert b.debits_pending + b.debits_posted <= b.credits_posted, account
            if BOUND_CREDITS in account.flags:
                assert b.credits_pending + b.credits_posted <= b.debits_posted, account
            assert min(b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted) >= 0
        assert all(total == 0 for total in posted.values()), posted
        assert all(total == 0 for total in pending.values()), pending

    @invariant()
    def holds_and_log_match_the_model(self) -> None:
        assert self.ledger.head().size == self.model.entries
        for made in self.model.transfers.values():
            if made.kind is TransferKind.PENDING:
                status = self.ledger.hold_status(made.id)
                assert (status.state, status.resolved_by) == (made.state, made.resolved_by), made.id
            elif made.kind is TransferKind.EXPIRE:
                expired = self.ledger.transfer(made.id)
                assert (expired.pending_id, expired.amount.atomic) == (made.pending_id, made.amount)

    @invariant()
    def limits_match_the_model(self) -> None:
        with self.ledger.reader() as reader:  # one snapshot, one query
            stored = {state.id: state for state in reader.all_limits()}
        assert sorted(stored) == sorted(self.model.limits)
        for limit_id, limit in self.model.limits.items():
            status = stored[limit_id].status(self.clock.now)
            used = self.model.limit_used(limit_id, self.clock.now)
            assert (status.used_atomic, status.total_atomic, status.closed) == (
                used,
                self.model.limit_total(limit_id),
                limit.closed,
            ), limit_id
            assert status.used_atomic <= limit.spec.cap_atomic
            assert status.log_index == limit.log_index
        unopened = sorted(set(LIMIT_IDS) - set(self.model.limits))
        if unopened:
            with pytest.raises(LimitNotFound):
                self.ledger.limit(unopened[0])

    @invariant()
    def the_log_verifies(self) -> None:
        report = self.ledger.log.verify()
        assert report.ok, report.problems
        assert report.entries == self.model.entries
        assert report.limits == len(self.model.limits)
        assert report.accounts == len(self.model.accounts)
        assert report.transfers == len(self.model.transfers)
        assert report.balances == {aid: a.balance() for aid, a in self.model.accounts.items()}
        assert all(total == 0 for total in report.assets.values()), report.assets

    @invariant()
    def transfers_read_back_as_first_written(self) -> None:
        for tid, first in self.first_results.items():
            if first.log_index >= self.model.entries - 8:  # the last few: reads are not free
                assert self.ledger.transfer(tid) == first, tid
        with pytest.raises(TransferNotFound):
            self.ledger.transfer(f"t{self.ids + 1}")


STATEFUL_SETTINGS = settings(
    max_examples=35,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_ledger_agrees_with_its_model(
    store_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Random operation sequences: the ledger matches the model after every step."""
    stores = iter(range(1_000_000))
    if store_url.startswith("sqlite"):

        def new_store() -> str:
            return f"sqlite:///{tmp_path / f'machine-{next(stores)}.db'}"

    else:
        server = request.getfixturevalue("postgres_server")
        new_store = server.new_database

    class Machine(LedgerMachine):
        def __init__(self) -> None:
            super().__init__(new_store)

    run_state_machine_as_test(Machine, settings=STATEFUL_SETTINGS)


def test_a_replay_returns_the_first_result_in_full(ledger: Ledger) -> None:
    """Same id, same body: the answer is the first result, metadata, authorization and
    timeout included (found by the machine above)."""
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount("alice", USDC, AccountKind.AGENT))
    pay = transfer(
        "pay", "world", "alice", USDC.atomic(5), metadata={"task": "t-1"}, authorization="sig"
    )
    reserve = hold("h", "world", "alice", USDC.atomic(5), timeout_s=60)
    linked = [transfer("l1", "world", "alice", USDC.atomic(1), metadata={"task": "t-2"})]
    first = [ledger.submit(pay), ledger.submit(reserve), *ledger.submit_linked(linked)]
    again = [ledger.submit(pay), ledger.submit(reserve), *ledger.submit_linked(linked)]
    assert [t.replayed for t in again] == [True, True, True]
    assert [ledger.transfer(t.id) for t in first] == first
    assert again == first
