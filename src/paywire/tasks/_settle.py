"""Settling a task's escrow: one linked batch, all of it or nothing.

A settlement is a post of exactly what is paid out from the escrow hold (the rest goes back
to the principal, released by the partial post), then one transfer out of the escrow
account per payee; or, when nothing is paid, a void of the hold. The closing transfer's id
is ``task:<id>:<verb>`` (accept, reject, cancel, expire), so a retry of the same settlement
replays it and any other settlement of a settled task is refused (`TaskClosed`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from paywire.ledger import (
    HoldState,
    Ledger,
    NewTransfer,
    Transfer,
    TransferCode,
    TransferNotFound,
    post,
    transfer,
    void,
)
from paywire.ledger.model import JsonValue
from paywire.ledger.names import wallet_account_id
from paywire.money import Amount
from paywire.tasks.model import (
    InvalidTask,
    Task,
    TaskClosed,
    TaskNotFound,
    escrow_account_id,
    hold_id,
    settle_id,
)
from paywire.tasks.splits import normalize_addresses, split_reward

Payout = tuple[str, int, int, str]
"""(credit account id, amount in atomic units, transfer code, label for the transfer id)."""


def share_payouts(task: Task, splits: Mapping[str, int | Amount]) -> list[Payout]:
    asset = task.budget.asset
    return [
        (wallet_account_id(address, asset.code), share.atomic, TransferCode.RELEASE, f"share:{n}")
        for n, (address, share) in enumerate(split_reward(task.document.reward, splits).items())
        if share.atomic > 0
    ]


def expense_payouts(task: Task, expenses: Mapping[str, Amount | int]) -> list[Payout]:
    out: list[Payout] = []
    checked = normalize_addresses(expenses, "expenses")
    for n, address in enumerate(sorted(checked)):
        amount = checked[address]
        atomic = amount if isinstance(amount, int) else check_amount(task, amount, address)
        if isinstance(atomic, bool) or atomic < 0:
            raise InvalidTask(f"the expense of {address} must be a positive amount")
        if atomic == 0:
            continue
        account = wallet_account_id(address, task.budget.asset.code)
        out.append((account, atomic, TransferCode.RELEASE, f"expense:{n}"))
    return out


def fee_payout(task: Task, fee: tuple[str, Amount]) -> Payout:
    account, amount = fee
    return (account, check_amount(task, amount, "the fee"), TransferCode.FEE, "fee")


def check_amount(task: Task, amount: object, what: str) -> int:
    if not isinstance(amount, Amount) or amount.asset != task.budget.asset or amount.atomic <= 0:
        raise InvalidTask(f"{what} must be a positive amount of {task.budget.asset.code}")
    return amount.atomic


def check_total(task: Task, payouts: Sequence[Payout]) -> int:
    total = sum(amount for _, amount, _, _ in payouts)
    if total > task.budget.atomic:
        raise InvalidTask(
            f"the payouts ({total}) exceed the budget ({task.budget.atomic}) of task {task.id!r}"
        )
    return total


def terms_digest(payouts: Sequence[Payout]) -> str:
    """What identifies a settlement, so a retry replays it and other terms are refused."""
    rows = [[account, str(amount), code, label] for account, amount, code, label in payouts]
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def payouts_to_json(payouts: Sequence[Payout]) -> list[JsonValue]:
    return [[account, str(amount), code, label] for account, amount, code, label in payouts]


def payouts_from_json(data: object) -> list[Payout]:
    if not isinstance(data, list):
        raise InvalidTask("the pending acceptance has no payouts")
    out: list[Payout] = []
    for row in data:
        if not (isinstance(row, list) and len(row) == 4):
            raise InvalidTask("the pending acceptance's payouts are damaged")
        account, amount, code, label = row
        out.append((str(account), int(str(amount)), int(str(code)), str(label)))
    return out


def settle(ledger: Ledger, task: Task, verb: str, payouts: Sequence[Payout]) -> list[Transfer]:
    """Pay `payouts` from the escrow and release the rest to the principal, atomically."""
    closing = settle_id(task.id, verb)
    total = check_total(task, payouts)
    terms = terms_digest(payouts)
    tag: dict[str, JsonValue] = {"task": task.id, "terms": terms}
    try:
        status = ledger.hold_status(hold_id(task.id))
    except TransferNotFound:
        raise TaskNotFound(f"there is no task {task.id!r}") from None
    if status.state is not HoldState.PENDING:
        if status.resolved_by != closing:
            raise TaskClosed(f"task {task.id!r} is already {task.state}")
        if ledger.transfer(closing).metadata.get("terms") != terms:
            raise TaskClosed(f"task {task.id!r} was already {task.state} on other terms")
    if not payouts:
        return [ledger.submit(void(closing, hold_id(task.id), metadata=tag))]
    asset = task.budget.asset
    requests: list[NewTransfer] = [
        post(closing, hold_id(task.id), asset.atomic(total), metadata=tag)
    ]
    requests += [
        transfer(
            f"{closing}:{label}",
            escrow_account_id(task.id),
            account,
            asset.atomic(amount),
            code=code,
            metadata={"task": task.id},
        )
        for account, amount, code, label in payouts
    ]
    return ledger.submit_linked(requests)
