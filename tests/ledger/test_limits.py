"""Spend limits: opening and closing, caps in all and per rolling window, holds, linked
batches, idempotency, and what verify and audit make of them. SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
import pickle
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from paywire.crypto.keys import PrivateKey
from paywire.ledger import (
    MAX_TRANSFER_LIMITS,
    AccountKind,
    AssetMismatch,
    IdempotencyConflict,
    InvalidRequest,
    Ledger,
    LedgerError,
    LimitClosed,
    LimitExceeded,
    LimitNotFound,
    LimitStatus,
    LinkedBatchFailed,
    NewAccount,
    NewLimit,
    NewTransfer,
    TransferKind,
    TransferNotFound,
    hold,
    open_ledger,
    post,
    transfer,
    void,
)
from paywire.ledger.export import audit_export
from paywire.ledger.model import WINDOW_SLOTS, bucket_seconds
from paywire.money import EURC, MAX_ATOMIC, USDC

if TYPE_CHECKING:
    from conftest import FakeClock

USD = USDC.atomic
NS = 1_000_000_000
HOUR = 3600


def books(ledger: Ledger, funding: int = 1_000_000) -> None:
    """world (a source), payer (a wallet holding `funding`), payee, and a euro wallet."""
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount("payer", USDC, AccountKind.AGENT))
    ledger.open_account(NewAccount("payee", USDC, AccountKind.PROVIDER))
    ledger.open_account(NewAccount("eu-world", EURC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount("eu-payer", EURC, AccountKind.AGENT))
    ledger.submit(transfer("funding", "world", "payer", USD(funding)))
    ledger.submit(transfer("eu-funding", "eu-world", "eu-payer", EURC.atomic(funding)))


def pay(tid: str, atomic: int, *limits: str) -> NewTransfer:
    return transfer(tid, "payer", "payee", USD(atomic), limits=limits)


def used(ledger: Ledger, limit_id: str) -> int:
    return ledger.limit(limit_id).used_atomic


def align(clock: FakeClock, seconds: int) -> int:
    """Move the clock to the next multiple of `seconds` (a bucket boundary); return it."""
    step = seconds * NS
    clock.now = (clock.now // step + 1) * step
    return clock.now


def run_sql(url: str, *statements: str) -> None:
    """Change the store behind the ledger's back (as a tamperer, or an older paywire)."""
    if url.startswith("sqlite:///"):
        db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            for statement in statements:
                db.execute(statement)
        finally:
            db.close()
    else:
        with psycopg.connect(url, autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)  # type: ignore[arg-type]


def assert_verified(ledger: Ledger) -> None:
    report = ledger.log.verify()
    assert report.ok, report.problems


# ----- requests ---------------------------------------------------------------------------


def test_requests_check_their_limits() -> None:
    assert NewLimit("cap", USDC, 0).window_s is None
    for bad in (-1, MAX_ATOMIC + 1, True, "10"):
        with pytest.raises(InvalidRequest, match="cap_atomic"):
            NewLimit("cap", USDC, bad)  # type: ignore[arg-type]
    for window in (0, -5, 366 * 24 * 3600 + 1, 1.5, True):
        with pytest.raises(InvalidRequest, match="window_s"):
            NewLimit("cap", USDC, 10, window)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="limit id"):
        NewLimit("no spaces", USDC, 10)
    with pytest.raises(InvalidRequest, match="floats"):
        NewLimit("cap", USDC, 10, metadata={"x": 1.5})
    many = tuple(f"l{n}" for n in range(MAX_TRANSFER_LIMITS))
    assert pay("t", 1, *many).limits == many
    with pytest.raises(InvalidRequest, match=f"at most {MAX_TRANSFER_LIMITS}"):
        pay("t", 1, *many, "one-more")
    with pytest.raises(InvalidRequest, match="at most once"):
        pay("t", 1, "a", "b", "a")
    with pytest.raises(InvalidRequest, match="limit id"):
        pay("t", 1, "a b")
    with pytest.raises(InvalidRequest, match="tuple"):
        NewTransfer("t", TransferKind.SINGLE, "payer", "payee", USD(1), 1, limits="abc")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="pending transfer's limits"):
        NewTransfer("p", TransferKind.POST, pending_id="h", limits=("a",))
    assert hold("h", "payer", "payee", USD(1), limits=["a", "b"]).limits == ("a", "b")


