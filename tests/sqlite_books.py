"""Fixtures shared by the payment tests (imported by tests/protocol and tests/gateway
conftests): a SQLite ledger with a "world" account to fund from, the operator's key, its
facilitator on that ledger, and a provider's key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, Ledger, NewAccount, open_ledger
from paywire.money import USDC
from paywire.protocol import Facilitator


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
