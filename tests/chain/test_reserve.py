"""Deposits, the deposit watcher, withdrawals and the reserves check, on the real in-process
EVM and a real SQLite ledger."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import pytest

from paywire.chain import (
    DepositRejected,
    FileCursor,
    LocalChain,
    Reserve,
    Token,
    TransactionPending,
    TransactionReverted,
    WithdrawalFailed,
    check_reserves,
    deposit_transfer_id,
)
from paywire.chain.reserve import MemoryCursor, withdrawal_nonce
from paywire.crypto import PrivateKey
from paywire.ledger import (
    AccountKind,
    AccountNotFound,
    ExceedsCredits,
    HoldState,
    IdempotencyConflict,
    Ledger,
    TransferCode,
    transfer,
)
from paywire.ledger.names import reserve_account_id, wallet_account_id
from paywire.money import MAX_ATOMIC, USDC


@pytest.fixture
def reserve(chain: LocalChain, token: Token, ledger: Ledger) -> Reserve:
    """A reserve with its own key (funded for gas) on the module's token."""
    key = PrivateKey.generate()
    chain.fund(key.address, 10**20)
    return Reserve(ledger, token, key)


def _wallet(chain: LocalChain, token: Token, amount: int) -> PrivateKey:
    wallet = PrivateKey.generate()
    token.mint(chain.operator, wallet.address, amount)
    return wallet


def _balance(ledger: Ledger, address: str) -> int:
    return ledger.balance(wallet_account_id(address, "USDC")).posted


# ----- accounts ----------------------------------------------------------------------------------


def test_reserve_accounts_follow_the_naming_conventions(
    chain: LocalChain, token: Token, reserve: Reserve, ledger: Ledger
) -> None:
    assert reserve.account_id == reserve_account_id(chain.network, token.address)
    assert reserve.account_id == f"reserve:eip155:{chain.chain_id}:{token.address}"
    account = ledger.account(reserve.account_id)
    assert (account.kind, account.asset, account.owner) == (
        AccountKind.EXTERNAL,
        USDC,
        reserve.address,
    )
    wallet = PrivateKey.generate().address
    assert reserve.wallet_account(wallet.lower()) == f"{wallet}:USDC"
    assert ledger.account(f"{wallet}:USDC").kind is AccountKind.AGENT
    # A second Reserve on the same books opens nothing new and conflicts with nothing.
    Reserve(ledger, token, reserve.key)


# ----- deposits by ReceiveWithAuthorization -----------------------------------------------------


def test_deposit_credits_once(
    chain: LocalChain, token: Token, reserve: Reserve, ledger: Ledger
) -> None:
    wallet = _wallet(chain, token, 5_000_000)
    authorization, signature = reserve.deposit_authorization(wallet, 2_000_000)
    deposit = reserve.deposit(authorization, signature)
    assert not deposit.transfer.replayed
    assert deposit.transfer.code == TransferCode.DEPOSIT
    assert deposit.transfer.id == deposit_transfer_id(
        chain.network, deposit.tx_hash, deposit.log_index
    )
    assert _balance(ledger, wallet.address) == 2_000_000
    assert token.balance_of(reserve.address) == 2_000_000
    assert token.balance_of(wallet.address) == 3_000_000
    # Retried (a lost answer): found by its nonce on chain, credited once.
    again = reserve.deposit(authorization, signature)
    assert again.transfer.replayed and again.tx_hash == deposit.tx_hash
    assert _balance(ledger, wallet.address) == 2_000_000
    # The watcher sees the same Transfer log: still once.
    scan = reserve.scan_deposits()
    assert [d.transfer.replayed for d in scan.deposits] == [True]
    assert _balance(ledger, wallet.address) == 2_000_000
    assert check_reserves(ledger, [reserve]).ok