def test_a_transfer_without_limits_keeps_its_fingerprint() -> None:
    """Requests retried across the upgrade must still be recognised as the same."""
    request = transfer("t", "payer", "payee", USD(5), metadata={"k": "v"}, authorization="sig")
    text = 'single|payer|payee|5USDC|1|None|None|{"k":"v"}|3:sig'
    assert request.fingerprint() == hashlib.sha256(text.encode()).digest()
    limited = transfer("t", "payer", "payee", USD(5), metadata={"k": "v"}, authorization="sig")
    assert pay("t", 5, "a").fingerprint() != pay("t", 5).fingerprint()
    assert pay("t", 5, "a", "b").fingerprint() != pay("t", 5, "b", "a").fingerprint()
    assert limited.fingerprint() == request.fingerprint()


def test_limit_exceeded_says_which_limit_and_by_how_much() -> None:
    error = LimitExceeded("daily", 100, 60, 41, 86400, asset_code="USDC")
    assert (error.limit_id, error.cap, error.used, error.amount, error.window_s) == (
        "daily",
        100,
        60,
        41,
        86400,
    )
    assert error.over == 1
    assert "'daily'" in str(error) and "exceeded by 1 " in str(error) and "86400 s" in str(error)
    assert "in all" in str(LimitExceeded("total", 10, 10, 5, None))
    again = pickle.loads(pickle.dumps(error))  # crosses process boundaries intact
    assert isinstance(again, LimitExceeded) and str(again) == str(error)
    assert (again.limit_id, again.over, again.code) == ("daily", 1, "limit_exceeded")


# ----- opening and closing ----------------------------------------------------------------


def test_open_is_idempotent_and_conflicts_on_other_fields(ledger: Ledger) -> None:
    spec = NewLimit("daily", USDC, 500, 86400, metadata={"mandate": "m-1"})
    first = ledger.open_limit(spec)
    assert isinstance(first, LimitStatus)
    assert (first.id, first.asset, first.cap_atomic, first.window_s) == ("daily", USDC, 500, 86400)
    assert (first.used_atomic, first.remaining_atomic, first.total_atomic) == (0, 500, 0)
    assert not first.closed and first.metadata == {"mandate": "m-1"}
    size = ledger.head().size
    again = ledger.open_limit(NewLimit("daily", USDC, 500, 86400, metadata={"mandate": "m-1"}))
    assert (again.log_index, again.timestamp) == (first.log_index, first.timestamp)
    assert ledger.head().size == size, "opening again wrote an entry"
    for other in (
        NewLimit("daily", USDC, 501, 86400, metadata={"mandate": "m-1"}),
        NewLimit("daily", USDC, 500, 3600, metadata={"mandate": "m-1"}),
        NewLimit("daily", USDC, 500, None, metadata={"mandate": "m-1"}),
        NewLimit("daily", EURC, 500, 86400, metadata={"mandate": "m-1"}),
        NewLimit("daily", USDC, 500, 86400),
    ):
        with pytest.raises(IdempotencyConflict, match="daily"):
            ledger.open_limit(other)
    assert ledger.head().size == size
    with pytest.raises(LimitNotFound):
        ledger.limit("nightly")
    # Limits and accounts have ids of their own: one name may be both.
    ledger.open_account(NewAccount("daily", USDC))
    assert ledger.limit("daily").cap_atomic == 500


