"""x402's payment-identifier: a retry of one payment is answered once, never charged twice;
the same id with another payment is a 409. Real ledger, real loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from payment_helpers import Calls, fund
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from paywire.chain import LocalChain, Token
from paywire.client import RECEIPT, PaywireClient
from paywire.crypto.keys import PrivateKey
from paywire.ledger import Ledger
from paywire.ledger.names import wallet_account_id
from paywire.money import USDC
from paywire.protocol import Facilitator, PaymentProblem
from paywire.protocol.headers import decode_payment, decode_payment_required, encode
from paywire.protocol.idempotency import (
    KeyLocks,
    MemoryIdempotencyStore,
    PaidResult,
    SqliteIdempotencyStore,
    payment_id,
    with_payment_id,
)
from paywire.server import PaymentMiddleware

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
BIG_BODY_BYTES = 4096


def shop(facilitator: Facilitator, pay_to: str, calls: Calls, **options: Any) -> ASGIApp:
    async def search(request: Request) -> Response:
        calls.count += 1
        return JSONResponse({"results": ["a", "b"], "served": calls.count})

    async def big(request: Request) -> Response:
        calls.count += 1
        return Response(b"x" * BIG_BODY_BYTES, media_type="application/octet-stream")

    app = Starlette(routes=[Route("/search", search), Route("/big", big)])
    app.add_middleware(
        PaymentMiddleware,
        routes={"GET /search": "$0.001", "GET /big": "$0.001"},
        pay_to=pay_to,
        facilitator=facilitator,
        **options,
    )
    return app


class Capture(httpx.AsyncBaseTransport):
    """Keeps the first paid request's header and does not send it (nothing is spent)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.headers: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if "payment-signature" in request.headers:
            self.headers.append(request.headers["payment-signature"])
            return httpx.Response(599)
        return await self.inner.handle_async_request(request)


async def signed(url: str, agent: PrivateKey, **options: Any) -> str:
    capture = Capture()
    async with PaywireClient(agent, max_per_payment="$1", transport=capture, **options) as client:
        await client.get(url)
    return capture.headers[0]


def available(ledger: Ledger, key: PrivateKey) -> int:
    return ledger.balance(wallet_account_id(key.address, "USDC")).available


@pytest.fixture
def base(serve: Serve, facilitator: Facilitator, provider: PrivateKey, calls: Calls) -> str:
    return serve(shop(facilitator, provider.address, calls))


async def test_the_402_declares_the_extension_and_the_client_uses_it(base: str) -> None:
    async with httpx.AsyncClient() as plain:
        response = await plain.get(f"{base}/search")
    required = decode_payment_required(response.headers["payment-required"])
    assert required.extensions is not None
    assert required.extensions["payment-identifier"]["info"] == {"required": False}


async def test_a_retry_gets_the_first_answer_and_pays_nothing_more(
    base: str, ledger: Ledger, agent: PrivateKey, calls: Calls
) -> None:
    header = await signed(f"{base}/search", agent)
    assert payment_id(decode_payment(header)) is not None  # type: ignore[arg-type]
    async with httpx.AsyncClient() as plain:
        first = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header})
        again = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header})
    assert first.status_code == again.status_code == 200
    assert first.content == again.content == b'{"results":["a","b"],"served":1}'
    assert first.headers["payment-response"] == again.headers["payment-response"]
    assert calls.count == 1
    assert available(ledger, agent) == 999_000


async def test_the_same_id_with_another_payment_is_a_conflict(
    base: str, ledger: Ledger, agent: PrivateKey, calls: Calls
) -> None:
    header = await signed(f"{base}/search", agent)
    other = decode_payment(await signed(f"{base}/search", agent))
    reused = payment_id(decode_payment(header))  # type: ignore[arg-type]
    conflicting = encode(with_payment_id(other, reused))  # type: ignore[arg-type]
    async with httpx.AsyncClient() as plain:
        first = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header})
        refused = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": conflicting})
    assert first.status_code == 200
    assert refused.status_code == 409
    assert refused.json()["error"] == "payment_identifier_conflict"
    assert calls.count == 1
    assert available(ledger, agent) == 999_000


async def test_another_payer_may_use_the_same_id(
    base: str, ledger: Ledger, agent: PrivateKey, calls: Calls
) -> None:
    stranger = PrivateKey.generate()
    fund(ledger, stranger, 10_000)
    header = await signed(f"{base}/search", agent)
    reused = payment_id(decode_payment(header))  # type: ignore[arg-type]
    theirs = decode_payment(await signed(f"{base}/search", stranger))
    async with httpx.AsyncClient() as plain:
        mine = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header})
        header = encode(with_payment_id(theirs, reused))  # type: ignore[arg-type]
        other = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header})
    assert mine.status_code == other.status_code == 200
    assert calls.count == 2
    assert available(ledger, stranger) == 9_000


