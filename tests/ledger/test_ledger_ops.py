"""The ledger's operations and their refusals, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio

import pytest

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
    InvalidRequest,
    Ledger,
    LinkedBatchFailed,
    NewAccount,
    NotPending,
    PendingAlreadyPosted,
    PendingAlreadyVoided,
    PendingExpired,
    PendingNotFound,
    PostExceedsPending,
    SameAccount,
    TransferKind,
    TransferNotFound,
    hold,
    post,
    transfer,
    void,
)
from paywire.money import EURC, MAX_ATOMIC, USDC, Amount, InvalidAmount

USD = USDC.atomic


def open_accounts(ledger: Ledger) -> None:
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount("alice", USDC, AccountKind.AGENT, owner="0xA11CE"))
    ledger.open_account(NewAccount("bob", USDC, AccountKind.PROVIDER))
    ledger.open_account(NewAccount("euro", EURC, AccountKind.AGENT))


def fund(ledger: Ledger, account: str, atomic: int, tid: str = "fund") -> None:
    ledger.submit(transfer(f"{tid}-{account}", "world", account, USD(atomic)))


def test_transfer_moves_value_and_balances_sum_to_zero(ledger: Ledger) -> None:
    open_accounts(ledger)
    fund(ledger, "alice", 1_000_000)
    result = ledger.submit(
        transfer("t1", "alice", "bob", USD(250_000), metadata={"task": "t-9", "tokens": 812})
    )
    assert result.amount == USD(250_000)
    assert result.kind is TransferKind.SINGLE
    assert not result.replayed
    assert ledger.balance("alice") == Balance(0, 250_000, 0, 1_000_000)
    assert ledger.balance("bob").posted == 250_000
    assert ledger.balance("world").posted == -1_000_000
    total = sum(ledger.balance(a).posted for a in ("world", "alice", "bob"))
    assert total == 0
    stored = ledger.transfer("t1")
    assert stored.metadata == {"task": "t-9", "tokens": 812}
    assert stored.log_index == result.log_index
    assert stored.timestamp == result.timestamp


def test_overdraft_is_refused_and_changes_nothing(ledger: Ledger) -> None:
    open_accounts(ledger)
    fund(ledger, "alice", 100)
    with pytest.raises(ExceedsCredits, match="overdrawn"):
        ledger.submit(transfer("t1", "alice", "bob", USD(101)))
    assert ledger.balance("alice").available == 100
    ledger.submit(transfer("t1", "alice", "bob", USD(100)))  # the id was not burnt
    assert ledger.balance("alice").available == 0


def test_credit_bound(ledger: Ledger) -> None:
    ledger.open_account(NewAccount("src", USDC, AccountKind.EXTERNAL))
    ledger.open_account(
        NewAccount(
            "capped",
            USDC,
            AccountKind.EXTERNAL,
            flags=frozenset({AccountFlag.CREDITS_MUST_NOT_EXCEED_DEBITS}),
        )
    )
    with pytest.raises(ExceedsDebits):
        ledger.submit(transfer("t1", "src", "capped", USD(1)))
    ledger.submit(transfer("t2", "capped", "src", USD(5)))
    ledger.submit(transfer("t3", "src", "capped", USD(5)))
    with pytest.raises(ExceedsDebits):
        ledger.submit(transfer("t4", "src", "capped", USD(1)))


@pytest.mark.parametrize(
    ("debit", "credit", "amount", "error"),
    [
        ("nobody", "bob", USD(1), AccountNotFound),
        ("alice", "nobody", USD(1), AccountNotFound),
        ("alice", "alice", USD(1), SameAccount),
        ("alice", "euro", USD(1), AssetMismatch),
        ("alice", "bob", EURC.atomic(1), AssetMismatch),
    ],
)
def test_refusals(
    ledger: Ledger, debit: str, credit: str, amount: Amount, error: type[Exception]
) -> None:
    open_accounts(ledger)
    fund(ledger, "alice", 10)
    before = ledger.head()
    with pytest.raises(error):
        ledger.submit(transfer("bad", debit, credit, amount))
    assert ledger.head() == before


@pytest.mark.parametrize("atomic", [0, -1, -MAX_ATOMIC])
def test_amount_must_be_positive(atomic: int) -> None:
    with pytest.raises(InvalidRequest, match="more than 0"):
        transfer("t", "a", "b", Amount(atomic, USDC))


def test_amount_past_the_bound() -> None:
    with pytest.raises(InvalidAmount, match="2\\^128"):
        Amount(MAX_ATOMIC + 1, USDC)
    assert transfer("t", "a", "b", Amount(MAX_ATOMIC, USDC)).amount == USD(MAX_ATOMIC)


@pytest.mark.parametrize(
    "bad_id", ["", " x", "x y", "a" * 129, "tab\t", "semi;colon", "til~de", "ünï", "-lead"]
)
def test_malformed_ids(bad_id: str) -> None:
    with pytest.raises(InvalidRequest):
        transfer(bad_id, "a", "b", USD(1))
    with pytest.raises(InvalidRequest):
        NewAccount(bad_id, USDC)


@pytest.mark.parametrize(
    "metadata",
    [
        {"x": "y" * 5000},
        {"f": 1.5},
        {"deep": {"a": {"b": {"c": {"d": 1}}}}},
        {"": 1},
        {"k" * 65: 1},
        {"big": 2**64},
        {"obj": object()},
        "not a mapping",
    ],
)
def test_metadata_limits(metadata: object) -> None:
    with pytest.raises(InvalidRequest):
        transfer("t", "a", "b", USD(1), metadata=metadata)  # type: ignore[arg-type]


def test_authorization_limit() -> None:
    with pytest.raises(InvalidRequest):
        transfer("t", "a", "b", USD(1), authorization="x" * 16385)
    assert transfer("t", "a", "b", USD(1), authorization="x" * 16384).authorization


def test_balance_overflow(ledger: Ledger) -> None:
    open_accounts(ledger)
    ledger.submit(transfer("big1", "world", "bob", USD(MAX_ATOMIC)))
    with pytest.raises(BalanceOverflow):
        ledger.submit(transfer("big2", "world", "bob", USD(1)))


def test_idempotent_retry_returns_first_result(ledger: Ledger) -> None:
    open_accounts(ledger)
    fund(ledger, "alice", 100)
    request = transfer("pay-1", "alice", "bob", USD(60), metadata={"m": 1}, authorization="sig")
    first = ledger.submit(request)
    again = ledger.submit(request)
    assert again.replayed and not first.replayed
    assert again == first
    assert again.metadata == {"m": 1} and again.authorization == "sig"
    assert ledger.balance("alice").available == 40
    with pytest.raises(IdempotencyConflict):
        ledger.submit(transfer("pay-1", "alice", "bob", USD(61), metadata={"m": 1}))
    with pytest.raises(IdempotencyConflict):
        ledger.submit(transfer("pay-1", "alice", "bob", USD(60), metadata={"m": 2}))
    with pytest.raises(IdempotencyConflict):
        ledger.submit(transfer("pay-1", "alice", "bob", USD(60), metadata={"m": 1}))
    same_in_one_batch = ledger.submit_many([request, request])
    assert all(not isinstance(r, Exception) and r.replayed for r in same_in_one_batch)


def test_idempotency_holds_across_reopen(make_ledger, clock) -> None:  # type: ignore[no-untyped-def]
    first = make_ledger(clock=clock)
    open_accounts(first)
    fund(first, "alice", 100)
    done = first.submit(transfer("pay-1", "alice", "bob", USD(60)))
    first.close()
    second = make_ledger(clock=clock)
    assert second.submit(transfer("pay-1", "alice", "bob", USD(60))) == done
    with pytest.raises(IdempotencyConflict):
        second.submit(transfer("pay-1", "alice", "bob", USD(1)))
    assert second.balance("alice").available == 40


def test_account_open_is_idempotent(ledger: Ledger) -> None:
    first = ledger.open_account(NewAccount("a", USDC, AccountKind.AGENT, owner="o"))
    assert ledger.open_account(NewAccount("a", USDC, AccountKind.AGENT, owner="o")) == first
    with pytest.raises(IdempotencyConflict):
        ledger.open_account(NewAccount("a", EURC, AccountKind.AGENT, owner="o"))
    with pytest.raises(IdempotencyConflict):
        ledger.open_account(NewAccount("a", USDC, AccountKind.ESCROW, owner="o"))
    assert [a.id for a in ledger.accounts()] == ["a"]


def test_hold_post_in_part_releases_the_rest(ledger: Ledger) -> None:
    open_accounts(ledger)
    fund(ledger, "alice", 1000)
    ledger.submit(hold("h1", "alice", "bob", USD(700), timeout_s=60))
    assert ledger.balance("alice") == Balance(700, 0, 0, 1000)
    assert ledger.balance("alice").available == 300
    with pytest.raises(ExceedsCredits):
        ledger.submit(transfer("t1", "alice", "bob", USD(301)))
    with pytest.raises(PostExceedsPending):
        ledger.submit(post("p1", "h1", USD(701)))
    done = ledger.submit(post("p1", "h1", USD(500)))
    assert done.kind is TransferKind.POST and done.pending_id == "h1"
    assert ledger.balance("alice") == Balance(0, 500, 0, 1000)
    assert ledger.balance("bob") == Balance(0, 0, 0, 500)
    status = ledger.hold_status("h1")
    assert status.state is HoldState.POSTED and status.resolved_by == "p1"
    with pytest.raises(PendingAlreadyPosted):
        ledger.submit(post("p2", "h1"))
    with pytest.raises(PendingAlreadyPosted):
        ledger.submit(void("v1", "h1"))


def test_post_in_full_and_void(ledger: Ledger) -> None:
    open_accounts(ledger)
    fund(ledger, "alice", 1000)
    ledger.submit(hold("h1", "alice", "bob", USD(100)))
    ledger.submit(hold("h2", "alice", "bob", USD(200)))
    assert ledger.submit(post("p1", "h1")).amount == USD(100)
    ledger.submit(void("v2", "h2"))
    assert ledger.hold_status("h2").state is HoldState.VOIDED
    with pytest.raises(PendingAlreadyVoided):
        ledger.submit(post("p2", "h2"))
    with pytest.raises(PendingAlreadyVoided):
        ledger.submit(void("v3", "h2"))
    assert ledger.balance("alice") == Balance(0, 100, 0, 1000)


def test_post_refusals(ledger: Ledger) -> None:
    open_accounts(ledger)
    fund(ledger, "alice", 1000)
    with pytest.raises(PendingNotFound):
        ledger.submit(post("p1", "missing"))
    with pytest.raises(NotPending):
        ledger.submit(post("p1", "fund-alice"))
    ledger.submit(hold("h1", "alice", "bob", USD(10)))
    with pytest.raises(AssetMismatch):
        ledger.submit(post("p1", "h1", EURC.atomic(5)))
    with pytest.raises(InvalidRequest):
        void("v", "h1").__class__(id="v", kind=TransferKind.VOID, pending_id="h1", amount=USD(1))


def test_hold_expires(ledger: Ledger, clock) -> None:  # type: ignore[no-untyped-def]
    open_accounts(ledger)
    fund(ledger, "alice", 1000)
    ledger.submit(hold("h1", "alice", "bob", USD(400), timeout_s=30))
    clock.advance(29)
    assert ledger.balance("alice").debits_pending == 400
    clock.advance(1.001)  # ledger timestamps run a few ns ahead of a frozen clock
    with pytest.raises(PendingExpired):
        ledger.submit(post("p1", "h1"))
    ledger.expire_due()
    assert ledger.hold_status("h1").state is HoldState.EXPIRED
    assert ledger.balance("alice") == Balance(0, 0, 0, 1000)
    expiry = ledger.transfer("h1~expire")
    assert expiry.kind is TransferKind.EXPIRE and expiry.amount == USD(400)
    with pytest.raises(PendingExpired):
        ledger.submit(void("v1", "h1"))


def test_expired_hold_is_released_before_the_next_write(ledger: Ledger, clock) -> None:  # type: ignore[no-untyped-def]
    open_accounts(ledger)
    fund(ledger, "alice", 100)
    ledger.submit(hold("h1", "alice", "bob", USD(100), timeout_s=5))
    with pytest.raises(ExceedsCredits):
        ledger.submit(transfer("t1", "alice", "bob", USD(1)))
    clock.advance(6)
    ledger.submit(transfer("t1", "alice", "bob", USD(100)))
    assert ledger.hold_status("h1").state is HoldState.EXPIRED


def test_linked_batch_is_all_or_nothing(ledger: Ledger) -> None:
    open_accounts(ledger)
    fund(ledger, "alice", 100)
    before = ledger.head()
    batch = [
        transfer("s1", "alice", "bob", USD(60)),
        transfer("s2", "alice", "world", USD(30)),
        transfer("s3", "alice", "bob", USD(20)),  # 110 > 100: fails
    ]
    with pytest.raises(LinkedBatchFailed) as failure:
        ledger.submit_linked(batch)
    assert failure.value.index == 2
    assert isinstance(failure.value.cause, ExceedsCredits)
    assert ledger.head() == before
    assert ledger.balance("alice").available == 100
    with pytest.raises(TransferNotFound):
        ledger.transfer("s1")
    done = ledger.submit_linked(batch[:2])
    assert [t.id for t in done] == ["s1", "s2"]
    assert [t.replayed for t in ledger.submit_linked(batch[:2])] == [True, True]
    with pytest.raises(IdempotencyConflict):
        ledger.submit_linked(batch)  # s1, s2 exist: a partial retry is a conflict


def test_linked_batch_with_hold_and_post(ledger: Ledger) -> None:
    open_accounts(ledger)
    fund(ledger, "alice", 100)
    done = ledger.submit_linked(
        [
            hold("h", "alice", "bob", USD(50)),
            post("p", "h", USD(20)),
            transfer("t", "alice", "bob", USD(80)),
        ]
    )
    assert [t.kind for t in done] == [TransferKind.PENDING, TransferKind.POST, TransferKind.SINGLE]
    assert ledger.balance("alice") == Balance(0, 100, 0, 100)
    assert ledger.hold_status("h").state is HoldState.POSTED


def test_submit_many_reports_each(ledger: Ledger) -> None:
    open_accounts(ledger)
    fund(ledger, "alice", 100)
    results = ledger.submit_many(
        [
            transfer("m1", "alice", "bob", USD(70)),
            transfer("m2", "alice", "bob", USD(70)),
            transfer("m3", "alice", "bob", USD(30)),
        ]
    )
    assert not isinstance(results[0], Exception)
    assert isinstance(results[1], ExceedsCredits)
    assert not isinstance(results[2], Exception)
    assert ledger.balance("alice").available == 0


def test_history_and_accounts_listing(ledger: Ledger) -> None:
    open_accounts(ledger)
    fund(ledger, "alice", 100)
    for n in range(5):
        ledger.submit(transfer(f"h{n}", "alice", "bob", USD(1)))
    history = ledger.history("alice", limit=3)
    assert [t.id for t in history] == ["h4", "h3", "h2"]
    older = ledger.history("alice", before=history[-1].log_index, limit=10)
    assert [t.id for t in older] == ["h1", "h0", "fund-alice"]
    with pytest.raises(AccountNotFound):
        ledger.history("nobody")
    assert [a.id for a in ledger.accounts(kind=AccountKind.AGENT)] == ["alice", "euro"]
    assert [a.id for a in ledger.accounts(owner="0xA11CE")] == ["alice"]
    assert [a.id for a in ledger.accounts(after="bob", limit=2)] == ["euro", "world"]


def test_timestamps_increase_even_when_the_clock_does_not(ledger: Ledger, clock) -> None:  # type: ignore[no-untyped-def]
    open_accounts(ledger)
    fund(ledger, "alice", 100)
    clock.advance(-3600)  # the wall clock steps back an hour
    a = ledger.submit(transfer("a", "alice", "bob", USD(1)))
    b = ledger.submit(transfer("b", "alice", "bob", USD(1)))
    assert a.timestamp < b.timestamp
    assert a.log_index + 1 == b.log_index


def test_async_submit(ledger: Ledger) -> None:
    open_accounts(ledger)
    fund(ledger, "alice", 100)

    async def pay() -> None:
        done = await ledger.asubmit(transfer("a1", "alice", "bob", USD(5)))
        assert done.amount == USD(5)
        linked = await ledger.asubmit_linked([transfer("a2", "alice", "bob", USD(5))])
        assert linked[0].id == "a2"

    asyncio.run(pay())


def test_closed_ledger_refuses_writes(ledger: Ledger) -> None:
    from paywire.ledger import LedgerUnavailable

    ledger.close()
    with pytest.raises(LedgerUnavailable):
        ledger.submit(transfer("x", "a", "b", USD(1)))
