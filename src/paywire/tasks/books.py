"""A task's books, read off the ledger: what was spent on it, with whom, on which models,
and where its escrow went.

Every transfer that belongs to a task carries ``{"task": <id>}`` in its metadata: the
book's own (the escrow hold, its post or void, the payouts) and every payment made under a
mandate naming the task (per request, ``exact``; per AI token, the claims of a channel
opened under it). `Ledger.all_task_transfers` finds them by that tag. From them:

- **spending**: the payments (a ``PAYMENT`` transfer, or the post of a channel's hold),
  by payer and by provider (the credited wallet's address), and the AI tokens per model
  from the metering detail they carry;
- **reimbursable** spending: payments made under the mandate an agent took the task with
  (the payment's spend limits, or its hold's, name that mandate's limits; a sub-agent's
  delegated mandate names its parents' too). A payment tagged with the task under any
  other mandate is counted as spent but never paid back from the escrow: anyone can sign a
  mandate that names a task;
- the **payouts** of a settled task (shares, expenses, fee) and what was refunded.

The *margin* is what the contributors were paid for their work less what the work cost
(spending on providers): the value the agents added over the AI tokens and tools.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from paywire.crypto.keys import parse_address
from paywire.errors import InvalidInput
from paywire.ledger import Transfer, TransferCode, TransferKind
from paywire.tasks.model import Task, TaskState, hold_id

MANDATE_LIMIT_PREFIX = "mandate:"
"""How the ledger names a mandate's spend limits: ``mandate:<id hex>:<index>:...``."""


@dataclass(frozen=True, slots=True)
class Spend:
    """One payment made for a task."""

    transfer_id: str
    payer: str
    """The paying wallet's address (or its account id, if not a wallet)."""
    provider: str
    """The credited wallet's address (or its account id)."""
    amount_atomic: int
    reimbursable: bool
    models: dict[str, tuple[int, int, int, int]]
    """Model -> (calls, input, cached input, output tokens) the payment bought."""


@dataclass(slots=True)
class ModelUse:
    """AI tokens one model produced for a task, and what they cost."""

    calls: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    amount_atomic: int = 0


@dataclass(frozen=True, slots=True)
class TaskBooks:
    """A task's flow of value, from the ledger (amounts in atomic units of its asset)."""

    task: Task
    spends: tuple[Spend, ...]
    spent_by_provider: dict[str, int]
    spent_by_payer: dict[str, int]
    models: dict[str, ModelUse]
    shares: dict[str, int] = field(default_factory=dict)
    """Contributor address -> share of the reward paid."""
    expenses: dict[str, int] = field(default_factory=dict)
    """Address -> spending reimbursed from the escrow."""
    fee_atomic: int = 0
    refunded_atomic: int = 0
    """Returned to the principal (the budget less what the settlement paid out)."""
    held_atomic: int = 0
    """Still in escrow (the task is not settled)."""
    posted_atomic: int = 0
    """What the settlement took from the escrow hold (the rest was released)."""

    @property
    def spent_atomic(self) -> int:
        return sum(spend.amount_atomic for spend in self.spends)

    @property
    def paid_to_contributors_atomic(self) -> int:
        return sum(self.shares.values())

    @property
    def margin_atomic(self) -> int:
        """Paid to contributors for the work, less what the work cost."""
        return self.paid_to_contributors_atomic - self.spent_atomic

    def problems(self) -> list[str]:
        """Where the books do not add up (none, unless the ledger was written by hand):
        the escrow's post must equal what it paid out, and nothing pays above the budget."""
        found = []
        paid = self.paid_to_contributors_atomic + sum(self.expenses.values()) + self.fee_atomic
        if paid != self.posted_atomic:
            found.append(f"the escrow posted {self.posted_atomic} but paid out {paid}")
        if self.posted_atomic + self.refunded_atomic + self.held_atomic != self.task.budget.atomic:
            found.append("the posted, refunded and held amounts do not make up the budget")
        if self.paid_to_contributors_atomic > self.task.document.reward.atomic:
            found.append("the shares paid exceed the reward")
        return found

    def reimbursable(self) -> dict[str, int]:
        """Payer address -> what the escrow owes it for the task's work."""
        owed: dict[str, int] = {}
        for spend in self.spends:
            if spend.reimbursable:
                owed[spend.payer] = owed.get(spend.payer, 0) + spend.amount_atomic
        return owed


