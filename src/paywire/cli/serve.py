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
    from paywire.ledger import Ledger
    from paywire.service import ChainDesk

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
    operator: str = typer.Option("operator", "--operator", help="The operator's wallet."),
    chain: str = typer.Option(
        "local",
        "--chain",
        help="'local': an in-process EVM chain with a test stablecoin (demo mode, served "
        "at /rpc); 'none': the ledger network only.",
    ),
    passphrase_file: Path = _PASSPHRASE_FILE,
) -> None:
    """Run the operator's service: the facilitator (x402 /verify, /settle, /supported)
    over the ledger, and deposits, withdrawals and the faucet on the local chain."""
    import threading

    import uvicorn

    from paywire.cli.ledger import ledger_url, open_cli_ledger
    from paywire.protocol import Facilitator
    from paywire.service import operator_app

    if chain not in ("local", "none"):
        raise InvalidInput("--chain is 'local' or 'none' (JSON-RPC chains come with config)")
    key = _key(operator, passphrase_file)
    with open_cli_ledger() as ledger:
        ledger.log.set_operator(key.address)
        desk = _local_desk(ledger, key) if chain == "local" else None
        facilitator = Facilitator.for_networks(
            key, ledger=ledger, tokens=[desk.token] if desk is not None else []
        )
        stop = threading.Event()
        if desk is not None:
            threading.Thread(target=desk.reserve.watch, args=(stop,), daemon=True).start()
        url = f"http://{host}:{port}"
        console.print(f"paywire operator on {url}")
        console.print(f"  ledger network  {ledger.network} ({ledger_url()})")
        console.print(f"  receipts        signed by {key.address}")
        if desk is not None:
            info = desk.info()
            console.print(
                f"  chain           {info['network']} in process (demo: virtual funds), "
                f"JSON-RPC at {url}/rpc"
            )
            console.print(
                f"  token           {info['symbol']} at {info['token']} "
                "(x402 exact on this chain too)"
            )
            console.print(f"  reserve         {info['reserve']}")
        try:
            uvicorn.run(
                operator_app(facilitator, ledger, desk), host=host, port=port, log_level="warning"
            )
        finally:
            stop.set()


def _local_desk(ledger: Ledger, key: PrivateKey) -> ChainDesk:
    from paywire.chain import LocalChain, Reserve
    from paywire.service import ChainDesk

    local = LocalChain(operator=key)
    token = local.deploy_token(key.address)
    return ChainDesk(local, token, Reserve(ledger, token, key))


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
        from paywire.money import KNOWN_ASSETS, format_atomic

        asset = KNOWN_ASSETS.get(receipt.asset)
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
