"""How `paywire mandate` shows mandates: summaries, the `show` view, `list` and `status`
tables (rich). Text that comes from a mandate (purpose, task id) is printed as text, never
as console markup or emoji codes (every cell is a `Text`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table
from rich.text import Text

from paywire.cli._common import console
from paywire.cli._mandate_input import show_duration, show_time

if TYPE_CHECKING:
    from paywire.mandate import AssetLimit, Mandate, MandateChain

MAX_SHOWN_PURPOSE_CHARS = 60
"""A purpose in a table is cut to this; `show` prints it whole."""


def amount(asset: str, atomic: int, *, unit: str = " atomic") -> str:
    """An amount for people: ``5 USDC`` for a known asset, else atomic units."""
    from paywire.money import KNOWN_ASSETS, format_atomic

    known = KNOWN_ASSETS.get(asset)
    if known is None:
        return f"{atomic}{unit}"
    return f"{format_atomic(atomic, known.decimals)} {asset}"


def limit_text(limit: AssetLimit) -> str:
    """``USDC on paywire:x: total 5 USDC, per payment 0.1 USDC, 1 USDC per 1h``."""
    parts = [
        f"total {amount(limit.asset, limit.total_atomic)}",
        f"per payment {amount(limit.asset, limit.per_payment_atomic)}",
        *(
            f"{amount(limit.asset, window.limit_atomic)} per {show_duration(window.window_s)}"
            for window in limit.windows
        ),
    ]
    return f"{limit.asset} on {limit.network}: " + ", ".join(parts)


def validity(mandate: Mandate, now_s: int) -> str:
    """Whether `mandate` is valid at `now_s` (without clock skew), for people."""
    if now_s < mandate.valid_after:
        return f"not yet valid (from {show_time(mandate.valid_after)})"
    if now_s >= mandate.valid_before:
        return f"expired at {show_time(mandate.valid_before)}"
    return f"valid until {show_time(mandate.valid_before)}"


def line(text: str) -> None:
    """One plain line: no markup, no wrapping (base64 and ids stay copyable)."""
    console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)


def print_issued(verb: str, chain: MandateChain, path: Path, now_s: int) -> None:
    """What `issue` and `delegate` print: the id, a summary, the file and the base64."""
    mandate = chain.leaf
    line(f"{verb} mandate {mandate.id}")
    line(f"  issuer     {mandate.issuer}")
    line(f"  agent      {mandate.agent}")
    if len(chain) > 1:
        line(f"  principal  {chain.principal} (chain of {len(chain)} mandates)")
    for limit in mandate.limits:
        line(f"  limit      {limit_text(limit)}")
    if mandate.payees:
        line(f"  payees     {', '.join(mandate.payees)}")
    if mandate.origins:
        line(f"  origins    {', '.join(mandate.origins)}")
    line(f"  validity   {show_time(mandate.valid_after)} to {show_time(mandate.valid_before)}")
    line(f"             {validity(mandate, now_s)}")
    if mandate.purpose:
        line(f"  purpose    {mandate.purpose}")
    if mandate.task_id:
        line(f"  task       {mandate.task_id}")
    line(f"written to {path}")
    line("hand it to the agent (a file path works too):")
    line(f"PAYWIRE_MANDATE={chain.to_base64()}")


def print_chain(chain: MandateChain, now_s: int, problems: dict[int, str]) -> None:
    """`show`: every mandate of the chain, root first, with its signature's verdict."""
    for depth, signed in enumerate(chain.mandates):
        mandate = signed.mandate
        table = Table(show_header=False, box=box.SIMPLE, pad_edge=False)
        table.add_column(style="dim", no_wrap=True)
        table.add_column(overflow="fold")
        role = "root (principal's mandate)" if depth == 0 else f"delegation, depth {depth}"
        rows: list[tuple[str, str]] = [
            ("mandate", f"{mandate.id}  [{role}]"),
            ("issuer", mandate.issuer),
            ("agent", mandate.agent),
        ]
        if mandate.parent_id is not None:
            rows.append(("parent", mandate.parent_id))
        rows.extend(("limit", limit_text(limit)) for limit in mandate.limits)
        rows.append(("payees", ", ".join(mandate.payees) or "any"))
        rows.append(("origins", ", ".join(mandate.origins) or "any"))
        rows.append(("networks", ", ".join(mandate.networks) or "any (as its limits name)"))
        rows.append(
            ("validity", f"{show_time(mandate.valid_after)} to {show_time(mandate.valid_before)}")
        )
        rows.append(("now", validity(mandate, now_s)))
        if mandate.purpose:
            rows.append(("purpose", mandate.purpose))
        if mandate.task_id:
            rows.append(("task", mandate.task_id))
        rows.append(("signature", problems.get(depth, "ok, by the issuer")))
        for name, value in rows:
            table.add_row(name, Text(value))
        console.print(table)


