"""Deposits, withdrawals and the reserves check: the bridge between a chain and the ledger.

The operator holds stablecoin at a **reserve address** on chain. The ledger mirrors it with
one external account per (network, token), ``reserve:<network>:<token>``; each wallet has
an agent account ``<address>:<ASSET>`` (`paywire.ledger.names`). Then:

- a **deposit** moves tokens from a wallet to the reserve on chain, and credits the
  wallet's ledger account from the reserve account, once: the ledger transfer's id is
  ``deposit:<network>:<tx hash>:<log index>``, so the two ways in (the operator submitting
  the wallet's EIP-3009 ``receiveWithAuthorization``, and the watcher finding a plain
  ERC-20 transfer to the reserve in the logs) credit the same transfer exactly once, only
  after `confirmations` blocks;
- a **withdrawal** holds the amount on the wallet's ledger account, moves it from the
  reserve to the address on chain, then posts the hold; if the chain transfer cannot
  happen the hold is voided. Never both: the chain transfer is an EIP-3009 authorization
  by the reserve whose nonce is derived from the withdrawal id, so the chain itself says
  whether it happened (``authorizationState``), a retry can never pay twice, and a void
  comes only after that nonce is provably dead (used by nobody, then canceled on chain);
- the **reserves check**: per asset, the ledger's liabilities (what its non-external
  accounts hold) must not exceed what the reserves hold on chain.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from paywire.chain._checks import check_address
from paywire.chain.base import ZERO_ADDRESS, Receipt
from paywire.chain.eip3009 import Authorization
from paywire.chain.errors import (
    ChainError,
    DepositRejected,
    InvalidAuthorization,
    InvalidChainInput,
    TransactionPending,
    TransactionReverted,
    WithdrawalFailed,
    WithdrawalPending,
)
from paywire.chain.token import Token, TransferLog, revert_code, transfer_log
from paywire.crypto import PrivateKey, keccak256
from paywire.ledger import (
    AccountKind,
    HoldState,
    Ledger,
    NewAccount,
    Transfer,
    TransferCode,
    hold,
    post,
    transfer,
    void,
)
from paywire.ledger.model import check_id
from paywire.ledger.names import reserve_account_id, wallet_account_id
from paywire.money import MAX_ATOMIC, Asset

log = logging.getLogger(__name__)

MAX_WITHDRAWAL_ID_CHARS = 100
"""A withdrawal id with its ledger prefix and suffix must stay within a 128-char ledger id."""

WITHDRAWAL_VALIDITY_S = 600
"""How long the reserve's signed withdrawal transfer may be mined: long enough for a
congested chain, short enough that a stuck withdrawal resolves within minutes."""

DEPOSIT_VALIDITY_S = 3600
"""How long a wallet's signed deposit stays valid: the operator may take a while to submit
it, and until then the funds stay in the wallet."""

MAX_SCAN_BLOCKS = 50_000
"""Blocks one `scan_deposits` call covers; the next call continues from its cursor."""

WATCH_INTERVAL_S = 2.0
"""How often `watch` scans for deposits: about one block on a 2 s L2."""

MAX_FAUCET_CALL_ATOMIC = 10**6 * 10**6
"""`faucet_deposit` credits at most a million dollars of virtual funds per call."""

_NONCE_DOMAIN = b"paywire-withdrawal\x00"


# ----- account conventions --------------------------------------------------------------------


def open_wallet_account(ledger: Ledger, address: str, asset: Asset) -> str:
    """Open (idempotently) the agent account of wallet `address` in `asset`; its id.

    Opened exactly as the ledger network's facilitator opens a payee's account, so both
    may open it first."""
    checked = _address(address)
    account_id = wallet_account_id(checked, asset.code)
    ledger.open_account(NewAccount(account_id, asset, AccountKind.AGENT, owner=checked))
    return account_id


def deposit_transfer_id(network: str, tx_hash: str, log_index: int) -> str:
    """The ledger transfer id (idempotency key) of the deposit in one Transfer log."""
    return check_id(f"deposit:{network}:{tx_hash.lower()}:{log_index}", "deposit id")


def withdrawal_nonce(network: str, reserve: str, withdrawal_id: str) -> bytes:
    """The EIP-3009 nonce of a withdrawal: one per (chain, reserve, withdrawal id), so the
    chain's ``authorizationState`` says whether that withdrawal was paid."""
    text = f"{network}\x00{reserve}\x00{withdrawal_id}".encode()
    return keccak256(_NONCE_DOMAIN + text)


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


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A finished withdrawal: the posted hold and the chain transfer that paid it."""

    id: str
    to: str
    value: int
    hold: Transfer
    post: Transfer
    tx_hash: str


@dataclass(frozen=True, slots=True)
class ReserveBalance:
    """One reserve's holding on chain."""

    network: str
    token: str
    address: str
    balance: int