def test_closing_refuses_every_later_transfer(ledger: Ledger) -> None:
    books(ledger)
    ledger.open_limit(NewLimit("budget", USDC, 1_000))
    ledger.submit(pay("t1", 100, "budget"))
    ledger.submit(hold("h1", "payer", "payee", USD(50), limits=["budget"]))
    ledger.submit(hold("h2", "payer", "payee", USD(50), limits=["budget"]))
    closed = ledger.close_limit("budget", metadata={"reason": "revoked"})
    assert closed.closed and closed.remaining_atomic == 0 and closed.used_atomic == 200
    size = ledger.head().size
    assert ledger.close_limit("budget").closed  # again: nothing to do
    assert ledger.head().size == size
    with pytest.raises(LimitClosed, match="budget"):
        ledger.submit(pay("t2", 1, "budget"))
    with pytest.raises(LimitClosed):
        ledger.submit(hold("h3", "payer", "payee", USD(1), limits=["budget"]))
    with pytest.raises(LinkedBatchFailed) as failed:
        ledger.submit_linked([pay("t3", 1), pay("t4", 1, "budget")])
    assert failed.value.index == 1 and isinstance(failed.value.cause, LimitClosed)
    # Holds charged before closing stay what they were: a post keeps, a void gives back.
    ledger.submit(post("p1", "h1", USD(20)))
    ledger.submit(void("v2", "h2"))
    assert ledger.limit("budget").used_atomic == 120
    assert ledger.balance("payer").debits_posted == 120
    ledger.submit(pay("t1", 100, "budget"))  # a retry of a transfer from before: a replay
    with pytest.raises(LimitNotFound):
        ledger.close_limit("never-opened")
    assert ledger.open_limit(NewLimit("budget", USDC, 1_000)).closed  # opening does not reopen
    assert_verified(ledger)


def test_bad_limit_requests_are_refused_before_the_writer(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="NewLimit"):
        ledger.open_limit("budget")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="limit id"):
        ledger.close_limit("not an id")
    ledger.open_limit(NewLimit("budget", USDC, 10))
    with pytest.raises(InvalidRequest, match="floats"):
        ledger.close_limit("budget", metadata={"why": 0.5})
    assert not ledger.limit("budget").closed


