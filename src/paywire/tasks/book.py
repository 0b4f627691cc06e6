"""`TaskBook`: task escrow on the ledger (post, take, deliver, accept, reject, cancel).

Money: posting a task holds its budget from the principal's wallet account in the task's
escrow account, with timeout deadline + `DISPUTE_WINDOW_S`, so a task nobody settles
refunds itself when the ledger expires the hold. Settling a task is one linked batch
(all or nothing): a post of exactly what is paid out from the hold (the rest goes back to
the principal, released by the partial post) and then one transfer out of the escrow
account per payee; or, when nothing is paid, a void of the hold. The closing transfer's id
is ``task:<id>:accept`` (or ``:reject``, ``:cancel``), so a retry of the same settlement
replays it, and any other settlement of a settled task is refused (`TaskClosed`).

Every transfer the book writes carries ``{"task": <id>}`` in its metadata.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from paywire.crypto.keys import parse_address
from paywire.ledger import (
    AccountKind,
    AccountNotFound,
    HoldState,
    IdempotencyConflict,
    Ledger,
    NewAccount,
    NewTransfer,
    Transfer,
    TransferCode,
    TransferNotFound,
    hold,
    post,
    transfer,
    void,
)
from paywire.ledger.model import MAX_TIMEOUT_S, NS_PER_S, JsonValue
from paywire.ledger.names import wallet_account_id
from paywire.money import Amount
from paywire.tasks.model import (
    DISPUTE_WINDOW_S,
    AgentNotAllowed,
    DeadlinePassed,
    InvalidTask,
    Task,
    TaskClosed,
    TaskDocument,
    TaskError,
    TaskNotFound,
    TaskState,
    check_task_id,
    deliver_record_id,
    escrow_account_id,
    hold_id,
    settle_id,
    take_record_id,
)
from paywire.tasks.splits import normalize_addresses, split_reward

MAX_AGENTS = 32
"""Agents one task may allow (the task document must fit the hold's metadata)."""

MAX_DIGEST_CHARS = 128

_CLOSED_BY = {"accept": TaskState.ACCEPTED, "reject": TaskState.REJECTED}

Payout = tuple[str, Amount, int, str]
"""(credit account id, amount, transfer code, label for the transfer id)."""


class TaskBook:
    """Task escrow over a `Ledger`. Holds no state of its own: every task is read back
    from the ledger, so any number of books (processes) may share one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # ----- posting and reading ---------------------------------------------------------

    def post(
        self,
        task_id: str,
        principal_address: str,
        budget: Amount,
        deadline_s: int,
        allowed_agents: Sequence[str],
        description: str,
        reward: Amount | None = None,
    ) -> Task:
        """Post a task: hold `budget` from the principal's wallet in the task's escrow.

        `reward` (default: the whole budget) is what `accept` splits among contributors;
        the rest of the budget covers expenses and the operator's fee. Posting the same
        task again returns it; other terms under the same id: `IdempotencyConflict`.
        """
        check_task_id(task_id)
        principal = parse_address(principal_address)
        if (
            not isinstance(deadline_s, int)
            or isinstance(deadline_s, bool)
            or not 0 < deadline_s <= MAX_TIMEOUT_S - DISPUTE_WINDOW_S
        ):
            raise InvalidTask(
                f"deadline_s must be whole seconds from 1 to {MAX_TIMEOUT_S - DISPUTE_WINDOW_S}"
            )
        agents = tuple(normalize_addresses(dict.fromkeys(allowed_agents), "allowed_agents"))
        if not 0 < len(agents) <= MAX_AGENTS:
            raise InvalidTask(f"a task allows 1 to {MAX_AGENTS} agents")
        reward = budget if reward is None else reward
        if reward.asset != budget.asset or not 0 < reward.atomic <= budget.atomic:
            raise InvalidTask(
                "the reward must be more than zero and at most the budget, same asset"
            )
        if not isinstance(description, str):
            raise InvalidTask("the description is text")
        document = TaskDocument(principal, description, deadline_s, agents, reward)
        escrow = escrow_account_id(task_id)
        self.ledger.open_account(
            NewAccount(
                escrow,
                budget.asset,
                AccountKind.ESCROW,
                owner=principal,
                metadata={"task": task_id},
            )
        )
        self.ledger.submit(
            hold(
                hold_id(task_id),
                wallet_account_id(principal, budget.asset.code),
                escrow,
                budget,
                timeout_s=deadline_s + DISPUTE_WINDOW_S,
                code=TransferCode.ESCROW,
                metadata={"task": task_id, "doc": document.to_json()},
            )
        )
        return self.task(task_id)

    def task(self, task_id: str) -> Task:
        """The task as the ledger has it now."""
        check_task_id(task_id)
        try:
            status = self.ledger.hold_status(hold_id(task_id))
        except TransferNotFound:
            raise TaskNotFound(f"there is no task {task_id!r}") from None
        held = status.transfer
        document = TaskDocument.from_json(held.metadata.get("doc"), held.amount)
        takers: list[str] = []
        deliveries: dict[str, str] = {}
        for index, agent in enumerate(document.agents):
            if self._record(take_record_id(task_id, index)) is not None:
                takers.append(agent)
            delivered = self._record(deliver_record_id(task_id, index))
            if delivered is not None:
                deliveries[agent] = str(delivered.get("result_digest"))
        if status.state is HoldState.PENDING:
            state = (
                TaskState.DELIVERED if deliveries else TaskState.TAKEN if takers else TaskState.OPEN
            )
        elif status.state is HoldState.EXPIRED:
            state = TaskState.EXPIRED
        else:
            verb = (status.resolved_by or "").rsplit(":", 1)[-1]
            state = _CLOSED_BY.get(verb, TaskState.CANCELLED)
        return Task(
            id=task_id,
            document=document,
            budget=held.amount,
            posted_at=held.timestamp,
            deadline_at=held.timestamp + document.deadline_s * NS_PER_S,
            state=state,
            takers=tuple(takers),
            deliveries=deliveries,
        )

    # ----- agents ----------------------------------------------------------------------

    def take(self, task_id: str, agent_address: str) -> Task:
        """An allowed agent takes the task (again: no change), before the deadline."""
        task = self._open_task(task_id)
        agent, index = _agent_index(task, agent_address)
        self._open_record(task, take_record_id(task_id, index), agent, {"event": "take"})
        return self.task(task_id)

    def deliver(self, task_id: str, agent_address: str, result_digest: str) -> Task:
        """An agent who took the task delivers, before the deadline: one result per agent
        (the same digest again: no change; another: refused)."""
        if (
            not isinstance(result_digest, str)
            or not 0 < len(result_digest) <= MAX_DIGEST_CHARS
            or not result_digest.isprintable()
        ):
            raise InvalidTask(f"result_digest must be 1-{MAX_DIGEST_CHARS} printable characters")
        task = self._open_task(task_id)
        agent, index = _agent_index(task, agent_address)
        if agent not in task.takers:
            raise AgentNotAllowed(f"{agent} has not taken task {task_id!r}")
        record: dict[str, JsonValue] = {"event": "deliver", "result_digest": result_digest}
        try:
            self._open_record(task, deliver_record_id(task_id, index), agent, record)
        except IdempotencyConflict:
            raise TaskError(f"{agent} already delivered another result for {task_id!r}") from None
        return self.task(task_id)

    # ----- settling --------------------------------------------------------------------

    def accept(
        self,
        task_id: str,
        splits: Mapping[str, int | Amount],
        expenses: Mapping[str, Amount] | None = None,
        fee: tuple[str, Amount] | None = None,
    ) -> list[Transfer]:
        """Pay the reward out by `splits` (see `paywire.tasks.splits`), reimburse
        `expenses` to their addresses' wallets, pay `fee` to its account; release the
        rest of the budget to the principal. One linked batch: all of it or nothing."""
        task = self.task(task_id)
        asset = task.budget.asset
        payouts: list[Payout] = [
            (wallet_account_id(address, asset.code), share, TransferCode.RELEASE, f"share:{n}")
            for n, (address, share) in enumerate(split_reward(task.document.reward, splits).items())
            if share.atomic > 0
        ]
        payouts += self._expense_payouts(task, expenses)
        if fee is not None:
            account, amount = fee
            _check_amount(task, amount, "the fee")
            payouts.append((account, amount, TransferCode.FEE, "fee"))
        if task.state is TaskState.OPEN or task.state is TaskState.TAKEN:
            raise TaskError(f"task {task_id!r} has no delivery to accept")
        return self._settle(task, "accept", payouts)

    def reject(self, task_id: str, expenses: Mapping[str, Amount] | None = None) -> list[Transfer]:
        """Refuse the delivery: refund the budget to the principal, less `expenses`
        (reimbursed to their addresses' wallets in the same linked batch)."""
        task = self.task(task_id)
        return self._settle(task, "reject", self._expense_payouts(task, expenses))

    def cancel(self, task_id: str, expenses: Mapping[str, Amount] | None = None) -> list[Transfer]:
        """Withdraw the task: as `reject`, recorded as a cancellation (``:cancel``)."""
        task = self.task(task_id)
        return self._settle(task, "cancel", self._expense_payouts(task, expenses))

    def _expense_payouts(self, task: Task, expenses: Mapping[str, Amount] | None) -> list[Payout]:
        out: list[Payout] = []
        checked = normalize_addresses(expenses or {}, "expenses")
        for n, address in enumerate(sorted(checked)):
            amount = checked[address]
            assert isinstance(amount, Amount)
            _check_amount(task, amount, f"the expense of {address}")
            account = wallet_account_id(address, task.budget.asset.code)
            out.append((account, amount, TransferCode.RELEASE, f"expense:{n}"))
        return out

    def _settle(self, task: Task, verb: str, payouts: list[Payout]) -> list[Transfer]:
        closing = settle_id(task.id, verb)
        total = sum(amount.atomic for _, amount, _, _ in payouts)
        if total > task.budget.atomic:
            raise InvalidTask(f"the payouts ({total}) exceed the budget ({task.budget.atomic})")
        terms = _terms_digest(payouts)
        tag: dict[str, JsonValue] = {"task": task.id, "terms": terms}
        try:
            status = self.ledger.hold_status(hold_id(task.id))
        except TransferNotFound:
            raise TaskNotFound(f"there is no task {task.id!r}") from None
        if status.state is not HoldState.PENDING:
            if status.resolved_by != closing:
                raise TaskClosed(f"task {task.id!r} is already {task.state}")
            previous = self.ledger.transfer(closing)
            if previous.metadata.get("terms") != terms:
                raise TaskClosed(f"task {task.id!r} was already {task.state} on other terms")
        if not payouts:
            return [self.ledger.submit(void(closing, hold_id(task.id), metadata=tag))]
        requests: list[NewTransfer] = [
            post(
                closing,
                hold_id(task.id),
                task.budget.asset.atomic(total),
                metadata=tag,
            )
        ]
        requests += [
            transfer(
                f"{closing}:{label}",
                escrow_account_id(task.id),
                account,
                amount,
                code=code,
                metadata={"task": task.id},
            )
            for account, amount, code, label in payouts
        ]
        return self.ledger.submit_linked(requests)

    # ----- helpers ---------------------------------------------------------------------

    def _open_task(self, task_id: str) -> Task:
        task = self.task(task_id)
        if task.state not in (TaskState.OPEN, TaskState.TAKEN, TaskState.DELIVERED):
            raise TaskClosed(f"task {task_id!r} is {task.state}")
        if self.ledger.clock() > task.deadline_at:
            raise DeadlinePassed(f"the deadline of task {task_id!r} has passed")
        return task

    def _open_record(
        self, task: Task, record_id: str, agent: str, fields: dict[str, JsonValue]
    ) -> None:
        self.ledger.open_account(
            NewAccount(
                record_id,
                task.budget.asset,
                AccountKind.ESCROW,
                owner=agent,
                metadata={"task": task.id} | fields,
            )
        )

    def _record(self, record_id: str) -> Mapping[str, JsonValue] | None:
        try:
            return self.ledger.account(record_id).metadata
        except AccountNotFound:
            return None


def _agent_index(task: Task, agent_address: str) -> tuple[str, int]:
    agent = parse_address(agent_address)
    if agent not in task.document.agents:
        raise AgentNotAllowed(f"{agent} is not allowed on task {task.id!r}")
    return agent, task.document.agents.index(agent)


def _check_amount(task: Task, amount: Amount, what: str) -> None:
    if not isinstance(amount, Amount) or amount.asset != task.budget.asset or amount.atomic <= 0:
        raise InvalidTask(f"{what} must be a positive amount of {task.budget.asset.code}")


def _terms_digest(payouts: list[Payout]) -> str:
    """What identifies a settlement, so a retry replays it and other terms are refused."""
    rows = [[account, str(amount.atomic), code, label] for account, amount, code, label in payouts]
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()