def read_books(task: Task, transfers: Iterable[Transfer]) -> TaskBooks:
    """The books of `task` from its tagged transfers (in log order)."""
    own = f"task:{task.id}:"
    mandates = tuple(
        f"{MANDATE_LIMIT_PREFIX}{mandate_id.removeprefix('0x').lower()}:"
        for mandate_id in task.mandates.values()
    )
    by_id: dict[str, Transfer] = {}
    spends: list[Spend] = []
    shares: dict[str, int] = {}
    expenses: dict[str, int] = {}
    fee = posted = 0
    for item in transfers:
        by_id[item.id] = item
        if item.id.startswith(own):
            if item.id.endswith(":hold"):
                continue
            if item.kind is TransferKind.POST and item.pending_id == hold_id(task.id):
                posted = item.amount.atomic
            elif ":share:" in item.id:
                shares[_address(item.credit_account_id)] = item.amount.atomic
            elif ":expense:" in item.id:
                expenses[_address(item.credit_account_id)] = item.amount.atomic
            elif item.id.endswith(":fee"):
                fee += item.amount.atomic
            continue
        spend = _spend(item, by_id, mandates)
        if spend is not None:
            spends.append(spend)
    by_provider: dict[str, int] = {}
    by_payer: dict[str, int] = {}
    models: dict[str, ModelUse] = {}
    for spend in spends:
        by_provider[spend.provider] = by_provider.get(spend.provider, 0) + spend.amount_atomic
        by_payer[spend.payer] = by_payer.get(spend.payer, 0) + spend.amount_atomic
        for name, (calls, tokens_in, cached, tokens_out) in spend.models.items():
            use = models.setdefault(name, ModelUse())
            use.calls += calls
            use.input_tokens += tokens_in
            use.cached_input_tokens += cached
            use.output_tokens += tokens_out
        if len(spend.models) == 1:  # a claim over several models carries one amount
            models[next(iter(spend.models))].amount_atomic += spend.amount_atomic
    settled = task.state in (
        TaskState.ACCEPTED,
        TaskState.REJECTED,
        TaskState.CANCELLED,
        TaskState.EXPIRED,
    )
    return TaskBooks(
        task=task,
        spends=tuple(spends),
        spent_by_provider=by_provider,
        spent_by_payer=by_payer,
        models=models,
        shares=shares,
        expenses=expenses,
        fee_atomic=fee,
        refunded_atomic=task.budget.atomic - posted if settled else 0,
        held_atomic=0 if settled else task.budget.atomic,
        posted_atomic=posted,
    )


def _spend(
    item: Transfer, by_id: Mapping[str, Transfer], mandates: tuple[str, ...]
) -> Spend | None:
    if item.kind is TransferKind.SINGLE and item.code == TransferCode.PAYMENT:
        limits = item.limits
    elif item.kind is TransferKind.POST and item.pending_id is not None:
        held = by_id.get(item.pending_id)
        limits = held.limits if held is not None else ()
    else:
        return None  # holds reserve, voids release: neither is spent
    reimbursable = bool(mandates) and any(limit.startswith(mandates) for limit in limits)
    return Spend(
        transfer_id=item.id,
        payer=_address(item.debit_account_id),
        provider=_address(item.credit_account_id),
        amount_atomic=item.amount.atomic,
        reimbursable=reimbursable,
        models=_models(item.metadata),
    )


def _models(metadata: Mapping[str, object]) -> dict[str, tuple[int, int, int, int]]:
    """The AI tokens a payment bought: a per-request payment's ``meter`` detail, or a
    channel claim's per-model summary (``models``)."""
    meter = metadata.get("meter")
    if isinstance(meter, Mapping) and isinstance(meter.get("model"), str):
        tokens = meter.get("tokens")
        tokens = tokens if isinstance(tokens, Mapping) else {}
        return {
            str(meter["model"]): (
                1,
                _count(tokens.get("input")),
                _count(tokens.get("cached_input")),
                _count(tokens.get("output")),
            )
        }
    summary = metadata.get("models")
    if not isinstance(summary, Mapping):
        return {}
    out: dict[str, tuple[int, int, int, int]] = {}
    for name, row in summary.items():
        if isinstance(row, list) and len(row) >= 4:
            out[str(name)] = (_count(row[0]), _count(row[1]), _count(row[2]), _count(row[3]))
    return out


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _address(account_id: str) -> str:
    """A wallet account's address (``<address>:<ASSET>``), an EVM mirror's address
    (``evm:<network>:<address>:<ASSET>``), or the account id itself."""
    parts = account_id.split(":")
    for part in reversed(parts[:-1]):
        if part.startswith("0x"):
            try:
                return parse_address(part)
            except InvalidInput:
                break
    return account_id
