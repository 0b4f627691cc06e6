"""Task escrow on the ledger: post, take, deliver, accept / reject / cancel, expiry.

Every test runs on SQLite and PostgreSQL, checks balances exactly, that money is
conserved (posted balances sum to zero) and that the transparency log verifies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from paywire.crypto.keys import parse_address
from paywire.ledger import (
    AccountKind,
    Ledger,
    LedgerError,
    LinkedBatchFailed,
    NewAccount,
    transfer,
)
from paywire.ledger.names import wallet_account_id
from paywire.money import USDC
from paywire.tasks import (
    REVIEW_WINDOW_S,
    SWEEP_WINDOW_S,
    AgentNotAllowed,
    DeadlinePassed,
    InvalidTask,
    Task,
    TaskBook,
    TaskClosed,
    TaskError,
    TaskState,
    split_reward,
)

if TYPE_CHECKING:
    from conftest import FakeClock

USD = USDC.atomic
PRINCIPAL = parse_address("0x" + "a1" * 20)
ALICE = parse_address("0x" + "b2" * 20)
BOB = parse_address("0x" + "c3" * 20)
CAROL = parse_address("0x" + "d4" * 20)
STRANGER = parse_address("0x" + "e5" * 20)
FEES = "operator:fees:USDC"
FUNDED = 10_000_000


def digests(task: Task) -> dict[str, str]:
    return {agent: delivery.result_digest for agent, delivery in task.deliveries.items()}


def wallet(address: str) -> str:
    return wallet_account_id(address, "USDC")


@pytest.fixture
def book(ledger: Ledger) -> Iterator[TaskBook]:
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount(FEES, USDC, AccountKind.FEES))
    for address in (PRINCIPAL, ALICE, BOB, CAROL):
        ledger.open_account(NewAccount(wallet(address), USDC, AccountKind.AGENT, owner=address))
    ledger.submit(transfer("fund", "world", wallet(PRINCIPAL), USD(FUNDED)))
    book = TaskBook(ledger)
    yield book
    for task in book.tasks():
        assert not book.books(task.id).problems(), task.id
    report = ledger.log.verify()
    assert report.ok, report.problems
    assert set(report.assets.values()) == {0}
    assert sum(account.balance.posted for account in ledger.accounts()) == 0


def posted(ledger: Ledger, account: str) -> int:
    return ledger.balance(account).posted


def available(ledger: Ledger, address: str) -> int:
    return ledger.balance(wallet(address)).available


def delivered_task(
    book: TaskBook, task_id: str = "t1", budget: int = 1_000_000, **kw: object
) -> None:
    book.post(task_id, PRINCIPAL, USD(budget), 3600, [ALICE, BOB], "write a poem", **kw)  # type: ignore[arg-type]
    book.take(task_id, ALICE)
    book.deliver(task_id, ALICE, "sha256:abc")


def test_post_take_deliver_accept(book: TaskBook, ledger: Ledger) -> None:
    task = book.post("t1", PRINCIPAL, USD(1_000_000), 3600, [ALICE, BOB], "poem", USD(800_000))
    assert task.state is TaskState.OPEN and task.document.agents == (ALICE, BOB)
    assert available(ledger, PRINCIPAL) == FUNDED - 1_000_000
    assert ledger.balance("task:t1:escrow").credits_pending == 1_000_000
    held = ledger.transfer("task:t1:hold")
    assert held.timeout_s == 3600 + REVIEW_WINDOW_S + SWEEP_WINDOW_S
    assert held.metadata["task"] == "t1"
    assert book.take("t1", ALICE.lower()).state is TaskState.TAKEN
    task = book.deliver("t1", ALICE, "sha256:abc")
    assert task.state is TaskState.DELIVERED and digests(task) == {ALICE: "sha256:abc"}
    done = book.accept(
        "t1", {ALICE: 3, BOB: 1}, expenses={ALICE: USD(50_000)}, fee=(FEES, USD(20_000))
    )
    assert all(t.metadata["task"] == "t1" for t in done)
    assert posted(ledger, wallet(ALICE)) == 600_000 + 50_000
    assert posted(ledger, wallet(BOB)) == 200_000
    assert posted(ledger, FEES) == 20_000
    assert posted(ledger, wallet(PRINCIPAL)) == FUNDED - 870_000
    assert available(ledger, PRINCIPAL) == FUNDED - 870_000
    assert ledger.balance("task:t1:escrow") == ledger.balance("task:t1:escrow").__class__(
        0, 870_000, 0, 870_000
    )
    assert book.task("t1").state is TaskState.ACCEPTED


def test_split_remainders_are_exact() -> None:
    shares = split_reward(USD(100), {ALICE: 1, BOB: 1, CAROL: 1})
    assert [shares[a].atomic for a in sorted(shares)] == [34, 33, 33]
    shares = split_reward(USD(10), {ALICE: 2, BOB: 1, CAROL: 4})  # 20/7, 10/7, 40/7
    assert sum(s.atomic for s in shares.values()) == 10
    assert (shares[ALICE].atomic, shares[BOB].atomic, shares[CAROL].atomic) == (3, 1, 6)
    shares = split_reward(USD(1), {ALICE: 1, BOB: 1})
    assert (shares[ALICE].atomic, shares[BOB].atomic) == (1, 0)


def test_accept_with_remainder_split(book: TaskBook, ledger: Ledger) -> None:
    delivered_task(book, budget=100)
    book.accept("t1", {ALICE: 1, BOB: 1, CAROL: 1})
    assert [posted(ledger, wallet(a)) for a in (ALICE, BOB, CAROL)] == [34, 33, 33]
    assert posted(ledger, wallet(PRINCIPAL)) == FUNDED - 100


@pytest.mark.parametrize(
    "splits",
    [
        {ALICE: USD(600_000), BOB: USD(300_000)},
        {ALICE: USD(600_000), BOB: 1},
        {ALICE: 0, BOB: 1},
        {},
    ],
)
def test_bad_split_refused_nothing_moves(book: TaskBook, ledger: Ledger, splits: dict) -> None:  # type: ignore[type-arg]
    delivered_task(book)
    head = ledger.head()
    with pytest.raises(InvalidTask):
        book.accept("t1", splits)
    assert ledger.head() == head
    assert book.task("t1").state is TaskState.DELIVERED


def test_amount_split_summing_to_reward(book: TaskBook, ledger: Ledger) -> None:
    delivered_task(book)
    book.accept("t1", {ALICE: USD(700_000), BOB: USD(300_000)})
    assert posted(ledger, wallet(ALICE)) == 700_000 and posted(ledger, wallet(BOB)) == 300_000


def test_double_accept(book: TaskBook, ledger: Ledger) -> None:
    delivered_task(book)
    first = book.accept("t1", {ALICE: 1, BOB: 1})
    again = book.accept("t1", {BOB: 1, ALICE: 1})
    assert [t.id for t in again] == [t.id for t in first] and all(t.replayed for t in again)
    with pytest.raises(TaskClosed):
        book.accept("t1", {ALICE: 1})
    assert posted(ledger, wallet(ALICE)) == 500_000 and posted(ledger, wallet(BOB)) == 500_000


def test_accept_then_reject_refused(book: TaskBook, ledger: Ledger) -> None:
    delivered_task(book)
    book.accept("t1", {ALICE: 1})
    with pytest.raises(TaskClosed):
        book.reject("t1")
    with pytest.raises(TaskClosed):
        book.cancel("t1")
    assert posted(ledger, wallet(ALICE)) == 1_000_000


def test_missing_contributor_account_moves_nothing(book: TaskBook, ledger: Ledger) -> None:
    delivered_task(book, reward=USD(900_000))
    with pytest.raises(LinkedBatchFailed):
        book.accept("t1", {ALICE: 1, STRANGER: 1}, fee=(FEES, USD(10)))
    assert posted(ledger, wallet(ALICE)) == 0 and posted(ledger, FEES) == 0
    assert available(ledger, PRINCIPAL) == FUNDED - 1_000_000
    assert book.task("t1").state is TaskState.DELIVERED
    book.accept("t1", {ALICE: 1, BOB: 1}, fee=(FEES, USD(10)))  # a corrected accept works
    assert posted(ledger, FEES) == 10 and posted(ledger, wallet(BOB)) == 450_000
    assert posted(ledger, wallet(PRINCIPAL)) == FUNDED - 900_010


def test_reject_refunds(book: TaskBook, ledger: Ledger) -> None:
    delivered_task(book)
    (voided,) = book.reject("t1")
    assert voided.metadata["task"] == "t1"
    assert available(ledger, PRINCIPAL) == FUNDED and posted(ledger, wallet(PRINCIPAL)) == FUNDED
    assert book.task("t1").state is TaskState.REJECTED
    assert book.reject("t1")[0].replayed
    with pytest.raises(TaskClosed):
        book.accept("t1", {ALICE: 1})


def test_reject_with_expenses(book: TaskBook, ledger: Ledger) -> None:
    delivered_task(book)
    book.reject("t1", expenses={ALICE: USD(40_000)})
    assert posted(ledger, wallet(ALICE)) == 40_000
    assert available(ledger, PRINCIPAL) == FUNDED - 40_000
    assert book.task("t1").state is TaskState.REJECTED


def test_cancel_before_take(book: TaskBook, ledger: Ledger) -> None:
    book.post("t1", PRINCIPAL, USD(1_000), 60, [ALICE], "x")
    book.cancel("t1")
    assert book.task("t1").state is TaskState.CANCELLED
    assert available(ledger, PRINCIPAL) == FUNDED
    with pytest.raises(TaskClosed):
        book.take("t1", ALICE)


def test_only_allowed_agents_who_took(book: TaskBook) -> None:
    book.post("t1", PRINCIPAL, USD(1_000), 60, [ALICE, BOB], "x")
    with pytest.raises(AgentNotAllowed):
        book.take("t1", CAROL)
    with pytest.raises(AgentNotAllowed):
        book.deliver("t1", BOB, "d")
    with pytest.raises(TaskError):
        book.accept("t1", {ALICE: 1})  # nothing delivered yet
    book.take("t1", BOB)
    book.deliver("t1", BOB, "d")
    assert digests(book.deliver("t1", BOB, "d")) == {BOB: "d"}
    with pytest.raises(TaskError):
        book.deliver("t1", BOB, "other")
    assert book.task("t1").takers == (BOB,)
    book.reject("t1")


def test_deadline_passed_refuses_delivery(book: TaskBook, ledger: Ledger, clock: FakeClock) -> None:
    book.post("t1", PRINCIPAL, USD(1_000), 60, [ALICE], "x")
    book.take("t1", ALICE)
    clock.advance(61)
    with pytest.raises(DeadlinePassed):
        book.deliver("t1", ALICE, "late")
    book.cancel("t1")


def test_expiry_refunds(book: TaskBook, ledger: Ledger, clock: FakeClock) -> None:
    delivered_task(book)
    clock.advance(3600 + REVIEW_WINDOW_S + SWEEP_WINDOW_S + 1)
    ledger.expire_due()
    assert book.task("t1").state is TaskState.EXPIRED
    assert available(ledger, PRINCIPAL) == FUNDED and posted(ledger, wallet(PRINCIPAL)) == FUNDED
    with pytest.raises(TaskClosed):
        book.accept("t1", {ALICE: 1})


def test_post_is_idempotent_and_validated(book: TaskBook, ledger: Ledger) -> None:
    first = book.post("t1", PRINCIPAL, USD(1_000), 60, [ALICE], "x")
    assert book.post("t1", PRINCIPAL, USD(1_000), 60, [ALICE], "x") == first
    with pytest.raises(LedgerError):
        book.post("t1", PRINCIPAL, USD(2_000), 60, [ALICE], "x")
    with pytest.raises(InvalidTask):
        book.post("t2", PRINCIPAL, USD(1_000), 60, [ALICE], "x", reward=USD(1_001))
    with pytest.raises(InvalidTask):
        book.post("t3", PRINCIPAL, USD(1_000), 60, [], "x")
    book.cancel("t1")


def test_books_that_do_not_add_up_are_named(book: TaskBook) -> None:
    delivered_task(book)
    book.accept("t1", {ALICE: 1})
    books = book.books("t1")
    assert books.problems() == [] and books.posted_atomic == books.paid_to_contributors_atomic
    skewed = dataclasses.replace(books, posted_atomic=books.posted_atomic + 1)
    assert any("posted" in problem for problem in skewed.problems())
    greedy = dataclasses.replace(books, shares={ALICE: books.task.budget.atomic + 1})
    assert len(greedy.problems()) >= 2
