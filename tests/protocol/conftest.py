"""Fixtures for HTTP 402 tests: a real ledger, keys, a provider app, real loopback HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from channel_helpers import Clock
from payment_helpers import Calls, fund
from starlette.types import ASGIApp

from paywire._dev.http import ServedApps
from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, Ledger, NewAccount, open_ledger
from paywire.money import USDC
from paywire.protocol.channel import LedgerChannels
from shared_fixtures import chain, facilitator, ledger, operator, provider, token  # noqa: F401 (fixtures)

if TYPE_CHECKING:
    pass


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def agent(ledger: Ledger) -> PrivateKey:
    """An agent whose wallet holds $1 on the ledger."""
    key = PrivateKey.generate()
    fund(ledger, key, 1_000_000)
    return key


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def serve() -> Iterator[Callable[[ASGIApp], str]]:
    """Serve ASGI apps with uvicorn on loopback, in threads; yields their base URLs."""
    served = ServedApps()
    yield served.start
    served.close()


@pytest.fixture
def ticking() -> Clock:
    """A ledger clock the test moves by hand (the channel tests')."""
    return Clock()


@pytest.fixture
def books(tmp_path: Path, ticking: Clock) -> Iterator[Ledger]:
    """A ledger on `ticking`'s time with a "world" account to fund from."""
    ledger = open_ledger(f"sqlite:///{tmp_path / 'books.db'}", clock=ticking)
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    yield ledger
    ledger.close()


@pytest.fixture
def channels(books: Ledger) -> LedgerChannels:
    """Ledger channels over `books`."""
    return LedgerChannels(books)