def test_deposit_refusals(
    chain: LocalChain, token: Token, reserve: Reserve, ledger: Ledger
) -> None:
    wallet = _wallet(chain, token, 100)
    elsewhere = token.authorization(wallet.address, PrivateKey.generate().address, 10)
    with pytest.raises(DepositRejected, match="payable to the reserve"):
        reserve.deposit(elsewhere, token.sign_receive(wallet, elsewhere))
    too_big = token.authorization(wallet.address, reserve.address, MAX_ATOMIC + 1)
    with pytest.raises(DepositRejected, match="u128"):
        reserve.deposit(too_big, token.sign_receive(wallet, too_big))
    zero = token.authorization(wallet.address, reserve.address, 0)
    with pytest.raises(DepositRejected):
        reserve.deposit(zero, token.sign_receive(wallet, zero))
    broke, signature = reserve.deposit_authorization(wallet, 101)
    with pytest.raises(TransactionReverted, match="exceeds balance"):
        reserve.deposit(broke, signature)
    # A transfer-kind signature is not a deposit signature.
    wrong, _ = reserve.deposit_authorization(wallet, 1)
    with pytest.raises(TransactionReverted, match="invalid signature"):
        reserve.deposit(wrong, token.sign_transfer(wallet, wrong))
    # A canceled nonce: refused, and nothing credited.
    canceled, signature = reserve.deposit_authorization(wallet, 1)
    token.cancel_authorization(
        wallet.address, canceled.nonce, token.sign_cancel(wallet, canceled.nonce)
    )
    with pytest.raises(DepositRejected, match="canceled"):
        reserve.deposit(canceled, signature)
    with pytest.raises(Exception, match="does not exist"):
        _balance(ledger, wallet.address)


def test_deposit_waits_for_confirmations(chain: LocalChain, token: Token, ledger: Ledger) -> None:
    key = PrivateKey.generate()
    chain.fund(key.address, 10**20)
    deep = Reserve(ledger, token, key, confirmations=3)
    wallet = _wallet(chain, token, 10)
    authorization, signature = deep.deposit_authorization(wallet, 10)
    chain.receipt_timeout_s = 0.3
    try:
        with pytest.raises(TransactionPending) as pending:
            deep.deposit(authorization, signature)
    finally:
        chain.receipt_timeout_s = 120.0
    assert pending.value.code == "settlement_pending"
    with pytest.raises(Exception, match="does not exist"):
        _balance(ledger, wallet.address)
    chain.mine(2)
    assert deep.deposit(authorization, signature).value == 10  # the retry finds it
    assert _balance(ledger, wallet.address) == 10


# ----- the watcher ------------------------------------------------------------------------------


def test_watcher_credits_plain_transfers_once(
    chain: LocalChain, token: Token, ledger: Ledger, tmp_path: Path
) -> None:
    key = PrivateKey.generate()
    chain.fund(key.address, 10**20)
    cursor = FileCursor(tmp_path / "cursor.json")
    start = chain.block_number()
    watcher = Reserve(ledger, token, key, confirmations=2, cursor=cursor, start_block=start)
    alice, bob = _wallet(chain, token, 1_000), _wallet(chain, token, 1_000)
    chain.fund(alice.address, 10**18)
    chain.fund(bob.address, 10**18)
    first = token.transfer(alice, key.address, 300)
    token.transfer(bob, key.address, 200)
    # Bob's transfer is in the latest block: not 2 blocks deep yet.
    scan = watcher.scan_deposits()
    assert [d.from_ for d in scan.deposits] == [alice.address]
    assert scan.deposits[0].tx_hash == first.tx_hash
    token.mint(chain.operator, key.address, 5_000)  # the operator's own funds: not a deposit
    token.transfer(alice, bob.address, 1)  # not to the reserve
    scan = watcher.scan_deposits()
    assert [(d.from_, d.value) for d in scan.deposits] == [(bob.address, 200)]
    assert [s.reason for s in scan.skipped] == [
        "a mint to the reserve (operator funds), not a deposit"
    ]
    assert watcher.scan_deposits().deposits == ()
    assert (_balance(ledger, alice.address), _balance(ledger, bob.address)) == (300, 200)
    # The cursor survives a restart; a lost cursor rescans, and credits nothing twice.
    assert cursor.load(watcher._cursor_key) == scan.next_block
    restarted = Reserve(ledger, token, key, cursor=MemoryCursor(), start_block=start)
    rescan = restarted.scan_deposits()
    assert len(rescan.deposits) == 2 and all(d.transfer.replayed for d in rescan.deposits)
    assert (_balance(ledger, alice.address), _balance(ledger, bob.address)) == (300, 200)
    # Reserves: 500 owed, 5500 held.
    report = check_reserves(ledger, [watcher])
    (line,) = report.assets
    assert (line.liabilities, line.on_chain, line.surplus, report.ok) == (500, 5_500, 5_000, True)


