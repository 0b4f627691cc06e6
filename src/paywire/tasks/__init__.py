"""Tasks: a principal escrows a budget on the ledger; allowed agents take the task with a
mandate bounded by the budget, pay for their work, hire sub-agents and deliver; an
acceptance check (or the principal) decides; the escrow reimburses the work's spending,
splits the reward among contributors and pays the operator's fee, all in one linked batch,
or refunds the principal. Every transfer carries the task id, so a task's books are read
off the ledger (`TaskBook.books`). See `paywire.tasks.book`."""

from paywire.tasks.book import MAX_AGENTS, TaskBook
from paywire.tasks.books import ModelUse, Spend, TaskBooks
from paywire.tasks.mandates import check_task_mandate, issue_task_mandate
from paywire.tasks.model import (
    MAX_DISPUTE_WINDOW_S,
    REVIEW_WINDOW_S,
    SWEEP_WINDOW_S,
    AgentNotAllowed,
    DeadlinePassed,
    Delivery,
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
    "MAX_AGENTS",
    "MAX_DISPUTE_WINDOW_S",
    "REVIEW_WINDOW_S",
    "SWEEP_WINDOW_S",
    "AgentNotAllowed",
    "DeadlinePassed",
    "Delivery",
    "InvalidTask",
    "ModelUse",
    "Spend",
    "Task",
    "TaskBook",
    "TaskBooks",
    "TaskClosed",
    "TaskDocument",
    "TaskError",
    "TaskNotFound",
    "TaskState",
    "check_task_mandate",
    "issue_task_mandate",
    "split_reward",
]
