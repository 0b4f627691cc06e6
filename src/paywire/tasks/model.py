"""Tasks as the ledger records them: ids, the task document, the errors, the read view.

A task's money is one hold, ``task:<id>:hold``, from the principal's wallet account to the
task's escrow account ``task:<id>:escrow``; the hold's metadata carries the task document
(description, deadline, allowed agents, reward), so a task is rebuilt from the ledger alone.
Takes and deliveries are recorded as zero-balance accounts (the ledger has no notes, and
an account is an idempotent, logged record): ``task:<id>:take:<n>`` and
``task:<id>:deliver:<n>``, where n is the agent's index in the allowed list, owned by the
agent (so ``ledger.accounts(owner=agent)`` lists an agent's tasks).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from paywire.errors import InvalidInput, NotFound, PaywireError
from paywire.ledger.model import JsonValue, check_id
from paywire.money import Amount

DISPUTE_WINDOW_S = 3 * 24 * 3600
"""How long after the deadline the principal may still accept or reject; the hold's
timeout is deadline + this window, so an abandoned task refunds itself on expiry."""

DOCUMENT_VERSION = 1


class TaskError(PaywireError):
    """A task operation that was refused."""

    code = "task_error"


class InvalidTask(TaskError, InvalidInput):
    """A task, split or settlement that can never be valid."""

    code = "invalid_task"


class TaskNotFound(TaskError, NotFound):
    code = "task_not_found"


class AgentNotAllowed(TaskError):
    """The agent is not in the task's allowed list, or has not taken the task."""

    code = "agent_not_allowed"


class DeadlinePassed(TaskError):
    code = "task_deadline_passed"


class TaskClosed(TaskError):
    """The task's hold was already resolved (accepted, rejected, cancelled or expired)."""

    code = "task_closed"


class TaskState(enum.StrEnum):
    OPEN = "open"
    TAKEN = "taken"
    DELIVERED = "delivered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


def check_task_id(task_id: str) -> str:
    """A task id: an id that leaves room for the ``task:<id>:...`` names it makes."""
    check_id(task_id, "task id")
    if len(task_id) > 80:
        raise InvalidTask("a task id is at most 80 characters")
    return task_id


def hold_id(task_id: str) -> str:
    return f"task:{task_id}:hold"


def escrow_account_id(task_id: str) -> str:
    return f"task:{task_id}:escrow"


def take_record_id(task_id: str, agent_index: int) -> str:
    return f"task:{task_id}:take:{agent_index}"


def deliver_record_id(task_id: str, agent_index: int) -> str:
    return f"task:{task_id}:deliver:{agent_index}"


def settle_id(task_id: str, verb: str) -> str:
    """The post or void closing the task: ``task:<id>:accept``, ``:reject``, ``:cancel``."""
    return f"task:{task_id}:{verb}"


@dataclass(frozen=True, slots=True)
class TaskDocument:
    """What the principal posted; stored verbatim in the hold's metadata."""

    principal: str
    description: str
    deadline_s: int
    agents: tuple[str, ...]
    reward: Amount

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "v": DOCUMENT_VERSION,
            "principal": self.principal,
            "description": self.description,
            "deadline_s": self.deadline_s,
            "agents": list(self.agents),
            "reward": str(self.reward.atomic),
        }

    @classmethod
    def from_json(cls, data: object, reward_of: Amount) -> TaskDocument:
        """Read back a document (`reward_of`: any amount of the task's asset)."""
        if not isinstance(data, dict) or data.get("v") != DOCUMENT_VERSION:
            raise InvalidTask("the hold carries no task document of a known version")
        agents = data["agents"]
        assert isinstance(agents, list)
        principal, description = data["principal"], data["description"]
        deadline_s, reward = data["deadline_s"], data["reward"]
        assert isinstance(principal, str) and isinstance(description, str)
        assert isinstance(deadline_s, int) and isinstance(reward, str)
        return cls(
            principal=principal,
            description=description,
            deadline_s=deadline_s,
            agents=tuple(str(agent) for agent in agents),
            reward=Amount(int(reward), reward_of.asset),
        )


@dataclass(frozen=True, slots=True)
class Task:
    """A task as rebuilt from the ledger."""

    id: str
    document: TaskDocument
    budget: Amount
    posted_at: int
    """The hold's ledger timestamp (ns)."""
    deadline_at: int
    """posted_at + deadline_s (ns): no take or delivery after it."""
    state: TaskState
    takers: tuple[str, ...]
    deliveries: dict[str, str]
    """Agent address -> result digest."""
