"""Fixtures for the chain tests: one real in-process EVM chain with the stablecoin deployed
(per module), fresh chains for tests that move time, funded keys, and a loopback uvicorn
server for the JSON-RPC bridge. No mocks: every test runs the compiled Vyper contract on
py-evm."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.types import ASGIApp

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def serve() -> Iterator[Callable[[ASGIApp], str]]:
    """Serve ASGI apps with uvicorn on loopback, in threads; yields their base URLs."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: ASGIApp) -> str:
        port = _free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)
