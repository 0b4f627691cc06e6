"""Pay per request over HTTP 402 on the ledger network, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from payment_helpers import Calls, fund, provider_app, without_payment_id
from starlette.types import ASGIApp

from paywire.client import RECEIPT, PaymentDeclined, PaywireClient, SyncPaywireClient
from paywire.crypto.keys import PrivateKey
from paywire.ledger import Ledger
from paywire.ledger.names import wallet_account_id
from paywire.protocol import Facilitator, Receipt
from paywire.protocol.headers import decode_payment_required, decode_settle_response

pytestmark = pytest.mark.anyio


@pytest.fixture
def base(
    serve: Callable[[ASGIApp], str], facilitator: Facilitator, provider: PrivateKey, calls: Calls
) -> str:
    return serve(provider_app(facilitator, provider.address, calls))


async def test_unpaid_request_gets_402_with_requirements(
    base: str, ledger: Ledger, provider: PrivateKey, calls: Calls
) -> None:
    async with httpx.AsyncClient() as plain:
        response = await plain.get(f"{base}/search?q=x")
    assert response.status_code == 402
    assert response.headers["cache-control"] == "no-store"
    required = decode_payment_required(response.headers["payment-required"])
    assert required.x402_version == 2
    assert required.resource is not None and required.resource.url.endswith("/search?q=x")
    [option] = required.accepts
    assert option.scheme == "exact"
    assert option.network == f"paywire:{ledger.ledger_id}"
    assert (option.asset, option.amount, option.pay_to) == ("USDC", "1000", provider.address)
    assert option.max_timeout_seconds == 300
    assert option.extra == {"name": "paywire", "version": "1"}
    v1 = response.json()  # the body is version 1's form, for v1 clients
    assert v1["x402Version"] == 1
    assert v1["accepts"][0]["maxAmountRequired"] == "1000"
    assert v1["accepts"][0]["resource"].endswith("/search?q=x")
    assert calls.count == 0


async def test_free_routes_pass_through(base: str) -> None:
    async with httpx.AsyncClient() as plain:
        assert (await plain.get(f"{base}/free")).json() == {"free": True}


async def test_an_agent_pays_and_keeps_a_receipt(
    base: str,
    ledger: Ledger,
    agent: PrivateKey,
    provider: PrivateKey,
    operator: PrivateKey,
    calls: Calls,
) -> None:
    async with PaywireClient(
        agent, max_per_payment="$0.01", facilitators={"paywire:*": operator.address}
    ) as client:
        response = await client.get(f"{base}/search", params={"q": "llamas"})
    assert response.status_code == 200
    assert response.json()["q"] == "llamas"
    receipt: Receipt = response.extensions[RECEIPT]
    assert receipt.signer() == operator.address
    assert (receipt.payer, receipt.payee, receipt.amount) == (agent.address, provider.address, 1000)
    assert client.payer.receipts == [receipt]
    assert calls.count == 1
    assert ledger.balance(wallet_account_id(agent.address, "USDC")).available == 999_000
    assert ledger.balance(wallet_account_id(provider.address, "USDC")).posted == 1000
    paid = ledger.transfer(receipt.transaction)
    assert paid.log_index == receipt.log_index
    assert paid.metadata["resource"].endswith("/search?q=llamas")
    stored = json.loads(paid.authorization or "{}")
    assert stored["payload"]["authorization"]["from"] == agent.address  # kept verbatim
    ledger.log.checkpoint(operator)
    proof = ledger.log.inclusion_proof(receipt.transaction)
    assert proof.leaf_hash == receipt.leaf_hash and proof.verify()


def test_the_sync_client_pays_too(base: str, agent: PrivateKey, calls: Calls) -> None:
    with SyncPaywireClient(agent, max_per_payment="$0.01") as client:
        response = client.get(f"{base}/search")
    assert response.status_code == 200
    assert response.extensions[RECEIPT].amount == 1000
    assert calls.count == 1


async def test_a_request_body_is_replayed_on_the_paid_retry(base: str, agent: PrivateKey) -> None:
    body = bytes(range(256)) * 100
    async with PaywireClient(agent, max_per_payment="$0.01") as client:
        response = await client.post(f"{base}/echo", content=body)
    assert response.status_code == 200
    assert response.content == body
    assert response.extensions[RECEIPT].amount == 2000


async def test_a_price_past_the_limit_is_declined(
    base: str, ledger: Ledger, agent: PrivateKey, calls: Calls
) -> None:
    async with PaywireClient(agent, max_per_payment="$0.0005") as client:
        with pytest.raises(PaymentDeclined, match="per-payment maximum"):
            await client.get(f"{base}/search")
    assert ledger.balance(wallet_account_id(agent.address, "USDC")).available == 1_000_000
    assert calls.count == 0


async def test_a_network_not_allowed_is_declined(base: str, agent: PrivateKey) -> None:
    async with PaywireClient(agent, max_per_payment="$1", networks=["eip155:*"]) as client:
        with pytest.raises(PaymentDeclined, match="not allowed"):
            await client.get(f"{base}/search")


async def test_insufficient_funds_is_refused_and_nothing_is_served(
    base: str, ledger: Ledger, calls: Calls
) -> None:
    poor = PrivateKey.generate()
    fund(ledger, poor, 999)
    async with PaywireClient(poor, max_per_payment="$0.01") as client:
        response = await client.get(f"{base}/search")
    assert response.status_code == 402
    settled = decode_settle_response(response.headers["payment-response"])
    assert settled.success is False and settled.error_reason == "insufficient_funds"
    required = decode_payment_required(response.headers["payment-required"])
    assert required.error is not None and required.error.startswith("insufficient_funds")
    assert calls.count == 0
    stranger = PrivateKey.generate()  # no ledger account at all
    async with PaywireClient(stranger, max_per_payment="$0.01") as client:
        response = await client.get(f"{base}/search")
    assert response.status_code == 402
    assert "deposit first" in decode_payment_required(response.headers["payment-required"]).error


async def _signed_header(base: str, agent: PrivateKey) -> str:
    """A valid PAYMENT-SIGNATURE for GET /search, captured from a real client, without a
    payment id (with one, a replay is answered, not refused: test_payment_identifier)."""
    captured: list[str] = []

    async def capture(request: httpx.Request) -> None:
        if "payment-signature" in request.headers:
            captured.append(request.headers["payment-signature"])

    class Capture(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await capture(request)
            if "payment-signature" in request.headers:
                return httpx.Response(599)  # do not spend it
            return await self.inner.handle_async_request(request)

    async with PaywireClient(agent, max_per_payment="$1", transport=Capture()) as client:
        await client.get(f"{base}/search")
    return without_payment_id(captured[0])


async def test_a_replayed_authorization_is_refused(
    base: str, ledger: Ledger, agent: PrivateKey, calls: Calls
) -> None:
    header = await _signed_header(base, agent)
    async with httpx.AsyncClient() as plain:
        first = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header})
        again = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header})
    assert first.status_code == 200
    assert again.status_code == 402
    settled = decode_settle_response(again.headers["payment-response"])
    assert settled.error_reason == "invalid_exact_paywire_nonce_already_used"
    assert calls.count == 1
    assert ledger.balance(wallet_account_id(agent.address, "USDC")).available == 999_000


def test_concurrent_submissions_of_one_authorization_settle_once(
    base: str, ledger: Ledger, agent: PrivateKey, calls: Calls
) -> None:
    header = asyncio.run(_signed_header(base, agent))

    def attempt(_: int) -> int:
        return httpx.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header}).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(attempt, range(32)))
    assert codes.count(200) == 1 and codes.count(402) == 31
    assert calls.count == 1
    assert ledger.balance(wallet_account_id(agent.address, "USDC")).available == 999_000
    assert ledger.log.verify().ok


async def test_version_one_clients_are_understood(
    base: str, ledger: Ledger, agent: PrivateKey
) -> None:
    header = await _signed_header(base, agent)
    payment = json.loads(base64.b64decode(header))
    v1 = {
        "x402Version": 1,
        "scheme": "exact",
        "network": payment["accepted"]["network"],
        "payload": payment["payload"],
    }
    encoded = base64.b64encode(json.dumps(v1).encode()).decode()
    async with httpx.AsyncClient() as plain:
        response = await plain.get(f"{base}/search", headers={"X-PAYMENT": encoded})
    assert response.status_code == 200
    assert decode_settle_response(response.headers["x-payment-response"]).success


class Counting(httpx.AsyncBaseTransport):
    """Counts round trips (and which of them carried a payment)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.trips: list[bool] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.trips.append("payment-signature" in request.headers)
        return await self.inner.handle_async_request(request)


