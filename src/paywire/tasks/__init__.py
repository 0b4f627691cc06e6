"""Tasks: a principal escrows a budget on the ledger; allowed agents take the task and
deliver; the principal accepts (the reward split among contributors, expenses and the
operator's fee paid, the rest refunded, all in one linked batch) or rejects or cancels
(a refund, less expenses). See `paywire.tasks.book`."""

from paywire.tasks.book import MAX_AGENTS, TaskBook
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
)
from paywire.tasks.splits import split_reward

__all__ = [
    "DISPUTE_WINDOW_S",
    "MAX_AGENTS",
    "AgentNotAllowed",
    "DeadlinePassed",
    "InvalidTask",
    "Task",
    "TaskBook",
    "TaskClosed",
    "TaskDocument",
    "TaskError",
    "TaskNotFound",
    "TaskState",
    "split_reward",
]