def test_closing_is_seen_by_every_ledger_on_the_store(make_ledger, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    first, second = make_ledger(clock=clock), make_ledger(clock=clock)
    books(first)
    first.open_limit(NewLimit("budget", USDC, 1_000))
    second.submit(pay("t1", 1, "budget"))
    first.close_limit("budget")
    with pytest.raises(LimitClosed):
        second.submit(pay("t2", 1, "budget"))


# ----- caps -------------------------------------------------------------------------------


@pytest.mark.parametrize("window_s", [None, HOUR])
def test_exactly_the_cap_passes_and_one_more_unit_does_not(
    ledger: Ledger, window_s: int | None
) -> None:
    books(ledger)
    ledger.open_limit(NewLimit("cap", USDC, 1_000, window_s))
    ledger.open_limit(NewLimit("roomy", USDC, 10**9))
    ledger.submit(pay("t1", 600, "roomy", "cap"))
    ledger.submit(pay("t2", 400, "roomy", "cap"))
    assert used(ledger, "cap") == 1_000 and ledger.limit("cap").remaining_atomic == 0
    size = ledger.head().size
    with pytest.raises(LimitExceeded) as refused:
        ledger.submit(pay("t3", 1, "roomy", "cap"))
    error = refused.value
    assert (error.limit_id, error.cap, error.used, error.amount, error.over) == (
        "cap",
        1_000,
        1_000,
        1,
        1,
    )
    assert error.window_s == window_s
    assert ledger.head().size == size
    assert used(ledger, "roomy") == 1_000, "a refused transfer charged another limit"
    with pytest.raises(TransferNotFound):
        ledger.transfer("t3")
    big = ledger.submit(pay("t4", 250, "roomy"))  # the payer's balance was not touched
    assert big.limits == ("roomy",)
    assert ledger.transfer("t1").limits == ("roomy", "cap")
    assert_verified(ledger)


def test_each_limit_is_checked_in_order_and_the_first_refusal_is_reported(
    ledger: Ledger,
) -> None:
    books(ledger)
    ledger.open_limit(NewLimit("small", USDC, 10))
    ledger.open_limit(NewLimit("smaller", USDC, 5, HOUR))
    ledger.open_limit(NewLimit("euro", EURC, 100))
    with pytest.raises(LimitExceeded, match="'small' would be exceeded by 10 "):
        ledger.submit(pay("t", 20, "small", "smaller"))
    with pytest.raises(LimitExceeded, match="'smaller' would be exceeded by 15 "):
        ledger.submit(pay("t", 20, "smaller", "small"))
    with pytest.raises(LimitNotFound, match="nope"):
        ledger.submit(pay("t", 1, "small", "nope"))
    with pytest.raises(AssetMismatch, match="euro"):
        ledger.submit(pay("t", 1, "euro"))
    ledger.submit(transfer("e", "eu-payer", "eu-world", EURC.atomic(100), limits=["euro"]))
    assert used(ledger, "euro") == 100
    ledger.submit(pay("t", 5, "small", "smaller"))  # the refusals burnt nothing
    assert (used(ledger, "small"), used(ledger, "smaller")) == (5, 5)


def test_an_overdraft_is_refused_before_the_limits_are_charged(ledger: Ledger) -> None:
    books(ledger, funding=100)
    ledger.open_limit(NewLimit("cap", USDC, 1_000))
    with pytest.raises(Exception, match="overdrawn"):
        ledger.submit(pay("t", 101, "cap"))
    assert used(ledger, "cap") == 0


def test_a_retry_is_a_replay_and_charges_nothing(ledger: Ledger) -> None:
    books(ledger)
    ledger.open_limit(NewLimit("cap", USDC, 100))
    first = ledger.submit(pay("t1", 100, "cap"))
    again = ledger.submit(pay("t1", 100, "cap"))
    assert again.replayed and again == first
    assert used(ledger, "cap") == 100
    with pytest.raises(IdempotencyConflict):
        ledger.submit(pay("t1", 100))  # the same id without the limit is another request
    ledger.open_limit(NewLimit("other", USDC, 100))
    with pytest.raises(IdempotencyConflict):
        ledger.submit(pay("t1", 100, "other"))
    many = ledger.submit_many([pay("t1", 100, "cap"), pay("t2", 1, "cap")])
    assert many[0] == first and isinstance(many[1], LimitExceeded)


# ----- rolling windows --------------------------------------------------------------------


def test_spending_at_the_edge_of_a_window(ledger: Ledger, clock: FakeClock) -> None:
    """An hour of 60-second buckets: spending comes back once the bucket it was made in
    no longer overlaps the hour ending now (at most one bucket later than the truth)."""
    books(ledger)
    assert bucket_seconds(HOUR) == 60
    ledger.open_limit(NewLimit("hourly", USDC, 100, HOUR))
    start = align(clock, 60)
    clock.now = start + 10 * NS
    ledger.submit(pay("t1", 100, "hourly"))
    clock.now = start + 10 * NS + HOUR * NS - 1_000_000  # t1 is in the true window
    with pytest.raises(LimitExceeded):
        ledger.submit(pay("t2", 1, "hourly"))
    assert used(ledger, "hourly") == 100
    clock.now = start + (60 + HOUR) * NS - 1_000_000  # t1 left it, its bucket has not
    with pytest.raises(LimitExceeded):
        ledger.submit(pay("t2", 1, "hourly"))
    clock.now = start + (60 + HOUR) * NS  # the bucket has left the window too
    assert used(ledger, "hourly") == 0
    ledger.submit(pay("t2", 100, "hourly"))
    with pytest.raises(LimitExceeded):
        ledger.submit(pay("t3", 1, "hourly"))
    assert ledger.limit("hourly").total_atomic == 200
    assert_verified(ledger)


def test_a_short_window_rolls_its_buckets(ledger: Ledger, clock: FakeClock) -> None:
    """A 60-second window of 1-second buckets, spent into every second for over three
    windows: the window never holds more than its cap, at most WINDOW_SLOTS rows are kept,
    and what rolled off is spendable again."""
    books(ledger)
    ledger.open_limit(NewLimit("minute", USDC, 61, 60))
    ledger.open_limit(NewLimit("total", USDC, 10**6))
    start = align(clock, 1)
    spent_at: list[int] = []
    for second in range(200):
        clock.now = start + second * NS + NS // 2
        done = ledger.submit(pay(f"t{second}", 1, "minute", "total"))
        spent_at.append(done.timestamp)
        window = [t for t in spent_at if done.timestamp - 60 * NS <= t <= done.timestamp]
        assert len(window) <= 61
    with pytest.raises(LimitExceeded):  # the window is full: 61 buckets of 1
        ledger.submit(pay("full", 1, "minute"))
    assert used(ledger, "minute") == 61 and ledger.limit("total").used_atomic == 200
    with ledger.reader() as reader:
        state = reader.get_limit("minute")
        assert state is not None and len(state.slots) == WINDOW_SLOTS
        total = reader.get_limit("total")
        assert total is not None and not total.slots
    clock.now += 60 * NS  # the last transfer is still in the (closed) window
    assert used(ledger, "minute") == 1
    clock.now += NS
    assert used(ledger, "minute") == 0
    ledger.submit(pay("later", 61, "minute"))
    assert_verified(ledger)


def test_time_is_the_ledgers_not_the_clients(ledger: Ledger, clock: FakeClock) -> None:
    """A clock that goes back (another process, a skewed host) cannot reopen a window:
    the ledger's timestamps only move forward."""
    books(ledger)
    ledger.open_limit(NewLimit("hourly", USDC, 100, HOUR))
    ledger.submit(pay("t1", 100, "hourly"))
    clock.now -= 10 * HOUR * NS
    with pytest.raises(LimitExceeded):
        ledger.submit(pay("t2", 1, "hourly"))


# ----- holds ------------------------------------------------------------------------------


def test_holds_charge_and_give_back(ledger: Ledger, clock: FakeClock) -> None:
    books(ledger)
    ledger.open_limit(NewLimit("total", USDC, 100))
    ledger.open_limit(NewLimit("hourly", USDC, 100, HOUR))
    both = ("total", "hourly")

    def uses() -> tuple[int, int]:
        return used(ledger, "total"), used(ledger, "hourly")

    ledger.submit(hold("h1", "payer", "payee", USD(60), limits=both))
    assert uses() == (60, 60)
    with pytest.raises(LimitExceeded) as refused:
        ledger.submit(pay("t1", 41, *both))
    assert refused.value.over == 1
    ledger.submit(void("v1", "h1"))
    assert uses() == (0, 0)
    ledger.submit(hold("h2", "payer", "payee", USD(60), timeout_s=10, limits=both))
    clock.advance(11)
    ledger.expire_due()
    assert ledger.hold_status("h2").state == "expired"
    assert uses() == (0, 0)
    ledger.submit(hold("h3", "payer", "payee", USD(60), limits=both))
    ledger.submit(post("p3", "h3", USD(25)))  # the 35 not posted come back
    assert uses() == (25, 25)
    ledger.submit(hold("h4", "payer", "payee", USD(75), limits=both))
    assert uses() == (100, 100)
    ledger.submit(post("p4", "h4"))  # all of it posted: nothing comes back
    assert uses() == (100, 100)
    assert ledger.limit("total").total_atomic == 100
    assert ledger.balance("payer").debits_posted == 100
    assert ledger.transfer("p4").limits == ()  # a post counts against its hold's limits
    assert_verified(ledger)


def test_a_hold_gives_back_to_the_bucket_it_was_charged_in(
    ledger: Ledger, clock: FakeClock
) -> None:
    """Voided half a window later, a hold frees room in the window it was charged in; voided
    after its bucket was reused by later spending, it lowers the total only."""
    books(ledger)
    ledger.open_limit(NewLimit("minute", USDC, 100, 60))
    ledger.open_limit(NewLimit("total", USDC, 10**6))
    align(clock, 1)
    ledger.submit(hold("h1", "payer", "payee", USD(70), limits=["minute", "total"]))
    clock.advance(30)
    ledger.submit(pay("t1", 30, "minute", "total"))
    with pytest.raises(LimitExceeded):
        ledger.submit(pay("t2", 1, "minute"))
    ledger.submit(void("v1", "h1"))
    assert used(ledger, "minute") == 30
    ledger.submit(pay("t2", 70, "minute", "total"))
    clock.advance(61)
    ledger.submit(hold("h2", "payer", "payee", USD(10), limits=["minute", "total"]))
    clock.advance(WINDOW_SLOTS)  # the very slot of h2's bucket
    ledger.submit(pay("t3", 5, "minute", "total"))
    ledger.submit(void("v2", "h2"))
    assert used(ledger, "minute") == 5
    assert ledger.limit("total").total_atomic == 30 + 70 + 5
    assert_verified(ledger)


# ----- linked batches ---------------------------------------------------------------------


def test_a_linked_batch_over_a_limit_moves_nothing(ledger: Ledger) -> None:
    books(ledger)
    ledger.open_limit(NewLimit("cap", USDC, 100))
    ledger.open_limit(NewLimit("hourly", USDC, 1_000, HOUR))
    before = ledger.balance("payer"), ledger.head().size
    batch = [
        pay("a", 50, "hourly", "cap"),
        hold("b", "payer", "payee", USD(30), limits=["cap", "hourly"]),
        pay("c", 21, "cap", "hourly"),
    ]
    with pytest.raises(LinkedBatchFailed) as failed:
        ledger.submit_linked(batch)
    assert failed.value.index == 2 and isinstance(failed.value.cause, LimitExceeded)
    assert failed.value.cause.over == 1
    assert (ledger.balance("payer"), ledger.head().size) == before
    assert used(ledger, "cap") == used(ledger, "hourly") == 0
    for tid in "abc":
        with pytest.raises(TransferNotFound):
            ledger.transfer(tid)
    done = ledger.submit_linked([*batch[:2], pay("c", 20, "cap", "hourly")])
    assert [t.replayed for t in done] == [False, False, False]
    assert used(ledger, "cap") == 100
    # A void frees room for the transfers after it in the same batch.
    ledger.submit_linked([void("vb", "b"), pay("d", 30, "cap")])
    assert used(ledger, "cap") == 100 and used(ledger, "hourly") == 70
    assert_verified(ledger)


def test_refusals_in_a_group_leave_the_limits_as_they_were(ledger: Ledger) -> None:
    books(ledger)
    ledger.open_limit(NewLimit("cap", USDC, 10))
    results = ledger.submit_many(
        [pay("a", 4, "cap"), pay("b", 7, "cap"), pay("c", 6, "cap"), pay("d", 1, "nope")]
    )
    assert [type(r).__name__ for r in results] == [
        "Transfer",
        "LimitExceeded",
        "Transfer",
        "LimitNotFound",
    ]
    assert used(ledger, "cap") == 10


# ----- verify, audit, and the store -------------------------------------------------------


def limited_books(ledger: Ledger, clock: FakeClock) -> None:
    books(ledger)
    ledger.open_limit(NewLimit("total", USDC, 10_000, metadata={"mandate": "m-1"}))
    ledger.open_limit(NewLimit("minute", USDC, 1_000, 60))
    ledger.open_limit(NewLimit("gone", USDC, 1_000))
    for n in range(5):
        ledger.submit(pay(f"t{n}", 10 + n, "total", "minute"))
        clock.advance(7)
    ledger.submit(hold("h1", "payer", "payee", USD(100), limits=["minute", "total"]))
    ledger.submit(post("p1", "h1", USD(40)))
    ledger.submit(hold("h2", "payer", "payee", USD(50), timeout_s=5, limits=["total"]))
    ledger.submit(pay("g", 1, "gone"))
    ledger.close_limit("gone")
    clock.advance(6)
    ledger.expire_due()


def test_verify_and_audit_recompute_the_limits(
    ledger: Ledger, clock: FakeClock, tmp_path: Path
) -> None:
    limited_books(ledger, clock)
    report = ledger.log.verify()
    assert report.ok, report.problems
    assert report.limits == 3
    key = PrivateKey.generate()
    ledger.log.checkpoint(key)
    path = tmp_path / "log.jsonl"
    with path.open("wb") as out:
        ledger.log.export(out)
    exported = path.read_bytes()
    assert b'"type":"limit"' in exported and b'"type":"limit_close"' in exported
    assert b'"limits":["total","minute"]' in exported
    audited = audit_export(path, operator=key.address)
    assert audited.ok, audited.problems
    assert audited.limits == 3 and audited.entries == ledger.head().size
    # An export whose limit entry grew its cap no longer audits.
    line = next(x for x in exported.splitlines() if b'"id":"total"' in x and b'"cap"' in x)
    path.write_bytes(exported.replace(line, line.replace(b'"cap":"10000"', b'"cap":"20000"')))
    assert not audit_export(path, operator=key.address).ok


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE limit_usage SET used = used + 1 WHERE limit_id = 'minute' AND used > 0",
        "DELETE FROM limit_usage WHERE limit_id = 'minute'",
        "UPDATE limits SET used_total = used_total - 1 WHERE id = 'total'",
        "UPDATE limits SET closed = 0 WHERE id = 'gone'",
        "UPDATE limits SET cap = 20000 WHERE id = 'total'",
        "DELETE FROM limits WHERE id = 'gone'",
        "UPDATE transfers SET limits = 'total' WHERE id = 't1'",
    ],
)
def test_verify_detects_a_tampered_limit(
    store_url: str,
    make_ledger,
    clock: FakeClock,
    tamper: str,  # type: ignore[no-untyped-def]
) -> None:
    ledger = make_ledger(clock=clock)
    limited_books(ledger, clock)
    assert_verified(ledger)
    run_sql(store_url, tamper)
    report = ledger.log.verify()
    assert not report.ok, tamper
    assert any("limit" in problem.message or "t1" in problem.message for problem in report.problems)


