"""Tasks under faults: late deliveries, retried and contradictory settlements, splits that
do not add up, a contributor without a wallet, a sub-agent that overspends, payments
tagged with a task under a mandate nobody registered, dispute windows, expiry, and a
settling process killed with SIGKILL.

Every test but the crash tests runs on SQLite and PostgreSQL; each ends by checking that
money is conserved, that no wallet is below zero and that the transparency log verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from task_helpers import (
    ALICE,
    ALICE_KEY,
    BOB,
    BOB_KEY,
    CAROL,
    CRASH_EXPENSES,
    CRASH_FEE,
    FEES,
    FUNDED,
    NO_WALLET,
    PRINCIPAL,
    PRINCIPAL_KEY,
    STRANGER,
    STRANGER_KEY,
    USD,
    WINDOW_SKEW_NS,
    SkewClock,
    check_books,
    crash_accept,
    crash_task_id,
    key_of,
    money,
    moves_nothing,
    open_wallet,
    pay,
    setup_parties,
    signed_payment,
    wallet,
)

from paywire.errors import PaywireError
from paywire.ledger import (
    HoldState,
    Ledger,
    LinkedBatchFailed,
    TransferNotFound,
    open_ledger,
)
from paywire.ledger.model import NS_PER_S
from paywire.mandate import AssetLimit, Mandate, MandateChain, SignedMandate
from paywire.money import EURC, Amount
from paywire.protocol import Facilitator, LedgerExactScheme, PaymentProblem
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
    TaskNotFound,
    TaskState,
    issue_task_mandate,
)

if TYPE_CHECKING:
    from conftest import FakeClock

SHOP_A = key_of(20).address
SHOP_B = key_of(21).address
BUDGET = 1_000_000


@pytest.fixture
def book(ledger: Ledger) -> Iterator[TaskBook]:
    setup_parties(ledger, ALICE, BOB, CAROL, STRANGER)
    yield TaskBook(ledger)
    check_books(ledger)


def posted(ledger: Ledger, account: str) -> int:
    return ledger.balance(account).posted


def delivered(
    book: TaskBook,
    task_id: str = "t1",
    budget: int = BUDGET,
    reward: int | None = None,
    **options: Any,
) -> Task:
    """A task posted for ALICE and BOB, taken and delivered by ALICE."""
    book.post(
        task_id,
        PRINCIPAL,
        USD(budget),
        3600,
        [ALICE, BOB],
        "write a poem",
        None if reward is None else USD(reward),
        **options,
    )
    book.take(task_id, ALICE)
    return book.deliver(task_id, ALICE, "sha256:poem")


def exists(ledger: Ledger, transfer_id: str) -> bool:
    try:
        ledger.transfer(transfer_id)
    except TransferNotFound:
        return False
    return True


# ----- deadlines ---------------------------------------------------------------------


def test_delivery_after_the_deadline_is_refused(
    book: TaskBook, ledger: Ledger, clock: FakeClock
) -> None:
    book.post("t1", PRINCIPAL, USD(BUDGET), 60, [ALICE], "poem")
    book.take("t1", ALICE)
    clock.advance(61)
    with moves_nothing(ledger), pytest.raises(DeadlinePassed):
        book.deliver("t1", ALICE, "sha256:late")
    with moves_nothing(ledger), pytest.raises(DeadlinePassed):
        book.take("t1", ALICE)
    task = book.task("t1")
    assert task.state is TaskState.TAKEN and not task.deliveries
    with moves_nothing(ledger), pytest.raises(TaskError):
        book.accept("t1", {ALICE: 1})
    with moves_nothing(ledger), pytest.raises(TaskError):
        book.reject("t1")  # nothing was delivered: nothing to reject
    book.cancel("t1")
    assert ledger.balance(wallet(PRINCIPAL)).available == FUNDED


def test_a_record_stamped_after_the_deadline_does_not_count(
    book: TaskBook, ledger: Ledger, clock: FakeClock
) -> None:
    """The ledger's timestamp of the record decides, not the clock reading of the check:
    at the deadline itself a delivery counts, one nanosecond after it does not (the
    ledger's timestamps strictly increase, so the second record of the same instant is
    stamped one nanosecond later)."""
    task = book.post("t1", PRINCIPAL, USD(BUDGET), 60, [ALICE, BOB, CAROL], "poem")
    book.take("t1", ALICE)
    book.take("t1", BOB)
    clock.now = task.deadline_at
    on_time = book.deliver("t1", BOB, "sha256:bob")
    assert on_time.deliveries[BOB].at == task.deadline_at
    with pytest.raises(DeadlinePassed):
        book.take("t1", CAROL)  # let in by the check, stamped deadline + 1 ns
    with pytest.raises(DeadlinePassed):
        book.deliver("t1", ALICE, "sha256:alice")  # stamped deadline + 2 ns
    late = ledger.account("task:t1:deliver:0")
    assert late.timestamp == task.deadline_at + 2
    assert late.metadata["result_digest"] == "sha256:alice"
    with pytest.raises(DeadlinePassed):
        book.deliver("t1", ALICE, "sha256:alice")  # the retry finds the late record
    task = book.task("t1")
    assert task.takers == (ALICE, BOB) and set(task.deliveries) == {BOB}
    with moves_nothing(ledger), pytest.raises(AgentNotAllowed):
        book.deliver("t1", CAROL, "sha256:carol")  # her take did not count either
    book.accept("t1")  # the one delivery that counts: all to BOB
    assert posted(ledger, wallet(BOB)) == BUDGET
    assert posted(ledger, wallet(ALICE)) == 0 and posted(ledger, wallet(CAROL)) == 0


# ----- settling twice, or both ways --------------------------------------------------


def test_double_accept_replays_and_other_terms_are_refused(book: TaskBook, ledger: Ledger) -> None:
    delivered(book, reward=900_000)
    terms: dict[str, Any] = {"expenses": {CAROL: USD(40_000)}, "fee": (FEES, USD(10_000))}
    first = book.accept("t1", {ALICE: 1, BOB: 1}, **terms)
    assert not any(t.replayed for t in first)
    with moves_nothing(ledger):
        again = book.accept("t1", {BOB: 1, ALICE: 1}, **terms)
        # the same payouts given as amounts (and the expense as an int) are the same terms
        amounts = book.accept(
            "t1",
            {ALICE: USD(450_000), BOB: USD(450_000)},
            expenses={CAROL: 40_000},
            fee=(FEES, USD(10_000)),
        )
    for replay in (again, amounts):
        assert [(t.id, t.amount) for t in replay] == [(t.id, t.amount) for t in first]
        assert all(t.replayed for t in replay)
    others: list[dict[str, Any]] = [
        {"splits": {ALICE: 2, BOB: 1}, **terms},
        {"splits": {ALICE: 1}, **terms},
        {"splits": {ALICE: 1, BOB: 1}, "expenses": {CAROL: USD(40_001)}, "fee": terms["fee"]},
        {"splits": {ALICE: 1, BOB: 1}, "expenses": terms["expenses"]},
        {"splits": {ALICE: 1, BOB: 1}, "fee": terms["fee"]},
    ]
    for other in others:
        with moves_nothing(ledger), pytest.raises(TaskClosed):
            book.accept("t1", **other)
    assert posted(ledger, wallet(ALICE)) == 450_000 and posted(ledger, wallet(BOB)) == 450_000
    assert posted(ledger, wallet(CAROL)) == 40_000 and posted(ledger, FEES) == 10_000
    assert posted(ledger, wallet(PRINCIPAL)) == FUNDED - 950_000


def test_accept_then_reject_cancel_or_expire_moves_nothing(
    book: TaskBook, ledger: Ledger, clock: FakeClock
) -> None:
    delivered(book)
    book.accept("t1", {ALICE: 1})
    attempts: list[Callable[[], object]] = [
        lambda: book.reject("t1"),
        lambda: book.reject("t1", expenses={ALICE: USD(1)}),
        lambda: book.cancel("t1"),
    ]
    for attempt in attempts:
        with moves_nothing(ledger), pytest.raises(TaskError):
            attempt()
    with moves_nothing(ledger), pytest.raises(TaskError):
        book.dispute("t1", PRINCIPAL, "changed my mind")
    clock.advance(3600 + REVIEW_WINDOW_S + 1)
    with moves_nothing(ledger), pytest.raises(TaskClosed):
        book.expire("t1")
    clock.advance(SWEEP_WINDOW_S)
    with moves_nothing(ledger):
        ledger.expire_due()  # the hold was posted: nothing is due
    assert book.task("t1").state is TaskState.ACCEPTED
    assert posted(ledger, wallet(ALICE)) == BUDGET
    assert posted(ledger, wallet(PRINCIPAL)) == FUNDED - BUDGET


# ----- refused before any money moves ------------------------------------------------


@pytest.mark.parametrize(
    "splits",
    [
        {ALICE: USD(400_000), BOB: USD(399_999)},  # one unit short of the reward
        {ALICE: USD(400_000), BOB: USD(400_001)},  # one unit over
        {ALICE: USD(500_000), BOB: USD(500_000)},  # the budget, not the reward
        {ALICE: USD(400_000), ALICE.lower(): USD(400_000)},  # one contributor twice
        {ALICE: USD(400_000), BOB: Amount(400_000, EURC)},  # another asset
    ],
    ids=["short", "over", "budget", "twice", "asset"],
)
def test_an_amount_split_that_is_not_the_reward_moves_nothing(
    book: TaskBook, ledger: Ledger, splits: dict[str, Any]
) -> None:
    delivered(book, reward=800_000)
    with moves_nothing(ledger), pytest.raises(InvalidTask):
        book.accept("t1", splits, expenses={CAROL: USD(1_000)}, fee=(FEES, USD(100)))
    with moves_nothing(ledger), pytest.raises(InvalidTask):
        book.reject("t1", expenses={CAROL: USD(BUDGET + 1)})  # more than the budget
    with moves_nothing(ledger), pytest.raises(InvalidTask):
        book.accept("t1", {ALICE: 1}, expenses={CAROL: USD(200_001)})  # payouts > budget
    task = book.task("t1")
    assert task.state is TaskState.DELIVERED
    assert ledger.hold_status("task:t1:hold").state is HoldState.PENDING
    book.accept("t1", {ALICE: USD(500_000), BOB: USD(300_000)})
    assert posted(ledger, wallet(ALICE)) == 500_000 and posted(ledger, wallet(BOB)) == 300_000


@pytest.mark.parametrize("missing", ["share", "expense", "fee"])
def test_a_missing_account_fails_the_whole_batch_then_a_later_accept_works(
    book: TaskBook, ledger: Ledger, missing: str
) -> None:
    delivered(book, reward=800_000)
    fee_account = "operator:fees-2:USDC" if missing == "fee" else FEES
    terms: dict[str, Any] = {
        "splits": {ALICE: 1, NO_WALLET: 1} if missing == "share" else {ALICE: 1, BOB: 1},
        "expenses": {NO_WALLET if missing == "expense" else CAROL: USD(50_000)},
        "fee": (fee_account, USD(5_000)),
    }
    # A missing wallet fails the linked batch; a missing fee account is refused before it.
    refusal = (LinkedBatchFailed, InvalidTask) if missing == "fee" else LinkedBatchFailed
    with moves_nothing(ledger), pytest.raises(refusal):
        book.accept("t1", **terms)
    task = book.task("t1")
    assert task.state is TaskState.DELIVERED
    assert ledger.hold_status("task:t1:hold").state is HoldState.PENDING
    assert not exists(ledger, "task:t1:accept")
    if missing == "fee":
        from paywire.ledger import AccountKind, NewAccount
        from paywire.money import USDC

        ledger.open_account(NewAccount(fee_account, USDC, AccountKind.FEES))
    else:
        open_wallet(ledger, NO_WALLET)
    done = book.accept("t1", **terms)
    assert done and not any(t.replayed for t in done)
    assert book.task("t1").state is TaskState.ACCEPTED
    payees = {t.credit_account_id: t.amount.atomic for t in done[1:]}
    assert sum(payees.values()) == 855_000 and payees[fee_account] == 5_000
    assert posted(ledger, wallet(ALICE)) == 400_000
    assert posted(ledger, wallet(PRINCIPAL)) == FUNDED - 855_000


# ----- spending under task mandates ---------------------------------------------------


def exact_facilitator(ledger: Ledger) -> tuple[Facilitator, LedgerExactScheme]:
    scheme = LedgerExactScheme(ledger)
    return Facilitator(key_of(30), [scheme]), scheme


def self_signed_chain(key: Any, network: str, task_id: str, total: int) -> MandateChain:
    """A mandate its payer signs for itself, naming a task it was never given."""
    now = int(time.time())
    mandate = Mandate(
        issuer=key.address,
        agent=key.address,
        limits=(AssetLimit(network, "USDC", total, total),),
        valid_after=now - 60,
        valid_before=now + 3600,
        task_id=task_id,
    )
    return MandateChain((SignedMandate.sign(mandate, key),))


def test_a_sub_agent_spends_up_to_its_share_and_the_task_reimburses_exactly_that(
    book: TaskBook, ledger: Ledger
) -> None:
    for agent in (ALICE, BOB, STRANGER):
        open_wallet(ledger, agent, 1_000_000)
    task = book.post("t1", PRINCIPAL, USD(BUDGET), 3600, [ALICE], "research", USD(500_000))
    allowance = task.allowance.atomic
    assert allowance == 500_000
    mandate = issue_task_mandate(PRINCIPAL_KEY, task, ALICE, ledger.network)
    with pytest.raises(InvalidTask):
        book.take("t1", ALICE, self_signed_chain(ALICE_KEY, ledger.network, "t1", allowance))
    assert book.take("t1", ALICE, mandate).mandates == {ALICE: mandate.id}
    # The orchestrator (ALICE) hires a writer (BOB) for 30% of the allowance.
    cap = allowance * 30 // 100
    child = mandate.mandate.delegate(BOB, limits=(AssetLimit(ledger.network, "USDC", cap, cap),))
    writer = MandateChain((mandate, SignedMandate.sign(child, ALICE_KEY)))
    own = MandateChain((mandate,))
    facilitator, scheme = exact_facilitator(ledger)

    for _ in range(3):
        assert pay(facilitator, ledger, BOB_KEY, SHOP_A, 50_000, writer).success
    refused = pay(facilitator, ledger, BOB_KEY, SHOP_A, 1, writer)
    assert not refused.success and refused.error_reason == "mandate_total_exceeded"
    assert child.id in (refused.error_message or "")
    payload, requirements = signed_payment(ledger, BOB_KEY, SHOP_A, 1, writer)
    with pytest.raises(PaymentProblem) as problem:  # the scheme's own 402
        asyncio.run(scheme.settle(payload, requirements))
    assert problem.value.status == 402 and problem.value.reason == "mandate_total_exceeded"

    # The orchestrator's own total bounds the two together.
    assert pay(facilitator, ledger, ALICE_KEY, SHOP_B, 300_000, own).success
    refused = pay(facilitator, ledger, ALICE_KEY, SHOP_B, 50_001, own)
    assert refused.error_reason == "mandate_total_exceeded"
    assert mandate.id in (refused.error_message or "")
    assert pay(facilitator, ledger, ALICE_KEY, SHOP_B, 50_000, own).success
    assert ledger.limit(f"mandate:{mandate.id[2:]}:0:total").used_atomic == allowance
    assert not pay(facilitator, ledger, BOB_KEY, SHOP_A, 1, writer).success

    # Tagged with the task under mandates nobody registered: spent, never reimbursed.
    stranger = self_signed_chain(STRANGER_KEY, ledger.network, "t1", 100_000)
    settled = pay(facilitator, ledger, STRANGER_KEY, SHOP_A, 20_000, stranger)
    assert settled.success and ledger.transfer(settled.transaction).metadata["task"] == "t1"
    own_extra = self_signed_chain(ALICE_KEY, ledger.network, "t1", 100_000)
    assert pay(facilitator, ledger, ALICE_KEY, SHOP_B, 30_000, own_extra).success

    books = book.books("t1")
    assert books.spent_by_provider == {SHOP_A: 170_000, SHOP_B: 380_000}
    assert books.spent_by_payer == {BOB: 150_000, ALICE: 380_000, STRANGER: 20_000}
    assert books.reimbursable() == {BOB: 150_000, ALICE: 350_000}
    assert books.spent_atomic == 550_000 and books.held_atomic == BUDGET

    book.deliver("t1", ALICE, "sha256:report", shares={ALICE: 3, BOB: 2})
    done = book.accept("t1")
    assert all(t.metadata["task"] == "t1" for t in done)
    after = book.books("t1")
    assert after.task.state is TaskState.ACCEPTED
    assert after.expenses == {BOB: 150_000, ALICE: 350_000}
    assert after.shares == {ALICE: 300_000, BOB: 200_000}
    assert after.refunded_atomic == 0 and after.held_atomic == 0
    assert posted(ledger, wallet(BOB)) == 1_000_000 + 200_000
    assert posted(ledger, wallet(ALICE)) == 1_000_000 - 30_000 + 300_000
    assert posted(ledger, wallet(STRANGER)) == 1_000_000 - 20_000
    assert posted(ledger, wallet(SHOP_A)) == 170_000 and posted(ledger, wallet(SHOP_B)) == 380_000
    assert posted(ledger, wallet(PRINCIPAL)) == FUNDED - BUDGET
    assert [t.id for t in book.accept("t1")] == [t.id for t in done]  # a replay


def test_the_task_mandates_together_stay_within_the_allowance(
    book: TaskBook, ledger: Ledger, clock: FakeClock
) -> None:
    for agent in (ALICE, BOB):
        open_wallet(ledger, agent, 1_000_000)
    task = book.post("t1", PRINCIPAL, USD(BUDGET), 3600, [ALICE, BOB], "research", USD(600_000))
    facilitator, _ = exact_facilitator(ledger)
    spent = 0
    for key in (ALICE_KEY, BOB_KEY):
        mandate = issue_task_mandate(PRINCIPAL_KEY, task, key.address, ledger.network)
        try:
            book.take("t1", key.address, mandate)
        except TaskError:
            continue  # refusing the second full-allowance mandate would be one fix
        chain = MandateChain((mandate,))
        spent += 400_000 if pay(facilitator, ledger, key, SHOP_A, 400_000, chain).success else 0
    reimbursable = book.books("t1").reimbursable()
    try:
        assert sum(reimbursable.values()) <= task.allowance.atomic, reimbursable
        book.deliver("t1", ALICE, "sha256:report")
        clock.advance(3600 + REVIEW_WINDOW_S + 1)
        book.expire("t1")  # settles, the expenses reimbursed
    finally:
        if book.task("t1").state is not TaskState.EXPIRED:
            clock.advance(SWEEP_WINDOW_S + 3600)
            ledger.expire_due()


def test_a_delivery_proposing_amounts_is_refused_or_kept(book: TaskBook, ledger: Ledger) -> None:
    book.post("t1", PRINCIPAL, USD(BUDGET), 3600, [ALICE, BOB], "poem")
    book.take("t1", ALICE)
    shares: Any = {ALICE: USD(100_000), BOB: USD(900_000)}  # a sum the split takes
    try:
        task = book.deliver("t1", ALICE, "sha256:poem", shares)
    except InvalidTask:
        book.cancel("t1")
        return  # refused: fine
    try:
        assert task.deliveries[ALICE].shares, "the proposed shares were dropped"
    finally:
        book.accept("t1", {ALICE: 1, BOB: 9})


def test_a_refused_post_does_not_break_the_task_list(book: TaskBook, ledger: Ledger) -> None:
    book.post("t1", PRINCIPAL, USD(BUDGET), 3600, [ALICE], "poem")
    before = money(ledger)
    with pytest.raises(PaywireError):  # the hold is refused, after the escrow account opened
        book.post("t2", PRINCIPAL, USD(FUNDED * 2), 3600, [ALICE], "too dear")
    assert money(ledger) == before
    with pytest.raises(TaskNotFound):
        book.task("t2")
    try:
        assert [task.id for task in book.tasks(principal=PRINCIPAL)] == ["t1"]
        assert [task.id for task in book.tasks()] == ["t1"]
    finally:
        book.cancel("t1")


# ----- dispute windows ---------------------------------------------------------------


def test_a_disputed_acceptance_is_never_paid_and_reject_refunds(
    book: TaskBook, ledger: Ledger, clock: FakeClock
) -> None:
    delivered(book, dispute_window_s=3600)
    before = money(ledger)
    assert book.accept("t1", {ALICE: 1, BOB: 1}) == []
    task = book.task("t1")
    assert task.state is TaskState.RELEASING and task.accepting is not None
    assert int(str(task.accepting["release_at"])) == clock.now + 3600 * NS_PER_S
    assert money(ledger) == before  # only the acceptance's record was written
    with moves_nothing(ledger):
        assert book.accept("t1", {BOB: 1, ALICE: 1}) == []  # the same terms again
    with moves_nothing(ledger), pytest.raises(TaskClosed):
        book.accept("t1", {ALICE: 1})
    clock.advance(3599)
    with moves_nothing(ledger), pytest.raises(TaskError):
        book.release("t1")
    with moves_nothing(ledger), pytest.raises(TaskError):
        book.expire("t1")
    with moves_nothing(ledger), pytest.raises(AgentNotAllowed):
        book.dispute("t1", STRANGER, "not mine to say")
    for undo in (lambda: book.reject("t1"), lambda: book.cancel("t1")):
        with moves_nothing(ledger), pytest.raises(TaskError):
            undo()  # an acceptance binds: the principal disputes it first
    assert book.dispute("t1", PRINCIPAL, "the poem does not rhyme").state is TaskState.DISPUTED
    with pytest.raises(TaskError):
        book.dispute("t1", ALICE, "again")
    clock.advance(2)  # past the window: still nothing to release
    with moves_nothing(ledger), pytest.raises(TaskError):
        book.release("t1")
    book.reject("t1")
    assert book.task("t1").state is TaskState.REJECTED
    assert ledger.balance(wallet(PRINCIPAL)).available == FUNDED
    assert posted(ledger, wallet(ALICE)) == 0 and posted(ledger, wallet(BOB)) == 0
    assert ledger.balance("task:t1:escrow") == ledger.balance("task:t1:escrow").__class__()


def test_a_dispute_stamped_after_the_window_does_not_count(
    book: TaskBook, ledger: Ledger, clock: FakeClock
) -> None:
    delivered(book, dispute_window_s=600)
    book.accept("t1", {ALICE: 1})
    accepting = book.task("t1").accepting
    assert accepting is not None
    release_at = int(str(accepting["release_at"]))
    clock.now = release_at - 1
    open_wallet(ledger, key_of(40).address)  # a write stamped release_at - 1
    with contextlib.suppress(DeadlinePassed):  # refused as too late: fine
        book.dispute("t1", PRINCIPAL, "at the last instant")  # stamped release_at
    clock.now = release_at
    assert book.task("t1").state is TaskState.RELEASING
    assert book.release("t1")


def test_a_payee_may_dispute_and_the_principal_then_accepts_at_once(
    book: TaskBook, ledger: Ledger, clock: FakeClock
) -> None:
    delivered(book, dispute_window_s=600)
    book.accept("t1", {ALICE: 1, BOB: 1})
    assert book.dispute("t1", BOB, "my half is too small").state is TaskState.DISPUTED
    done = book.accept("t1", {ALICE: 1, BOB: 3})  # decided again: paid now, no window
    assert done and book.task("t1").state is TaskState.ACCEPTED
    assert posted(ledger, wallet(ALICE)) == 250_000 and posted(ledger, wallet(BOB)) == 750_000


def test_release_after_the_window_pays_exactly_the_recorded_payouts(
    book: TaskBook, ledger: Ledger, clock: FakeClock
) -> None:
    delivered(book, reward=900_000, dispute_window_s=600)
    terms: dict[str, Any] = {"expenses": {CAROL: USD(30_000)}, "fee": (FEES, USD(1_000))}
    assert book.accept("t1", {ALICE: 2, BOB: 1}, **terms) == []
    accepting = book.task("t1").accepting
    assert accepting is not None
    rows = accepting["payouts"]
    assert isinstance(rows, list)
    clock.advance(600)  # the window's last instant has passed
    with moves_nothing(ledger), pytest.raises(DeadlinePassed):
        book.dispute("t1", PRINCIPAL, "too late")
    done = book.release("t1")
    assert book.task("t1").state is TaskState.ACCEPTED
    paid = {t.id: (t.credit_account_id, t.amount.atomic) for t in done[1:]}
    recorded = {}
    for row in rows:
        assert isinstance(row, list)
        account, amount, _, label = row
        recorded[f"task:t1:accept:{label}"] = (account, int(str(amount)))
    assert paid == recorded
    assert done[0].id == "task:t1:accept" and done[0].amount.atomic == 931_000
    assert posted(ledger, wallet(ALICE)) == 600_000 and posted(ledger, wallet(BOB)) == 300_000
    assert posted(ledger, wallet(CAROL)) == 30_000 and posted(ledger, FEES) == 1_000
    assert posted(ledger, wallet(PRINCIPAL)) == FUNDED - 931_000
    with moves_nothing(ledger):
        again = book.release("t1")  # a replay of the whole batch
        assert [t.id for t in again] == [t.id for t in done] and all(t.replayed for t in again)
        assert all(t.replayed for t in book.accept("t1", {ALICE: 2, BOB: 1}, **terms))
    with moves_nothing(ledger), pytest.raises(TaskError):
        book.reject("t1")


def _mandated_spend(book: TaskBook, ledger: Ledger, task: Task, atomic: int) -> None:
    """ALICE takes `task` with its mandate and pays SHOP_A `atomic` under it."""
    open_wallet(ledger, ALICE, 100_000)
    mandate = issue_task_mandate(PRINCIPAL_KEY, task, ALICE, ledger.network)
    book.take(task.id, ALICE, mandate)
    facilitator, _ = exact_facilitator(ledger)
    assert pay(facilitator, ledger, ALICE_KEY, SHOP_A, atomic, MandateChain((mandate,))).success


def test_expire_after_the_review_window_reimburses_expenses_and_refunds_the_rest(
    book: TaskBook, ledger: Ledger, clock: FakeClock
) -> None:
    task = book.post("t1", PRINCIPAL, USD(BUDGET), 3600, [ALICE], "poem", USD(600_000))
    _mandated_spend(book, ledger, task, 40_000)
    book.deliver("t1", ALICE, "sha256:poem")
    clock.now = task.review_end_at
    with moves_nothing(ledger), pytest.raises(TaskError):
        book.expire("t1")  # the last instant of the review window
    clock.advance(1e-9)
    with moves_nothing(ledger), pytest.raises(DeadlinePassed):
        book.accept("t1", {ALICE: 1})
    with moves_nothing(ledger), pytest.raises(DeadlinePassed):
        book.reject("t1")
    done = book.expire("t1")
    assert done[0].id == "task:t1:expire"
    books = book.books("t1")
    assert books.task.state is TaskState.EXPIRED
    assert books.expenses == {ALICE: 40_000} and books.refunded_atomic == BUDGET - 40_000
    assert posted(ledger, wallet(ALICE)) == 100_000
    assert posted(ledger, wallet(PRINCIPAL)) == FUNDED - 40_000
    with moves_nothing(ledger):
        assert all(t.replayed for t in book.expire("t1"))
    with moves_nothing(ledger), pytest.raises(TaskClosed):
        book.accept("t1", {ALICE: 1})


@pytest.mark.parametrize("state", [TaskState.DELIVERED, TaskState.RELEASING])
def test_the_ledgers_own_expiry_refunds_in_full(
    book: TaskBook, ledger: Ledger, clock: FakeClock, state: TaskState
) -> None:
    task = book.post(
        "t1", PRINCIPAL, USD(BUDGET), 3600, [ALICE], "poem", USD(600_000), dispute_window_s=600
    )
    _mandated_spend(book, ledger, task, 40_000)
    book.deliver("t1", ALICE, "sha256:poem")
    if state is TaskState.RELEASING:
        book.accept("t1", {ALICE: 1})  # nobody releases it
    assert book.task("t1").state is state
    clock.advance(task.document.timeout_s - 1)
    ledger.expire_due()
    assert ledger.hold_status("task:t1:hold").state is HoldState.PENDING
    clock.advance(2)
    ledger.expire_due()
    assert book.task("t1").state is TaskState.EXPIRED
    assert ledger.balance(wallet(PRINCIPAL)).available == FUNDED
    assert posted(ledger, wallet(PRINCIPAL)) == FUNDED
    assert posted(ledger, wallet(ALICE)) == 100_000 - 40_000  # the backstop pays nobody
    settlements: list[Callable[[], object]] = [
        lambda: book.release("t1"),
        lambda: book.accept("t1", {ALICE: 1}),
        lambda: book.expire("t1"),
        lambda: book.reject("t1"),
    ]
    for settle in settlements:
        with moves_nothing(ledger), pytest.raises(TaskError):
            settle()


# ----- SIGKILL between accept and release ---------------------------------------------

HELPERS = Path(__file__).with_name("task_helpers.py")
CRASH_TASKS = 16
CRASH_BUDGET = 100_000
CRASH_REWARD = 60_000
CRASH_LABELS = ("expense:0", "expense:1", "share:0", "share:1", "fee")
CRASH_PAID = {ALICE: 40_000 + 7_000, BOB: 20_000, CAROL: 3_000}
CRASH_PAID_OUT = CRASH_REWARD + sum(CRASH_EXPENSES.values()) + CRASH_FEE
RUN_LIMIT_S = 30.0


def prepare_crash_store(url: str, window: bool) -> None:
    """CRASH_TASKS tasks, delivered (from threads: the ledger commits them in groups)."""
    with open_ledger(url) as ledger:
        setup_parties(ledger, ALICE, BOB, CAROL)
        book = TaskBook(ledger)

        def deliver(n: int) -> None:
            task_id = crash_task_id(n)
            book.post(
                task_id,
                PRINCIPAL,
                USD(CRASH_BUDGET),
                3600,
                [ALICE, BOB],
                "crash",
                USD(CRASH_REWARD),
                dispute_window_s=1 if window else 0,
            )
            book.take(task_id, ALICE)
            book.deliver(task_id, ALICE, f"sha256:{n}")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(deliver, range(CRASH_TASKS)))


def run_crash_writer(
    url: str,
    mode: str,
    tmp_path: Path,
    kill_when: Callable[[str], bool],
    delay_s: float,
    *extra: str,
) -> list[str]:
    """Run the writer; SIGKILL it `delay_s` after the line that `kill_when` picks; its
    complete lines."""
    stderr_path = tmp_path / f"{mode}.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(HELPERS), url, mode, str(CRASH_TASKS), *extra],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "PYTHONPATH": str(HELPERS.parent)},
        )
    watchdog = threading.Timer(RUN_LIMIT_S, process.kill)
    watchdog.start()
    lines: list[str] = []
    killed = False
    try:
        assert process.stdout is not None
        for raw in process.stdout:  # to the end: what it said before it died counts too
            if not raw.endswith(b"\n"):
                break  # a line cut by the kill was never said
            line = raw.decode().rstrip("\n")
            lines.append(line)
            if not killed and kill_when(line):
                time.sleep(delay_s)
                process.send_signal(signal.SIGKILL)
                killed = True
        process.wait()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    bad = [line for line in lines if line.startswith("BAD")]
    assert not bad, bad
    assert process.returncode == -signal.SIGKILL, stderr_path.read_text()[-3000:]
    return lines


def crash_outcome(ledger: Ledger, book: TaskBook) -> dict[int, TaskState]:
    """Each task's state; checks that each is paid out in full or not at all."""
    states: dict[int, TaskState] = {}
    for n in range(CRASH_TASKS):
        task_id = crash_task_id(n)
        ids = [f"task:{task_id}:accept"] + [f"task:{task_id}:accept:{x}" for x in CRASH_LABELS]
        there = [exists(ledger, transfer_id) for transfer_id in ids]
        state = book.task(task_id).state
        assert all(there) or not any(there), (task_id, dict(zip(ids, there, strict=True)))
        if all(there):
            assert state is TaskState.ACCEPTED
            assert ledger.transfer(ids[0]).amount.atomic == CRASH_PAID_OUT
        else:
            assert state in (TaskState.DELIVERED, TaskState.RELEASING), (task_id, state)
            assert ledger.hold_status(f"task:{task_id}:hold").state is HoldState.PENDING
        states[n] = state
    accepted = sum(state is TaskState.ACCEPTED for state in states.values())
    for address, atomic in CRASH_PAID.items():
        assert posted(ledger, wallet(address)) == atomic * accepted
    assert posted(ledger, FEES) == CRASH_FEE * accepted
    assert posted(ledger, wallet(PRINCIPAL)) == FUNDED - CRASH_PAID_OUT * accepted
    check_books(ledger)
    return states