def test_watcher_skips_what_the_ledger_cannot_hold(
    chain: LocalChain, token: Token, ledger: Ledger
) -> None:
    key = PrivateKey.generate()
    chain.fund(key.address, 10**20)
    watcher = Reserve(ledger, token, key, start_block=chain.block_number())
    whale = PrivateKey.generate()
    chain.fund(whale.address, 10**18)
    token.mint(chain.operator, whale.address, MAX_ATOMIC + 1)
    token.transfer(whale, key.address, MAX_ATOMIC + 1)  # past u128
    token.transfer(whale, key.address, 0)  # nothing
    token.transfer(key, key.address, 1)  # to itself
    scan = watcher.scan_deposits()
    assert scan.deposits == ()
    assert [s.log.value for s in scan.skipped] == [MAX_ATOMIC + 1, 0, 1]
    assert watcher.scan_deposits().skipped == ()  # reported once, never retried forever


def test_file_cursor_tolerates_damage(tmp_path: Path) -> None:
    path = tmp_path / "cursor.json"
    cursor = FileCursor(path)
    assert cursor.load("k") is None
    cursor.save("k", 7)
    cursor.save("j", 9)
    assert (FileCursor(path).load("k"), cursor.load("j")) == (7, 9)
    for damage in (b"not json", b"[1]", b'{"k": "7"}', b'{"k": true}'):
        path.write_bytes(damage)
        assert cursor.load("k") is None  # start over: rescanning is safe, skipping is not


# ----- withdrawals --------------------------------------------------------------------------------


def _funded_account(chain: LocalChain, token: Token, reserve: Reserve, amount: int) -> PrivateKey:
    wallet = _wallet(chain, token, amount)
    authorization, signature = reserve.deposit_authorization(wallet, amount)
    reserve.deposit(authorization, signature)
    return wallet


def test_withdraw_pays_once(
    chain: LocalChain, token: Token, reserve: Reserve, ledger: Ledger
) -> None:
    wallet = _funded_account(chain, token, reserve, 1_000_000)
    payee = PrivateKey.generate().address
    done = reserve.withdraw("w-1", wallet.address, 400_000, to=payee)
    assert token.balance_of(payee) == 400_000
    assert _balance(ledger, wallet.address) == 600_000
    assert ledger.hold_status("withdrawal:w-1").state is HoldState.POSTED
    assert chain.receipt(done.tx_hash) is not None
    nonce = withdrawal_nonce(chain.network, reserve.address, "w-1")
    assert token.authorization_state(reserve.address, nonce)
    # Retried: the first result, no second payment.
    again = reserve.withdraw("w-1", wallet.address, 400_000, to=payee)
    assert (again.tx_hash, again.post.id) == (done.tx_hash, done.post.id)
    assert token.balance_of(payee) == 400_000
    # The same id for another withdrawal is a conflict, not a payment.
    with pytest.raises(IdempotencyConflict):
        reserve.withdraw("w-1", wallet.address, 1, to=payee)
    assert check_reserves(ledger, [reserve]).ok


def test_withdraw_more_than_the_balance_moves_nothing(
    chain: LocalChain, token: Token, reserve: Reserve, ledger: Ledger
) -> None:
    wallet = _funded_account(chain, token, reserve, 100)
    held = token.balance_of(reserve.address)
    with pytest.raises(ExceedsCredits):
        reserve.withdraw("w-big", wallet.address, 101)
    assert token.balance_of(reserve.address) == held
    assert _balance(ledger, wallet.address) == 100