@dataclass(frozen=True, slots=True)
class AssetReserves:
    """One asset's books against its reserves.

    `liabilities` is what the ledger's non-external accounts hold (posted); `in_flight` is
    what withdrawals hold toward the reserves (paid on chain, perhaps, but not yet posted);
    `on_chain` what the reserves hold. Solvent when on_chain + in_flight >= liabilities.
    """

    asset: str
    liabilities: int
    in_flight: int
    on_chain: int
    reserves: tuple[ReserveBalance, ...]

    @property
    def surplus(self) -> int:
        """Reserves beyond liabilities (negative: a shortfall)."""
        return self.on_chain + self.in_flight - self.liabilities

    @property
    def ok(self) -> bool:
        return self.surplus >= 0


@dataclass(frozen=True, slots=True)
class ReservesReport:
    """The reserves check: one line per asset; `ok` when every asset is covered."""

    assets: tuple[AssetReserves, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems and all(asset.ok for asset in self.assets)


# ----- the watcher's cursor -----------------------------------------------------------------


class CursorStore(Protocol):
    """Where the deposit watcher remembers the next block to scan.

    A cursor that lags is harmless (rescanned deposits are credited once); one that runs
    ahead would skip deposits, so a store must never return more than it was given.
    """

    def load(self, key: str) -> int | None: ...

    def save(self, key: str, next_block: int) -> None: ...


class MemoryCursor:
    """A cursor kept in memory (the process's lifetime; a restart rescans from the start)."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}
        self._lock = threading.Lock()

    def load(self, key: str) -> int | None:
        with self._lock:
            return self._values.get(key)

    def save(self, key: str, next_block: int) -> None:
        with self._lock:
            self._values[key] = next_block


class FileCursor:
    """A cursor kept in a small JSON file (written atomically), e.g. next to the ledger."""

    MAX_FILE_BYTES = 1024 * 1024
    """A cursor file past this is not ours; it is ignored (the scan starts over, safely)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def load(self, key: str) -> int | None:
        with self._lock:
            value = self._read().get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def save(self, key: str, next_block: int) -> None:
        with self._lock:
            values = self._read()
            values[key] = next_block
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    json.dump(values, file, sort_keys=True)
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise

    def _read(self) -> dict[str, object]:
        try:
            if self.path.stat().st_size > self.MAX_FILE_BYTES:
                return {}
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


# ----- the reserve ------------------------------------------------------------------------------


class Reserve:
    """The operator's reserve of one token on one chain, mirrored in a ledger.

    `key` is the reserve address's key: it receives deposits (``receiveWithAuthorization``
    must be submitted by the payee), signs withdrawals and pays their gas, so the address
    needs the chain's native coin. `asset` defaults to the token's symbol and decimals.
    `confirmations` (default: the chain's) is the depth before a deposit is credited.
    """

    def __init__(
        self,
        ledger: Ledger,
        token: Token,
        key: PrivateKey,
        *,
        asset: Asset | None = None,
        confirmations: int | None = None,
        cursor: CursorStore | None = None,
        start_block: int = 0,
    ) -> None:
        if not isinstance(key, PrivateKey):
            raise ChainError("a reserve needs its address's PrivateKey")
        self.ledger = ledger
        self.token = token
        self.chain = token.chain
        self.key = key
        self.address = key.address
        """The reserve's on-chain address."""
        self.asset = asset if asset is not None else Asset(token.symbol.upper(), token.decimals)
        if self.asset.decimals != token.decimals:
            raise ChainError(
                f"asset {self.asset.code} has {self.asset.decimals} decimals, "
                f"the token {token.decimals}: one atomic unit must be one token unit"
            )
        self.confirmations = self.chain.confirmations if confirmations is None else confirmations
        if not isinstance(start_block, int) or start_block < 0:
            raise ChainError("start_block must be a block number (0 or more)")
        self.account_id = reserve_account_id(self.chain.network, token.address)
        """The ledger's external account mirroring this reserve."""
        ledger.open_account(
            NewAccount(self.account_id, self.asset, AccountKind.EXTERNAL, owner=self.address)
        )
        self._cursor = cursor if cursor is not None else MemoryCursor()
        self._cursor_key = f"deposits:{self.chain.network}:{token.address}:{self.address}"
        self._start_block = start_block
        self._opened: set[str] = set()
        self._scan_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Reserve({self.asset.code} at {self.address} on {self.chain.network})"

    def wallet_account(self, address: str) -> str:
        """The ledger account of wallet `address` in this asset (opened if needed)."""
        checked = _address(address)
        account_id = wallet_account_id(checked, self.asset.code)
        if account_id not in self._opened:
            open_wallet_account(self.ledger, checked, self.asset)
            self._opened.add(account_id)
        return account_id

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

    # ----- withdrawals ---------------------------------------------------------------------

    def withdraw(
        self,
        withdrawal_id: str,
        wallet: str,
        value: int,
        *,
        to: str | None = None,
        authorization: str | None = None,
    ) -> Withdrawal:
        """Pay `value` from `wallet`'s ledger account to `to` (default: `wallet`) on chain.

        Idempotent by `withdrawal_id`: a retry finishes or reports the first attempt, never
        pays twice. `authorization` (the wallet's signed request, verbatim) is kept on the
        hold. Raises the ledger's `ExceedsCredits` when the wallet lacks the funds,
        `WithdrawalFailed` when the chain transfer cannot happen (the hold is voided:
        nothing lost), `WithdrawalPending` when its outcome is not known yet (the hold stays;
        retry with the same id).
        """
        if not isinstance(withdrawal_id, str) or len(withdrawal_id) > MAX_WITHDRAWAL_ID_CHARS:
            raise InvalidChainInput(
                f"a withdrawal id is text of at most {MAX_WITHDRAWAL_ID_CHARS} characters"
            )
        check_id(withdrawal_id, "withdrawal id")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_ATOMIC:
            raise InvalidChainInput(f"a withdrawal is 1..{MAX_ATOMIC} atomic units")
        payee = _address(wallet if to is None else to)
        if payee == ZERO_ADDRESS:
            raise InvalidChainInput("cannot withdraw to the zero address")
        nonce = withdrawal_nonce(self.chain.network, self.address, withdrawal_id)
        hold_id = f"withdrawal:{withdrawal_id}"
        held = self.ledger.submit(
            hold(
                hold_id,
                self.wallet_account(wallet),
                self.account_id,
                self.asset.atomic(value),
                code=TransferCode.WITHDRAWAL,
                metadata={
                    "network": self.chain.network,
                    "token": self.token.address,
                    "to": payee,
                    "nonce": "0x" + nonce.hex(),
                },
                authorization=authorization,
            )
        )
        status = self.ledger.hold_status(hold_id)
        if status.state is HoldState.POSTED:
            assert status.resolved_by is not None
            posted = self.ledger.transfer(status.resolved_by)
            return Withdrawal(
                withdrawal_id, payee, value, held, posted, str(posted.metadata.get("tx", ""))
            )
        if status.state is not HoldState.PENDING:
            raise WithdrawalFailed(
                f"withdrawal {withdrawal_id} was {status.state} earlier; use a new id to retry"
            )
        receipt = self._pay(withdrawal_id, payee, value, nonce)
        if receipt is None:
            self.ledger.submit(void(f"{hold_id}:void", hold_id, metadata={"nonce": nonce.hex()}))
            raise WithdrawalFailed(
                f"withdrawal {withdrawal_id} could not be paid on chain; "
                "the hold was released, the wallet's balance is unchanged"
            )
        posted = self.ledger.submit(
            post(
                f"{hold_id}:post",
                hold_id,
                metadata={"tx": receipt.tx_hash, "block": receipt.block_number},
            )
        )
        return Withdrawal(withdrawal_id, payee, value, held, posted, receipt.tx_hash)

    def _pay(self, withdrawal_id: str, payee: str, value: int, nonce: bytes) -> Receipt | None:
        """The receipt of the withdrawal's chain transfer, or None once it provably never
        happens. `WithdrawalPending` while that is not known."""
        if self.token.authorization_state(self.address, nonce):
            return self._paid(withdrawal_id, nonce)
        authorization = Authorization(
            from_=self.address,
            to=payee,
            value=value,
            valid_after=0,
            valid_before=int(time.time()) + WITHDRAWAL_VALIDITY_S,
            nonce=nonce,
        )
        signature = self.token.sign_transfer(self.key, authorization)
        try:
            tx_hash = self.token.send_transfer_with_authorization(
                authorization, signature, key=self.key
            )
        except TransactionReverted as error:
            log.warning("withdrawal %s refused by the token: %s", withdrawal_id, error.reason)
            return self._cancel(withdrawal_id, nonce)
        except ChainError as error:
            raise WithdrawalPending(
                f"withdrawal {withdrawal_id}: the chain did not take the transfer ({error}); "
                "retry with the same id"
            ) from None
        try:
            return self.token.confirm_transfer(
                tx_hash, authorization, confirmations=self.confirmations
            )
        except TransactionPending:
            raise WithdrawalPending(
                f"withdrawal {withdrawal_id}: transaction {tx_hash} is not confirmed yet; "
                "retry with the same id"
            ) from None
        except TransactionReverted:
            return self._cancel(withdrawal_id, nonce)

    def _paid(self, withdrawal_id: str, nonce: bytes) -> Receipt | None:
        used = self.token.authorization_used_log(self.address, nonce)
        if used is None:
            return None  # canceled by an earlier attempt: it never paid
        try:
            receipt = self.chain.wait(used.tx_hash, confirmations=self.confirmations)
        except TransactionPending:
            raise WithdrawalPending(
                f"withdrawal {withdrawal_id}: transaction {used.tx_hash} is not confirmed yet"
            ) from None
        return receipt

    def _cancel(self, withdrawal_id: str, nonce: bytes) -> Receipt | None:
        """Burn the withdrawal's nonce so no signed copy can ever pay it, then report None;
        if it turns out to be used after all, the receipt of the transfer that used it."""
        signature = self.token.sign_cancel(self.key, nonce)
        try:
            self.token.cancel_authorization(self.address, nonce, signature, key=self.key)
        except TransactionReverted:
            if self.token.authorization_state(self.address, nonce):
                return self._paid(withdrawal_id, nonce)
            raise WithdrawalPending(
                f"withdrawal {withdrawal_id}: its nonce could not be canceled; retry"
            ) from None
        except ChainError as error:
            raise WithdrawalPending(
                f"withdrawal {withdrawal_id}: canceling its nonce failed ({error}); retry"
            ) from None
        return None


# ----- the reserves check -----------------------------------------------------------------------


def check_reserves(ledger: Ledger, reserves: Sequence[Reserve]) -> ReservesReport:
    """Per asset of `reserves`: the ledger's liabilities against the reserves' balances on
    chain. Reads the ledger in one snapshot, then each reserve's balance."""
    by_asset: dict[str, list[Reserve]] = {}
    seen: set[str] = set()
    for reserve in reserves:
        if reserve.account_id not in seen:  # the same reserve twice must not count twice
            seen.add(reserve.account_id)
            by_asset.setdefault(reserve.asset.code, []).append(reserve)
    liabilities = dict.fromkeys(by_asset, 0)
    in_flight = dict.fromkeys(by_asset, 0)
    reserve_ids = seen
    problems: list[str] = []
    with ledger.reader() as reader:
        for state in reader.all_accounts():
            code = state.asset.code
            if code not in liabilities:
                continue
            if state.kind is AccountKind.EXTERNAL:
                if state.id in reserve_ids:
                    in_flight[code] += state.credits_pending
                continue
            liabilities[code] += state.credits_posted - state.debits_posted
    assets = []
    for code, members in sorted(by_asset.items()):
        balances = []
        for reserve in members:
            try:
                balance = reserve.token.balance_of(reserve.address)
            except ChainError as error:
                problems.append(f"{reserve}: cannot read the balance on chain: {error}")
                balance = 0
            balances.append(
                ReserveBalance(
                    reserve.chain.network, reserve.token.address, reserve.address, balance
                )
            )
        assets.append(
            AssetReserves(
                asset=code,
                liabilities=liabilities[code],
                in_flight=in_flight[code],
                on_chain=sum(item.balance for item in balances),
                reserves=tuple(balances),
            )
        )
    return ReservesReport(tuple(assets), tuple(problems))


def _address(value: object) -> str:
    return check_address(value)
