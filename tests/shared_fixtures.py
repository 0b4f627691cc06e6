"""Fixtures shared by the payment tests (imported into the conftests of tests/protocol,
tests/gateway and tests/interop): a SQLite ledger with a "world" account to fund from, the
operator's key, its facilitator on that ledger, a provider's key, and one in-process EVM
chain per test module with the stablecoin deployed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, Ledger, NewAccount, open_ledger
from paywire.money import USDC
from paywire.protocol import Facilitator

if TYPE_CHECKING:
    from paywire.chain import LocalChain, Token


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


@pytest.fixture(scope="module")
def chain() -> LocalChain:
    """One in-process EVM chain per test module (deploying is the slow part)."""
    from paywire.chain import LocalChain

    return LocalChain()


@pytest.fixture(scope="module")
def token(chain: LocalChain) -> Token:
    return chain.deploy_token(chain.operator.address)