def test_withdrawal_failing_on_chain_is_voided(
    chain: LocalChain, token: Token, reserve: Reserve, ledger: Ledger
) -> None:
    # A ledger credit with no chain funds behind it: the books promise what the reserve lacks.
    wallet = PrivateKey.generate().address
    ledger.submit(
        transfer(
            "unbacked-1",
            reserve.account_id,
            reserve.wallet_account(wallet),
            USDC.atomic(700),
            code=TransferCode.CORRECTION,
        )
    )
    report = check_reserves(ledger, [reserve])
    assert not report.ok and report.assets[0].surplus == -700
    with pytest.raises(WithdrawalFailed, match="balance is unchanged"):
        reserve.withdraw("w-fail", wallet, 700)
    assert _balance(ledger, wallet) == 700  # nothing lost
    assert ledger.balance(reserve.wallet_account(wallet)).debits_pending == 0
    assert ledger.hold_status("withdrawal:w-fail").state is HoldState.VOIDED
    # The withdrawal's nonce is dead on chain: no signed copy can ever pay it later.
    nonce = withdrawal_nonce(chain.network, reserve.address, "w-fail")
    assert token.authorization_state(reserve.address, nonce)
    assert token.authorization_used_log(reserve.address, nonce) is None
    # Retried with the same id: still the failure, still no payment.
    with pytest.raises(WithdrawalFailed, match="voided earlier"):
        reserve.withdraw("w-fail", wallet, 700)
    assert token.balance_of(wallet) == 0


def test_withdrawal_refusals(reserve: Reserve) -> None:
    wallet = PrivateKey.generate().address
    for bad_id in ("", "x" * 101, "has space", "~ours"):
        with pytest.raises(Exception, match="id"):
            reserve.withdraw(bad_id, wallet, 1)
    for bad_value in (0, -1, MAX_ATOMIC + 1, True, 1.5):
        with pytest.raises(Exception, match="atomic units"):
            reserve.withdraw("w", wallet, bad_value)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="zero address"):
        reserve.withdraw("w", wallet, 1, to="0x" + "00" * 20)
    with pytest.raises(Exception, match=r"not an address|checksum|hex"):
        reserve.withdraw("w", "0x1234", 1)


# ----- reserves ----------------------------------------------------------------------------------


def test_reserves_check(chain: LocalChain, token: Token, reserve: Reserve, ledger: Ledger) -> None:
    _funded_account(chain, token, reserve, 3_000)
    report = check_reserves(ledger, [reserve, reserve])  # the same reserve twice counts once
    (line,) = report.assets
    assert (line.asset, line.liabilities, line.on_chain, line.in_flight) == (
        "USDC",
        3_000,
        3_000,
        0,
    )
    assert report.ok
    # Minting straight to the reserve only adds a surplus.
    token.mint(chain.operator, reserve.address, 50)
    assert check_reserves(ledger, [reserve]).assets[0].surplus == 50
    # A ledger credit with no chain funds breaks it.
    ledger.submit(
        transfer(
            "unbacked-2",
            reserve.account_id,
            reserve.wallet_account(PrivateKey.generate().address),
            USDC.atomic(51),
            code=TransferCode.CORRECTION,
        )
    )
    report = check_reserves(ledger, [reserve])
    assert not report.ok and report.assets[0].surplus == -1


def test_faucet_deposit_keeps_the_books_backed(
    chain: LocalChain, token: Token, reserve: Reserve, ledger: Ledger
) -> None:
    wallet = PrivateKey.generate().address
    deposit = reserve.faucet_deposit(wallet, 25_000_000)
    assert _balance(ledger, wallet) == 25_000_000
    assert deposit.transfer.metadata["source"] == "faucet"
    assert check_reserves(ledger, [reserve]).ok
    # The watcher does not count the mint as someone's deposit.
    assert reserve.scan_deposits().deposits == ()


def test_watch_in_a_thread(chain: LocalChain, token: Token, ledger: Ledger) -> None:
    key = PrivateKey.generate()
    chain.fund(key.address, 10**20)
    watcher = Reserve(ledger, token, key, start_block=chain.block_number())
    stop = threading.Event()
    thread = threading.Thread(target=watcher.watch, args=(stop,), kwargs={"interval_s": 0.05})
    thread.start()
    try:
        sender = _wallet(chain, token, 42)
        chain.fund(sender.address, 10**18)
        token.transfer(sender, key.address, 42)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(AccountNotFound):  # it opens with the first credit
                if _balance(ledger, sender.address) == 42:
                    break
            time.sleep(0.02)
        assert _balance(ledger, sender.address) == 42
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
