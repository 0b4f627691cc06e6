"""Pay per request on an EVM chain over real loopback HTTP: paywire's middleware, client
and facilitator, the Vyper token on py-evm. Verify, serve, settle by default: content is
delivered only once the money moved, even when the handler already produced it."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from payment_helpers import without_payment_id
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from paywire.chain import LocalChain, Token
from paywire.client import RECEIPT, PaywireClient
from paywire.crypto import PrivateKey
from paywire.ledger import Ledger
from paywire.money import USDC
from paywire.protocol import Facilitator, evm_account_id
from paywire.protocol.headers import decode_payment_required, decode_settle_response
from paywire.server import PaymentMiddleware

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
PRICE = 1_000


@pytest.fixture
def facilitator(ledger: Ledger, operator: PrivateKey, token: Token) -> Facilitator:
    return Facilitator.for_networks(operator, ledger=ledger, tokens=[token])


@pytest.fixture
def payer(chain: LocalChain, token: Token) -> PrivateKey:
    """A wallet with $1 of the token and gas money (it may spend behind our back)."""
    key = PrivateKey.generate()
    token.mint(chain.operator, key.address, 1_000_000)
    chain.fund(key.address, 10**18)
    return key


class Shop:
    """A provider app; `handler` runs per paid request, `served` counts the runs."""

    def __init__(self) -> None:
        self.served = 0
        self.before: Callable[[], object] = lambda: None
        self.status = 200

    def app(self, facilitator: Facilitator, pay_to: str, **options: Any) -> ASGIApp:
        async def item(request: Request) -> Response:
            self.served += 1
            self.before()
            return JSONResponse({"item": "the paid content"}, status_code=self.status)

        async def stream(request: Request) -> Response:
            self.served += 1

            async def chunks() -> AsyncIterator[bytes]:
                for index in range(8):
                    yield bytes([index]) * 1024

            return StreamingResponse(chunks(), media_type="application/octet-stream")

        app = Starlette(routes=[Route("/item", item), Route("/stream", stream)])
        app.add_middleware(
            PaymentMiddleware,
            routes={"GET /item": "$0.001", "GET /stream": "$0.001"},
            pay_to=pay_to,
            facilitator=facilitator,
            **options,
        )
        return app


@pytest.fixture
def shop() -> Shop:
    return Shop()


def evm_client(payer: PrivateKey, token: Token, **options: Any) -> PaywireClient:
    return PaywireClient(
        payer,
        max_per_payment="$0.01",
        networks=["eip155:*"],
        tokens={token.address: USDC},
        **options,
    )


async def test_the_402_offers_the_ledger_network_and_the_token(
    serve: Serve,
    facilitator: Facilitator,
    ledger: Ledger,
    chain: LocalChain,
    token: Token,
    provider: PrivateKey,
    shop: Shop,
) -> None:
    base = serve(shop.app(facilitator, provider.address))
    async with httpx.AsyncClient() as plain:
        response = await plain.get(f"{base}/item")
    assert response.status_code == 402
    ledger_option, evm_option = decode_payment_required(
        response.headers["payment-required"]
    ).accepts
    assert (ledger_option.network, ledger_option.asset) == (ledger.network, "USDC")
    assert evm_option.network == chain.network
    assert (evm_option.asset, evm_option.amount) == (token.address, str(PRICE))
    assert evm_option.extra == {"name": "Paywire USD", "version": "2"}
    assert evm_option.pay_to == provider.address


async def test_an_agent_pays_on_chain_and_keeps_a_receipt(
    serve: Serve,
    facilitator: Facilitator,
    ledger: Ledger,
    operator: PrivateKey,
    chain: LocalChain,
    token: Token,
    payer: PrivateKey,
    provider: PrivateKey,
    shop: Shop,
) -> None:
    base = serve(shop.app(facilitator, provider.address))
    async with evm_client(payer, token, facilitators={"eip155:*": operator.address}) as client:
        response = await client.get(f"{base}/item")
    assert response.status_code == 200
    assert response.json() == {"item": "the paid content"}
    receipt = response.extensions[RECEIPT]
    assert receipt.network == chain.network and receipt.signer() == operator.address
    onchain = chain.receipt(receipt.transaction)
    assert onchain is not None and onchain.ok
    assert token.balance_of(provider.address) == PRICE
    mirror = evm_account_id(chain.network, provider.address, "USDC")
    assert ledger.balance(mirror).credits_posted == PRICE
    assert shop.served == 1


async def test_funds_spent_between_verify_and_settle_deliver_nothing(
    serve: Serve,
    facilitator: Facilitator,
    chain: LocalChain,
    token: Token,
    payer: PrivateKey,
    provider: PrivateKey,
    shop: Shop,
) -> None:
    """The payment verifies; the handler runs and produces the content; meanwhile the payer
    empties its wallet on chain; settlement fails; the content is never delivered."""
    elsewhere = PrivateKey.generate().address
    shop.before = lambda: token.transfer(payer, elsewhere, token.balance_of(payer.address))
    base = serve(shop.app(facilitator, provider.address))
    async with evm_client(payer, token) as client:
        response = await client.get(f"{base}/item")
    assert shop.served == 1  # the handler ran: verify passed
    assert response.status_code == 402
    assert b"paid content" not in response.content
    settled = decode_settle_response(response.headers["payment-response"])
    assert not settled.success
    assert settled.error_reason == "invalid_exact_evm_insufficient_balance"
    assert token.balance_of(provider.address) == 0
    assert RECEIPT not in response.extensions


async def test_a_handler_that_fails_is_not_charged(
    serve: Serve,
    facilitator: Facilitator,
    token: Token,
    payer: PrivateKey,
    provider: PrivateKey,
    shop: Shop,
) -> None:
    shop.status = 503
    base = serve(shop.app(facilitator, provider.address))
    async with evm_client(payer, token) as client:
        response = await client.get(f"{base}/item")
    assert response.status_code == 503 and shop.served == 1
    assert "payment-response" not in response.headers
    assert token.balance_of(payer.address) == 1_000_000


async def test_settle_first_moves_the_money_before_the_handler_runs(
    serve: Serve,
    facilitator: Facilitator,
    token: Token,
    payer: PrivateKey,
    provider: PrivateKey,
    shop: Shop,
) -> None:
    seen: list[int] = []
    shop.before = lambda: seen.append(token.balance_of(provider.address))
    base = serve(shop.app(facilitator, provider.address, settle_first=True))
    async with evm_client(payer, token) as client:
        response = await client.get(f"{base}/item")
    assert response.status_code == 200
    assert seen == [PRICE]  # paid when the handler ran
    assert response.extensions[RECEIPT].amount == PRICE


async def test_a_response_past_the_hold_limit_is_settled_then_streamed(
    serve: Serve,
    facilitator: Facilitator,
    token: Token,
    payer: PrivateKey,
    provider: PrivateKey,
    shop: Shop,
) -> None:
    base = serve(shop.app(facilitator, provider.address, max_held_bytes=2048))
    async with evm_client(payer, token) as client:
        response = await client.get(f"{base}/stream")
    assert response.status_code == 200
    assert response.content == b"".join(bytes([index]) * 1024 for index in range(8))
    assert response.extensions[RECEIPT].amount == PRICE
    assert token.balance_of(provider.address) == PRICE


async def _signed_header(base: str, payer: PrivateKey, token: Token) -> str:
    """A valid PAYMENT-SIGNATURE for GET /item, from a real client, not spent, without a
    payment id (with one, a replay is answered, not refused: test_payment_identifier)."""
    captured: list[str] = []

    class Capture(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if "payment-signature" in request.headers:
                captured.append(request.headers["payment-signature"])
                return httpx.Response(599)
            return await self.inner.handle_async_request(request)

    async with evm_client(payer, token, transport=Capture()) as client:
        await client.get(f"{base}/item")
    return without_payment_id(captured[0])


def test_concurrent_submissions_of_one_authorization_settle_once(
    serve: Serve,
    facilitator: Facilitator,
    token: Token,
    payer: PrivateKey,
    provider: PrivateKey,
    shop: Shop,
) -> None:
    base = serve(shop.app(facilitator, provider.address))
    header = asyncio.run(_signed_header(base, payer, token))

    def attempt(_: int) -> tuple[int, bytes]:
        response = httpx.get(f"{base}/item", headers={"PAYMENT-SIGNATURE": header}, timeout=30)
        return response.status_code, response.content

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(attempt, range(16)))
    delivered = [body for code, body in answers if code == 200]
    assert len(delivered) == 1 and b"paid content" in delivered[0]
    assert all(code == 402 for code, _ in answers if code != 200)
    assert sum(b"paid content" in body for _, body in answers) == 1
    assert token.balance_of(provider.address) == PRICE


async def test_version_one_clients_pay_with_a_network_name(
    serve: Serve,
    facilitator: Facilitator,
    token: Token,
    payer: PrivateKey,
    provider: PrivateKey,
    shop: Shop,
) -> None:
    base = serve(shop.app(facilitator, provider.address))
    payment = json.loads(base64.b64decode(await _signed_header(base, payer, token)))
    v1 = {"x402Version": 1, "scheme": "exact", "network": "paywire-local"}
    v1["payload"] = payment["payload"]
    encoded = base64.b64encode(json.dumps(v1).encode()).decode()
    async with httpx.AsyncClient() as plain:
        response = await plain.get(f"{base}/item", headers={"X-PAYMENT": encoded})
        unknown = dict(v1, network="atlantis")
        refused = await plain.get(
            f"{base}/item",
            headers={"X-PAYMENT": base64.b64encode(json.dumps(unknown).encode()).decode()},
        )
    assert response.status_code == 200
    settled = decode_settle_response(response.headers["x-payment-response"])
    assert settled.success and settled.network == token.chain.network
    assert token.balance_of(provider.address) == PRICE
    assert refused.status_code == 402
    assert "atlantis" in (decode_payment_required(refused.headers["payment-required"]).error or "")