async def test_known_terms_are_paid_up_front(
    base: str, ledger: Ledger, agent: PrivateKey, calls: Calls
) -> None:
    counting = Counting()
    async with PaywireClient(agent, max_per_payment="$0.01", transport=counting) as client:
        first = await client.get(f"{base}/search", params={"q": "1"})
        second = await client.get(f"{base}/search", params={"q": "2"})
        third = await client.get(f"{base}/search", params={"q": "3"})
    assert [r.status_code for r in (first, second, third)] == [200, 200, 200]
    assert counting.trips == [False, True, True, True]  # 402 once, then one trip each
    assert len(client.payer.receipts) == 3
    assert calls.count == 3
    assert ledger.balance(wallet_account_id(agent.address, "USDC")).available == 997_000


async def test_changed_terms_fall_back_to_the_402_exchange(
    serve: Callable[[ASGIApp], str],
    facilitator: Facilitator,
    provider: PrivateKey,
    agent: PrivateKey,
    calls: Calls,
) -> None:
    cheap = serve(provider_app(facilitator, provider.address, calls, {"GET /search": "$0.001"}))
    counting = Counting()
    async with PaywireClient(agent, max_per_payment="$0.01", transport=counting) as client:
        assert (await client.get(f"{cheap}/search")).status_code == 200
        route = f"GET {cheap}/search"
        remembered = client.payer.remembered(route)
        assert remembered is not None
        # The provider raises its price: the remembered terms no longer match.
        required, requirements = remembered
        stale = requirements.model_copy(update={"amount": "500"})
        client.payer.remember(route, required, stale)
        response = await client.get(f"{cheap}/search")
    assert response.status_code == 200
    assert counting.trips == [False, True, True, True]  # stale payment refused, then 402 path
    assert response.extensions[RECEIPT].amount == 1000
    assert calls.count == 2