def short(address: str) -> str:
    """``0x1234...cdef``: enough of an address to tell wallets apart in a table."""
    return address if len(address) <= 14 else f"{address[:6]}...{address[-4:]}"


def print_list(entries: list[tuple[Path, MandateChain]], now_s: int) -> None:
    """`list`: one row per chain file (an id prefix is enough to name it elsewhere)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("id", "agent", "principal"):
        table.add_column(column, no_wrap=True)
    table.add_column("purpose", overflow="fold", min_width=12)
    table.add_column("valid until", no_wrap=True)
    table.add_column("depth", justify="right")
    for _, chain in entries:
        leaf = chain.leaf
        purpose = leaf.purpose.replace("\n", " ")
        if len(purpose) > MAX_SHOWN_PURPOSE_CHARS:
            purpose = purpose[: MAX_SHOWN_PURPOSE_CHARS - 3] + "..."
        until = show_time(leaf.valid_before)[:16]
        if now_s >= leaf.valid_before:
            until += " (expired)"
        cells = (leaf.id[:12], short(leaf.agent), short(chain.principal), purpose, until)
        table.add_row(*(Text(cell) for cell in cells), str(len(chain)))
    console.print(table)


def print_status(report: dict[str, Any]) -> None:
    """`status`: one row per ledger spend limit (a total or a window) of each mandate."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("mandate", no_wrap=True)
    table.add_column("asset limit", overflow="fold", min_width=12)
    table.add_column("window", no_wrap=True)
    for column in ("cap", "spent", "remaining"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True, min_width=7)
    last_mandate = last_limit = None
    for row in report["rows"]:
        asset, mandate = str(row["asset"]), str(row["mandate"])
        window = row.get("windowSeconds")
        subject = f"{asset if len(asset) <= 12 else short(asset)} on {row['network']}"
        if not row.get("ledger", True):
            state = Text("client", style="yellow")
        elif row.get("closed"):
            state = Text("revoked", style="red")
        else:
            state = Text("open" if row.get("opened") else "unused")
        if mandate != last_mandate and last_mandate is not None:
            table.add_section()
        cells = (
            str(row["depth"]) if mandate != last_mandate else "",
            mandate[:10] if mandate != last_mandate else "",
            subject if (mandate, subject) != last_limit else "",
            "total" if window is None else show_duration(int(window)),
            amount(asset, int(row["cap"]), unit=""),
            amount(asset, int(row["spent"]), unit=""),
            amount(asset, int(row["remaining"]), unit=""),
        )
        table.add_row(*(Text(cell) for cell in cells), state)
        last_mandate, last_limit = mandate, (mandate, subject)
    line(f"mandate chain of {len(report['mandates'])} for agent {report['agent']}")
    console.print(table)
    if any(row.get("closed") for row in report["rows"]):
        line("revoked: no payment under this mandate, or any mandate below it, is accepted")
    if any(not row.get("ledger", True) for row in report["rows"]):
        line(
            "client: an EVM token's limit, in atomic units; the chain cannot check a mandate, "
            "the agent's client enforces it"
        )
