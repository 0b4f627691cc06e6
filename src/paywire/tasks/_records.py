"""Reading a task back from the ledger, and writing its record accounts.

A task is its escrow hold (the document in the hold's metadata) plus its record accounts
(see `paywire.tasks.model`). Reading one costs a hold lookup and one account lookup per
allowed agent and record kind; nothing is cached, so any number of processes may share
one ledger.
"""

from __future__ import annotations

from collections.abc import Mapping

from paywire.errors import InvalidInput
from paywire.ledger import (
    Account,
    AccountKind,
    AccountNotFound,
    HoldState,
    Ledger,
    LedgerError,
    NewAccount,
    TransferNotFound,
)
from paywire.ledger.model import NS_PER_S, JsonValue
from paywire.tasks.model import (
    Delivery,
    InvalidTask,
    Task,
    TaskDocument,
    TaskNotFound,
    TaskState,
    accepting_record_id,
    check_task_id,
    deliver_record_id,
    dispute_record_id,
    hold_id,
    take_record_id,
)

_CLOSED_BY = {
    "accept": TaskState.ACCEPTED,
    "reject": TaskState.REJECTED,
    "expire": TaskState.EXPIRED,
    "cancel": TaskState.CANCELLED,
}


def record(ledger: Ledger, record_id: str) -> Account | None:
    try:
        return ledger.account(record_id)
    except AccountNotFound:
        return None


def open_record(
    ledger: Ledger,
    task: Task,
    record_id: str,
    owner: str,
    fields: Mapping[str, JsonValue],
) -> Account:
    """Write a record account (again with the same fields: the first one, unchanged)."""
    try:
        return ledger.open_account(
            NewAccount(
                record_id,
                task.budget.asset,
                AccountKind.ESCROW,
                owner=owner,
                metadata={"task": task.id, **fields},
            )
        )
    except (InvalidInput, LedgerError) as error:
        if error.code == "idempotency_conflict":
            raise
        raise InvalidTask(f"the ledger refused the task's record: {error}") from None


def read_task(ledger: Ledger, task_id: str) -> Task:
    """The task as the ledger has it now: its hold and every record, in one snapshot."""
    check_task_id(task_id)
    with ledger.snapshot() as snapshot:
        try:
            status = snapshot.hold_status(hold_id(task_id))
        except TransferNotFound:
            raise TaskNotFound(f"there is no task {task_id!r}") from None
        held = status.transfer
        if held.metadata.get("task") != task_id:
            raise TaskNotFound(f"there is no task {task_id!r}")
        document = TaskDocument.from_json(held.metadata.get("doc"), held.amount)
        agents = document.agents
        ids = [take_record_id(task_id, n) for n in range(len(agents))]
        ids += [deliver_record_id(task_id, n) for n in range(len(agents))]
        ids += [accepting_record_id(task_id), dispute_record_id(task_id)]
        found = {account_id: snapshot.find_account(account_id) for account_id in ids}
    records = {key: value for key, value in found.items() if value is not None}
    deadline_at = held.timestamp + document.deadline_s * NS_PER_S
    takers: list[str] = []
    mandates: dict[str, str] = {}
    deliveries: dict[str, Delivery] = {}
    for index, agent in enumerate(agents):
        taken = records.get(take_record_id(task_id, index))
        if taken is None or taken.timestamp > deadline_at:
            continue  # a record written after the deadline does not count
        takers.append(agent)
        mandate = taken.metadata.get("mandate")
        if isinstance(mandate, str):
            mandates[agent] = mandate
        delivered = records.get(deliver_record_id(task_id, index))
        if delivered is not None and delivered.timestamp <= deadline_at:
            deliveries[agent] = _delivery(agent, delivered)
    accepting = records.get(accepting_record_id(task_id))
    disputed = records.get(dispute_record_id(task_id)) if accepting is not None else None
    if disputed is not None and accepting is not None:
        release_at = int(str(accepting.metadata.get("release_at", "0")))
        if disputed.timestamp >= release_at:
            disputed = None  # stamped when the window had ended: it does not count
    state = _state(status.state, status.resolved_by, disputed, accepting, deliveries, takers)
    return Task(
        id=task_id,
        document=document,
        budget=held.amount,
        posted_at=held.timestamp,
        deadline_at=deadline_at,
        state=state,
        takers=tuple(takers),
        deliveries=deliveries,
        mandates=mandates,
        accepting=dict(accepting.metadata) if accepting is not None else None,
    )


def _state(
    hold: HoldState,
    resolved_by: str | None,
    disputed: Account | None,
    accepting: Account | None,
    deliveries: Mapping[str, Delivery],
    takers: list[str],
) -> TaskState:
    if hold is HoldState.PENDING:
        if disputed is not None:
            return TaskState.DISPUTED
        if accepting is not None:
            return TaskState.RELEASING
        if deliveries:
            return TaskState.DELIVERED
        return TaskState.TAKEN if takers else TaskState.OPEN
    if hold is HoldState.EXPIRED:
        return TaskState.EXPIRED
    verb = (resolved_by or "").rsplit(":", 1)[-1]
    return _CLOSED_BY.get(verb, TaskState.CANCELLED)


def _delivery(agent: str, account: Account) -> Delivery:
    shares = account.metadata.get("shares")
    parts = (
        {str(k): v for k, v in shares.items() if isinstance(v, int)}
        if isinstance(shares, dict)
        else {}
    )
    return Delivery(
        agent=agent,
        result_digest=str(account.metadata.get("result_digest")),
        shares=parts,
        at=account.timestamp,
    )
