"""Deposits to the reserve: a wallet's signed ``receiveWithAuthorization`` submitted by the
operator, plain transfers to the reserve found by the watcher in the logs, and the demo
faucet; each credited to the wallet's ledger account exactly once."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from paywire.chain.base._values import ZERO_ADDRESS, Receipt
from paywire.chain.eip3009 import Authorization
from paywire.chain.errors import (
    DepositRejected,
    InvalidAuthorization,
    InvalidChainInput,
    TransactionReverted,
)
from paywire.chain.reserve._accounts import deposit_transfer_id
from paywire.chain.reserve._base import ReserveBase
from paywire.chain.token._authorization import revert_code
from paywire.chain.token._contract import TransferLog, transfer_log
from paywire.crypto import PrivateKey
from paywire.ledger import Transfer, TransferCode, transfer
from paywire.ledger.model import check_id
from paywire.money import MAX_ATOMIC

# The package's logger: deposits and withdrawals log under one name.
log = logging.getLogger("paywire.chain.reserve")

DEPOSIT_VALIDITY_S = 3600
"""How long a wallet's signed deposit stays valid: the operator may take a while to submit
it, and until then the funds stay in the wallet."""

MAX_SCAN_BLOCKS = 50_000
"""Blocks one `scan_deposits` call covers; the next call continues from its cursor."""

WATCH_INTERVAL_S = 2.0
"""How often `watch` scans for deposits: about one block on a 2 s L2."""

MAX_FAUCET_CALL_ATOMIC = 10**6 * 10**6
"""`faucet_deposit` credits at most a million dollars of virtual funds per call."""


# ----- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deposit:
    """A credited deposit: the ledger transfer and the chain event it came from.
    `transfer.replayed` is True when it had been credited before."""

    transfer: Transfer
    from_: str
    value: int
    tx_hash: str
    log_index: int
    block_number: int


@dataclass(frozen=True, slots=True)
class SkippedTransfer:
    """A transfer to the reserve the watcher did not credit, and why."""

    log: TransferLog
    reason: str


@dataclass(frozen=True, slots=True)
class DepositScan:
    """What one `scan_deposits` call did: blocks [from_block, to_block] were scanned."""

    from_block: int
    to_block: int
    deposits: tuple[Deposit, ...]
    skipped: tuple[SkippedTransfer, ...]
    behind: bool = False
    """More confirmed blocks wait past `MAX_SCAN_BLOCKS`: scan again at once."""

    @property
    def next_block(self) -> int:
        return self.to_block + 1


class ReserveDeposits(ReserveBase):
    """The deposits of `Reserve`: signed by a wallet, found by the watcher, or minted by
    the demo faucet."""

    # ----- deposits ------------------------------------------------------------------------

    def deposit_authorization(
        self, wallet: PrivateKey, value: int, *, valid_for_s: int = DEPOSIT_VALIDITY_S
    ) -> tuple[Authorization, bytes]:
        """For the wallet side: a ``ReceiveWithAuthorization`` of `value` to this reserve,
        signed by `wallet` (what ``paywire deposit`` sends to the operator)."""
        authorization = self.token.authorization(
            wallet.address, self.address, value, valid_for_s=valid_for_s
        )
        return authorization, self.token.sign_receive(wallet, authorization)

    def deposit(self, authorization: Authorization, signature: bytes | str) -> Deposit:
        """Take a wallet's signed ``ReceiveWithAuthorization`` to the reserve: submit it,
        wait for `confirmations`, credit the wallet. Retrying the same authorization
        credits once (it finds the first transaction by its nonce).

        Raises `DepositRejected` (not to this reserve, zero or past u128, canceled),
        `TransactionReverted` (bad signature, expired, no funds: ``reason`` says which),
        `TransactionPending` (not confirmed in time: retry later).
        """
        if not isinstance(authorization, Authorization):
            raise InvalidAuthorization("expected an Authorization")
        if authorization.to != self.address:
            raise DepositRejected(
                f"a deposit must be payable to the reserve {self.address}, not {authorization.to}"
            )
        if not 0 < authorization.value <= MAX_ATOMIC:
            raise DepositRejected(
                f"a deposit is 1 to {MAX_ATOMIC} atomic units (the ledger's u128 bound)"
            )
        receipt = self._receive(authorization, signature)
        found = self.token.check_transfer(
            receipt, authorization.from_, self.address, authorization.value
        )
        decoded = transfer_log(found)
        assert decoded is not None
        return self._credit(decoded)

    def _receive(self, authorization: Authorization, signature: bytes | str) -> Receipt:
        if not self.token.authorization_state(authorization.from_, authorization.nonce):
            try:
                return self.token.receive_with_authorization(
                    authorization, signature, key=self.key, confirmations=self.confirmations
                )
            except TransactionReverted as error:
                if revert_code(error.reason) != "invalid_exact_evm_nonce_already_used":
                    raise
                # Lost a race with another submission of the same deposit: find it below.
        used = self.token.authorization_used_log(authorization.from_, authorization.nonce)
        if used is None:
            raise DepositRejected(
                "this authorization's nonce was canceled on chain; sign a new deposit"
            )
        receipt = self.chain.wait(used.tx_hash, confirmations=self.confirmations)
        if not receipt.ok:  # pragma: no cover - a used nonce comes from a successful tx
            raise DepositRejected(f"transaction {used.tx_hash} did not succeed")
        return receipt

    def scan_deposits(self, *, to_block: int | None = None) -> DepositScan:
        """The watcher's step: credit plain transfers to the reserve found in Transfer logs
        from the cursor up to the last block `confirmations` deep (at most
        `MAX_SCAN_BLOCKS`), then move the cursor. Mints (from the zero address) and the
        reserve's own transfers are not deposits; transfers the ledger cannot hold (zero,
        past u128) are reported in `skipped`, never retried forever.
        """
        with self._scan_lock:
            start = self._cursor.load(self._cursor_key)
            start = self._start_block if start is None else start
            head = self.chain.block_number() - (self.confirmations - 1)
            end = min(head, start + MAX_SCAN_BLOCKS - 1)
            if to_block is not None:
                end = min(end, to_block)
            if end < start:
                return DepositScan(start, start - 1, (), ())
            deposits: list[Deposit] = []
            skipped: list[SkippedTransfer] = []
            for found in self.token.transfers(from_block=start, to_block=end, to=self.address):
                reason = self._not_a_deposit(found)
                if reason is not None:
                    skipped.append(SkippedTransfer(found, reason))
                    continue
                deposits.append(self._credit(found))
            self._cursor.save(self._cursor_key, end + 1)
            return DepositScan(start, end, tuple(deposits), tuple(skipped), end < head)

    def watch(self, stop: threading.Event, *, interval_s: float = WATCH_INTERVAL_S) -> None:
        """Scan for deposits every `interval_s` until `stop` is set (run it in a thread).
        A failing scan is logged and retried; the cursor only moves after a full scan."""
        while not stop.is_set():
            try:
                while self.scan_deposits().behind and not stop.is_set():
                    pass  # a long way behind (a first start): catch up without pausing
            except Exception:  # keep watching: a flaky RPC must not end deposits
                log.exception("deposit scan of %s failed; retrying", self)
            stop.wait(interval_s)

    def _not_a_deposit(self, found: TransferLog) -> str | None:
        if found.from_ == ZERO_ADDRESS:
            return "a mint to the reserve (operator funds), not a deposit"
        if found.from_ == self.address:
            return "the reserve's transfer to itself"
        if not 0 < found.value <= MAX_ATOMIC:
            return f"value {found.value} is outside the ledger's 1..2^128-1 bound"
        return None

    def _credit(self, found: TransferLog) -> Deposit:
        wallet = self.wallet_account(found.from_)
        # Everything below comes from the log alone, so both ways in build the same request.
        request = transfer(
            deposit_transfer_id(self.chain.network, found.tx_hash, found.log_index),
            self.account_id,
            wallet,
            self.asset.atomic(found.value),
            code=TransferCode.DEPOSIT,
            metadata={
                "network": self.chain.network,
                "token": self.token.address,
                "tx": found.tx_hash.lower(),
                "log_index": found.log_index,
                "block": found.block_number,
                "from": found.from_,
            },
        )
        done = self.ledger.submit(request)
        return Deposit(
            done, found.from_, found.value, found.tx_hash, found.log_index, found.block_number
        )

    def faucet_deposit(self, address: str, value: int) -> Deposit:
        """Demo mode: mint `value` of virtual funds to the reserve on paywire's local chain
        and credit them to `address`'s ledger account, so the books stay backed. Refused
        (`FaucetRefused`) on any other chain."""
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidChainInput("a faucet amount is a whole number of atomic units")
        if not 0 < value <= MAX_FAUCET_CALL_ATOMIC:
            raise InvalidChainInput(f"the faucet credits 1..{MAX_FAUCET_CALL_ATOMIC} units")
        wallet = self.wallet_account(address)
        receipt = self.token.faucet(self.address, value)
        minted = transfer_log(self.token.check_transfer(receipt, ZERO_ADDRESS, self.address, value))
        assert minted is not None
        request = transfer(
            check_id(
                f"faucet:{self.chain.network}:{minted.tx_hash}:{minted.log_index}", "faucet id"
            ),
            self.account_id,
            wallet,
            self.asset.atomic(value),
            code=TransferCode.DEPOSIT,
            metadata={
                "network": self.chain.network,
                "token": self.token.address,
                "tx": minted.tx_hash,
                "source": "faucet",
            },
        )
        done = self.ledger.submit(request)
        return Deposit(
            done, ZERO_ADDRESS, value, minted.tx_hash, minted.log_index, minted.block_number
        )
