"""`TaskBook`: tasks on the ledger (post, take, deliver, decide, accept, release, dispute,
reject, cancel, expire) and their books.

Money: posting a task holds its budget from the principal's wallet account in the task's
escrow account (see `paywire.tasks.model` for the names and the windows), so a task nobody
settles refunds itself when the ledger expires the hold. Settling is one linked batch (see
`paywire.tasks._settle`). Agents pay for their work from their own wallets under the task
mandate they took the task with; settling reimburses that spending from the escrow (read
off the ledger, see `paywire.tasks.books`), then pays the reward by the agreed shares and
the operator's fee, and releases the rest to the principal.

Every transfer the book writes carries ``{"task": <id>}`` in its metadata.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from paywire.crypto.keys import parse_address
from paywire.ledger import (
    AccountKind,
    AccountNotFound,
    IdempotencyConflict,
    LedgerError,
    NewAccount,
    TransferCode,
    hold,
)
from paywire.ledger.model import MAX_TIMEOUT_S, JsonValue
from paywire.ledger.names import wallet_account_id
from paywire.mandate import MandateChain, SignedMandate
from paywire.money import Amount
from paywire.tasks._records import open_record, record
from paywire.tasks._settling import Settling
from paywire.tasks.books import TaskBooks, read_books
from paywire.tasks.checks import check_from_json
from paywire.tasks.mandates import check_task_mandate
from paywire.tasks.model import (
    MAX_CHECK_JSON_BYTES,
    MAX_DESCRIPTION_CHARS,
    MAX_DISPUTE_WINDOW_S,
    REVIEW_WINDOW_S,
    SWEEP_WINDOW_S,
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
    take_record_id,
)
from paywire.tasks.splits import normalize_addresses, split_reward

if TYPE_CHECKING:
    from paywire.tasks.sweep import SweepReport

MAX_AGENTS = 32
"""Agents one task may allow (the task document must fit the hold's metadata)."""

MAX_DIGEST_CHARS = 128

MAX_LISTED_TASKS = 1_000
"""Tasks one `TaskBook.tasks` page holds at most (each costs a few reads)."""

DEFAULT_LISTED_TASKS = 100

_OPEN = (TaskState.OPEN, TaskState.TAKEN, TaskState.DELIVERED)


class CheckSpec(Protocol):
    """An acceptance check as the task document stores it (see `paywire.tasks.checks`)."""

    def to_json(self) -> dict[str, JsonValue]: ...


class TaskBook(Settling):
    """Tasks over a `Ledger`. Holds no state of its own: every task is read back from
    the ledger, so any number of books (processes) may share one ledger. Posting, reading
    and the agents' side are here; deciding and settling in `paywire.tasks._settling`."""

    def post(
        self,
        task_id: str,
        principal_address: str,
        budget: Amount,
        deadline_s: int,
        allowed_agents: Sequence[str],
        description: str,
        reward: Amount | None = None,
        *,
        check: CheckSpec | Mapping[str, JsonValue] | None = None,
        dispute_window_s: int = 0,
    ) -> Task:
        """Post a task: hold `budget` from the principal's wallet in the task's escrow.

        `reward` (default: the whole budget) is what `accept` splits among contributors;
        the rest of the budget (the *allowance*) covers expenses and the operator's fee.
        `check` decides deliveries (`decide`); `dispute_window_s` delays an acceptance's
        release. Posting the same task again returns it; other terms under the same id:
        `IdempotencyConflict`.
        """
        check_task_id(task_id)
        principal = parse_address(principal_address)
        _check_seconds(dispute_window_s, "dispute_window_s", 0, MAX_DISPUTE_WINDOW_S)
        longest = MAX_TIMEOUT_S - REVIEW_WINDOW_S - SWEEP_WINDOW_S - dispute_window_s
        _check_seconds(deadline_s, "deadline_s", 1, longest)
        agents = tuple(normalize_addresses(dict.fromkeys(allowed_agents), "allowed_agents"))
        if not 0 < len(agents) <= MAX_AGENTS:
            raise InvalidTask(f"a task allows 1 to {MAX_AGENTS} agents")
        reward = budget if reward is None else reward
        if reward.asset != budget.asset or not 0 < reward.atomic <= budget.atomic:
            raise InvalidTask(
                "the reward must be more than zero and at most the budget, same asset"
            )
        if not isinstance(description, str) or not 0 < len(description) <= MAX_DESCRIPTION_CHARS:
            raise InvalidTask(f"the description is 1-{MAX_DESCRIPTION_CHARS} characters of text")
        document = TaskDocument(
            principal,
            description,
            deadline_s,
            agents,
            reward,
            check=_check_json(check),
            dispute_window_s=dispute_window_s,
        )
        escrow = escrow_account_id(task_id)
        try:
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
                    timeout_s=document.timeout_s,
                    code=TransferCode.ESCROW,
                    metadata={"task": task_id, "doc": document.to_json()},
                )
            )
        except LedgerError as error:
            if error.code in ("invalid_input", "invalid_metadata"):
                raise InvalidTask(
                    f"the ledger refused the task ({error}); shorten the description or "
                    "the check, or allow fewer agents"
                ) from None
            raise
        return self.task(task_id)

    def tasks(
        self,
        *,
        principal: str | None = None,
        agent: str | None = None,
        after: str | None = None,
        limit: int = DEFAULT_LISTED_TASKS,
    ) -> list[Task]:
        """Tasks posted by `principal`, or that `agent` took, or all, in the order of their
        accounts' ids, `limit` at a time (page with `after=<the last task id>`)."""
        if (
            not isinstance(limit, int)
            or isinstance(limit, bool)
            or not 0 < limit <= MAX_LISTED_TASKS
        ):
            raise InvalidTask(f"limit is 1 to {MAX_LISTED_TASKS} tasks")
        who = principal if principal is not None else agent
        owner = parse_address(who) if who is not None else None
        cursor = None if after is None else f"task:{check_task_id(after)}:~"  # past its accounts
        ids: list[str] = []
        while len(ids) < limit:
            page = self.ledger.accounts(
                kind=AccountKind.ESCROW, owner=owner, after=cursor, limit=500
            )
            if not page:
                break
            cursor = page[-1].id
            for account in page:
                task_id = account.metadata.get("task")
                if not isinstance(task_id, str):
                    continue
                kind = account.id.removeprefix(f"task:{task_id}:")
                if (agent is None and kind == "escrow") or (
                    agent is not None and kind.startswith("take:")
                ):
                    ids.append(task_id)
            ids = list(dict.fromkeys(ids))
        found = []
        for task_id in ids[:limit]:
            try:
                found.append(self.task(task_id))
            except TaskNotFound:  # a post the ledger refused left its escrow account
                continue
        return found

    def sweep(self) -> SweepReport:
        """Release the acceptances and expire the tasks that are due (see
        `paywire.tasks.sweep`)."""
        from paywire.tasks.sweep import sweep

        return sweep(self)

    def books(self, task_id: str) -> TaskBooks:
        """The task's books: budget, spending by provider and payer, AI tokens by model,
        shares, expenses, fee, refund, margin (see `paywire.tasks.books`)."""
        task = self.task(task_id)
        return read_books(task, self.ledger.all_task_transfers(task_id))

    def take(
        self, task_id: str, agent_address: str, mandate: SignedMandate | MandateChain | None = None
    ) -> Task:
        """An allowed agent takes the task, before the deadline; with the task mandate the
        principal signed for it (`issue_task_mandate`), its spending under that mandate is
        reimbursed when the task settles. Taking again: no change."""
        task = self._open_task(task_id)
        agent, index = _agent_index(task, agent_address)
        fields: dict[str, JsonValue] = {"event": "take"}
        if mandate is not None:
            mandate_id, total = check_task_mandate(task, agent, mandate)
            taken = sum(self._mandate_totals(task, exclude=agent))
            if taken + total > task.allowance.atomic:
                raise InvalidTask(
                    f"the task mandates of {task_id!r} together would allow "
                    f"{taken + total} of spending, more than its allowance "
                    f"{task.allowance.atomic}: the principal signs smaller ones"
                )
            fields["mandate"], fields["mandate_total"] = mandate_id, str(total)
        try:
            open_record(self.ledger, task, take_record_id(task_id, index), agent, fields)
        except IdempotencyConflict:
            raise TaskError(f"{agent} already took {task_id!r} with another mandate") from None
        return self._recorded(task_id, agent, "take")

    def deliver(
        self,
        task_id: str,
        agent_address: str,
        result_digest: str,
        shares: Mapping[str, int] | None = None,
    ) -> Task:
        """An agent who took the task delivers, before the deadline: one result per agent
        (the same again: no change; another: refused). `shares` proposes how the reward is
        split among the contributors (whole parts by address; default: all to the agent)."""
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
        fields: dict[str, JsonValue] = {"event": "deliver", "result_digest": result_digest}
        if shares:
            if not all(isinstance(p, int) and not isinstance(p, bool) for p in shares.values()):
                raise InvalidTask("proposed shares are whole parts (ints) per contributor")
            split_reward(task.document.reward, shares)  # refused now, not at settlement
            for address in normalize_addresses(shares, "shares"):
                self._need_wallet(task, address)
            fields["shares"] = {
                address: part
                for address, part in normalize_addresses(shares, "shares").items()
                if isinstance(part, int)
            }
        try:
            open_record(self.ledger, task, deliver_record_id(task_id, index), agent, fields)
        except IdempotencyConflict:
            raise TaskError(f"{agent} already delivered another result for {task_id!r}") from None
        return self._recorded(task_id, agent, "deliver")

    def _mandate_totals(self, task: Task, *, exclude: str) -> list[int]:
        """What each other taker's task mandate allows in all (from its take record)."""
        totals = []
        for index, agent in enumerate(task.document.agents):
            if agent == exclude or agent not in task.mandates:
                continue
            taken = record(self.ledger, take_record_id(task.id, index))
            if taken is not None:
                totals.append(int(str(taken.metadata.get("mandate_total", "0"))))
        return totals

    def _need_wallet(self, task: Task, address: str) -> None:
        account = wallet_account_id(address, task.budget.asset.code)
        try:
            self.ledger.account(account)
        except AccountNotFound:
            raise InvalidTask(
                f"{address} has no {task.budget.asset.code} wallet on this ledger to be paid in"
            ) from None

    def _open_task(self, task_id: str) -> Task:
        task = self.task(task_id)
        if task.state not in _OPEN:
            raise TaskClosed(f"task {task_id!r} is {task.state}")
        if self.ledger.clock() > task.deadline_at:
            raise DeadlinePassed(f"the deadline of task {task_id!r} has passed")
        return task

    def _recorded(self, task_id: str, agent: str, what: str) -> Task:
        """The task after a record write; a record stamped after the deadline (the ledger's
        clock decides, at the write) does not count."""
        task = self.task(task_id)
        counted = agent in (task.takers if what == "take" else task.deliveries)
        if not counted:
            raise DeadlinePassed(f"the deadline of task {task_id!r} passed before the {what}")
        return task


def _agent_index(task: Task, agent_address: str) -> tuple[str, int]:
    agent = parse_address(agent_address)
    if agent not in task.document.agents:
        raise AgentNotAllowed(f"{agent} is not allowed on task {task.id!r}")
    return agent, task.document.agents.index(agent)


def _check_seconds(value: object, name: str, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidTask(f"{name} must be whole seconds from {low} to {high}")


def _check_json(check: CheckSpec | Mapping[str, JsonValue] | None) -> dict[str, JsonValue] | None:
    if check is None:
        return None
    data = dict(check) if isinstance(check, Mapping) else check.to_json()
    data = check_from_json(data).to_json()  # strict: a check that cannot be built is refused
    if len(json.dumps(data, separators=(",", ":"))) > MAX_CHECK_JSON_BYTES:
        raise InvalidTask(f"the acceptance check's JSON is over {MAX_CHECK_JSON_BYTES} bytes")
    return data
