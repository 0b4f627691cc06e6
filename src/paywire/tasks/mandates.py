"""Task mandates: taking a task gives the agent a mandate bounded by the escrowed budget.

The principal signs, for each agent allowed on a task, a root mandate that names the task
(``task_id``), spends only the task's asset, in all at most the task's *allowance* (the
budget less the reward: what the escrow keeps for expenses), and lives until the task's
deadline. The agent takes the task with it (`TaskBook.take`), pays providers with it (its
payments carry the task id into the ledger, and the ledger enforces its total atomically),
and may delegate narrower mandates to the sub-agents it hires. What was spent under it is
what the escrow reimburses when the task is settled.
"""

from __future__ import annotations

import time

from paywire.crypto.keys import PrivateKey, parse_address
from paywire.ledger.model import NS_PER_S
from paywire.mandate import AssetLimit, Mandate, MandateChain, MandateError, SignedMandate
from paywire.money import Amount
from paywire.tasks.model import InvalidTask, Task

MAX_PURPOSE_CHARS = 200
"""The mandate's purpose quotes the task's description, shortened to this."""


def issue_task_mandate(
    principal_key: PrivateKey,
    task: Task,
    agent_address: str,
    network: str,
    *,
    total: Amount | None = None,
    per_payment: Amount | None = None,
    now_s: int | None = None,
) -> SignedMandate:
    """The principal's mandate for `agent_address` on `task` on `network` (e.g.
    ``ledger.network``), valid from now until the deadline: `total` (default: the whole
    allowance; the takers' mandates together may not exceed it, so give each of several
    agents a part)."""
    agent = parse_address(agent_address)
    if principal_key.address != task.document.principal:
        raise InvalidTask(f"only the task's principal {task.document.principal} signs its mandates")
    if agent not in task.document.agents:
        raise InvalidTask(f"{agent} is not allowed on task {task.id!r}")
    if task.allowance.atomic <= 0:
        raise InvalidTask(
            f"task {task.id!r} has no allowance for expenses (its reward is its whole budget)"
        )
    allowance = task.allowance.atomic if total is None else total.atomic
    if not 0 < allowance <= task.allowance.atomic:
        raise InvalidTask(
            f"a task mandate allows 1 to {task.allowance.atomic} (the task's allowance)"
        )
    cap = allowance if per_payment is None else min(per_payment.atomic, allowance)
    start = int(time.time()) if now_s is None else now_s
    mandate = Mandate(
        issuer=task.document.principal,
        agent=agent,
        limits=(AssetLimit(network, task.budget.asset.code, allowance, cap),),
        valid_after=start - 60,  # a little clock skew, not a backdated budget
        valid_before=max(start + 1, task.deadline_at // NS_PER_S),
        purpose=f"task {task.id}: {task.document.description}"[:MAX_PURPOSE_CHARS],
        task_id=task.id,
    )
    return SignedMandate.sign(mandate, principal_key)


def check_task_mandate(
    task: Task, agent: str, mandate: SignedMandate | MandateChain
) -> tuple[str, int]:
    """The id of `mandate` and what it allows in all, if it is a valid task mandate of
    `task` for `agent` (a root mandate signed by the principal, naming the task, spending
    only the task's asset, at most the allowance in all); else `InvalidTask` saying what is
    wrong. (`TaskBook.take` also keeps the takers' mandates together within the
    allowance.)"""
    chain = mandate if isinstance(mandate, MandateChain) else MandateChain((mandate,))
    if len(chain) != 1:
        raise InvalidTask("a task is taken with the principal's own mandate, not a delegation")
    signed = chain.mandates[0]
    try:
        signed.verify()
    except MandateError as error:
        raise InvalidTask(f"the task mandate is not valid: {error}") from None
    root = signed.mandate
    wrong = [
        (root.issuer != task.document.principal, f"issued by {root.issuer}, not the principal"),
        (root.agent != agent, f"for {root.agent}, not for {agent}"),
        (root.task_id != task.id, f"for task {root.task_id!r}, not {task.id!r}"),
    ]
    for limit in root.limits:
        wrong.append(
            (limit.asset != task.budget.asset.code, f"it spends {limit.asset}, not the task's")
        )
        wrong.append(
            (
                limit.total_atomic > task.allowance.atomic,
                f"its total {limit.total_atomic} is above the task's allowance "
                f"{task.allowance.atomic}",
            )
        )
    total = sum(limit.total_atomic for limit in root.limits)
    wrong.append((total > task.allowance.atomic, f"its limits allow {total} in all"))
    problems = [message for bad, message in wrong if bad]
    if problems:
        raise InvalidTask(f"mandate {root.id} is not a task mandate: {'; '.join(problems)}")
    return root.id, total
