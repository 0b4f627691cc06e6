"""`paywire ledger`: accounts, transfers, holds, balances and history.

The ledger is the embedded SQLite file ``<home>/ledger.db`` unless ``--db`` (or
$PAYWIRE_DB) names another store, e.g. ``postgresql://paywire@localhost/paywire``.
The log's commands (checkpoint, verify, export, proof) are in `cli.log`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from paywire.cli import _common
from paywire.cli._common import console
from paywire.errors import InvalidInput

if TYPE_CHECKING:
    from paywire.ledger import Account, Ledger, Transfer
    from paywire.money import Asset

MAX_META_ITEMS = 32
"""--meta flags per command; metadata itself is bounded by the ledger."""

ledger_app = typer.Typer(
    help="The double-entry ledger: accounts, transfers, holds, balances, history.",
    no_args_is_help=True,
)
account_app = typer.Typer(help="Open, list and show accounts.", no_args_is_help=True)
ledger_app.add_typer(account_app, name="account")

_db_url: str | None = None


@ledger_app.callback()
def _ledger_root(
    db: str = typer.Option(
        None,
        "--db",
        envvar="PAYWIRE_DB",
        help="The ledger store: sqlite:///path, a path, or postgresql://... "
        "(default: ledger.db in the paywire home).",
        show_default=False,
    ),
) -> None:
    global _db_url
    _db_url = db


def ledger_url() -> str:
    """The store the ledger commands use."""
    return _db_url or f"sqlite:///{_common.home_dir() / 'ledger.db'}"


@contextmanager
def open_cli_ledger() -> Iterator[Ledger]:
    from paywire.ledger import open_ledger

    ledger = open_ledger(ledger_url())
    try:
        yield ledger
    finally:
        ledger.close()


def parse_meta(items: list[str] | None) -> dict[str, Any]:
    """``--meta key=value`` flags; values that read as JSON integers become integers."""
    meta: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--meta takes key=value, not {item!r}")
        meta[key] = int(value) if value.lstrip("-").isdigit() and len(value) < 19 else value
    if len(meta) > MAX_META_ITEMS:
        raise InvalidInput(f"at most {MAX_META_ITEMS} --meta items")
    return meta


def fmt(atomic: int, asset: Asset) -> str:
    from paywire.money import format_atomic

    return f"{format_atomic(atomic, asset.decimals)} {asset.code}"


def print_json(value: object) -> None:
    console.print_json(json.dumps(value))


def transfer_json(transfer: Transfer) -> dict[str, object]:
    return {
        "id": transfer.id,
        "kind": str(transfer.kind),
        "debit": transfer.debit_account_id,
        "credit": transfer.credit_account_id,
        "amount": str(transfer.amount.atomic),
        "asset": transfer.amount.asset.code,
        "amount_text": str(transfer.amount),
        "code": transfer.code,
        "pending_id": transfer.pending_id,
        "expires_at": transfer.expires_at,
        "timestamp": transfer.timestamp,
        "log_index": transfer.log_index,
        "metadata": dict(transfer.metadata),
        "replayed": transfer.replayed,
    }


def account_json(account: Account) -> dict[str, object]:
    balance = account.balance
    return {
        "id": account.id,
        "asset": account.asset.code,
        "decimals": account.asset.decimals,
        "kind": str(account.kind),
        "owner": account.owner,
        "flags": sorted(str(flag) for flag in account.flags),
        "debits_pending": str(balance.debits_pending),
        "debits_posted": str(balance.debits_posted),
        "credits_pending": str(balance.credits_pending),
        "credits_posted": str(balance.credits_posted),
        "posted": str(balance.posted),
        "available": str(balance.available),
        "log_index": account.log_index,
    }


# ----- accounts ------------------------------------------------------------------------


@account_app.command("open")
def account_open(
    account_id: str = typer.Argument(..., help="The account's id (its idempotency key)."),
    asset: str = typer.Option("USDC", "--asset", help="USDC, EURC, ETH, or CODE:DECIMALS."),
    kind: str = typer.Option("agent", "--kind", help="agent, provider, escrow, fees, external."),
    owner: str = typer.Option(None, "--owner", help="The owner: an address or a wallet name."),
    unbounded: bool = typer.Option(
        False, "--unbounded", help="No overdraft bound, whatever the kind (for source accounts)."
    ),
    meta: list[str] = typer.Option(None, "--meta", help="key=value metadata (repeatable)."),
) -> None:
    """Open an account (opening the same account again changes nothing)."""
    from paywire.ledger import NewAccount

    owner_value = _resolve_owner(owner)
    request = NewAccount(
        id=account_id,
        asset=parse_asset(asset),
        kind=kind,  # type: ignore[arg-type]  # NewAccount checks it and names the kinds
        owner=owner_value,
        flags=frozenset() if unbounded else None,
        metadata=parse_meta(meta),
    )
    with open_cli_ledger() as ledger:
        account = ledger.open_account(request)
    bounds = ", ".join(sorted(str(flag) for flag in account.flags)) or "none"
    console.print(
        f"account [bold]{account.id}[/] ({account.kind}, {account.asset.code}) is open; "
        f"bounds: {bounds}"
    )


def _resolve_owner(owner: str | None) -> str | None:
    """A wallet name becomes its address; anything else is taken as written."""
    if owner is None or owner.startswith("0x"):
        return owner
    from paywire.crypto.keystore import KeyStore

    store = KeyStore(_common.home_dir() / "keys")
    try:
        return store.info(owner).address
    except Exception:  # not a wallet name: an opaque owner label
        return owner


def parse_asset(text: str) -> Asset:
    from paywire.money import KNOWN_ASSETS, Asset

    code, sep, decimals = text.partition(":")
    if sep:
        if not decimals.isdigit():
            raise InvalidInput(f"--asset CODE:DECIMALS needs a number of decimals, not {text!r}")
        return Asset(code.upper(), int(decimals))
    known = KNOWN_ASSETS.get(text.upper())
    if known is None:
        raise InvalidInput(
            f"unknown asset {text!r}; use one of {', '.join(KNOWN_ASSETS)} or CODE:DECIMALS"
        )
    return known


@account_app.command("list")
def account_list(
    kind: str = typer.Option(None, "--kind", help="Only accounts of this kind."),
    owner: str = typer.Option(None, "--owner", help="Only accounts of this owner."),
    after: str = typer.Option(None, "--after", help="Start after this id (paging)."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List accounts with their balances."""
    from rich.table import Table

    from paywire.ledger import AccountKind

    kind_value = None
    if kind is not None:
        if kind not in set(AccountKind):
            raise InvalidInput(f"unknown kind {kind!r}")
        kind_value = AccountKind(kind)
    with open_cli_ledger() as ledger:
        accounts = ledger.accounts(kind=kind_value, owner=owner, after=after, limit=limit)
    if as_json:
        print_json([account_json(account) for account in accounts])
        return
    table = Table("account", "kind", "asset", "posted", "pending out", "available", "owner")
    for account in accounts:
        balance = account.balance
        table.add_row(
            account.id,
            str(account.kind),
            account.asset.code,
            fmt(balance.posted, account.asset),
            fmt(balance.debits_pending, account.asset),
            fmt(balance.available, account.asset),
            account.owner or "",
        )
    console.print(table)