def test_concurrent_copies_of_one_payment_are_served_once_and_answered_alike(
    base: str, ledger: Ledger, agent: PrivateKey, calls: Calls
) -> None:
    header = asyncio.run(signed(f"{base}/search", agent))

    def attempt(_: int) -> tuple[int, bytes]:
        response = httpx.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header})
        return response.status_code, response.content

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(attempt, range(32)))
    assert set(answers) == {(200, b'{"results":["a","b"],"served":1}')}
    assert calls.count == 1
    assert available(ledger, agent) == 999_000
    assert ledger.log.verify().ok


class LoseFirstAnswer(httpx.AsyncBaseTransport):
    """Delivers the first paid request to the server, then fails as if the connection
    dropped before the answer came back."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.lost = 0
        self.paid_sends = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if "payment-signature" not in request.headers:
            return response
        self.paid_sends += 1
        if self.lost == 0:
            self.lost += 1
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("connection reset by peer")
        return response


async def test_a_client_whose_answer_was_lost_retries_without_paying_twice(
    base: str, ledger: Ledger, agent: PrivateKey, calls: Calls
) -> None:
    transport = LoseFirstAnswer()
    async with PaywireClient(agent, max_per_payment="$1", transport=transport) as client:
        response = await client.get(f"{base}/search")
    assert response.status_code == 200
    assert response.extensions[RECEIPT].amount == 1_000
    assert transport.paid_sends == 2
    assert calls.count == 1
    assert available(ledger, agent) == 999_000


async def test_without_an_id_a_lost_answer_is_an_error_not_a_second_payment(
    serve: Serve, facilitator: Facilitator, provider: PrivateKey, ledger: Ledger, calls: Calls
) -> None:
    agent = PrivateKey.generate()
    fund(ledger, agent, 10_000)

    class NoExtension(httpx.AsyncBaseTransport):
        """A server that does not declare the extension (its 402 rewritten)."""

        def __init__(self) -> None:
            self.inner = LoseFirstAnswer()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            if response.status_code != 402:
                return response
            await response.aread()
            required = decode_payment_required(response.headers["payment-required"])
            stripped = encode(required.model_copy(update={"extensions": None}))
            headers = {**response.headers, "payment-required": stripped}
            return httpx.Response(402, headers=headers, content=response.content)

    base = serve(shop(facilitator, provider.address, calls))
    async with PaywireClient(agent, max_per_payment="$1", transport=NoExtension()) as client:
        with pytest.raises(httpx.ReadError):
            await client.get(f"{base}/search")
    assert available(ledger, agent) == 9_000  # paid once, for the answer that was lost


@pytest.mark.parametrize(
    "bad_id", ["short", "x" * 129, "has space in it 123", "ünïcödé-ünïcödé-1234", 12345678901234567]
)
async def test_a_malformed_id_is_a_400_and_charges_nothing(
    base: str, ledger: Ledger, agent: PrivateKey, calls: Calls, bad_id: object
) -> None:
    payment = json.loads(base64.b64decode(await signed(f"{base}/search", agent)))
    payment["extensions"]["payment-identifier"]["info"]["id"] = bad_id
    header = base64.b64encode(json.dumps(payment).encode()).decode()
    async with httpx.AsyncClient() as plain:
        response = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_payload"
    assert calls.count == 0
    assert available(ledger, agent) == 1_000_000


async def test_a_server_may_require_an_id(
    serve: Serve, facilitator: Facilitator, provider: PrivateKey, ledger: Ledger, calls: Calls
) -> None:
    agent = PrivateKey.generate()
    fund(ledger, agent, 10_000)
    base = serve(shop(facilitator, provider.address, calls, require_payment_id=True))
    payment = json.loads(base64.b64decode(await signed(f"{base}/search", agent)))
    del payment["extensions"]
    header = base64.b64encode(json.dumps(payment).encode()).decode()
    async with httpx.AsyncClient() as plain:
        declared = await plain.get(f"{base}/search")
        refused = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header})
    required = decode_payment_required(declared.headers["payment-required"])
    assert (required.extensions or {})["payment-identifier"]["info"]["required"] is True
    assert refused.status_code == 400
    assert calls.count == 0
    async with PaywireClient(agent, max_per_payment="$1") as client:
        assert (await client.get(f"{base}/search")).status_code == 200
    assert available(ledger, agent) == 9_000


async def test_a_refused_payment_leaves_its_id_free(
    base: str, ledger: Ledger, provider: PrivateKey, calls: Calls
) -> None:
    poor = PrivateKey.generate()
    fund(ledger, poor, 500)  # less than the price
    header = await signed(f"{base}/search", poor)
    async with httpx.AsyncClient() as plain:
        refused = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header})
        fund(ledger, poor, 5_000)
        paid = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header})
    assert refused.status_code == 402
    assert paid.status_code == 200
    assert calls.count == 1


async def test_an_answer_too_large_to_keep_is_served_again_but_not_charged_again(
    serve: Serve, facilitator: Facilitator, provider: PrivateKey, ledger: Ledger, calls: Calls
) -> None:
    agent = PrivateKey.generate()
    fund(ledger, agent, 10_000)
    base = serve(shop(facilitator, provider.address, calls, max_kept_bytes=BIG_BODY_BYTES - 1))
    header = await signed(f"{base}/big", agent)
    async with httpx.AsyncClient() as plain:
        first = await plain.get(f"{base}/big", headers={"PAYMENT-SIGNATURE": header})
        again = await plain.get(f"{base}/big", headers={"PAYMENT-SIGNATURE": header})
    assert first.status_code == again.status_code == 200
    assert first.content == again.content == b"x" * BIG_BODY_BYTES
    assert first.headers["payment-response"] == again.headers["payment-response"]
    assert calls.count == 2
    assert available(ledger, agent) == 9_000


async def test_answers_kept_in_sqlite_survive_a_restart(
    serve: Serve,
    facilitator: Facilitator,
    provider: PrivateKey,
    ledger: Ledger,
    calls: Calls,
    tmp_path: Path,
) -> None:
    agent = PrivateKey.generate()
    fund(ledger, agent, 10_000)
    path = tmp_path / "answers.db"
    before = SqliteIdempotencyStore(path)
    base = serve(shop(facilitator, provider.address, calls, idempotency=before))
    header = await signed(f"{base}/search", agent)
    async with httpx.AsyncClient() as plain:
        first = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header})
    before.close()
    after = SqliteIdempotencyStore(path)
    restarted = serve(shop(facilitator, provider.address, calls, idempotency=after))
    async with httpx.AsyncClient() as plain:
        again = await plain.get(f"{restarted}/search", headers={"PAYMENT-SIGNATURE": header})
    after.close()
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert calls.count == 1
    assert available(ledger, agent) == 9_000


async def test_on_chain_a_retry_is_answered_once_and_settled_once(
    serve: Serve,
    ledger: Ledger,
    operator: PrivateKey,
    chain: LocalChain,
    token: Token,
    provider: PrivateKey,
    calls: Calls,
) -> None:
    facilitator = Facilitator.for_networks(operator, ledger=ledger, tokens=[token])
    payer = PrivateKey.generate()
    token.mint(chain.operator, payer.address, 1_000_000)
    base = serve(shop(facilitator, provider.address, calls))
    networks = {"networks": ["eip155:*"], "tokens": {token.address: USDC}}
    header = await signed(f"{base}/search", payer, **networks)
    before = token.balance_of(provider.address)
    async with httpx.AsyncClient(timeout=30) as plain:
        first = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header})
        again = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": header})
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert calls.count == 1
    assert token.balance_of(provider.address) - before == 1_000


# ----- the parts -------------------------------------------------------------------------


async def test_the_memory_store_keeps_the_first_result_expires_and_is_bounded() -> None:
    now = [1000.0]
    store = MemoryIdempotencyStore(ttl_s=60, max_results=2, clock=lambda: now[0])

    def result(tag: str) -> PaidResult:
        return PaidResult(tag, 200, (), tag.encode(), "", now[0])

    await store.put("a", result("first"))
    await store.put("a", result("second"))
    assert (await store.get("a")) == result("first")
    await store.put("b", result("b"))
    await store.put("c", result("c"))
    assert await store.get("a") is None  # the oldest went
    assert len(store) == 2
    now[0] += 61
    assert await store.get("b") is None


async def test_key_locks_serialize_one_key_and_clean_up() -> None:
    locks = KeyLocks()
    order: list[str] = []

    async def worker(name: str) -> None:
        async with locks.hold("k"):
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")

    await asyncio.gather(worker("a"), worker("b"))
    assert order in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])
    assert len(locks) == 0


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.text(max_size=200), st.integers(), st.none(), st.lists(st.text())))
def test_any_id_is_accepted_or_refused_cleanly(value: object) -> None:
    from paywire.protocol.idempotency import is_valid_payment_id

    payment = decode_payment(
        base64.b64encode(
            json.dumps(
                {
                    "x402Version": 2,
                    "accepted": {
                        "scheme": "exact",
                        "network": "paywire:x",
                        "asset": "USDC",
                        "amount": "1",
                        "payTo": "0x" + "11" * 20,
                        "maxTimeoutSeconds": 60,
                    },
                    "payload": {},
                    "extensions": {"payment-identifier": {"info": {"id": value}}},
                }
            ).encode()
        ).decode()
    )
    try:
        found = payment_id(payment)  # type: ignore[arg-type]
    except PaymentProblem as problem:
        assert problem.status == 400
        assert not (isinstance(value, str) and is_valid_payment_id(value))
    else:
        assert found == value
        assert value is None or (isinstance(value, str) and is_valid_payment_id(value))