def test_limits_survive_reopening(store_url: str, clock: FakeClock) -> None:
    with open_ledger(store_url, clock=clock) as ledger:
        limited_books(ledger, clock)
        statuses = {lid: ledger.limit(lid) for lid in ("total", "minute", "gone")}
    with open_ledger(store_url, clock=clock) as again:
        assert {lid: again.limit(lid) for lid in statuses} == statuses
        assert again.limit("gone").closed
        with pytest.raises(LimitExceeded):
            again.submit(pay("more", 1_000, "minute"))
        assert_verified(again)


def test_a_store_from_before_limits_opens_and_takes_them(store_url: str, clock: FakeClock) -> None:
    """A store of schema version 1 (no limit tables, no transfers.limits column) is brought
    up to date when it opens; what it held reads, verifies and replays as before."""
    with open_ledger(store_url, clock=clock) as ledger:
        books(ledger)
        ledger.submit(hold("h", "payer", "payee", USD(30)))
        first = ledger.submit(pay("old", 5))
    run_sql(
        store_url,
        "DROP TABLE limit_usage",
        "DROP TABLE limits",
        "ALTER TABLE transfers DROP COLUMN limits",
        "UPDATE meta SET value = '1' WHERE key = 'schema_version'",
    )
    with open_ledger(store_url, clock=clock) as ledger:
        with ledger.reader() as reader:
            assert reader.meta()["schema_version"] == "3"  # and on through every later version
        again = ledger.submit(pay("old", 5))
        assert again.replayed and again == first
        assert_verified(ledger)
        ledger.open_limit(NewLimit("cap", USDC, 10))
        ledger.submit(pay("new", 10, "cap"))
        ledger.submit(post("p", "h"))
        with pytest.raises(LimitExceeded):
            ledger.submit(pay("newer", 1, "cap"))
        assert_verified(ledger)
    with open_ledger(store_url, clock=clock) as ledger:  # and opens again as it is now
        assert ledger.transfer("new").limits == ("cap",)
