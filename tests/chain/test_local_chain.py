"""The local chain itself: its clock, its controls, its thread safety, and the package's
import hygiene."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

import paywire.chain
from paywire.chain import (
    LOCAL_CHAIN_ID,
    LocalChain,
    Reserve,
    Token,
    TransactionReverted,
    dev_key,
)
from paywire.crypto import PrivateKey
from paywire.ledger import Ledger

THREADS = 8


def test_identity_and_dev_keys(chain: LocalChain) -> None:
    assert chain.chain_id == LOCAL_CHAIN_ID and chain.network == f"eip155:{LOCAL_CHAIN_ID}"
    assert chain.is_demo
    assert chain.operator == dev_key(0)
    assert dev_key(0).address == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    assert chain.native_balance(dev_key(9).address) > 0
    with pytest.raises(Exception, match="numbered"):
        dev_key(10)


def test_a_custom_operator_is_funded() -> None:
    operator = PrivateKey.generate()
    chain = LocalChain(operator=operator, block_time_s=None)
    assert chain.native_balance(operator.address) == 10**23
    token = chain.deploy_token(operator.address)
    assert token.owner() == operator.address


def test_transactions_are_stamped_with_the_wall_clock() -> None:
    chain = LocalChain(block_time_s=None)
    start = chain.timestamp()
    time.sleep(1.2)
    assert chain.timestamp() == start  # no lazy blocks: reads see the last block
    receipt = chain.transact(chain.operator, dev_key(1).address, b"", value=1, gas=21_000)
    assert chain.timestamp() >= start + 1  # but a transaction carries the real time
    assert chain.block_number() == receipt.block_number


def test_lazy_blocks_keep_reads_current() -> None:
    chain = LocalChain(block_time_s=0.2)
    first = chain.block_number()
    time.sleep(1.1)
    assert chain.block_number() == first + 1  # one empty block, mined on the read
    assert abs(chain.timestamp() - time.time()) <= 1.5


def test_snapshot_and_revert(fresh_chain: LocalChain) -> None:
    token = fresh_chain.deploy_token(fresh_chain.operator.address)
    snapshot = fresh_chain.snapshot()
    holder = PrivateKey.generate().address
    token.mint(fresh_chain.operator, holder, 5)
    fresh_chain.revert(snapshot)
    assert token.balance_of(holder) == 0
    token.mint(fresh_chain.operator, holder, 6)  # nonces still line up after the revert
    assert token.balance_of(holder) == 6


def test_concurrent_senders_with_one_key(chain: LocalChain, token: Token) -> None:
    """Threads sharing the operator's key each get their own nonce: all land."""
    holders = [PrivateKey.generate().address for _ in range(THREADS)]
    errors: list[BaseException] = []

    def mint(holder: str) -> None:
        try:
            token.mint(chain.operator, holder, 1)
        except BaseException as error:  # collected for the assert below
            errors.append(error)

    threads = [threading.Thread(target=mint, args=(h,)) for h in holders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [token.balance_of(h) for h in holders] == [1] * THREADS


def test_concurrent_settlements_of_one_authorization_pay_once(
    chain: LocalChain, token: Token, funded: Callable[[], PrivateKey]
) -> None:
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    token.mint(chain.operator, payer.address, 100)
    authorization = token.authorization(payer.address, payee.address, 60)
    signature = token.sign_transfer(payer, authorization)
    facilitators = [funded() for _ in range(THREADS)]
    outcomes: list[str] = []
    barrier = threading.Barrier(THREADS)

    def settle(key: PrivateKey) -> None:
        barrier.wait()
        try:
            token.transfer_with_authorization(authorization, signature, key=key)
            outcomes.append("paid")
        except TransactionReverted as error:
            assert "authorization is used" in error.reason
            outcomes.append("refused")

    threads = [threading.Thread(target=settle, args=(k,)) for k in facilitators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["paid"] + ["refused"] * (THREADS - 1)
    assert token.balance_of(payee.address) == 60


def test_concurrent_retries_of_one_withdrawal_pay_once(
    chain: LocalChain, token: Token, ledger: Ledger
) -> None:
    key = PrivateKey.generate()
    chain.fund(key.address, 10**20)
    reserve = Reserve(ledger, token, key)
    wallet = PrivateKey.generate()
    token.mint(chain.operator, wallet.address, 1_000)
    authorization, signature = reserve.deposit_authorization(wallet, 1_000)
    reserve.deposit(authorization, signature)
    payee = PrivateKey.generate().address
    results: list[str] = []
    barrier = threading.Barrier(4)

    def withdraw() -> None:
        barrier.wait()
        results.append(reserve.withdraw("same", wallet.address, 700, to=payee).tx_hash)

    threads = [threading.Thread(target=withdraw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert token.balance_of(payee) == 700
    assert ledger.balance(reserve.wallet_account(wallet.address)).posted == 300


def test_public_names_resolve() -> None:
    for name in paywire.chain.__all__:
        assert getattr(paywire.chain, name) is not None
    with pytest.raises(AttributeError):
        _ = paywire.chain.no_such_thing  # type: ignore[attr-defined]


def test_signing_helpers_do_not_import_web3() -> None:
    code = (
        "import sys, paywire.chain, paywire.chain.eip3009;"
        "assert 'web3' not in sys.modules and 'eth_tester' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
