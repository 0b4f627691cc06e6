"""`paywire faucet|deposit|withdraw`: move value between a chain and the ledger.

They talk to the operator's service (`paywire serve`, $PAYWIRE_OPERATOR_URL): the wallet
signs here, with its own key; the operator submits on chain and writes the ledger.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from paywire.cli import _common
from paywire.cli._common import console
from paywire.cli._keys import PASSPHRASE_FILE
from paywire.errors import InvalidInput, PaywireError

if TYPE_CHECKING:
    from paywire.crypto.eip712 import Eip712Domain

DEFAULT_OPERATOR_URL = "http://127.0.0.1:4020"
OPERATOR_URL_ENV = "PAYWIRE_OPERATOR_URL"

SIGNATURE_VALIDITY_S = 600
"""How long a signed deposit or withdrawal request stays valid."""

REQUEST_TIMEOUT_S = 60.0
"""A chain transaction on the local chain takes well under a second; 60 s means trouble."""

_OPERATOR_URL = typer.Option(
    None, "--operator-url", envvar=OPERATOR_URL_ENV, help="The operator's service URL."
)


class OperatorError(PaywireError):
    code = "operator_error"


def _url(url: str | None) -> str:
    return (url or os.environ.get(OPERATOR_URL_ENV) or DEFAULT_OPERATOR_URL).rstrip("/")


def _call(method: str, url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    import httpx

    try:
        response = httpx.request(method, url + path, json=body, timeout=REQUEST_TIMEOUT_S)
    except httpx.HTTPError as error:
        raise OperatorError(
            f"cannot reach the operator at {url} ({type(error).__name__}); "
            "is `paywire serve` running?"
        ) from None
    try:
        data = response.json()
    except ValueError:
        raise OperatorError(
            f"the operator answered HTTP {response.status_code} without JSON"
        ) from None
    if response.status_code == 202:
        raise OperatorError(f"pending on chain: {data.get('message')}; retry the same request")
    if response.status_code >= 400:
        message = data.get("message") if isinstance(data, dict) else None
        raise OperatorError(f"refused ({response.status_code}): {message or data}")
    return data


def _chain(url: str) -> dict[str, Any]:
    info = _call("GET", url, "/chain")
    if not isinstance(info, dict):
        raise OperatorError("the operator's /chain answer is malformed")
    return info


def _amount(text: str, info: dict[str, Any]) -> int:
    from paywire.money import Asset

    asset = Asset(str(info["asset"]), int(info["decimals"]))
    value = asset.parse(text)
    if value.atomic <= 0:
        raise InvalidInput("the amount must be above zero")
    return value.atomic


def _domain(info: dict[str, Any]) -> Eip712Domain:
    """The token's EIP-712 domain, from the operator's /chain answer."""
    from paywire.chain.eip3009 import token_domain

    return token_domain(
        str(info["name"]), str(info["version"]), int(info["chainId"]), str(info["token"])
    )


def _address(target: str) -> str:
    from paywire.crypto.keys import parse_address
    from paywire.crypto.keystore import KeyStore

    if target.startswith("0x"):
        return parse_address(target)
    return KeyStore(_common.home_dir() / "keys").info(target).address


def faucet_command(
    target: str = typer.Argument(..., help="An address, or a wallet name."),
    amount: str = typer.Option(..., "--amount", help="e.g. '$10' or '10'."),
    ledger: bool = typer.Option(
        False, "--ledger", help="Credit the ledger account (backed by the reserve) instead."
    ),
    operator_url: str = _OPERATOR_URL,
) -> None:
    """Mint test stablecoin on the local demo chain (refused on any other chain)."""
    url = _url(operator_url)
    info = _chain(url)
    value = _amount(amount, info)
    done = _call(
        "POST",
        url,
        "/faucet",
        {"address": _address(target), "amount": str(value), "ledger": ledger},
    )
    where = f"ledger account {done['account']}" if ledger else f"{done['to']} on {info['network']}"
    console.print(
        f"minted {amount} of virtual {info['symbol']} to {where}  [dim]tx {done['tx']}[/]"
    )


def deposit_command(
    wallet: str = typer.Option(..., "--wallet", help="The wallet that deposits."),
    amount: str = typer.Option(..., "--amount", help="e.g. '$5'."),
    operator_url: str = _OPERATOR_URL,
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    """Move stablecoin from a wallet on chain into its ledger account."""
    from paywire.chain.eip3009 import (
        Authorization,
        AuthorizationKind,
        new_nonce,
        sign_authorization,
    )
    from paywire.cli._keys import load_key

    url = _url(operator_url)
    info = _chain(url)
    value = _amount(amount, info)
    key = load_key(wallet, passphrase_file)
    authorization = Authorization(
        from_=key.address,
        to=str(info["reserve"]),
        value=value,
        valid_after=0,
        valid_before=int(time.time()) + SIGNATURE_VALIDITY_S,
        nonce=new_nonce(),
    )
    signature = sign_authorization(_domain(info), key, authorization, AuthorizationKind.RECEIVE)
    done = _call(
        "POST",
        url,
        "/deposit",
        {"authorization": authorization.to_json(), "signature": "0x" + signature.hex()},
    )
    console.print(
        f"deposited {amount} into [bold]{done['account']}[/] "
        f"(available {done['available']} atomic units)  [dim]tx {done['tx']}[/]"
    )


def withdraw_command(
    wallet: str = typer.Option(..., "--wallet", help="The wallet that withdraws."),
    amount: str = typer.Option(..., "--amount", help="e.g. '$1'."),
    to: str = typer.Option(None, "--to", help="The address paid on chain (default: the wallet)."),
    withdrawal_id: str = typer.Option(None, "--id", help="Idempotency key (default: a new id)."),
    operator_url: str = _OPERATOR_URL,
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    """Move value from a wallet's ledger account out to the chain."""
    from paywire.cli._keys import load_key
    from paywire.ledger import new_id
    from paywire.protocol.withdrawal import WithdrawalRequest

    url = _url(operator_url)
    info = _chain(url)
    value = _amount(amount, info)
    key = load_key(wallet, passphrase_file)
    request = WithdrawalRequest(
        wallet=key.address,
        to=_address(to) if to else key.address,
        value=value,
        id=withdrawal_id or new_id(),
        valid_before=int(time.time()) + SIGNATURE_VALIDITY_S,
    )
    signature = request.sign(_domain(info), key)
    done = _call(
        "POST",
        url,
        "/withdraw",
        {"request": request.to_json(), "signature": "0x" + signature.hex()},
    )
    console.print(
        f"withdrew {amount} to {done['to']} on {info['network']}  "
        f"[dim]id {request.id}, tx {done['tx']}[/]"
    )


def reserves_report(operator_url: str | None) -> dict[str, Any]:
    """The operator's reserves check (for `paywire ledger verify --reserves`)."""
    report = _call("GET", _url(operator_url), "/reserves")
    if not isinstance(report, dict):
        raise OperatorError("the operator's /reserves answer is malformed")
    return report
