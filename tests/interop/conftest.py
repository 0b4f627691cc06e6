"""Fixtures for interoperability with the official x402 SDK: one local EVM chain per module
with the Vyper stablecoin, served over the JSON-RPC bridge on loopback; paywire's
facilitator reaches it through that endpoint, as it would reach any node. Real HTTP
everywhere (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.types import ASGIApp

from paywire.chain import LocalChain, Token, rpc_bridge
from paywire.crypto import PrivateKey
from paywire.ledger import Ledger, open_ledger

Serve = Callable[[ASGIApp], str]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Servers:
    """uvicorn servers on loopback, each in its own thread."""

    def __init__(self) -> None:
        self.running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(self, app: ASGIApp) -> str:
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
        self.running.append((server, thread))
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        for server, _ in self.running:
            server.should_exit = True
        for _, thread in self.running:
            thread.join(timeout=10)


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers = _Servers()
    yield servers.start
    servers.stop()


@pytest.fixture(scope="module")
def chain() -> LocalChain:
    return LocalChain()


@pytest.fixture(scope="module")
def token(chain: LocalChain) -> Token:
    return chain.deploy_token(chain.operator.address)


@pytest.fixture(scope="module")
def rpc_url(chain: LocalChain) -> Iterator[str]:
    """The chain over JSON-RPC, as a node would serve it."""
    servers = _Servers()
    yield servers.start(rpc_bridge(chain)) + "/rpc"
    servers.stop()


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
