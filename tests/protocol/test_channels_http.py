"""Pay per AI token over real loopback HTTP: an agent's transport opens a channel at the
facilitator (``POST /channels/open``), pays a metered provider with vouchers, follows the
charged total from PAYMENT-RESPONSE, resyncs on a corrective 402; the provider claims over
HTTP (``POST /channels/claim``) and closes; the books balance to the unit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from channel_helpers import available, held, posted, provider_app, wallet
from starlette.types import ASGIApp

from paywire.client import ChannelTransport, Payer, SyncChannelTransport
from paywire.client.channels import ChannelPayer
from paywire.client.payer import PaymentDeclined
from paywire.crypto.keys import PrivateKey
from paywire.ledger import Ledger
from paywire.mandate import AssetLimit, Mandate, MandateChain, SignedMandate
from paywire.money import USDC
from paywire.protocol import Facilitator
from paywire.protocol.channel import ChannelBook, RemoteLedgerChannelBackend
from paywire.service import facilitator_app

Serve = Callable[[ASGIApp], str]
DEPOSIT = 60_000


def cost(body: dict[str, Any]) -> int:
    """The "work": what a request for `tokens` tokens costs, at 3 atomic units a token."""
    return 3 * int(body["tokens"])


class Stack:
    """A facilitator and a metered provider, each served on loopback."""

    def __init__(self, ledger: Ledger, facilitator: Facilitator, serve: Serve, tmp: Any) -> None:
        self.ledger = ledger
        self.payee = PrivateKey.generate()
        self.facilitator_url = serve(facilitator_app(facilitator))
        backend = RemoteLedgerChannelBackend(
            self.facilitator_url, self.payee, network=ledger.network, asset=USDC
        )
        self.book = ChannelBook(backend, tmp / "vouchers.db")
        self.app = provider_app(self.book, cost)
        self.url = serve(self.app)

    @property
    def calls(self) -> list[str]:
        calls: list[str] = self.app.state.calls
        return calls

    def admin(self, path: str) -> Any:
        response = httpx.post(self.url + path, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def stack(ledger: Ledger, facilitator: Facilitator, serve: Serve, tmp_path: Any) -> Stack:
    return Stack(ledger, facilitator, serve, tmp_path)


def test_an_agent_pays_per_token_through_a_channel(stack: Stack) -> None:
    agent = PrivateKey.generate()
    wallet(stack.ledger, agent, 1_000_000)
    payer = Payer.create(agent, max_per_payment="$0.01")
    transport = ChannelTransport(payer, deposit_atomic=DEPOSIT)
    tokens = [100, 7, 1_500, 0, 42]

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=transport, timeout=10) as client:
            return [await client.post(stack.url + "/v1/chat", json={"tokens": n}) for n in tokens]

    answers = asyncio.run(run())
    assert [a.status_code for a in answers] == [200] * len(tokens)
    assert [a.json()["charged"] for a in answers] == [3 * n for n in tokens]
    charged = 3 * sum(tokens)
    (channel,) = transport.state.channels.values()
    assert channel.charged_total == charged and not channel.in_flight
    # One unpaid request (the 402 that opened the channel), then one paid request each.
    assert len(stack.calls) == len(tokens) + 1 and stack.calls[0] == ""
    assert (available(stack.ledger, agent), held(stack.ledger, agent)) == (
        1_000_000 - DEPOSIT,
        DEPOSIT,
    )
    # The provider claims over HTTP: exactly what it charged.
    (claimed,) = stack.admin("/admin/claim")
    assert claimed["ok"] and claimed["claimedTotal"] == str(charged)
    assert posted(stack.ledger, stack.payee) == charged
    state = httpx.get(f"{stack.facilitator_url}/channels/{channel.channel_hex}").json()
    assert state["claimedTotal"] == str(charged) and state["status"] == "open"
    closed = stack.admin(f"/admin/close/{channel.channel_hex}")
    assert closed["closed"]
    assert available(stack.ledger, agent) == 1_000_000 - charged
    assert held(stack.ledger, agent) == 0
    assert stack.ledger.log.verify().ok


def test_a_client_that_lost_track_is_put_right_by_the_corrective_402(stack: Stack) -> None:
    agent = PrivateKey.generate()
    wallet(stack.ledger, agent, 1_000_000)
    payer = Payer.create(agent, max_per_payment="$0.01")
    transport = SyncChannelTransport(payer, deposit_atomic=DEPOSIT)
    with httpx.Client(transport=transport, timeout=10) as client:
        for n in (10, 20, 30):
            assert client.post(stack.url + "/v1/chat", json={"tokens": n}).status_code == 200
        (channel,) = transport.state.channels.values()
        assert channel.charged_total == 180
        channel.charged_total = 0  # as after a restart of the agent
        before = len(stack.calls)
        answer = client.post(stack.url + "/v1/chat", json={"tokens": 5})
        assert answer.status_code == 200 and answer.json()["total"] == 195
        # Refused once with the channel's state, resynced, paid: two sends, one charge.
        assert len(stack.calls) == before + 2
        assert channel.charged_total == 195
        # The provider cannot push the client past what it signed: a forged state is ignored.
        assert not channel.resync(_forged(channel, 10_000))
        assert channel.charged_total == 195
    assert stack.admin("/admin/claim")[0]["claimedTotal"] == "195"
    assert posted(stack.ledger, stack.payee) == 195


def _forged(channel: ChannelPayer, charged: int) -> Any:
    from x402.schemas import PaymentRequired

    extra = dict(channel.requirements.extra)
    extra["channelState"] = {
        "channelId": channel.channel_hex,
        "balance": str(channel.deposit),
        "totalClaimed": "0",
        "chargedCumulativeAmount": str(charged),
    }
    extra["voucherState"] = {"signedMaxClaimable": str(charged), "signature": "0x" + "11" * 65}
    option = channel.requirements.model_copy(update={"extra": extra})
    return PaymentRequired(error="channel_voucher_behind", accepts=[option])


def test_a_deposit_past_the_mandate_is_refused_over_http(stack: Stack) -> None:
    import time

    principal, agent = PrivateKey.generate(), PrivateKey.generate()
    wallet(stack.ledger, agent, 1_000_000)
    now = int(time.time())
    mandate = Mandate(
        issuer=principal.address,
        agent=agent.address,
        limits=(AssetLimit(stack.ledger.network, "USDC", 50_000, 10_000, ()),),
        valid_after=now - 60,
        valid_before=now + 3600,
    )
    chain = MandateChain((SignedMandate.sign(mandate, principal),))
    payer = Payer.create(agent, max_per_payment="$0.01", mandate=chain)
    transport = SyncChannelTransport(payer, deposit_atomic=DEPOSIT)
    with (
        httpx.Client(transport=transport) as client,
        pytest.raises(PaymentDeclined, match="mandate_total_exceeded"),
    ):
        client.post(stack.url + "/v1/chat", json={"tokens": 1})
    assert held(stack.ledger, agent) == 0
    small = SyncChannelTransport(payer, deposit_atomic=40_000)
    with httpx.Client(transport=small, timeout=10) as client:
        assert client.post(stack.url + "/v1/chat", json={"tokens": 9}).status_code == 200
    assert held(stack.ledger, agent) == 40_000


def test_the_channel_endpoints_refuse_what_is_not_a_channel(stack: Stack) -> None:
    base = stack.facilitator_url
    info = httpx.get(base + "/channels").json()
    assert info["scheme"] == "batch-settlement" and info["network"] == stack.ledger.network
    assert info["assets"]["USDC"]["domain"]["name"] == "paywire channels"
    assert httpx.post(base + "/channels/open", content=b"{").status_code == 400
    refused = httpx.post(base + "/channels/open", json={"paymentPayload": {"x402Version": 2}})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_payload"
    assert httpx.get(base + "/channels/0x1234").status_code == 400
    assert httpx.get(base + "/channels/0x" + "ab" * 32).status_code == 404
    bad = httpx.post(base + "/channels/claim", json={"asset": "USDC", "claims": []})
    assert bad.status_code == 400
    broke = PrivateKey.generate()
    wallet(stack.ledger, broke, 10)
    payer = Payer.create(broke, max_per_payment="$0.01")
    transport = SyncChannelTransport(payer, deposit_atomic=DEPOSIT)
    with (
        httpx.Client(transport=transport) as client,
        pytest.raises(PaymentDeclined, match="insufficient_funds"),
    ):
        client.post(stack.url + "/v1/chat", json={"tokens": 1})
    # The connect helper reads the facilitator's network and domain.

    async def connect() -> RemoteLedgerChannelBackend:
        backend = await RemoteLedgerChannelBackend.connect(base, stack.payee)
        assert await backend.channel("0x" + "ab" * 32) is None
        await backend.aclose()
        return backend

    backend = asyncio.run(connect())
    assert backend.network == stack.ledger.network and backend.domain.name == "paywire channels"
    assert backend.requirements_extra() == {"channelOpen": base + "/channels/open"}
