"""`paywire mandate delegate`: an agent signs a narrower mandate for a sub-agent."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from paywire.cli import _mandate_input as read
from paywire.cli import _mandate_options as opt
from paywire.cli import _mandate_view as view
from paywire.cli._keys import PASSPHRASE_FILE, load_key
from paywire.errors import InvalidInput, PaywireError

if TYPE_CHECKING:
    from paywire.mandate import AssetLimit, Mandate

_FLAG_OF = {
    "total": "--total",
    "perPayment": "--per-payment",
    "windows": "--window",
    "validBefore": "--valid-for/--valid-until",
    "validAfter": "--valid-until",
    "payees": "--payee",
    "origins": "--origin",
    "networks": "--network",
}


def delegate_command(
    parent_chain: str = typer.Argument(..., help="The parent chain: file, base64, or id."),
    agent_wallet: str = typer.Option(
        ..., "--agent-wallet", help="The parent's agent's wallet (signs the child)."
    ),
    to: str = typer.Option(..., "--to", help="The sub-agent's address (or a wallet name)."),
    network: str = opt.NETWORK,
    asset: str = opt.ASSET,
    total: str = opt.TOTAL,
    per_payment: str = opt.PER_PAYMENT,
    windows: list[str] = opt.WINDOW,
    payees: list[str] = opt.PAYEE,
    origins: list[str] = opt.ORIGIN,
    valid_for: str = opt.VALID_FOR,
    valid_until: str = opt.VALID_UNTIL,
    purpose: str = opt.PURPOSE,
    task_id: str = opt.TASK_ID,
    out: Path = opt.OUT,
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    """Sign a narrower mandate for a sub-agent; every field defaults to the parent's.

    With several parent limits, --asset/--network choose the one kept and narrowed."""
    from paywire.mandate import MandateWiderThanParent, SignedMandate, check_delegation
    from paywire.service.mandates import check_links

    opt.one_of(valid_for, valid_until, "--valid-for / --valid-until")
    chain, _ = read.load_chain(parent_chain)
    check_links(chain)
    parent = chain.leaf
    now = opt.now()
    if now >= parent.valid_before:
        raise InvalidInput(f"the parent mandate expired at {read.show_time(parent.valid_before)}")
    signer = read.wallet_address(agent_wallet)
    if signer != parent.agent:
        raise InvalidInput(
            f"wallet {agent_wallet} is {signer}, but the parent's agent is {parent.agent}: "
            "only the parent's agent may delegate it (--agent-wallet)"
        )
    limits = _child_limits(parent, network, asset, total, per_payment, windows or [])
    start = max(now, parent.valid_after)
    before = (
        opt.valid_before(valid_for, valid_until, start, "")
        if valid_for or valid_until
        else parent.valid_before
    )
    child = opt.build_mandate(
        lambda: parent.delegate(
            read.resolve_address(to, "--to"),
            limits=limits,
            payees=[read.resolve_address(p, "--payee") for p in payees] if payees else None,
            origins=origins or None,
            valid_after=start,
            valid_before=before,
            purpose=purpose,
            task_id=task_id,
        )
    )
    try:
        check_delegation(parent, child)
    except MandateWiderThanParent as error:
        field = error.field.split(".")[-1].split("[")[0]
        flag = _FLAG_OF.get(field, "--asset/--network")
        reason = str(error).split(": ", 1)[-1]
        mine, theirs = error.child_value, error.parent_value
        if field in ("total", "perPayment") and isinstance(mine, int) and isinstance(theirs, int):
            asset = child.limits[int(error.field.split("[")[1].split("]")[0])].asset
            reason += f" ({view.amount(asset, mine)} > {view.amount(asset, theirs)})"
        raise InvalidInput(f"the child would be wider than its parent ({flag}): {reason}") from None
    key = load_key(agent_wallet, passphrase_file)
    extended = chain.extend(SignedMandate.sign(child, key))
    view.print_issued("delegated", extended, read.write_chain(extended, out), now)


def _child_limits(
    parent: Mandate,
    network: str | None,
    asset: str | None,
    total: str | None,
    per_payment: str | None,
    windows: list[str],
) -> tuple[AssetLimit, ...]:
    """The parent's limits, or the one --asset/--network pick, narrowed by the flags."""
    from dataclasses import replace

    chosen = list(parent.limits)
    value_asset = None
    if asset is not None:
        code, value_asset = read.asset_of(asset, "--asset")
        chosen = [limit for limit in chosen if limit.asset == code]
    if network is not None:
        from paywire.mandate._fields import pattern_covers

        chosen = [limit for limit in chosen if pattern_covers(limit.network, network.strip())]
    if not chosen:
        have = ", ".join(limit.describe() for limit in parent.limits)
        raise InvalidInput(
            f"the parent has no limit for --asset/--network as given (it has {have})"
        )
    narrowing = total is not None or per_payment is not None or bool(windows)
    if len(chosen) > 1 and (narrowing or network is not None):
        raise InvalidInput(
            f"the parent has {len(chosen)} limits that match; choose one with --asset and "
            "--network to narrow it"
        )
    if not narrowing and network is None:
        return tuple(chosen)
    base = chosen[0]
    if value_asset is None:
        _, value_asset = read.asset_of(base.asset, "--asset")
    amount_of = {
        "--total": total,
        "--per-payment": per_payment,
    }
    values = {
        flag: read.parse_money(text, base.asset, value_asset, flag)
        for flag, text in amount_of.items()
        if text is not None
    }
    try:
        return (
            replace(
                base,
                network=network.strip() if network is not None else base.network,
                total_atomic=values.get("--total", base.total_atomic),
                per_payment_atomic=values.get("--per-payment", base.per_payment_atomic),
                windows=tuple(
                    read.parse_window(text, base.asset, value_asset, "--window") for text in windows
                )
                if windows
                else base.windows,
            ),
        )
    except PaywireError as error:
        raise InvalidInput(f"--network/--window: {error}") from None