def test_sigkill_while_accepting_leaves_each_task_accepted_or_untouched(
    tmp_path: Path,
) -> None:
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    url = f"sqlite:///{tmp_path / 'tasks.db'}"
    prepare_crash_store(url, window=False)
    kill_after = rng.randrange(CRASH_TASKS - 2)
    lines = run_crash_writer(
        url, "accept", tmp_path, lambda line: line == f"OK {kill_after}", rng.uniform(0, 0.01)
    )
    acknowledged = {int(line.split()[1]) for line in lines if line.startswith("OK ")}
    with open_ledger(url) as ledger:
        book = TaskBook(ledger)
        states = crash_outcome(ledger, book)
        context = f"seed {seed}, killed after OK {kill_after}: {states}"
        assert all(states[n] is TaskState.ACCEPTED for n in acknowledged), context
        last = max(acknowledged)
        assert all(states[n] is TaskState.DELIVERED for n in range(last + 2, CRASH_TASKS))
        for n in range(CRASH_TASKS):  # retried: the accepted replay, the rest complete
            done = crash_accept(book, n)
            assert all(t.replayed for t in done) == (states[n] is TaskState.ACCEPTED)
        assert set(crash_outcome(ledger, book).values()) == {TaskState.ACCEPTED}


def test_sigkill_after_the_acceptance_record_then_release_completes_it(
    tmp_path: Path,
) -> None:
    rng = random.Random()
    url = f"sqlite:///{tmp_path / 'tasks.db'}"
    prepare_crash_store(url, window=True)
    kill_at = rng.randrange(CRASH_TASKS - 1)
    lines = run_crash_writer(
        url, "window", tmp_path, lambda line: line == f"REC {kill_at}", 0.0, str(kill_at)
    )
    assert f"OK {kill_at}" not in lines
    clock = SkewClock()
    clock.skew = (CRASH_TASKS + 5) * WINDOW_SKEW_NS  # past every window the writer opened
    with open_ledger(url, clock=clock) as ledger:
        book = TaskBook(ledger)
        states = crash_outcome(ledger, book)
        assert states[kill_at] is TaskState.RELEASING, states
        assert all(states[n] is TaskState.ACCEPTED for n in range(kill_at)), states
        assert all(states[n] is TaskState.DELIVERED for n in range(kill_at + 1, CRASH_TASKS))
        released = book.release(crash_task_id(kill_at))  # recorded before the kill
        assert released and not any(t.replayed for t in released)
        for n in range(kill_at + 1, CRASH_TASKS):
            assert crash_accept(book, n) == []
        clock.skew += WINDOW_SKEW_NS
        for n in range(CRASH_TASKS):
            done = book.release(crash_task_id(n))
            if n <= kill_at:  # released already: a replay of its batch
                assert len(done) == 1 + len(CRASH_LABELS) and all(t.replayed for t in done)
            else:
                assert len(done) == 1 + len(CRASH_LABELS)
                assert not any(t.replayed for t in done)
        assert set(crash_outcome(ledger, book).values()) == {TaskState.ACCEPTED}
