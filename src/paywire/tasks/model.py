"""Tasks as the ledger records them: ids, the task document, the errors, the read view.

A task's money is one hold, ``task:<id>:hold``, from the principal's wallet account to the
task's escrow account ``task:<id>:escrow``; the hold's metadata carries the task document
(description, deadline, allowed agents, reward, acceptance check, dispute window), so a
task is rebuilt from the ledger alone. What happens to a task without moving money (takes,
deliveries, a pending acceptance, a dispute) is recorded as a zero-balance *record account*
(the ledger has no notes, and an account is an idempotent, logged, timestamped record):
``task:<id>:take:<n>``, ``task:<id>:deliver:<n>`` (n: the agent's index in the allowed
list, the account owned by the agent, so ``ledger.accounts(owner=agent)`` finds an agent's
tasks), ``task:<id>:accepting`` and ``task:<id>:dispute``. A record's ledger timestamp is
what counts against the deadline, so the check cannot race the write.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field

from paywire._json import loads as load_json
from paywire.errors import InvalidInput, NotFound, PaywireError
from paywire.ledger.model import NS_PER_S, JsonValue, check_id
from paywire.money import Amount

REVIEW_WINDOW_S = 3 * 24 * 3600
"""How long after the deadline the principal may still accept or reject a delivery."""

MAX_DISPUTE_WINDOW_S = 30 * 24 * 3600
"""Longest wait between an acceptance and its release (a longer one locks funds for
longer than any dispute needs)."""

SWEEP_WINDOW_S = 24 * 3600
"""After the review (and dispute) windows: the time in which `TaskBook.expire` or
`release` settles the task, expenses reimbursed; the hold's own timeout ends it, and an
expiry by the ledger refunds the principal in full (the backstop if nobody sweeps)."""

MAX_DESCRIPTION_CHARS = 1000
"""The task document lives in the hold's metadata (4 KiB in all)."""

MAX_CHECK_JSON_BYTES = 1536
"""An acceptance check's JSON form, inside the same 4 KiB."""

DOCUMENT_VERSION = 2


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
    RELEASING = "releasing"
    """Accepted; paid out when the dispute window ends (`TaskBook.release`)."""
    DISPUTED = "disputed"
    """A pending acceptance was disputed: the principal accepts again or rejects."""
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


def accepting_record_id(task_id: str) -> str:
    return f"task:{task_id}:accepting"


def dispute_record_id(task_id: str) -> str:
    return f"task:{task_id}:dispute"


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
    check: dict[str, JsonValue] | None = None
    """The acceptance check's JSON form (`paywire.tasks.checks`); None: the principal
    decides by hand."""
    dispute_window_s: int = 0
    """Time between an acceptance and its release, in which it may be disputed."""

    @property
    def review_end_s(self) -> int:
        """Seconds from posting until accept/reject are no longer taken."""
        return self.deadline_s + REVIEW_WINDOW_S

    @property
    def timeout_s(self) -> int:
        """The escrow hold's timeout: review, dispute and sweep windows after the deadline."""
        return self.review_end_s + self.dispute_window_s + SWEEP_WINDOW_S

    def to_json(self) -> dict[str, JsonValue]:
        data: dict[str, JsonValue] = {
            "v": DOCUMENT_VERSION,
            "principal": self.principal,
            "description": self.description,
            "deadline_s": self.deadline_s,
            "agents": list(self.agents),
            "reward": str(self.reward.atomic),
            "dispute_window_s": self.dispute_window_s,
        }
        if self.check is not None:
            # As text: a check's JSON nests deeper than the ledger's metadata allows.
            data["check"] = json.dumps(self.check, separators=(",", ":"), sort_keys=True)
        return data

    @classmethod
    def from_json(cls, data: object, reward_of: Amount) -> TaskDocument:
        """Read back a document (`reward_of`: any amount of the task's asset)."""
        if not isinstance(data, dict) or data.get("v") not in (1, DOCUMENT_VERSION):
            raise InvalidTask("the hold carries no task document of a known version")
        agents = data["agents"]
        assert isinstance(agents, list)
        principal, description = data["principal"], data["description"]
        deadline_s, reward = data["deadline_s"], data["reward"]
        dispute_window_s, check = data.get("dispute_window_s", 0), data.get("check")
        assert isinstance(principal, str) and isinstance(description, str)
        assert isinstance(deadline_s, int) and isinstance(reward, str)
        assert isinstance(dispute_window_s, int)
        if isinstance(check, str):
            check = load_json(check)
        assert check is None or isinstance(check, dict)
        return cls(
            principal=principal,
            description=description,
            deadline_s=deadline_s,
            agents=tuple(str(agent) for agent in agents),
            reward=Amount(int(reward), reward_of.asset),
            check=check,
            dispute_window_s=dispute_window_s,
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """An agent's delivered result, as recorded: its digest and the shares it proposes."""

    agent: str
    result_digest: str
    shares: dict[str, int]
    """Contributor address -> whole parts of the reward (empty: all to the agent)."""
    at: int
    """The record's ledger timestamp (ns)."""


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
    deliveries: dict[str, Delivery]
    """Agent address -> its delivery."""
    mandates: dict[str, str] = field(default_factory=dict)
    """Agent address -> the id of the task mandate it took the task with."""
    accepting: dict[str, JsonValue] | None = None
    """A pending acceptance (state RELEASING): its terms and when it releases."""

    @property
    def allowance(self) -> Amount:
        """What the budget leaves for expenses beyond the reward (a task mandate's cap)."""
        return Amount(self.budget.atomic - self.document.reward.atomic, self.budget.asset)

    @property
    def review_end_at(self) -> int:
        return self.posted_at + self.document.review_end_s * NS_PER_S
