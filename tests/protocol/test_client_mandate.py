"""The agent client keeps to its mandate: it refuses, before signing, a payment its
mandate does not allow, says which limit and by how much, and sends the chain along."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from payment_helpers import Calls, provider_app
from starlette.types import ASGIApp

from paywire.client import MandateDeclined, PaymentDeclined, PaywireClient, load_mandate
from paywire.crypto.keys import PrivateKey
from paywire.ledger import Ledger
from paywire.mandate import AssetLimit, Mandate, MandateChain, SignedMandate, Window
from paywire.protocol import Facilitator
from paywire.protocol.headers import decode_payment
from paywire.protocol.mandate_extension import mandate_of

pytestmark = pytest.mark.anyio

PRICE = 1_000  # $0.001, the provider's price for GET /search


def mandate_for(
    principal: PrivateKey,
    agent: PrivateKey,
    network: str,
    *,
    total: int = 2_500,
    per_payment: int = 2_000,
    windows: tuple[tuple[int, int], ...] = (),
    payees: tuple[str, ...] = (),
    origins: tuple[str, ...] = (),
) -> MandateChain:
    now = int(time.time())
    mandate = Mandate(
        issuer=principal.address,
        agent=agent.address,
        limits=(
            AssetLimit(
                network, "USDC", total, per_payment, tuple(Window(w, cap) for w, cap in windows)
            ),
        ),
        valid_after=now - 60,
        valid_before=now + 3600,
        payees=payees,
        origins=origins,
        purpose="client tests",
    )
    return MandateChain((SignedMandate.sign(mandate, principal),))


@pytest.fixture
def base(
    serve: Callable[[ASGIApp], str], facilitator: Facilitator, provider: PrivateKey, calls: Calls
) -> str:
    return serve(provider_app(facilitator, provider.address, calls))


async def test_the_client_pays_within_its_mandate_and_refuses_past_the_total(
    base: str, ledger: Ledger, agent: PrivateKey, calls: Calls
) -> None:
    chain = mandate_for(PrivateKey.generate(), agent, ledger.network)
    async with PaywireClient(agent, max_per_payment="$1", mandate=chain) as client:
        assert (await client.get(f"{base}/search")).status_code == 200
        assert (await client.get(f"{base}/search")).status_code == 200
        with pytest.raises(MandateDeclined) as refused:
            await client.get(f"{base}/search")
    assert refused.value.refusal.code == "mandate_total_exceeded"
    assert refused.value.refusal.overrun == 500
    assert "500" in str(refused.value)
    assert calls.count == 2


async def test_a_window_limit_is_kept(
    base: str, ledger: Ledger, agent: PrivateKey, calls: Calls
) -> None:
    chain = mandate_for(
        PrivateKey.generate(), agent, ledger.network, total=10_000, windows=((3600, 1_500),)
    )
    async with PaywireClient(agent, max_per_payment="$1", mandate=chain) as client:
        assert (await client.get(f"{base}/search")).status_code == 200
        with pytest.raises(MandateDeclined) as refused:
            await client.get(f"{base}/search")
    assert refused.value.refusal.code == "mandate_window_exceeded"
    assert calls.count == 1


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"per_payment": PRICE - 1}, "mandate_per_payment_exceeded"),
        ({"payees": ("0x" + "22" * 20,)}, "mandate_payee_not_allowed"),
        ({"origins": ("https://elsewhere.example",)}, "mandate_origin_not_allowed"),
    ],
)
async def test_a_payment_the_mandate_forbids_is_never_signed(
    base: str,
    ledger: Ledger,
    agent: PrivateKey,
    calls: Calls,
    changes: dict[str, object],
    code: str,
) -> None:
    chain = mandate_for(PrivateKey.generate(), agent, ledger.network, **changes)  # type: ignore[arg-type]
    sent: list[httpx.Request] = []

    class Watch(httpx.AsyncBaseTransport):
        inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return await self.inner.handle_async_request(request)

    async with PaywireClient(
        agent, max_per_payment="$1", mandate=chain, transport=Watch()
    ) as client:
        with pytest.raises(MandateDeclined) as refused:
            await client.get(f"{base}/search")
    assert refused.value.refusal.code == code
    assert not any("payment-signature" in request.headers for request in sent)
    assert calls.count == 0


async def test_another_network_than_the_mandate_names_is_refused(
    base: str, agent: PrivateKey, calls: Calls
) -> None:
    chain = mandate_for(PrivateKey.generate(), agent, "paywire:someotherledger")
    async with PaywireClient(agent, max_per_payment="$1", mandate=chain) as client:
        with pytest.raises(MandateDeclined) as refused:
            await client.get(f"{base}/search")
    assert refused.value.refusal.code in (
        "mandate_asset_not_allowed",
        "mandate_network_not_allowed",
    )
    assert calls.count == 0


async def test_the_payment_carries_the_chain(base: str, ledger: Ledger, agent: PrivateKey) -> None:
    chain = mandate_for(PrivateKey.generate(), agent, ledger.network)
    headers: list[str] = []

    class Capture(httpx.AsyncBaseTransport):
        inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if "payment-signature" in request.headers:
                headers.append(request.headers["payment-signature"])
            return await self.inner.handle_async_request(request)

    async with PaywireClient(
        agent, max_per_payment="$1", mandate=chain, transport=Capture()
    ) as client:
        assert (await client.get(f"{base}/search")).status_code == 200
    carried = mandate_of(decode_payment(headers[0]))  # type: ignore[arg-type]
    assert carried == chain


def test_a_mandate_loads_from_text_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = PrivateKey.generate()
    chain = mandate_for(PrivateKey.generate(), agent, "paywire:x")
    file = tmp_path / "mandate.json"
    file.write_text(chain.to_json())
    assert load_mandate(chain.to_base64()) == chain
    assert load_mandate(chain.to_json()) == chain
    assert load_mandate(file) == chain
    assert load_mandate(str(file)) == chain
    monkeypatch.delenv("PAYWIRE_MANDATE", raising=False)
    assert load_mandate() is None
    monkeypatch.setenv("PAYWIRE_MANDATE", chain.to_base64())
    assert load_mandate() == chain
    client = PaywireClient(agent, max_per_payment="$1")
    assert client.payer.mandate == chain


def test_a_mandate_for_another_key_or_unreadable_is_refused_at_once() -> None:
    agent = PrivateKey.generate()
    chain = mandate_for(PrivateKey.generate(), PrivateKey.generate(), "paywire:x")
    with pytest.raises(PaymentDeclined, match="not for this key"):
        PaywireClient(agent, max_per_payment="$1", mandate=chain)
    for garbage in ("not a mandate", "{}", "x" * 5000, "{" + "[" * 10_000):
        with pytest.raises(PaymentDeclined.__mro__[1]):  # a PaywireError, never a crash
            PaywireClient(agent, max_per_payment="$1", mandate=garbage)
