"""The demo's books: printed as tables and written as a Markdown report.

Every figure is read from the ledger (a task's books from its tagged transfers, balances
from the accounts, who paid whom from the wallets' histories) after the log was verified
and its export audited offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from paywire.ledger import Ledger, Transfer, TransferKind
from paywire.money import Amount, Asset
from paywire.tasks import TaskBooks

MAX_HISTORY_ROWS = 5_000
"""Transfers read per wallet for the who-paid-whom table (the demo makes far fewer)."""


@dataclass
class Table:
    title: str
    columns: Sequence[str]
    rows: list[list[str]] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |"]
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"


def money(asset: Asset, atomic: int) -> str:
    sign = "-" if atomic < 0 else ""
    return f"{sign}${abs(atomic) / 10**asset.decimals:,.6f}".rstrip("0").rstrip(".")


def usd(amount: Amount) -> str:
    """An amount as the demo shows dollars: ``$0.000045``, ``$2``."""
    return money(amount.asset, amount.atomic)


def task_tables(books: TaskBooks, names: dict[str, str], verdict: str) -> list[Table]:
    task, asset = books.task, books.task.budget.asset

    def name(address: str) -> str:
        return names.get(address, address)

    summary = Table(f"Task {task.id}: {task.state}", ("", "amount"))
    summary.rows += [
        ["budget (escrowed)", money(asset, task.budget.atomic)],
        ["reward (split by shares)", money(asset, task.document.reward.atomic)],
        ["spent on providers", money(asset, books.spent_atomic)],
        ["paid to contributors", money(asset, books.paid_to_contributors_atomic)],
        ["expenses reimbursed", money(asset, sum(books.expenses.values()))],
        ["operator fee", money(asset, books.fee_atomic)],
        ["refunded to the principal", money(asset, books.refunded_atomic)],
        ["still in escrow", money(asset, books.held_atomic)],
        ["margin (paid for the work less its cost)", money(asset, books.margin_atomic)],
    ]
    if verdict:
        summary.rows.append(["verdict", verdict.replace("|", "/")])
    problems = books.problems()
    summary.rows.append(["adds up", "; ".join(problems) if problems else "yes"])
    providers = Table("Spent per provider", ("provider", "paid by", "amount"))
    for spend in books.spends:
        providers.rows.append(
            [name(spend.provider), name(spend.payer), money(asset, spend.amount_atomic)]
        )
    models = Table(
        "AI tokens by model (turned into value for the provider)",
        ("model", "calls", "input tokens", "output tokens", "cost"),
    )
    for model, use in sorted(books.models.items()):
        models.rows.append(
            [
                model,
                str(use.calls),
                str(use.input_tokens),
                str(use.output_tokens),
                money(asset, use.amount_atomic),
            ]
        )
    contributors = Table("Paid to contributors", ("contributor", "share", "expenses back"))
    for address in sorted(set(books.shares) | set(books.expenses)):
        contributors.rows.append(
            [
                name(address),
                money(asset, books.shares.get(address, 0)),
                money(asset, books.expenses.get(address, 0)),
            ]
        )
    return [summary, providers, models, contributors]


def flows_table(
    ledger: Ledger, accounts: Iterable[str], names: dict[str, str], asset: Asset
) -> Table:
    """Who paid whom: posted transfers between the named wallets and the outside."""
    seen: dict[str, Transfer] = {}
    for account in accounts:
        before: int | None = None
        while len(seen) < MAX_HISTORY_ROWS:
            page = ledger.history(account, before=before, limit=500)
            if not page:
                break
            seen.update((item.id, item) for item in page)
            before = page[-1].log_index
    totals: dict[tuple[str, str], tuple[int, int]] = {}
    for item in seen.values():
        if item.kind not in (TransferKind.SINGLE, TransferKind.POST):
            continue
        pair = (_party(item.debit_account_id, names), _party(item.credit_account_id, names))
        count, amount = totals.get(pair, (0, 0))
        totals[pair] = (count + 1, amount + item.amount.atomic)
    table = Table("Who paid whom (posted, from the ledger)", ("from", "to", "transfers", "amount"))
    for (payer, payee), (count, amount) in sorted(totals.items()):
        table.rows.append([payer, payee, str(count), money(asset, amount)])
    return table


def _party(account_id: str, names: dict[str, str]) -> str:
    address = account_id.split(":")[0]
    if address in names:
        return names[address]
    if account_id.startswith("reserve:"):
        return "chain reserve"
    if account_id.startswith("task:"):
        return "escrow " + account_id.split(":")[1]
    if account_id.startswith("operator:fees"):
        return "operator fees"
    return account_id


def balances_table(
    ledger: Ledger, names: dict[str, str], asset: Asset, on_chain: dict[str, int]
) -> Table:
    table = Table("Balances", ("who", "ledger (available)", "on chain"))
    for address, who in names.items():
        try:
            available = ledger.balance(f"{address}:{asset.code}").available
        except Exception:  # a party with no ledger account
            available = 0
        table.rows.append([who, money(asset, available), money(asset, on_chain.get(address, 0))])
    return table


def write_report(
    path: Path,
    title: str,
    lines: Sequence[str],
    tables: Sequence[Table],
    checks: Sequence[str],
    results: dict[str, str],
) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"# {title}",
        "",
        f"_{stamp}; every figure below is read from the ledger._",
        "",
        "## What happened",
        "",
    ]
    parts += [f"- {line.strip()}" for line in lines]
    for task_id, text in results.items():
        quoted = "\n".join("> " + line for line in text.splitlines())
        parts += ["", f"## The result of {task_id}", "", quoted]
    parts += ["", "## The books", ""]
    parts += [table.markdown() for table in tables]
    parts += ["## Checks", ""] + [f"- {check}" for check in checks] + [""]
    path.write_text("\n".join(parts))
