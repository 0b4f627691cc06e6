"""`paywire pay URL`: one paid request, printed with its receipt."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from paywire.cli._common import console
from paywire.cli._keys import PASSPHRASE_FILE, load_key
from paywire.errors import InvalidInput, PaywireError

if TYPE_CHECKING:
    from paywire.money import Asset

MAX_SHOWN_BODY_CHARS = 2000
"""`paywire pay` prints at most this much of a response body."""

MAX_PAY_TOKENS = 16
"""`paywire pay --token` flags: a wallet pays in a handful of tokens."""

LEDGER_NETWORKS = ("paywire:*",)
"""What `paywire pay` pays on without --network: paywire ledgers (and EVM with --token)."""


def pay_command(
    url: str = typer.Argument(..., help="The URL to request (and pay for, on a 402)."),
    wallet: str = typer.Option(..., "--wallet", help="The wallet that pays."),
    max_per_payment: str = typer.Option(
        ..., "--max", help="The most this request may cost, e.g. '$0.01'."
    ),
    method: str = typer.Option("GET", "--method", "-X"),
    data: str = typer.Option(None, "--data", "-d", help="A request body."),
    facilitator: str = typer.Option(
        None, "--facilitator", help="Only accept receipts signed by this address."
    ),
    tokens: list[str] = typer.Option(
        None,
        "--token",
        help="An EVM token this wallet may pay in (x402 exact, EIP-3009), as ADDRESS or "
        "ADDRESS=ASSET (default USDC); repeat for more. Enables eip155:* networks.",
        show_default=False,
    ),
    networks: list[str] = typer.Option(
        None,
        "--network",
        help="A network this wallet may pay on, e.g. 'eip155:8453' or 'eip155:*'; repeat "
        "for more (default: paywire:*, and eip155:* with --token).",
        show_default=False,
    ),
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    """Request URL, pay its 402 within --max, print the answer and the receipt."""
    # On an EVM chain the wallet signs the EIP-3009 authorization here, from the 402's
    # terms alone (the token's EIP-712 name and version in `extra`, the chain id of the
    # `eip155:<id>` network): no node. It pays only in tokens given by --token, valued as
    # the asset named there, never as the server describes them (a server could call a
    # 2-decimal token "USDC" and be paid 10,000 times the price).
    import httpx

    from paywire.client import RECEIPT, SyncPaywireClient

    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"{url!r} is not an http(s) URL")
    known = _pay_tokens(tokens or [])
    allowed = _pay_networks(networks or [], evm=bool(known))
    key = load_key(wallet, passphrase_file)
    trusted = {"*": facilitator} if facilitator else None
    try:
        with SyncPaywireClient(
            key,
            max_per_payment=max_per_payment,
            facilitators=trusted,
            networks=allowed,
            tokens=known,
            timeout=30,
        ) as client:
            response = client.request(method.upper(), url, content=data)
    except httpx.HTTPError as error:
        raise PaywireError(f"cannot reach {url}: {type(error).__name__}: {error}") from None
    body = response.text
    console.print(f"HTTP {response.status_code} {response.reason_phrase}")
    console.print(body[:MAX_SHOWN_BODY_CHARS], markup=False, highlight=False)
    receipt = response.extensions.get(RECEIPT)
    if receipt is not None:
        from paywire.money import KNOWN_ASSETS, format_atomic

        asset = KNOWN_ASSETS.get(receipt.asset) or _token_asset(known, receipt.asset)
        shown = (
            f"{format_atomic(receipt.amount, asset.decimals)} {asset.code}"
            if asset is not None
            else f"{receipt.amount} atomic units of {receipt.asset}"
        )
        console.print(
            f"[green]paid[/] {shown} to {receipt.payee} "
            f"on {receipt.network}\n  transaction {receipt.transaction}, log index "
            f"{receipt.log_index}, receipt signed by {receipt.signer()}"
        )
    if response.status_code >= 400:
        raise PaywireError(f"the server answered {response.status_code}")


def _pay_tokens(flags: Sequence[str]) -> dict[str, Asset]:
    """``--token ADDRESS[=ASSET]`` flags as the payer's token table."""
    from paywire.crypto.keys import parse_address
    from paywire.money import KNOWN_ASSETS, USDC

    if len(flags) > MAX_PAY_TOKENS:
        raise InvalidInput(f"at most {MAX_PAY_TOKENS} --token flags")
    known: dict[str, Asset] = {}
    for flag in flags:
        address, _, code = flag.partition("=")
        asset = KNOWN_ASSETS.get(code.strip().upper()) if code else USDC
        if asset is None:
            raise InvalidInput(
                f"--token {flag[:60]!r}: the asset is one of {', '.join(sorted(KNOWN_ASSETS))}"
            )
        known[parse_address(address.strip())] = asset
    return known


def _pay_networks(flags: Sequence[str], *, evm: bool) -> tuple[str, ...]:
    for flag in flags:
        if not flag or len(flag) > 80 or any(c.isspace() for c in flag):
            raise InvalidInput(f"--network {flag[:80]!r} is not a network pattern")
    if flags:
        return tuple(flags)
    return (*LEDGER_NETWORKS, "eip155:*") if evm else LEDGER_NETWORKS


def _token_asset(known: dict[str, Asset], token: str) -> Asset | None:
    from paywire.crypto.keys import parse_address

    try:
        return known.get(parse_address(token))
    except PaywireError:
        return None
