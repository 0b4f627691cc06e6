"""The facilitator over HTTP (`/verify`, `/settle`, `/supported`), and providers using it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
import pytest
from payment_helpers import Calls, provider_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from paywire.client import RECEIPT, PaywireClient
from paywire.crypto.keys import PrivateKey
from paywire.ledger import Ledger
from paywire.ledger.names import wallet_account_id
from paywire.protocol import Facilitator, RemoteFacilitator
from paywire.protocol.headers import decode_payment, decode_settle_response
from paywire.service import facilitator_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def facilitator_url(serve: Callable[[ASGIApp], str], facilitator: Facilitator) -> str:
    return serve(facilitator_app(facilitator))


@pytest.fixture
def remote_base(
    serve: Callable[[ASGIApp], str], facilitator_url: str, provider: PrivateKey, calls: Calls
) -> str:
    return serve(provider_app(RemoteFacilitator(facilitator_url), provider.address, calls))


async def test_supported(facilitator_url: str, ledger: Ledger, operator: PrivateKey) -> None:
    async with httpx.AsyncClient() as http:
        supported = (await http.get(f"{facilitator_url}/supported")).json()
    assert supported["kinds"] == [
        {
            "x402Version": 2,
            "scheme": "exact",
            "network": f"paywire:{ledger.ledger_id}",
            "extra": {"name": "paywire", "version": "1"},
        }
    ]
    assert supported["extensions"] == ["paywire-receipt", "payment-identifier", "paywire-mandate"]
    assert supported["signers"] == {"paywire:*": [operator.address]}


async def test_a_provider_uses_a_remote_facilitator(
    remote_base: str, agent: PrivateKey, operator: PrivateKey, calls: Calls
) -> None:
    async with PaywireClient(
        agent, max_per_payment="$0.01", facilitators={"paywire:*": operator.address}
    ) as client:
        response = await client.get(f"{remote_base}/search")
    assert response.status_code == 200
    assert response.extensions[RECEIPT].signer() == operator.address
    assert calls.count == 1


async def _payment(
    remote_base: str, agent: PrivateKey, *, with_id: bool = False
) -> tuple[dict[str, object], dict[str, object]]:
    """A signed payment (and its requirements) as JSON, not spent; without its payment id
    unless `with_id`."""
    captured: list[str] = []

    class Capture(httpx.AsyncBaseTransport):
        inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if "payment-signature" in request.headers:
                captured.append(request.headers["payment-signature"])
                return httpx.Response(599)
            return await self.inner.handle_async_request(request)

    async with PaywireClient(agent, max_per_payment="$1", transport=Capture()) as client:
        await client.get(f"{remote_base}/search")
    payment = decode_payment(captured[0])
    payload = payment.model_dump(by_alias=True, exclude_none=True)
    if not with_id:
        payload.pop("extensions", None)
    return payload, payload["accepted"]


async def test_verify_and_settle_over_http(
    remote_base: str, facilitator_url: str, agent: PrivateKey
) -> None:
    payload, requirements = await _payment(remote_base, agent)
    body = {"x402Version": 2, "paymentPayload": payload, "paymentRequirements": requirements}
    async with httpx.AsyncClient() as http:
        verified = (await http.post(f"{facilitator_url}/verify", json=body)).json()
        assert verified == {"isValid": True, "payer": agent.address}
        settled = (await http.post(f"{facilitator_url}/settle", json=body)).json()
        assert settled["success"] is True and settled["payer"] == agent.address
        assert "paywire-receipt" in settled["extensions"]
        again = (await http.post(f"{facilitator_url}/settle", json=body)).json()
        assert again["success"] is False
        assert again["errorReason"] == "invalid_exact_paywire_nonce_already_used"
        reverify = (await http.post(f"{facilitator_url}/verify", json=body)).json()
        assert reverify["isValid"] is False
        assert reverify["invalidReason"] == "invalid_exact_paywire_nonce_already_used"


async def test_a_payment_id_settles_once_and_answers_again(
    remote_base: str, facilitator_url: str, agent: PrivateKey, ledger: Ledger
) -> None:
    payload, requirements = await _payment(remote_base, agent, with_id=True)
    body = {"x402Version": 2, "paymentPayload": payload, "paymentRequirements": requirements}
    async with httpx.AsyncClient() as http:
        settled = (await http.post(f"{facilitator_url}/settle", json=body)).json()
        again = (await http.post(f"{facilitator_url}/settle", json=body)).json()
        reverify = (await http.post(f"{facilitator_url}/verify", json=body)).json()
        other, _ = await _payment(remote_base, agent, with_id=True)
        other["extensions"] = payload["extensions"]  # another payment, the same id
        conflict = {**body, "paymentPayload": other}
        refused = (await http.post(f"{facilitator_url}/settle", json=conflict)).json()
        unverified = (await http.post(f"{facilitator_url}/verify", json=conflict)).json()
    assert settled["success"] is True
    assert again == settled  # the first answer, receipt and all
    assert reverify["isValid"] is True
    assert refused["success"] is False
    assert refused["errorReason"] == "payment_identifier_conflict"
    assert unverified["invalidReason"] == "payment_identifier_conflict"
    assert ledger.balance(wallet_account_id(agent.address, "USDC")).available == 999_000


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"x402Version": 2}',
        b"[" * 10_000,
        b"\xff\xfe\xfd",
        b'{"x402Version": 2, "paymentPayload": 1, "paymentRequirements": 2}',
    ],
)
async def test_malformed_facilitator_requests_get_400(facilitator_url: str, content: bytes) -> None:
    async with httpx.AsyncClient() as http:
        for path in ("/verify", "/settle"):
            response = await http.post(
                f"{facilitator_url}{path}",
                content=content,
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 400, (path, content[:20])
            data = response.json()
            assert (data.get("invalidReason") or data.get("errorReason")) == "invalid_payload"


async def test_oversized_bodies_are_refused(facilitator_url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{facilitator_url}/settle", content=b" " * 200_000)
    assert response.status_code == 400


def _broken_facilitator(answer: Callable[[Request], Response]) -> ASGIApp:
    async def supported(request: Request) -> Response:
        return Response(
            json.dumps(
                {
                    "kinds": [
                        {
                            "x402Version": 2,
                            "scheme": "exact",
                            "network": "paywire:broken",
                            "extra": {"name": "paywire", "version": "1"},
                        }
                    ]
                }
            ),
            media_type="application/json",
        )

    async def any_post(request: Request) -> Response:
        return answer(request)

    return Starlette(
        routes=[
            Route("/supported", supported),
            Route("/settle", any_post, methods=["POST"]),
            Route("/verify", any_post, methods=["POST"]),
        ]
    )


@pytest.mark.parametrize(
    "answer",
    [
        lambda request: PlainTextResponse("not json", status_code=500),
        lambda request: Response('{"success": "maybe"}', media_type="application/json"),
        lambda request: Response("[1, 2]", media_type="application/json"),
        lambda request: PlainTextResponse("x" * 2_000_000),
    ],
)
async def test_a_broken_facilitator_is_a_failed_payment_not_a_500(
    serve: Callable[[ASGIApp], str],
    agent: PrivateKey,
    provider: PrivateKey,
    calls: Calls,
    answer: Callable[[Request], Response],
) -> None:
    broken = serve(_broken_facilitator(answer))
    base = serve(provider_app(RemoteFacilitator(broken), provider.address, calls))
    async with PaywireClient(agent, max_per_payment="$1") as client:
        response = await client.get(f"{base}/search")
    assert response.status_code == 402
    settled = decode_settle_response(response.headers["payment-response"])
    assert settled.success is False and settled.error_reason == "unexpected_settle_error"
    assert calls.count == 0


async def test_an_unreachable_facilitator_is_a_failed_payment(
    serve: Callable[[ASGIApp], str], agent: PrivateKey, provider: PrivateKey, calls: Calls
) -> None:
    async def supported(request: Request) -> Response:
        return Response(
            json.dumps(
                {"kinds": [{"x402Version": 2, "scheme": "exact", "network": "paywire:gone"}]}
            ),
            media_type="application/json",
        )

    half = serve(Starlette(routes=[Route("/supported", supported)]))
    base = serve(provider_app(RemoteFacilitator(half), provider.address, calls))
    async with PaywireClient(agent, max_per_payment="$1") as client:
        response = await client.get(f"{base}/search")
    assert response.status_code == 402
    assert calls.count == 0
    dead = serve(provider_app(RemoteFacilitator("http://127.0.0.1:9"), provider.address, calls))
    async with httpx.AsyncClient() as plain:
        unpaid = await plain.get(f"{dead}/search")
        paid = await plain.get(
            f"{dead}/search", headers={"PAYMENT-SIGNATURE": base64.b64encode(b"{}").decode()}
        )
    assert unpaid.status_code == paid.status_code == 503
    assert unpaid.json()["error"] == "facilitator_unavailable"
    assert calls.count == 0
