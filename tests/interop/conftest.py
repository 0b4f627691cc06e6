"""Fixtures for interoperability with the official x402 SDK: one local EVM chain per module
with the Vyper stablecoin, served over the JSON-RPC bridge on loopback; paywire's
facilitator reaches it through that endpoint, as it would reach any node. Real HTTP
everywhere (uvicorn on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.types import ASGIApp

from paywire._dev.http import ServedApps
from paywire.chain import LocalChain, Token, rpc_bridge
from paywire.crypto import PrivateKey
from paywire.ledger import Ledger, open_ledger
from shared_fixtures import chain, token  # noqa: F401 (fixtures)

Serve = Callable[[ASGIApp], str]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers = ServedApps()
    yield servers.start
    servers.close()


@pytest.fixture(scope="module")
def rpc_url(chain: LocalChain) -> Iterator[str]:
    """The chain over JSON-RPC, as a node would serve it."""
    servers = ServedApps()
    yield servers.start(rpc_bridge(chain)) + "/rpc"
    servers.close()


@pytest.fixture(scope="module")
def settler(chain: LocalChain) -> PrivateKey:
    """The facilitator's settling key: it pays the gas of settlements."""
    key = PrivateKey.generate()
    chain.fund(key.address, 10**18)
    return key


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(f"sqlite:///{tmp_path / 'books.db'}") as books:
        yield books


@pytest.fixture
def operator() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture
def payer(chain: LocalChain, token: Token) -> PrivateKey:
    """A wallet holding $1 of the token on chain."""
    key = PrivateKey.generate()
    token.mint(chain.operator, key.address, 1_000_000)
    return key
