"""How `paywire task` shows tasks: the `show` tables (the task, its agents, its books) and
the `list` table, from the operator's JSON (`paywire.service.tasks`). Text from a task
(description, ids, digests) is printed as text, never as console markup (cells are `Text`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from paywire.cli._common import console
from paywire.cli._mandate_input import show_duration, show_time
from paywire.cli._mandate_view import line, short

MAX_SHOWN_DESCRIPTION_CHARS = 50
"""A description in the `list` table is cut to this; `show` prints it whole."""


def money(atomic: int, asset: str, decimals: int) -> str:
    """An amount for people, exactly: ``$1.50`` for a dollar stablecoin, else ``1.5 EURC``."""
    from paywire.money import DOLLAR_ASSETS, format_atomic

    sign = "-" if atomic < 0 else ""
    text = format_atomic(abs(atomic), decimals)
    if asset in DOLLAR_ASSETS:
        whole, _, frac = text.partition(".")
        return f"{sign}${whole}.{frac.ljust(2, '0')}"
    return f"{sign}{text} {asset}"


def _money_of(data: Mapping[str, Any]) -> Any:
    asset, decimals = str(data["asset"]), int(data["decimals"])
    return lambda value: money(int(value), asset, decimals)


def _pairs(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=box.SIMPLE)
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(name, Text(value))
    return table


def _table(title: str, columns: tuple[str, ...], right: int) -> Table:
    """A table whose last `right` columns are right-aligned numbers."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for index, column in enumerate(columns):
        numeric = index >= len(columns) - right
        table.add_column(column, justify="right" if numeric else "left", no_wrap=numeric)
    return table


def task_table(task: Mapping[str, Any]) -> Table:
    """The task: its terms, state and times."""
    shown = _money_of(task)
    rows = [
        ("state", str(task["state"])),
        ("principal", str(task["principal"])),
        ("description", str(task["description"])),
        ("budget", f"{shown(task['budget'])} (escrowed)"),
        ("reward", f"{shown(task['reward'])} (split among contributors)"),
        ("allowance", f"{shown(task['allowance'])} (for expenses and fees)"),
        ("posted", show_time(int(task["postedAt"]))),
        ("deadline", show_time(int(task["deadlineAt"]))),
        ("review ends", show_time(int(task["reviewEndAt"]))),
    ]
    window = int(task.get("disputeWindowSeconds") or 0)
    if window:
        rows.append(("dispute window", show_duration(window)))
    check = task.get("check")
    rows.append(("check", str(check.get("kind")) if isinstance(check, dict) else "by hand"))
    accepting = task.get("accepting")
    if isinstance(accepting, dict):
        rows.append(("releases at", show_time(int(accepting.get("releaseAt", 0)))))
    rows.append(("network", str(task["network"])))
    return _pairs(f"task {task['id']}", rows)


Names = Mapping[str, str]
"""Address -> the keystore's name for it (the wallets this machine knows)."""

NO_NAMES: Names = MappingProxyType({})


def named(address: str, names: Names, *, shorten: bool = False) -> str:
    """``name (0x1234...abcd)`` for a known address, else the address."""
    name = names.get(address)
    if name is None:
        return short(address) if shorten else address
    return f"{name} ({short(address)})"


def agents_table(task: Mapping[str, Any], names: Names = NO_NAMES) -> Table:
    """Each allowed agent: whether it took the task (with which mandate) and delivered."""
    table = _table("agents", ("agent", "took", "mandate", "delivered", "result", "shares"), 0)
    takers = set(task.get("takers", []))
    mandates = task.get("mandates", {})
    deliveries = task.get("deliveries", {})
    for agent in task["agents"]:
        delivery = deliveries.get(agent)
        shares = delivery.get("shares", {}) if delivery else {}
        cells = (
            named(agent, names, shorten=True),
            "yes" if agent in takers else "",
            str(mandates.get(agent, ""))[:12],
            show_time(int(delivery["at"]))[:16] if delivery else "",
            str(delivery["resultDigest"])[:16] if delivery else "",
            ", ".join(f"{named(who, names, shorten=True)}={part}" for who, part in shares.items()),
        )
        table.add_row(*(Text(cell) for cell in cells))
    return table


