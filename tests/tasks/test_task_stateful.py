"""A stateful property test of tasks on the ledger (SQLite, to stay fast).

Hypothesis drives a `TaskMachine` through posting tasks (budgets the principal can and
cannot pay, rewards of zero, part, all and more than the budget, no agents, dispute
windows), taking and delivering (allowed agents and strangers, proposed shares good and
bad), accepting (parts and amounts that do and do not add up, expenses within and beyond
the budget, a fee to an account that exists or not), releasing, disputing, rejecting,
cancelling, expiring, and the clock moving past deadlines, review windows and the escrow
hold's own timeout (the ledger then expires it).

After every step: money is conserved (posted and pending balances each sum to zero over
all accounts), no wallet is below zero, no escrow account is negative, a settled task's
escrow is empty, no task paid out more than its budget, a settled task never changes state
again; and every operation that raised moved no money.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from task_helpers import (
    ALICE,
    BOB,
    CAROL,
    FEES,
    NO_WALLET,
    PRINCIPAL,
    STRANGER,
    USD,
    ManualClock,
    money,
    setup_parties,
)

from paywire.errors import PaywireError
from paywire.ledger import AccountKind, AccountNotFound, Balance, open_ledger
from paywire.money import EURC, Amount
from paywire.tasks import (
    REVIEW_WINDOW_S,
    SWEEP_WINDOW_S,
    TaskBook,
    TaskError,
    TaskNotFound,
    TaskState,
)

FUNDS = 3_000_000
TASK_IDS = ("s0", "s1", "s2")
AGENTS = (ALICE, BOB, CAROL)
SETTLED = (TaskState.ACCEPTED, TaskState.REJECTED, TaskState.CANCELLED, TaskState.EXPIRED)
AFTER: dict[str, tuple[TaskState, ...]] = {
    "accept": (TaskState.ACCEPTED, TaskState.RELEASING),
    "release": (TaskState.ACCEPTED,),
    "reject": (TaskState.REJECTED,),
    "cancel": (TaskState.CANCELLED,),
    "expire": (TaskState.EXPIRED,),
    "dispute": (TaskState.DISPUTED,),
}

task_ids = st.sampled_from(("s0", "s1", "s0", "s1", "s2"))
agents = st.sampled_from(AGENTS)
someone = agents | st.sampled_from((STRANGER, NO_WALLET, PRINCIPAL))
splits = (
    st.just(None)
    | st.sampled_from([{ALICE: 1}, {ALICE: 1, BOB: 2}, {CAROL: 3, BOB: 1, ALICE: 1}])
    | st.sampled_from(
        [
            {NO_WALLET: 1},  # no wallet: the whole batch fails
            {ALICE: 0},
            {ALICE: USD(1)},  # amounts: almost never the reward
            {ALICE: Amount(1, EURC)},
            {},
        ]
    )
)
expenses = (
    st.just(None)
    | st.sampled_from([{}, {CAROL: 1_000}, {BOB: USD(250_000)}])
    | st.sampled_from([{CAROL: 10**9}, {NO_WALLET: 5}, {ALICE: -1}])
)
fees = (
    st.just(None)
    | st.just((FEES, USD(10)))
    | st.sampled_from([("operator:none:USDC", USD(10)), (FEES, USD(0))])
)


class TaskMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="paywire-tasks-"))
        self.clock = ManualClock()
        self.ledger = open_ledger(f"sqlite:///{self.dir / 'tasks.db'}", clock=self.clock)
        setup_parties(self.ledger, *AGENTS, STRANGER, funded=FUNDS)
        self.book = TaskBook(self.ledger)
        self.budgets: dict[str, int] = {}
        self.settled: dict[str, TaskState] = {}

    def teardown(self) -> None:
        self.ledger.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ----- running operations ----------------------------------------------------------

    def attempt(self, what: str, task_id: str, operation: Callable[[], Any]) -> Any:
        """Run a task operation; a refusal must be a paywire error that moved no money."""
        before = money(self.ledger)
        try:
            result = operation()
        except PaywireError as error:
            assert money(self.ledger) == before, (
                f"{what} {task_id} raised {error!r} and moved money"
            )
            event(f"{what}: {type(error).__name__}")
            return None
        event(f"{what}: done")
        if what in AFTER:
            state = self.book.task(task_id).state
            assert state in AFTER[what], (what, task_id, state)
        return result

    # ----- rules -----------------------------------------------------------------------

    @initialize()
    def posted_and_delivered(self) -> None:
        """Two tasks to start from, delivered: s0 by ALICE, s1 (a dispute window) by BOB."""
        self.post("s0", 1_000_000, 60, [ALICE, BOB], 600, 0)
        self.take("s0", ALICE)
        self.deliver("s0", ALICE, "sha256:a", None)
        self.post("s1", 600_000, None, [BOB, CAROL], 600, 120)
        self.take("s1", BOB)
        self.deliver("s1", BOB, "sha256:b", {BOB: 1, CAROL: 1})

    @rule(
        task_id=task_ids,
        budget=st.sampled_from([1_000_000, 600_000, 1_000, 7, FUNDS + 1]),
        reward_pct=st.sampled_from([50, None, 100, 1, 0, 150]),
        agents=st.lists(st.sampled_from((*AGENTS, NO_WALLET)), max_size=3).map(
            lambda agents: agents or [ALICE]
        )
        | st.just([]),
        deadline_s=st.sampled_from([600, 60, 0]),
        window_s=st.sampled_from([0, 120]),
    )
    def post(
        self,
        task_id: str,
        budget: int,
        reward_pct: int | None,
        agents: list[str],
        deadline_s: int,
        window_s: int,
    ) -> None:
        reward = None if reward_pct is None else USD(budget * reward_pct // 100)
        task = self.attempt(
            "post",
            task_id,
            lambda: self.book.post(
                task_id,
                PRINCIPAL,
                USD(budget),
                deadline_s,
                agents,
                "a task",
                reward,
                dispute_window_s=window_s,
            ),
        )
        if task is not None:
            assert self.budgets.setdefault(task_id, task.budget.atomic) == task.budget.atomic

    @rule(task_id=task_ids, agent=agents | someone)
    def take(self, task_id: str, agent: str) -> None:
        self.attempt("take", task_id, lambda: self.book.take(task_id, agent))

    @rule(
        task_id=task_ids,
        agent=agents | someone,
        digest=st.sampled_from(["sha256:a", "sha256:a", "sha256:b", ""]),
        shares=st.sampled_from([None, {ALICE: 1}, {ALICE: 1, BOB: 1}, {NO_WALLET: 2}, {BOB: 0}]),
    )
    def deliver(self, task_id: str, agent: str, digest: str, shares: dict[str, int] | None) -> None:
        self.attempt("deliver", task_id, lambda: self.book.deliver(task_id, agent, digest, shares))

    @rule(task_id=task_ids, split=splits, spent=expenses, fee=fees)
    def accept(self, task_id: str, split: Any, spent: Any, fee: Any) -> None:
        self.attempt("accept", task_id, lambda: self.book.accept(task_id, split, spent, fee))

    @rule(task_id=task_ids)
    def accept_as_delivered(self, task_id: str) -> None:
        """Accept by the delivery's proposed shares, expenses read off the ledger."""
        self.attempt("accept", task_id, lambda: self.book.accept(task_id))

    @rule(task_id=task_ids)
    def release(self, task_id: str) -> None:
        self.attempt("release", task_id, lambda: self.book.release(task_id))

    @rule(task_id=task_ids, by=st.sampled_from([PRINCIPAL, BOB, CAROL, STRANGER]))
    def dispute(self, task_id: str, by: str) -> None:
        self.attempt("dispute", task_id, lambda: self.book.dispute(task_id, by, "not good"))

    @rule(task_id=task_ids, spent=expenses)
    def reject(self, task_id: str, spent: Any) -> None:
        self.attempt("reject", task_id, lambda: self.book.reject(task_id, spent))

    @rule(task_id=task_ids, spent=expenses)
    def cancel(self, task_id: str, spent: Any) -> None:
        self.attempt("cancel", task_id, lambda: self.book.cancel(task_id, spent))

    @rule(task_id=task_ids)
    def expire(self, task_id: str) -> None:
        self.attempt("expire", task_id, lambda: self.book.expire(task_id))

    @rule(
        seconds=st.sampled_from(
            [1, 59, 61, 121, 601, REVIEW_WINDOW_S, SWEEP_WINDOW_S, REVIEW_WINDOW_S + SWEEP_WINDOW_S]
        )
    )
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.ledger.expire_due()  # what is due now expires in this step, not in the next

    # ----- invariants ------------------------------------------------------------------

    @invariant()
    def money_is_conserved_and_bounded(self) -> None:
        balances = money(self.ledger)
        assert sum(b.posted for b in balances.values()) == 0
        assert sum(b.credits_pending - b.debits_pending for b in balances.values()) == 0
        for account in self.ledger.accounts(kind=AccountKind.AGENT, limit=1000):
            assert account.balance.available >= 0, account

    @invariant()
    def escrows_hold_what_they_should(self) -> None:
        for task_id in TASK_IDS:
            try:
                escrow = self.ledger.balance(f"task:{task_id}:escrow")
            except AccountNotFound:
                continue
            assert escrow.posted >= 0 and escrow.credits_posted >= 0, (task_id, escrow)
            try:
                task = self.book.task(task_id)
            except TaskNotFound:
                assert escrow == Balance(), (task_id, escrow)  # the hold was refused
                continue
            budget = self.budgets[task_id]
            assert task.budget.atomic == budget
            assert escrow.debits_posted <= budget, (task_id, escrow)  # paid out
            assert escrow.credits_posted + escrow.credits_pending <= budget
            if task.state in SETTLED:
                assert escrow.posted == 0 and escrow.credits_pending == 0, (task_id, escrow)
            else:
                assert escrow == Balance(credits_pending=budget), (task_id, task.state, escrow)

    @invariant()
    def a_settled_task_stays_settled(self) -> None:
        for task_id in self.budgets:
            state = self.book.task(task_id).state
            was = self.settled.get(task_id)
            assert was is None or state is was, (task_id, was, state)
            if state in SETTLED:
                self.settled[task_id] = state


TestTaskMachine = TaskMachine.TestCase
TestTaskMachine.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_an_unknown_task_is_refused_everywhere() -> None:
    """The machine's refusals include these; here, once, without Hypothesis."""
    machine = TaskMachine()
    try:
        book = machine.book
        operations: list[Callable[[], Any]] = [
            lambda: book.take("nope", ALICE),
            lambda: book.deliver("nope", ALICE, "d"),
            lambda: book.accept("nope", {ALICE: 1}),
            lambda: book.release("nope"),
            lambda: book.dispute("nope", PRINCIPAL, "x"),
            lambda: book.reject("nope"),
            lambda: book.cancel("nope"),
            lambda: book.expire("nope"),
        ]
        for operation in operations:
            try:
                operation()
            except TaskError as error:
                assert isinstance(error, TaskNotFound), error
            else:
                raise AssertionError("an unknown task was not refused")
    finally:
        machine.teardown()
