"""`paywire serve` (the operator's facilitator) and `paywire pay URL` (one paid request)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from paywire.cli import _common
from paywire.cli._common import console
from paywire.errors import InvalidInput, PaywireError

if TYPE_CHECKING:
    from paywire.crypto.keys import PrivateKey

DEFAULT_PORT = 4020
"""The facilitator's port unless --port says otherwise (x402 has no standard one)."""

MAX_SHOWN_BODY_CHARS = 2000
"""`paywire pay` prints at most this much of a response body."""

_PASSPHRASE_FILE = typer.Option(
    None, "--passphrase-file", help="Read the wallet passphrase from this file."
)


def _key(name: str, passphrase_file: Path | None) -> PrivateKey:
    from paywire.crypto.keystore import KeyStore

    store = KeyStore(_common.home_dir() / "keys")
    store.info(name)  # a clear error before any passphrase prompt
    return store.load(name, _common.read_passphrase(confirm=False, passphrase_file=passphrase_file))


def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535),
    operator: str = typer.Option("operator", "--operator", help="The facilitator's wallet."),
    passphrase_file: Path = _PASSPHRASE_FILE,
) -> None:
    """Run the facilitator (x402 /verify, /settle, /supported) over the ledger."""
    import uvicorn

    from paywire.cli.ledger import ledger_url, open_cli_ledger
    from paywire.protocol import Facilitator
    from paywire.service import facilitator_app

    key = _key(operator, passphrase_file)
    with open_cli_ledger() as ledger:
        ledger.log.set_operator(key.address)
        facilitator = Facilitator.for_ledger(ledger, key)
        console.print(f"paywire facilitator on http://{host}:{port}")
        console.print(f"  network   {ledger.network}")
        console.print(f"  ledger    {ledger_url()}")
        console.print(f"  receipts  signed by {key.address}")
        uvicorn.run(facilitator_app(facilitator), host=host, port=port, log_level="warning")


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
    passphrase_file: Path = _PASSPHRASE_FILE,
) -> None:
    """Request URL, pay its 402 within --max, print the answer and the receipt."""
    import httpx

    from paywire.client import RECEIPT, SyncPaywireClient

    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"{url!r} is not an http(s) URL")
    key = _key(wallet, passphrase_file)
    trusted = {"*": facilitator} if facilitator else None
    try:
        with SyncPaywireClient(
            key, max_per_payment=max_per_payment, facilitators=trusted, timeout=30
        ) as client:
            response = client.request(method.upper(), url, content=data)
    except httpx.HTTPError as error:
        raise PaywireError(f"cannot reach {url}: {type(error).__name__}: {error}") from None
    body = response.text
    console.print(f"HTTP {response.status_code} {response.reason_phrase}")
    console.print(body[:MAX_SHOWN_BODY_CHARS], markup=False, highlight=False)
    receipt = response.extensions.get(RECEIPT)
    if receipt is not None:
        console.print(
            f"[green]paid[/] {receipt.amount} atomic {receipt.asset} to {receipt.payee} "
            f"on {receipt.network}\n  transaction {receipt.transaction}, log index "
            f"{receipt.log_index}, receipt signed by {receipt.signer()}"
        )
    if response.status_code >= 400:
        raise PaywireError(f"the server answered {response.status_code}")