def books_tables(books: Mapping[str, Any], names: Names = NO_NAMES) -> list[Table]:
    """The books: the summary, spending per provider, AI tokens per model, payouts."""
    shown = _money_of(books)
    summary = _pairs(
        "books",
        [
            ("spent on providers", f"{shown(books['spent'])} in {books['payments']} payment(s)"),
            ("paid to contributors", shown(books["paidToContributors"])),
            ("expenses reimbursed", shown(sum(int(v) for v in books["expenses"].values()))),
            ("fee", shown(books["fee"])),
            ("refunded", shown(books["refunded"])),
            ("held in escrow", shown(books["held"])),
            ("margin", f"{shown(books['margin'])} (paid for the work less its cost)"),
            (
                "adds up",
                "yes: the escrow paid out what it posted, the rest refunded"
                if not books.get("problems")
                else "NO: " + "; ".join(str(p) for p in books["problems"]),
            ),
        ],
    )
    tables = [summary]
    if books["spentByProvider"]:
        providers = _table("spent per provider", ("provider", "amount"), 1)
        for provider, amount in books["spentByProvider"].items():
            providers.add_row(Text(named(provider, names)), shown(amount))
        tables.append(providers)
    if books["models"]:
        models = _table("AI tokens per model", ("model", "calls", "input", "output", "cost"), 4)
        for name, use in books["models"].items():
            models.add_row(
                Text(name),
                f"{use['calls']:,}",
                f"{use['inputTokens']:,}",
                f"{use['outputTokens']:,}",
                shown(use["cost"]),
            )
        tables.append(models)
    paid = set(books["shares"]) | set(books["expenses"]) | set(books["reimbursable"])
    if paid:
        contributors = _table(
            "paid to each contributor", ("contributor", "share", "expenses", "reimbursable"), 3
        )
        for who in sorted(paid):
            contributors.add_row(
                Text(named(who, names)),
                shown(books["shares"].get(who, 0)),
                shown(books["expenses"].get(who, 0)),
                shown(books["reimbursable"].get(who, 0)),
            )
        tables.append(contributors)
    return tables


def print_show(task: Mapping[str, Any], books: Mapping[str, Any], names: Names = NO_NAMES) -> None:
    """`show`: the task, its agents and its books (addresses named from the keystore)."""
    console.print(task_table(task))
    console.print(agents_table(task, names))
    for table in books_tables(books, names):
        console.print(table)


def print_list(tasks: list[Mapping[str, Any]]) -> None:
    """`list`: one row per task."""
    if not tasks:
        line("no tasks")
        return
    table = _table(
        "tasks",
        ("id", "state", "principal", "description", "deadline", "took", "delivered", "budget"),
        3,
    )
    for task in tasks:
        description = str(task["description"]).replace("\n", " ")
        if len(description) > MAX_SHOWN_DESCRIPTION_CHARS:
            description = description[: MAX_SHOWN_DESCRIPTION_CHARS - 3] + "..."
        cells = (
            str(task["id"]),
            str(task["state"]),
            short(str(task["principal"])),
            description,
            show_time(int(task["deadlineAt"]))[:16],
        )
        table.add_row(
            *(Text(cell) for cell in cells),
            str(len(task.get("takers", []))),
            str(len(task.get("deliveries", {}))),
            _money_of(task)(task["budget"]),
        )
    console.print(table)


def print_done(verb: str, answer: Mapping[str, Any]) -> None:
    """What a write prints: the task's state now and the transfers written."""
    task = answer["task"]
    line(f"{verb} task {task['id']}: {task['state']}")
    for transfer_id in answer.get("transfers", []):
        line(f"  transfer {transfer_id}")