@account_app.command("show")
def account_show(
    account_id: str = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show an account, its bounds and its four balance counters."""
    with open_cli_ledger() as ledger:
        account = ledger.account(account_id)
    if as_json:
        print_json(account_json(account))
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    balance, asset = account.balance, account.asset
    for name, value in [
        ("account", account.id),
        ("kind", str(account.kind)),
        ("asset", f"{asset.code} ({asset.decimals} decimals)"),
        ("owner", account.owner or "-"),
        ("bounds", ", ".join(sorted(str(f) for f in account.flags)) or "none"),
        ("credits posted", fmt(balance.credits_posted, asset)),
        ("debits posted", fmt(balance.debits_posted, asset)),
        ("credits pending", fmt(balance.credits_pending, asset)),
        ("debits pending", fmt(balance.debits_pending, asset)),
        ("posted balance", fmt(balance.posted, asset)),
        ("available", fmt(balance.available, asset)),
        ("opened at log index", str(account.log_index)),
    ]:
        table.add_row(f"[dim]{name}[/]", value)
    console.print(table)


@ledger_app.command("balance")
def balance(
    account_ids: list[str] = typer.Argument(..., help="One or more account ids."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Balances of accounts: posted, pending and available."""
    from rich.table import Table

    with open_cli_ledger() as ledger:
        accounts = [ledger.account(account_id) for account_id in account_ids]
    if as_json:
        print_json([account_json(account) for account in accounts])
        return
    table = Table("account", "posted", "pending in", "pending out", "available")
    for account in accounts:
        b, asset = account.balance, account.asset
        table.add_row(
            account.id,
            fmt(b.posted, asset),
            fmt(b.credits_pending, asset),
            fmt(b.debits_pending, asset),
            fmt(b.available, asset),
        )
    console.print(table)


# ----- transfers -----------------------------------------------------------------------


@ledger_app.command("transfer")
def transfer_command(
    debit: str = typer.Option(..., "--from", help="The account debited (pays)."),
    credit: str = typer.Option(..., "--to", help="The account credited (is paid)."),
    amount: str = typer.Option(..., "--amount", help="'$0.01', '0.01 USDC', or '0.01'."),
    transfer_id: str = typer.Option(None, "--id", help="Idempotency key (default: a new id)."),
    code: int = typer.Option(1, "--code", min=1, max=65535, help="Why (1 = transfer)."),
    hold: bool = typer.Option(False, "--hold", help="Reserve only: post or void it later."),
    timeout_s: int = typer.Option(None, "--timeout", help="A hold's timeout in seconds."),
    meta: list[str] = typer.Option(None, "--meta", help="key=value metadata (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Move value from one account to another (or hold it with --hold)."""
    from paywire import ledger as books

    if timeout_s is not None and not hold:
        raise InvalidInput("--timeout is for holds; add --hold")
    with open_cli_ledger() as ledger:
        asset = ledger.account(debit).asset
        value = asset.parse(amount)
        tid = transfer_id or books.new_id()
        make = books.hold if hold else books.transfer
        options: dict[str, Any] = {"timeout_s": timeout_s} if hold else {}
        done = ledger.submit(
            make(tid, debit, credit, value, code=code, metadata=parse_meta(meta), **options)
        )
    _report(done, as_json)


@ledger_app.command("post")
def post_command(
    pending_id: str = typer.Argument(..., help="The hold to post."),
    amount: str = typer.Option(None, "--amount", help="Post only part (the rest is released)."),
    transfer_id: str = typer.Option(None, "--id", help="Idempotency key (default: a new id)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Post a hold, in full or in part."""
    from paywire import ledger as books

    with open_cli_ledger() as ledger:
        value = None
        if amount is not None:
            held = ledger.transfer(pending_id)
            value = held.amount.asset.parse(amount)
        done = ledger.submit(books.post(transfer_id or books.new_id(), pending_id, value))
    _report(done, as_json)


@ledger_app.command("void")
def void_command(
    pending_id: str = typer.Argument(..., help="The hold to release."),
    transfer_id: str = typer.Option(None, "--id", help="Idempotency key (default: a new id)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Void a hold: release all of it."""
    from paywire import ledger as books

    with open_cli_ledger() as ledger:
        done = ledger.submit(books.void(transfer_id or books.new_id(), pending_id))
    _report(done, as_json)


def _report(done: Transfer, as_json: bool) -> None:
    if as_json:
        print_json(transfer_json(done))
        return
    verb = {
        "single": "moved",
        "pending": "held",
        "post": "posted",
        "void": "released",
        "expire": "expired",
    }[str(done.kind)]
    again = " [yellow](already committed: this is the first result, nothing new moved)[/]"
    console.print(
        f"{verb} [bold]{done.amount}[/] {done.debit_account_id} -> {done.credit_account_id}  "
        f"[dim]id {done.id}, log index {done.log_index}[/]" + (again if done.replayed else "")
    )


@ledger_app.command("history")
def history(
    account_id: str = typer.Argument(...),
    limit: int = typer.Option(20, "--limit", min=1, max=10_000),
    before: int = typer.Option(None, "--before", help="Only entries before this log index."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Transfers touching an account, newest first."""
    from datetime import UTC, datetime

    from rich.table import Table

    with open_cli_ledger() as ledger:
        transfers = ledger.history(account_id, before=before, limit=limit)
    if as_json:
        print_json([transfer_json(t) for t in transfers])
        return
    table = Table("log", "time (UTC)", "kind", "id", "amount", "counterparty", "metadata")
    for t in transfers:
        out = t.debit_account_id == account_id
        sign = "-" if out else "+"
        other = t.credit_account_id if out else t.debit_account_id
        when = datetime.fromtimestamp(t.timestamp / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
        meta = ", ".join(f"{k}={v}" for k, v in t.metadata.items())
        table.add_row(str(t.log_index), when, str(t.kind), t.id, f"{sign}{t.amount}", other, meta)
    console.print(table)
