"""Deciding a delivered task with its acceptance check, and settling by the verdict.

`decide` runs the check the principal posted with the task on a delivered result: an
accepted verdict accepts the task (expenses reimbursed, the reward split by the agreed
shares, the fee, the rest refunded: one linked batch, or a pending acceptance under a
dispute window); a rejection refunds the principal less the expenses. A check that cannot
decide (`CheckUndecided`: a judge that errors or gives no verdict, a missing approval)
raises, and nothing moves: the task stays delivered, to be decided again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from paywire.ledger import Transfer
from paywire.money import Amount
from paywire.tasks.checks import (
    CheckInput,
    JudgeCheck,
    JudgeLLM,
    SignedApproval,
    Verdict,
    check_from_json,
    result_digest,
)
from paywire.tasks.model import InvalidTask, TaskError, TaskState

if TYPE_CHECKING:
    from paywire.tasks._settling import Settling


@dataclass(frozen=True, slots=True)
class Decision:
    """A check's verdict and the transfers that settled the task by it."""

    verdict: Verdict
    transfers: list[Transfer]


async def decide(
    book: Settling,
    task_id: str,
    result: str,
    *,
    llm: JudgeLLM | None = None,
    approval: SignedApproval | None = None,
    fee: tuple[str, Amount] | None = None,
) -> Decision:
    """Run `task_id`'s acceptance check on `result` (the text whose digest an agent
    delivered) and settle the task by its verdict. `llm` pays a judge; `approval` is the
    principal's signed decision for an approval check; `fee` goes to the operator on
    acceptance."""
    task = book.task(task_id)
    if task.document.check is None:
        raise TaskError(f"task {task_id!r} has no acceptance check: accept or reject it")
    if task.state is not TaskState.DELIVERED:
        raise TaskError(f"task {task_id!r} is {task.state}: only a delivered task is decided")
    given = CheckInput.for_result(
        task_id, task.document.principal, task.document.description, result, approval
    )
    if given.result_digest not in {d.result_digest for d in task.deliveries.values()}:
        raise InvalidTask(f"this result is not the one delivered for task {task_id!r}")
    check = check_from_json(task.document.check)
    if isinstance(check, JudgeCheck) and llm is not None:
        check = check.with_llm(llm)
    verdict = await check.decide(given)  # CheckUndecided propagates: nothing moved
    if verdict.accepted:
        return Decision(verdict, book.accept(task_id, fee=fee))
    return Decision(verdict, book.reject(task_id))


__all__ = ["Decision", "decide", "result_digest"]
