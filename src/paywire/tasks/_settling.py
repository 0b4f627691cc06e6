"""Deciding and settling tasks: accept (now, or recorded for release after a dispute
window), release, dispute, reject, cancel, expire, and decide by the task's acceptance
check. The base of `TaskBook` (see `paywire.tasks.book`); every settlement is one linked
batch (`paywire.tasks._settle`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from paywire.crypto.keys import parse_address
from paywire.ledger import (
    AccountKind,
    AccountNotFound,
    IdempotencyConflict,
    Ledger,
    Transfer,
)
from paywire.ledger.model import NS_PER_S, JsonValue
from paywire.money import Amount
from paywire.tasks import _settle
from paywire.tasks._records import open_record, read_task
from paywire.tasks.books import read_books
from paywire.tasks.checks import JudgeLLM, SignedApproval
from paywire.tasks.model import (
    MAX_DESCRIPTION_CHARS,
    AgentNotAllowed,
    DeadlinePassed,
    InvalidTask,
    Task,
    TaskClosed,
    TaskError,
    TaskState,
    accepting_record_id,
    dispute_record_id,
)

if TYPE_CHECKING:
    from paywire.tasks.decide import Decision

_SETTLED = (TaskState.ACCEPTED, TaskState.REJECTED, TaskState.CANCELLED, TaskState.EXPIRED)


class Settling:
    """The settling half of `TaskBook`, over its `ledger`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def task(self, task_id: str) -> Task:
        """The task as the ledger has it now."""
        return read_task(self.ledger, task_id)

    def accept(
        self,
        task_id: str,
        splits: Mapping[str, int | Amount] | None = None,
        expenses: Mapping[str, Amount | int] | None = None,
        fee: tuple[str, Amount] | None = None,
    ) -> list[Transfer]:
        """Accept the delivery: reimburse `expenses` (default: the spending under the task's
        mandates, from the ledger), pay the reward by `splits` (default: the delivery's
        proposed shares) and `fee` to its account, release the rest to the principal, in
        one linked batch. With a dispute window, the payouts are recorded now and paid by
        `release` when the window ends (returns no transfers)."""
        task = self.task(task_id)
        if task.state in (TaskState.OPEN, TaskState.TAKEN):
            raise TaskError(f"task {task_id!r} has no delivery to accept")
        if task.state in _SETTLED and task.state is not TaskState.ACCEPTED:
            raise TaskClosed(f"task {task_id!r} is already {task.state}")
        payouts = self._reimbursements(task, expenses)
        payouts += _settle.share_payouts(task, self._splits(task, splits))
        if fee is not None:
            self._check_fee(task, fee)
            payouts.append(_settle.fee_payout(task, fee))
        _settle.check_total(task, payouts)
        if task.state in (TaskState.DELIVERED, TaskState.DISPUTED):
            self._check_review_window(task)
        if task.document.dispute_window_s and task.state in (
            TaskState.DELIVERED,
            TaskState.RELEASING,
        ):
            return self._record_acceptance(task, payouts)
        return _settle.settle(self.ledger, task, "accept", payouts)

    def release(self, task_id: str) -> list[Transfer]:
        """Pay out an acceptance whose dispute window has ended (idempotent)."""
        task = self.task(task_id)
        if task.state is TaskState.ACCEPTED and task.accepting is not None:
            payouts = _settle.payouts_from_json(task.accepting.get("payouts"))
            return _settle.settle(self.ledger, task, "accept", payouts)  # a replay
        if task.state is not TaskState.RELEASING or task.accepting is None:
            raise TaskError(f"task {task_id!r} has no acceptance to release (it is {task.state})")
        release_at = int(str(task.accepting.get("release_at")))
        if self.ledger.clock() < release_at:
            raise TaskError(f"task {task_id!r} is in its dispute window until {release_at} (ns)")
        payouts = _settle.payouts_from_json(task.accepting.get("payouts"))
        return _settle.settle(self.ledger, task, "accept", payouts)

    def dispute(self, task_id: str, by_address: str, reason: str) -> Task:
        """Dispute a pending acceptance within its window (the principal, or anyone it
        pays): nothing is released; the principal accepts again or rejects."""
        task = self.task(task_id)
        if task.state is not TaskState.RELEASING or task.accepting is None:
            raise TaskError(f"task {task_id!r} has no acceptance to dispute (it is {task.state})")
        by = parse_address(by_address)
        payees = {
            str(row[0]).split(":")[0]
            for row in _settle.payouts_from_json(task.accepting.get("payouts"))
        }
        if by != task.document.principal and by not in payees:
            raise AgentNotAllowed(f"{by} is neither the principal nor paid by task {task_id!r}")
        if self.ledger.clock() >= int(str(task.accepting.get("release_at"))):
            raise DeadlinePassed(f"the dispute window of task {task_id!r} has ended")
        if not isinstance(reason, str) or not 0 < len(reason) <= MAX_DESCRIPTION_CHARS:
            raise InvalidTask(f"a dispute gives a reason of 1-{MAX_DESCRIPTION_CHARS} characters")
        fields: dict[str, JsonValue] = {"event": "dispute", "by": by, "reason": reason}
        try:
            open_record(self.ledger, task, dispute_record_id(task_id), by, fields)
        except IdempotencyConflict:
            raise TaskError(f"task {task_id!r} was already disputed") from None
        task = self.task(task_id)
        if task.state is not TaskState.DISPUTED:  # stamped at or after release_at
            raise DeadlinePassed(f"the dispute window of task {task_id!r} ended before the dispute")
        return task

    def reject(
        self, task_id: str, expenses: Mapping[str, Amount | int] | None = None
    ) -> list[Transfer]:
        """Refuse the delivery (within the review window), or a disputed acceptance:
        refund the budget to the principal, less the expenses (default: the spending
        under the task's mandates), in one linked batch."""
        task = self.task(task_id)
        if task.state is TaskState.RELEASING:
            raise TaskError(f"task {task_id!r} was accepted: dispute it within its window first")
        if task.state in (TaskState.DELIVERED, TaskState.DISPUTED):
            self._check_review_window(task)
        elif task.state in _SETTLED and task.state is not TaskState.REJECTED:
            raise TaskClosed(f"task {task_id!r} is already {task.state}")
        elif task.state in (TaskState.OPEN, TaskState.TAKEN):
            raise TaskError(
                f"task {task_id!r} is {task.state}: nothing was delivered to reject "
                "(cancel it instead)"
            )
        return self._refund(task_id, "reject", expenses)

    def cancel(
        self, task_id: str, expenses: Mapping[str, Amount | int] | None = None
    ) -> list[Transfer]:
        """Withdraw a task nobody delivered (open or taken): refund the budget to the
        principal, less the expenses, recorded as a cancellation (``:cancel``)."""
        task = self.task(task_id)
        if task.state in _SETTLED and task.state is not TaskState.CANCELLED:
            raise TaskClosed(f"task {task_id!r} is already {task.state}")
        if task.state not in (TaskState.OPEN, TaskState.TAKEN, TaskState.CANCELLED):
            raise TaskError(
                f"task {task_id!r} is {task.state}: a delivered task is accepted or rejected"
            )
        return self._refund(task_id, "cancel", expenses)

    async def decide(
        self,
        task_id: str,
        result: str,
        *,
        llm: JudgeLLM | None = None,
        approval: SignedApproval | None = None,
        fee: tuple[str, Amount] | None = None,
    ) -> Decision:
        """Run the task's acceptance check on the delivered `result` and settle by the
        verdict (see `paywire.tasks.decide`); `CheckUndecided`: nothing moved."""
        from paywire.tasks.decide import decide

        return await decide(self, task_id, result, llm=llm, approval=approval, fee=fee)

    def expire(self, task_id: str) -> list[Transfer]:
        """Settle a task whose review window ended without a decision: expenses
        reimbursed, the rest refunded. (If nobody does, the ledger's expiry of the escrow
        hold refunds the principal in full at the end of the sweep window.)"""
        task = self.task(task_id)
        if task.state is TaskState.RELEASING:
            raise TaskError(f"task {task_id!r} was accepted: release it instead")
        if task.state not in _SETTLED and self.ledger.clock() <= task.review_end_at:
            raise TaskError(f"task {task_id!r} is still in its review window")
        return self._refund(task_id, "expire", None)

    def _refund(
        self, task_id: str, verb: str, expenses: Mapping[str, Amount | int] | None
    ) -> list[Transfer]:
        task = self.task(task_id)
        return _settle.settle(self.ledger, task, verb, self._reimbursements(task, expenses))

    def _reimbursements(
        self, task: Task, expenses: Mapping[str, Amount | int] | None
    ) -> list[_settle.Payout]:
        if expenses is None:
            expenses = read_books(task, self.ledger.all_task_transfers(task.id)).reimbursable()
        return _settle.expense_payouts(task, expenses)

    def _splits(
        self, task: Task, splits: Mapping[str, int | Amount] | None
    ) -> Mapping[str, int | Amount]:
        if splits is not None:
            return splits
        if len(task.deliveries) != 1:
            raise InvalidTask(
                f"task {task.id!r} has {len(task.deliveries)} deliveries: give the splits"
            )
        (delivery,) = task.deliveries.values()
        return dict(delivery.shares) or {delivery.agent: 1}

    def _record_acceptance(self, task: Task, payouts: list[_settle.Payout]) -> list[Transfer]:
        terms = _settle.terms_digest(payouts)
        if task.accepting is not None:
            if task.accepting.get("terms") != terms:
                raise TaskClosed(f"task {task.id!r} was already accepted on other terms")
            return []
        release_at = self.ledger.clock() + task.document.dispute_window_s * NS_PER_S
        fields: dict[str, JsonValue] = {
            "event": "accept",
            "terms": terms,
            "release_at": str(release_at),
            "payouts": _settle.payouts_to_json(payouts),
        }
        try:
            open_record(
                self.ledger, task, accepting_record_id(task.id), task.document.principal, fields
            )
        except IdempotencyConflict:
            raise TaskClosed(f"task {task.id!r} was already accepted on other terms") from None
        return []

    def _check_fee(self, task: Task, fee: tuple[str, Amount]) -> None:
        account_id = fee[0] if isinstance(fee, tuple) and fee else None
        try:
            account = self.ledger.account(str(account_id))
        except AccountNotFound:
            raise InvalidTask(f"the fee account {account_id!r} does not exist") from None
        if account.kind is not AccountKind.FEES or account.asset != task.budget.asset:
            raise InvalidTask(
                f"the fee goes to a fees account in {task.budget.asset.code}, not {account_id!r}"
            )

    def _check_review_window(self, task: Task) -> None:
        if self.ledger.clock() > task.review_end_at:
            raise DeadlinePassed(
                f"the review window of task {task.id!r} has ended: it can only expire now"
            )
