"""Fixtures for HTTP 402 tests: a real ledger, keys, a provider app, real loopback HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from payment_helpers import Calls, fund
from starlette.types import ASGIApp

from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, Ledger, NewAccount, open_ledger
from paywire.money import USDC
from paywire.protocol import Facilitator


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    books = open_ledger(f"sqlite:///{tmp_path / 'books.db'}")
    books.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    yield books
    books.close()


@pytest.fixture
def operator() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture
def facilitator(ledger: Ledger, operator: PrivateKey) -> Facilitator:
    return Facilitator.for_ledger(ledger, operator)


@pytest.fixture
def provider() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture
def agent(ledger: Ledger) -> PrivateKey:
    """An agent whose wallet holds $1 on the ledger."""
    key = PrivateKey.generate()
    fund(ledger, key, 1_000_000)
    return key


@pytest.fixture
def calls() -> Calls:
    return Calls()


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
