"""Fixtures for the chain tests: one real in-process EVM chain with the stablecoin deployed
(per module), fresh chains for tests that move time, funded keys, and a loopback uvicorn
server for the JSON-RPC bridge. No mocks: every test runs the compiled Vyper contract on
py-evm."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.types import ASGIApp

from paywire._dev.http import ServedApps
from paywire.chain import LocalChain, Token
from paywire.chain.compile import paywire_usd
from paywire.crypto import PrivateKey
from paywire.ledger import Ledger, open_ledger

GAS_FUNDS_WEI = 10**18
"""Native coin given to a test key so it can pay for its own transactions."""


@pytest.fixture(scope="session", autouse=True)
def compiled_once() -> None:
    """Compile the contract once per session (from the disk cache when it is there)."""
    paywire_usd()


@pytest.fixture(scope="module")
def chain() -> LocalChain:
    """A chain shared by a module's tests (each test uses fresh keys, so they don't meet).
    No lazy blocks: block numbers move only with transactions and `mine`."""
    return LocalChain(block_time_s=None)


@pytest.fixture(scope="module")
def token(chain: LocalChain) -> Token:
    return chain.deploy_token(chain.operator.address)


@pytest.fixture
def fresh_chain() -> LocalChain:
    """A chain of the test's own, for tests that move its clock."""
    return LocalChain(block_time_s=None)


@pytest.fixture
def key() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture
def funded(chain: LocalChain) -> Callable[[], PrivateKey]:
    """New keys with gas money on the module's chain."""

    def make() -> PrivateKey:
        key = PrivateKey.generate()
        chain.fund(key.address, GAS_FUNDS_WEI)
        return key

    return make


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(f"sqlite:///{tmp_path / 'books.db'}") as books:
        yield books


@pytest.fixture
def serve() -> Iterator[Callable[[ASGIApp], str]]:
    """Serve ASGI apps with uvicorn on loopback, in threads; yields their base URLs."""
    served = ServedApps()
    yield served.start
    served.close()
