"""paywire and the official x402 SDK pay each other, on the local EVM chain served over
JSON-RPC on loopback, through their public extension points (no patching):

1. the SDK's httpx client (`x402HttpxClient`, its `ExactEvmScheme` client with an
   eth_account signer) pays a paywire provider (`PaymentMiddleware` with paywire's
   `Facilitator` and `EvmExactScheme`);
2. paywire's client pays a provider that runs the SDK's FastAPI middleware, with paywire's
   facilitator over HTTP (`facilitator_app`) behind the SDK's `HTTPFacilitatorClient`.

Either way the payment settles: the token moves on chain, the ledger records it, and the
receipt that comes back is paywire's, signed by its facilitator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

import pytest
from eth_account import Account
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from x402 import x402Client, x402ResourceServer
from x402.http import FacilitatorConfig, HTTPFacilitatorClient
from x402.http.clients import x402HttpxClient
from x402.http.middleware.fastapi import payment_middleware
from x402.http.types import PaymentOption, RouteConfig
from x402.http.utils import decode_payment_response_header
from x402.mechanisms.evm.exact.client import ExactEvmScheme as ExactEvmClient
from x402.mechanisms.evm.exact.server import ExactEvmScheme as ExactEvmServer
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.schemas import AssetAmount

from paywire.chain import LocalChain, Token
from paywire.client import RECEIPT, PaywireClient
from paywire.crypto import PrivateKey
from paywire.ledger import Ledger
from paywire.money import USDC
from paywire.protocol import (
    EvmExactScheme,
    Facilitator,
    LedgerExactScheme,
    Receipt,
    check_receipt,
    evm_account_id,
)
from paywire.server import PaymentMiddleware
from paywire.service.facilitator_app import facilitator_app

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
PRICE = 1_000  # $0.001


@pytest.fixture
def facilitator(
    ledger: Ledger,
    operator: PrivateKey,
    rpc_url: str,
    chain: LocalChain,
    token: Token,
    settler: PrivateKey,
) -> Facilitator:
    """paywire's facilitator: its ledger network, and the token on the chain reached over
    JSON-RPC (configured as for any node: URL, chain id, token address, settling key)."""
    evm = EvmExactScheme.connect(
        ledger, rpc_url, chain_id=chain.chain_id, tokens=[token.address], signer=settler
    )
    return Facilitator(operator, [LedgerExactScheme(ledger), evm])


def _paid_to_the_ledger(ledger: Ledger, chain: LocalChain, payee: str, tx_hash: str) -> None:
    """The ledger recorded the payment: its mirror accounts, the transaction, the payload."""
    account = evm_account_id(chain.network, payee, "USDC")
    assert ledger.balance(account).credits_posted == PRICE
    [record] = ledger.history(account)
    assert record.metadata["tx"] == tx_hash
    stored = json.loads(record.authorization or "{}")
    assert stored["accepted"]["network"] == chain.network
    assert stored["payload"]["authorization"]["to"] == payee


async def test_the_official_client_pays_a_paywire_provider(
    serve: Serve,
    facilitator: Facilitator,
    ledger: Ledger,
    operator: PrivateKey,
    chain: LocalChain,
    token: Token,
    payer: PrivateKey,
) -> None:
    provider = PrivateKey.generate()

    async def report(request: Request) -> Response:
        return JSONResponse({"report": "paid for"})

    app = Starlette(routes=[Route("/report", report)])
    app.add_middleware(
        PaymentMiddleware,
        routes={"GET /report": "$0.001"},
        pay_to=provider.address,
        facilitator=facilitator,
    )
    base = serve(app)

    # The SDK's client, as its documentation wires it, with one extension point used:
    # spend controls allow our token (only its known default assets are allowed out of the
    # box) up to 0.01 of it.
    sdk = x402Client()
    sdk.register("eip155:*", ExactEvmClient(EthAccountSigner(Account.from_key(payer.to_hex()))))
    sdk.set_spend_controls(
        {
            "allowed_assets": [
                {
                    "network": chain.network,
                    "asset": token.address,
                    "max_amount_per_payment": "10000",
                }
            ]
        }
    )
    async with x402HttpxClient(sdk) as client:
        response = await client.get(f"{base}/report")

    assert response.status_code == 200, response.headers.get("payment-required")
    assert response.json() == {"report": "paid for"}
    settled = decode_payment_response_header(response.headers["payment-response"])
    assert settled.success and settled.network == chain.network and settled.amount == "1000"
    onchain = chain.receipt(settled.transaction)
    assert onchain is not None and onchain.ok
    assert token.balance_of(provider.address) == PRICE
    assert token.balance_of(payer.address) == 1_000_000 - PRICE
    _paid_to_the_ledger(ledger, chain, provider.address, settled.transaction)
    receipt = Receipt.from_json((settled.extensions or {})["paywire-receipt"])
    assert check_receipt(receipt, operator.address) == operator.address
    assert receipt.transaction == settled.transaction


def _usd_in(token: Token) -> Callable[[str | int | float, str], AssetAmount | None]:
    """A money parser for the SDK's EVM server: dollars in `token` on its chain (the SDK
    knows no default stablecoin for a chain it has never heard of)."""

    def parse(amount: str | int | float, network: str) -> AssetAmount | None:
        if network != token.chain.network:
            return None
        atomic = Decimal(str(amount)) * 10**token.decimals
        return AssetAmount(amount=str(int(atomic)), asset=token.address, extra=token.extra)

    return parse


async def test_the_paywire_client_pays_an_official_provider_backed_by_paywire(
    serve: Serve,
    facilitator: Facilitator,
    ledger: Ledger,
    operator: PrivateKey,
    chain: LocalChain,
    token: Token,
    payer: PrivateKey,
) -> None:
    provider = PrivateKey.generate()
    facilitator_url = serve(facilitator_app(facilitator))

    # The SDK's resource server, talking to paywire's facilitator over HTTP.
    server = x402ResourceServer(HTTPFacilitatorClient(FacilitatorConfig(url=facilitator_url)))
    scheme = ExactEvmServer().register_money_parser(_usd_in(token))  # type: ignore[no-untyped-call]
    server.register(chain.network, scheme)  # type: ignore[arg-type]
    routes = {
        "GET /forecast": RouteConfig(
            accepts=PaymentOption(
                scheme="exact", pay_to=provider.address, price="$0.001", network=chain.network
            ),
            description="tomorrow's weather",
        )
    }
    app = FastAPI()
    handled: list[str] = []

    @app.get("/forecast")
    async def forecast() -> dict[str, str]:
        handled.append("forecast")
        return {"forecast": "sunny"}

    x402 = payment_middleware(routes, server)

    @app.middleware("http")
    async def pay(request: Request, call_next: Callable[..., object]) -> Response:
        return await x402(request, call_next)  # type: ignore[arg-type]

    base = serve(app)
    async with PaywireClient(
        payer,
        max_per_payment="$0.01",
        networks=["eip155:*"],
        tokens={token.address: USDC},
        facilitators={"eip155:*": operator.address},
    ) as client:
        response = await client.get(f"{base}/forecast")

    assert response.status_code == 200
    assert response.json() == {"forecast": "sunny"} and handled == ["forecast"]
    receipt = response.extensions[RECEIPT]  # paywire's receipt, through the SDK server
    assert receipt.signer() == operator.address and receipt.network == chain.network
    onchain = chain.receipt(receipt.transaction)
    assert onchain is not None and onchain.ok
    assert token.balance_of(provider.address) == PRICE
    _paid_to_the_ledger(ledger, chain, provider.address, receipt.transaction)
