"""The JSON forms of tasks and their books over the operator's HTTP API (amounts as
decimal strings of atomic units, times as Unix seconds); `task_from_json` reads a task
back on the client side."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paywire.errors import InvalidInput, PaywireError
from paywire.ledger.model import NS_PER_S
from paywire.money import Amount, Asset
from paywire.tasks import (
    Delivery,
    Task,
    TaskBooks,
    TaskDocument,
    TaskState,
)
from paywire.tasks.requests import (
    MAX_REQUEST_SKEW_S,
    SIGNED_ACTIONS,
    TASK_REQUEST,
    TASKS_DOMAIN,
)

OPEN_ACTIONS = ("release", "expire")
"""Actions that need no signature: they only carry out what is already due."""


def task_json(task: Task, network: str) -> dict[str, Any]:
    """A task as JSON: amounts as decimal strings of atomic units, times in Unix seconds."""
    document = task.document
    accepting: dict[str, Any] | None = None
    if task.accepting is not None:
        rows = task.accepting.get("payouts")
        accepting = {
            "releaseAt": int(str(task.accepting.get("release_at", 0))) // NS_PER_S,
            "payouts": [
                {"account": str(row[0]), "amount": str(row[1]), "label": str(row[3])}
                for row in (rows if isinstance(rows, list) else [])
                if isinstance(row, list) and len(row) == 4
            ],
        }
    return {
        "id": task.id,
        "network": network,
        "state": str(task.state),
        "principal": document.principal,
        "description": document.description,
        "asset": task.budget.asset.code,
        "decimals": task.budget.asset.decimals,
        "budget": str(task.budget.atomic),
        "reward": str(document.reward.atomic),
        "allowance": str(task.allowance.atomic),
        "agents": list(document.agents),
        "deadlineSeconds": document.deadline_s,
        "disputeWindowSeconds": document.dispute_window_s,
        "check": document.check,
        "postedAt": task.posted_at // NS_PER_S,
        "deadlineAt": task.deadline_at // NS_PER_S,
        "reviewEndAt": task.review_end_at // NS_PER_S,
        "takers": list(task.takers),
        "mandates": dict(task.mandates),
        "deliveries": {
            agent: {
                "resultDigest": delivery.result_digest,
                "shares": dict(delivery.shares),
                "at": delivery.at // NS_PER_S,
            }
            for agent, delivery in task.deliveries.items()
        },
        "accepting": accepting,
    }


def task_from_json(data: object) -> Task:
    """A `Task` back from `task_json` (times to the second): what a client needs to sign
    task mandates (`paywire.tasks.issue_task_mandate`). `InvalidInput` if malformed."""
    try:
        assert isinstance(data, dict)
        asset = Asset(str(data["asset"]), int(data["decimals"]))
        document = TaskDocument(
            principal=str(data["principal"]),
            description=str(data["description"]),
            deadline_s=int(data["deadlineSeconds"]),
            agents=tuple(str(agent) for agent in data["agents"]),
            reward=Amount(int(data["reward"]), asset),
            check=data.get("check"),
            dispute_window_s=int(data.get("disputeWindowSeconds", 0)),
        )
        deliveries = {
            str(agent): Delivery(
                str(agent),
                str(item["resultDigest"]),
                {str(k): int(v) for k, v in dict(item.get("shares", {})).items()},
                int(item.get("at", 0)) * NS_PER_S,
            )
            for agent, item in dict(data.get("deliveries", {})).items()
        }
        return Task(
            id=str(data["id"]),
            document=document,
            budget=Amount(int(data["budget"]), asset),
            posted_at=int(data["postedAt"]) * NS_PER_S,
            deadline_at=int(data["deadlineAt"]) * NS_PER_S,
            state=TaskState(str(data["state"])),
            takers=tuple(str(agent) for agent in data.get("takers", [])),
            deliveries=deliveries,
            mandates={str(k): str(v) for k, v in dict(data.get("mandates", {})).items()},
        )
    except (AssertionError, KeyError, TypeError, ValueError, PaywireError) as error:
        raise InvalidInput(f"not a task's JSON ({type(error).__name__}: {error})") from None


def books_json(books: TaskBooks) -> dict[str, Any]:
    """A task's books as JSON: amounts as decimal strings of atomic units, AI tokens as
    numbers."""

    def amounts(values: Mapping[str, int]) -> dict[str, str]:
        return {key: str(value) for key, value in values.items()}

    task = books.task
    return {
        "task": task.id,
        "state": str(task.state),
        "asset": task.budget.asset.code,
        "decimals": task.budget.asset.decimals,
        "budget": str(task.budget.atomic),
        "reward": str(task.document.reward.atomic),
        "allowance": str(task.allowance.atomic),
        "spent": str(books.spent_atomic),
        "payments": len(books.spends),
        "spentByProvider": amounts(books.spent_by_provider),
        "spentByPayer": amounts(books.spent_by_payer),
        "reimbursable": amounts(books.reimbursable()),
        "models": {
            name: {
                "calls": use.calls,
                "inputTokens": use.input_tokens,
                "cachedInputTokens": use.cached_input_tokens,
                "outputTokens": use.output_tokens,
                "cost": str(use.amount_atomic),
            }
            for name, use in books.models.items()
        },
        "shares": amounts(books.shares),
        "expenses": amounts(books.expenses),
        "fee": str(books.fee_atomic),
        "refunded": str(books.refunded_atomic),
        "held": str(books.held_atomic),
        "paidToContributors": str(books.paid_to_contributors_atomic),
        "margin": str(books.margin_atomic),
        "problems": books.problems(),
    }


def info_json(network: str) -> dict[str, Any]:
    """What a client needs to sign task requests for this ledger (``GET /tasks/_info``)."""
    return {
        "network": network,
        "domain": TASKS_DOMAIN.to_json(),
        "primaryType": TASK_REQUEST.primary_type,
        "encodeType": TASK_REQUEST.encode_type,
        "maxSkewSeconds": MAX_REQUEST_SKEW_S,
        "signedActions": sorted(SIGNED_ACTIONS),
        "openActions": list(OPEN_ACTIONS),
    }


# --- params ------------------------------------------------------------------------------------
