"""The gateway paid per token through the real channels, end to end over loopback HTTP:
the facilitator serves ``/channels`` on a real ledger, the gateway charges through a
`ChannelBook` (its claims over HTTP), the agent's `PaidLLM` opens a channel by itself
(`SyncChannelTransport`) and signs a voucher per request; the real local model answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_helpers import MODEL, OUTPUT_ATOMIC

from paywire._dev.http import ServedApps
from paywire.client import PaidLLM
from paywire.crypto.keys import PrivateKey
from paywire.ledger import Ledger, TransferKind
from paywire.ledger.names import wallet_account_id
from paywire.meter import Charge, PriceBook
from paywire.money import USDC
from paywire.protocol import Facilitator
from paywire.protocol.channel import ChannelBook, RemoteLedgerChannelBackend
from paywire.server.gateway import BATCH_SETTLEMENT, LocalModelUpstream, gateway_app
from paywire.service import facilitator_app

ASK = [{"role": "user", "content": "Name a fruit."}]
DEPOSIT = 50_000


class Stack:
    """The facilitator and the gateway, each on loopback; `stop` stops the gateway (its
    book claims what it charged)."""

    def __init__(self, ledger: Ledger, facilitator: Facilitator, gateway_key: PrivateKey) -> None:
        self.servers = ServedApps()
        self.facilitator = facilitator
        self.facilitator_url = self.servers.start(facilitator_app(facilitator))
        self.gateway_servers = ServedApps()
        self.ledger = ledger
        self.key = gateway_key

    def start(self, upstream: LocalModelUpstream, book_path: Path, prices: PriceBook) -> str:
        backend = RemoteLedgerChannelBackend(
            self.facilitator_url, self.key, network=self.ledger.network, asset=USDC
        )
        self.book = ChannelBook(backend, book_path)
        app = gateway_app(upstream, prices, self.key.address, self.facilitator, self.book)
        return self.gateway_servers.start(app)

    def stop(self) -> None:
        self.gateway_servers.close()

    def close(self) -> None:
        self.gateway_servers.close()
        self.servers.close()


@pytest.fixture
def stack(ledger: Ledger, facilitator: Facilitator, provider: PrivateKey) -> Iterator[Stack]:
    stack = Stack(ledger, facilitator, provider)
    yield stack
    stack.close()


def test_an_agent_pays_per_token_through_a_channel_it_opened(
    stack: Stack,
    local_upstream: LocalModelUpstream,
    price_book: PriceBook,
    tmp_path: Path,
    ledger: Ledger,
    agent: PrivateKey,
    provider: PrivateKey,
) -> None:
    base = stack.start(local_upstream, tmp_path / "vouchers.db", price_book)
    with PaidLLM(agent, base, max_per_payment="$0.01", channel_deposit_atomic=DEPOSIT) as llm:
        first = llm.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8)
        stream = llm.chat.completions.create(model=MODEL, messages=ASK, max_tokens=6, stream=True)
        chunks = list(stream)
        last = llm.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4)
        assert llm.channels is not None
        [channel] = llm.channels.state.channels.values()
    assert chunks and stream.charge is not None
    records = [first["paywire"], stream.charge, last["paywire"]]
    for record in records:
        assert record["scheme"] == BATCH_SETTLEMENT
        usage = record["usage"]
        expected = usage["prompt_tokens"] + usage["completion_tokens"] * OUTPUT_ATOMIC
        assert int(record["charged"]) == expected <= int(record["authorized"])
        assert Charge.from_metadata(record["meter"]).amount.atomic == expected
    total = sum(int(record["charged"]) for record in records)
    assert channel.charged_total == total and not channel.in_flight  # the stream's too
    state = stack.book.state(channel.channel_hex)
    assert state is not None and state["chargedTotal"] == str(total)
    account = wallet_account_id(agent.address, "USDC")
    assert ledger.balance(account).debits_pending == DEPOSIT  # the channel's hold
    stack.stop()  # the book claims what it charged, with the meter's summary
    payee = wallet_account_id(provider.address, "USDC")
    assert ledger.balance(payee).credits_posted == total
    [claim] = [t for t in ledger.history(payee) if t.kind == TransferKind.POST]
    assert claim.amount.atomic == total
    tokens = [
        sum(r["usage"][kind] for r in records) for kind in ("prompt_tokens", "completion_tokens")
    ]
    assert claim.metadata["models"] == {MODEL: [3, tokens[0], 0, tokens[1], str(total)]}
